"""The Kaggle download through the real ``kaggle`` client, against a local stand-in for Kaggle:
the right file, or a message that says what to do, never a file that looks complete and is not,
and never the key in any message or output."""
from __future__ import annotations

import importlib
import sys
import time
import traceback
import types

import pytest
from tqdm import tqdm

from catsdogs.config import ARCHIVE_NAME, RULES_URL
import catsdogs.download
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
    """No Content-Length, half the bytes: kaggle 2.1.1 and later think they are done, and the zip check
    catches it; kaggle 2.0.2 to 2.1.0 need the header (KeyError 'Content-Length'), and that is caught too."""
    with KaggleStandIn(demo_archive.read_bytes(), USERNAME, KEY, mode="short"), pytest.raises(DatasetError) as err:
        download_competition(kaggle_client)
    message = str(err.value)
    assert "not a readable zip" in message or "(keyerror: 'content-length')" in message.lower()
    assert "download it again" in message
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


def _progress_bar_that_raises(error: BaseException, seen: list, staging):
    """The client's progress bar (tqdm), which raises ``error`` at its first update: after the client has
    written the first chunk, mid-download. ``seen`` gets the bytes then in the staging folder."""

    class Breaking(tqdm):
        def update(self, n=1):
            seen.append(sum(f.stat().st_size for f in staging.rglob("*") if f.is_file()))
            raise error

    return Breaking


@pytest.mark.parametrize("error", [KeyError("Content-Length"), RuntimeError(f"the proxy said: {USERNAME}:{KEY}"),
                                   AttributeError("'NoneType' object has no attribute 'headers'")],
                         ids=lambda e: type(e).__name__)
def test_any_exception_the_client_raises_mid_download_becomes_a_dataset_error(kaggle_client, demo_archive, monkeypatch,
                                                                              capsys, error):
    """kaggle 2.0.2 raised KeyError, let through as a raw traceback; any other exception the same way."""
    client = importlib.import_module("kaggle.api.kaggle_api_extended")
    seen: list[int] = []
    monkeypatch.setattr(client, "tqdm", _progress_bar_that_raises(error, seen, kaggle_client / ".download"))
    with KaggleStandIn(demo_archive.read_bytes(), USERNAME, KEY), pytest.raises(DatasetError) as err:
        download_competition(kaggle_client)
    assert seen and seen[0] > 0  # it broke with bytes written
    message = str(err.value)
    assert f"The Kaggle download failed ({type(error).__name__}" in message
    assert "nothing was kept" in message and "Run this again" in message and "by hand" in message
    assert _archive_files(kaggle_client) == [] and not (kaggle_client / ".download").exists()
    _assert_no_key(capsys, err)


class _ExitsOnImport(types.ModuleType):
    """``kaggle.api.kaggle_api_extended`` as kaggle 2.0.2 to 2.1.x behave when they cannot sign in:
    ``import kaggle`` calls ``api.authenticate()``, which calls ``exit(1)``."""

    def __getattr__(self, name):
        raise SystemExit(1)


def test_a_client_that_exits_as_it_is_imported_gets_the_sign_in_message(kaggle_client, monkeypatch):
    monkeypatch.setitem(sys.modules, "kaggle.api.kaggle_api_extended", _ExitsOnImport("kaggle.api.kaggle_api_extended"))
    with pytest.raises(DatasetError) as err:
        download_competition(kaggle_client)
    assert "could not sign in with: KAGGLE_USERNAME and KAGGLE_KEY" in str(err.value)
    assert "KAGGLE_API_TOKEN" in str(err.value)  # and the list of ways to sign in
    assert not (kaggle_client / ".download").exists()


def test_a_client_that_cannot_be_imported_says_to_install_the_requirements(kaggle_client, monkeypatch):
    monkeypatch.setitem(sys.modules, "kaggle.api.kaggle_api_extended", None)  # import fails (ImportError)
    with pytest.raises(DatasetError, match="could not be imported.*pip install -r requirements.txt"):
        download_competition(kaggle_client)


class _KaggleApi:
    """A stand-in ``KaggleApi`` that records how it was built and writes the archive it is given."""

    made: list[dict] = []
    archive = b""

    def __init__(self, **options):
        self.made.append(options)

    def authenticate(self):
        pass

    def competition_download_files(self, competition, path, force, quiet):
        (catsdogs.download.Path(path) / catsdogs.download.ARCHIVE_NAME).write_bytes(self.archive)


class _KaggleApiWithOAuthSwitch(_KaggleApi):
    """kaggle 2.0 to 2.1.0: ``KaggleApi(enable_oauth=False)``."""

    def __init__(self, enable_oauth: bool = False):
        super().__init__(enable_oauth=enable_oauth)


@pytest.mark.parametrize("api, setting, expected", [(_KaggleApiWithOAuthSwitch, "1", {"enable_oauth": True}),
                                                    (_KaggleApiWithOAuthSwitch, None, {"enable_oauth": False}),
                                                    (_KaggleApi, "1", {})])
def test_the_client_is_built_with_enable_oauth_where_it_takes_it(kaggle_client, demo_archive, monkeypatch,
                                                                 api, setting, expected):
    client = importlib.import_module("kaggle.api.kaggle_api_extended")
    monkeypatch.setattr(client, "KaggleApi", api)
    monkeypatch.setattr(_KaggleApi, "made", [])
    monkeypatch.setattr(_KaggleApi, "archive", demo_archive.read_bytes())
    if setting is None:
        monkeypatch.delenv("KAGGLE_ENABLE_OAUTH", raising=False)
    else:
        monkeypatch.setenv("KAGGLE_ENABLE_OAUTH", setting)
    assert download_competition(kaggle_client).read_bytes() == demo_archive.read_bytes()
    assert _KaggleApi.made == [expected]
