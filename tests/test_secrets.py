"""The Kaggle key stays secret: never committed, readable by its owner only, never printed; and every
way of signing in (the rows of ``catsdogs.download.SIGN_INS``) is recognised, and its secret hidden in
messages. (That no download message or output shows the key is checked in test_download.py.)"""
from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from catsdogs.config import REPO_DIR
import catsdogs.download
from catsdogs.download import (SIGN_INS, DatasetError, DemoDataWarning, SignIn, _redact, download_competition,
                               has_kaggle_credentials, kaggle_config_dir, no_credentials_message, prepare_dataset,
                               write_kaggle_json)

KEY = "3f9c2e7a1b8d4c6e9f0a2b4c6d8e1f3a"
# a legacy key is 32 hex digits; new-style API tokens start with KGAT_
KEY_LIKE = re.compile(r"(?<![0-9a-fA-F])[0-9a-f]{32}(?![0-9a-fA-F])|KGAT_[0-9A-Za-z]{8,}")


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
@pytest.mark.parametrize("where", ["kaggle.json", "notebooks/kaggle.json", "catsdogs/kaggle.json", "data/kaggle.json"])
def test_kaggle_json_is_git_ignored_wherever_it_lands(where):
    """In Colab the upload lands in the working folder (notebooks/); by hand, anywhere."""
    result = subprocess.run(["git", "check-ignore", "-q", "--no-index", where], cwd=REPO_DIR)
    assert result.returncode == 0, f"{where} is not git-ignored: add kaggle.json to .gitignore"


def test_kaggle_json_is_written_for_the_owner_only(tmp_path, monkeypatch):
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "new" / ".kaggle"))
    old_umask = os.umask(0)  # the most permissive setting: nothing but our own mode may protect the file
    try:
        path = write_kaggle_json("learner", KEY)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == {"username": "learner", "key": KEY}
    monkeypatch.delenv("KAGGLE_USERNAME", raising=False)
    monkeypatch.delenv("KAGGLE_KEY", raising=False)
    monkeypatch.delenv("KAGGLE_API_TOKEN", raising=False)
    assert has_kaggle_credentials()


def test_an_existing_readable_kaggle_json_is_made_private(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path))
    old = tmp_path / "kaggle.json"
    old.write_text('{"username": "someone", "key": "old"}')
    old.chmod(0o644)
    path = write_kaggle_json("learner", KEY)
    assert path == old and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text())["key"] == KEY
    assert KEY not in capsys.readouterr().out


def _output_text(notebook: Path) -> str:
    """Everything a notebook's saved outputs show as text (not the pixels of its plots)."""
    nb = nbformat.read(notebook, as_version=4)
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text", ""))
            parts += out.get("traceback", [])
            parts += [str(v) for k, v in out.get("data", {}).items() if k.startswith("text/")]
    return "\n".join(parts)


def test_the_key_detector_finds_a_planted_key(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(creds)", outputs=[
        nbformat.v4.new_output("stream", name="stdout", text=f"{{'username': 'learner', 'key': '{KEY}'}}\n")])])
    nbformat.write(nb, tmp_path / "leaky.ipynb")
    assert KEY_LIKE.search(_output_text(tmp_path / "leaky.ipynb"))


@pytest.mark.parametrize("notebook", sorted((REPO_DIR / "notebooks").glob("*.ipynb")), ids=lambda p: p.name)
def test_no_committed_notebook_output_shows_a_key(notebook):
    found = KEY_LIKE.search(_output_text(notebook))
    assert found is None, f"{notebook.name} shows something shaped like a Kaggle key: clear that output"


TOKEN = "KGAT_" + "7c1d" * 8  # shaped like a new-style API token


def _places():
    """Every row of the sign-in table, and each file a file row may be (ids: its variables, or the file)."""
    return [pytest.param(way, i, id="+".join(way.variables) or Path(way.files[i]).name)
            for way in SIGN_INS for i in range(max(1, len(way.files)))]


def _plant(way: SignIn, file_index: int, monkeypatch) -> str:
    """Set up one way of signing in as the learner would; returns its secret."""
    if way.variables:
        for name in way.variables:
            monkeypatch.setenv(name, TOKEN if name in way.secret else "learner")
    else:
        text = json.dumps({"username": "learner", **{field: TOKEN for field in way.secret}}) if way.json else TOKEN
        _write(way.paths()[file_index], text)
    return TOKEN


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def fresh_home(tmp_path, monkeypatch):
    """A home folder with no Kaggle sign-in at all, and no Kaggle variable set."""
    names = {name for way in SIGN_INS for name in way.variables}
    for var in names | {"KAGGLE_CONFIG_DIR", "XDG_CONFIG_HOME", "KAGGLE_ENABLE_OAUTH"}:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    return tmp_path / "home"


@pytest.mark.parametrize("way, file_index", _places())
def test_every_way_the_kaggle_client_signs_in_is_recognised(way, file_index, fresh_home, monkeypatch):
    monkeypatch.setenv("KAGGLE_ENABLE_OAUTH", "1")  # kaggle 2.0.2 to 2.1.0 read `kaggle auth login`'s only with it
    assert not has_kaggle_credentials()
    _plant(way, file_index, monkeypatch)
    assert way.found() and has_kaggle_credentials(), way.name


