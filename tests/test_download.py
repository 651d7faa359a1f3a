"""The Kaggle download through the real ``kaggle`` client, against a local stand-in for Kaggle:
the right file, or a message that says what to do, never a file that looks complete and is not,
and never the key in any message or output."""
from __future__ import annotations

import importlib
import time
import traceback

import pytest

from catsdogs.config import ARCHIVE_NAME, RULES_URL
from catsdogs.download import DatasetError, download_competition, has_kaggle_credentials, prepare_dataset
from kaggle_standin import KaggleStandIn

USERNAME = "learner"
KEY = "3f9c2e7a1b8d4c6e9f0a2b4c6d8e1f3a"  # shaped like a real key: 32 hex digits


class _TimeWithoutSleep:
    """The ``time`` module minus the client's back-off between retries (2 + 4 + 8 + 16 + 32 s)."""

    def __getattr__(self, name):
        return getattr(time, name)

    @staticmethod
    def sleep(seconds: float) -> None:
        pass


@pytest.fixture
def kaggle_client(tmp_path, monkeypatch):
    """Credentials in the environment (none on disk), and the real client pointed at the stand-in.

    kagglesdk sends ``KAGGLE_API_ENVIRONMENT=TEST`` to http://localhost:7777, but ``KaggleApi``
    (kaggle 2.2) always builds its client for the production environment, so the production
    endpoint is pointed at the TEST one for the duration of the test.
    """
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/.kaggle/access_token of the machine's user
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "kaggle-config"))
    monkeypatch.setenv("KAGGLE_USERNAME", USERNAME)
    monkeypatch.setenv("KAGGLE_KEY", KEY)
    monkeypatch.delenv("KAGGLE_API_TOKEN", raising=False)
    monkeypatch.setenv("KAGGLE_API_ENVIRONMENT", "TEST")
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    from kagglesdk import kaggle_env

    client = importlib.import_module("kaggle.api.kaggle_api_extended")  # `kaggle.api` is also an attribute

    monkeypatch.setitem(kaggle_env._env_to_endpoint, kaggle_env.KaggleEnv.PROD,
                        kaggle_env.get_endpoint(kaggle_env.KaggleEnv.TEST))
    monkeypatch.setattr(client, "time", _TimeWithoutSleep())
    return tmp_path / "data"


def _archive_files(folder):
    return [p for p in folder.rglob("*") if p.name == ARCHIVE_NAME]


def _assert_no_key(capsys, err=None) -> None:
    out = capsys.readouterr()
    assert KEY not in out.out and KEY not in out.err
    if err is not None:
        assert KEY not in "".join(traceback.format_exception(err.value))


def test_download_writes_the_archive(kaggle_client, demo_archive, capsys):
    with KaggleStandIn(demo_archive.read_bytes(), USERNAME, KEY) as kaggle:
        path = download_competition(kaggle_client)
    assert path == kaggle_client / ARCHIVE_NAME and path.read_bytes() == demo_archive.read_bytes()
    assert kaggle.requests[0][0] == "POST" and kaggle.downloads == 1
    assert _archive_files(kaggle_client) == [path] and not (kaggle_client / ".download").exists()
    _assert_no_key(capsys)


def test_prepare_dataset_downloads_then_extracts(kaggle_client, demo_archive, monkeypatch, capsys):
    monkeypatch.setenv("CATSDOGS_PROFILE", "full")
    with KaggleStandIn(demo_archive.read_bytes(), USERNAME, KEY):
        ws = prepare_dataset()
    assert not ws.is_demo and len(list(ws.train_dir.iterdir())) == 32 and len(list(ws.test_dir.iterdir())) == 8
    _assert_no_key(capsys)


def test_a_connection_dropped_once_is_resumed_by_the_client(kaggle_client, demo_archive, capsys):
    with KaggleStandIn(demo_archive.read_bytes(), USERNAME, KEY, mode="drop_once") as kaggle:
        path = download_competition(kaggle_client)
    assert path.read_bytes() == demo_archive.read_bytes() and kaggle.downloads == 2
    _assert_no_key(capsys)


def test_wrong_credentials_get_the_credentials_message(kaggle_client, demo_archive, monkeypatch, capsys):
    with KaggleStandIn(demo_archive.read_bytes(), USERNAME, "0" * 32), pytest.raises(DatasetError) as err:
        download_competition(kaggle_client)
    assert "refused the credentials (HTTP 401)" in str(err.value) and "KAGGLE_KEY" in str(err.value)
    assert _archive_files(kaggle_client) == []
    _assert_no_key(capsys, err)


def test_rules_not_accepted_get_the_rules_page(kaggle_client, demo_archive, capsys):
    with KaggleStandIn(demo_archive.read_bytes(), USERNAME, KEY, mode="rules"), pytest.raises(DatasetError) as err:
        download_competition(kaggle_client)
    assert "HTTP 403" in str(err.value) and RULES_URL in str(err.value)
    assert _archive_files(kaggle_client) == []
    _assert_no_key(capsys, err)


def test_a_dropped_connection_leaves_no_file_and_says_so(kaggle_client, demo_archive, capsys):
    with KaggleStandIn(demo_archive.read_bytes(), USERNAME, KEY, mode="drop") as kaggle, \
            pytest.raises(DatasetError) as err:
        download_competition(kaggle_client)
    assert kaggle.downloads > 1  # the client retried before giving up
    assert "cut off" in str(err.value) and "Run this again" in str(err.value)
    assert _archive_files(kaggle_client) == [] and not (kaggle_client / ".download").exists()
    _assert_no_key(capsys, err)


def test_a_short_download_that_looks_finished_is_caught(kaggle_client, demo_archive, capsys):
    """No Content-Length, half the bytes: the client thinks it is done; the zip check does not."""
    with KaggleStandIn(demo_archive.read_bytes(), USERNAME, KEY, mode="short"), pytest.raises(DatasetError) as err:
        download_competition(kaggle_client)
    assert "not a readable zip" in str(err.value) and "download it again" in str(err.value)
    assert _archive_files(kaggle_client) == [] and not (kaggle_client / ".download").exists()
    _assert_no_key(capsys, err)


def test_a_server_error_that_echoes_the_key_does_not_show_it(kaggle_client, demo_archive, capsys):
    with KaggleStandIn(demo_archive.read_bytes(), USERNAME, KEY, mode="echo"), pytest.raises(DatasetError) as err:
        download_competition(kaggle_client)
    assert "The Kaggle download failed" in str(err.value) and "***" in str(err.value)
    _assert_no_key(capsys, err)


def test_no_credentials_say_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "kaggle-config"))
    for name in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    assert not has_kaggle_credentials()
    with pytest.raises(DatasetError, match="(?s)No Kaggle credentials found.*KAGGLE_USERNAME and KAGGLE_KEY"):
        download_competition(tmp_path / "data")