@pytest.mark.parametrize("way, file_index", _places())
def test_every_secret_of_every_way_is_hidden_in_messages(way, file_index, fresh_home, monkeypatch):
    secret = _plant(way, file_index, monkeypatch)
    shown = _redact(f"HTTP 500 for {secret!r} (sent as Bearer {secret})")
    assert secret not in shown and shown.count("***") == 2


def test_a_token_variable_that_names_a_file_hides_the_token_in_it(fresh_home, monkeypatch):
    """kagglesdk reads KAGGLE_API_TOKEN as a file when it names one."""
    _write(fresh_home / "token.txt", TOKEN + "\n")
    monkeypatch.setenv("KAGGLE_API_TOKEN", str(fresh_home / "token.txt"))
    assert has_kaggle_credentials() and TOKEN not in _redact(f"refused {TOKEN}")


@pytest.mark.parametrize("config", ["KAGGLE_CONFIG_DIR", "XDG_CONFIG_HOME"])
def test_kaggle_json_is_found_where_the_client_looks_for_it(config, fresh_home, monkeypatch):
    """$KAGGLE_CONFIG_DIR/kaggle.json; on Linux without ~/.kaggle, $XDG_CONFIG_HOME/kaggle/kaggle.json."""
    if config == "XDG_CONFIG_HOME" and not sys.platform.startswith("linux"):
        pytest.skip("the client reads XDG_CONFIG_HOME on Linux only")
    monkeypatch.setenv(config, str(fresh_home / "elsewhere"))
    folder = fresh_home / "elsewhere" / ("kaggle" if config == "XDG_CONFIG_HOME" else "")
    _write(folder / "kaggle.json", json.dumps({"username": "learner", "key": KEY}))
    assert kaggle_config_dir() == folder and has_kaggle_credentials()
    assert KEY not in _redact(f"sent {KEY}")


def test_the_help_names_every_way_once(fresh_home, tmp_path):
    message = no_credentials_message(tmp_path / "data")
    for way in SIGN_INS:
        assert message.count(way.how.format(where=way.where())) == 1, way.name
    assert "in Colab add KAGGLE_API_TOKEN (or KAGGLE_USERNAME and KAGGLE_KEY) as secrets" in message
    assert str(tmp_path / "data") in message


OAUTH = next(way for way in SIGN_INS if way.oauth)


@pytest.mark.parametrize("version, setting, signed_in", [((2, 0, 2), None, False), ((2, 1, 0), None, False),
                                                         ((2, 0, 2), "1", True), ((2, 1, 0), "true", True),
                                                         ((2, 0, 2), "on", False), ((2, 1, 1), None, True),
                                                         ((2, 2, 5), None, True)])
def test_kaggle_auth_login_counts_only_where_the_client_reads_it(version, setting, signed_in, fresh_home, monkeypatch):
    """kaggle 2.0.2 to 2.1.0 read ~/.kaggle/credentials.json only with KAGGLE_ENABLE_OAUTH=1 (or true, yes)."""
    monkeypatch.setattr(catsdogs.download, "kaggle_version", lambda: version)
    if setting is not None:
        monkeypatch.setenv("KAGGLE_ENABLE_OAUTH", setting)
    _plant(OAUTH, 0, monkeypatch)
    assert OAUTH.found() and has_kaggle_credentials() == signed_in
    message = no_credentials_message("data/")
    says = "kaggle {}.{}.{} reads it only with KAGGLE_ENABLE_OAUTH=1".format(*version)
    assert (says in message) == (not signed_in)
    if not signed_in:  # the file is named as there but unread, and the download stops with that message
        assert "~/.kaggle/credentials.json (from `kaggle auth login`) is there" in message
        with pytest.raises(DatasetError) as err:
            download_competition(fresh_home / "data")
        assert says in str(err.value) and TOKEN not in str(err.value)


def test_the_demo_fallback_says_why_kaggle_auth_login_was_not_used(fresh_home, monkeypatch):
    """Where prepare_dataset() falls back to the demo (Colab with kaggle 2.0.2), the warning says what to set."""
    monkeypatch.setenv("CATSDOGS_PROFILE", "full")
    monkeypatch.setattr(catsdogs.download, "kaggle_version", lambda: (2, 0, 2))
    monkeypatch.setattr(catsdogs.download, "make_demo_archive", _stop)  # the warning is all this test needs
    _plant(OAUTH, 0, monkeypatch)
    with pytest.warns(DemoDataWarning, match=r"DEMO archive.*kaggle 2\.0\.2 reads it only with KAGGLE_ENABLE_OAUTH=1"), \
            pytest.raises(_Stopped):
        prepare_dataset(ask_upload=False)


class _Stopped(Exception):
    pass


def _stop(*args, **kwargs):
    raise _Stopped


def test_the_clients_version_is_read_without_importing_it():
    """``import kaggle`` signs in (and before kaggle 2.2 exits when it cannot)."""
    code = ("import sys, catsdogs.download as d; v = d.kaggle_version(); d.has_kaggle_credentials(); "
            "d.no_credentials_message('data'); print(v); assert 'kaggle' not in sys.modules")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_DIR, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == str(tuple(int(p) for p in importlib.metadata.version("kaggle").split(".")[:3]))


def test_an_empty_credentials_file_is_no_sign_in(fresh_home, monkeypatch):
    monkeypatch.setenv("KAGGLE_ENABLE_OAUTH", "1")
    _write(fresh_home / ".kaggle" / "credentials.json", "")
    assert not has_kaggle_credentials()
