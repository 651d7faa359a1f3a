"""The Kaggle key stays secret: never committed, readable by its owner only, never printed.
(That no download message or output shows it is checked in test_download.py.)"""
from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import nbformat
import pytest

from catsdogs.config import REPO_DIR
from catsdogs.download import has_kaggle_credentials, write_kaggle_json

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


SIGN_INS = {  # every way the kaggle client (2.x) signs in, as it looks for them
    "KAGGLE_USERNAME and KAGGLE_KEY": lambda home, env: env.update(KAGGLE_USERNAME="learner", KAGGLE_KEY=KEY),
    "KAGGLE_API_TOKEN": lambda home, env: env.update(KAGGLE_API_TOKEN="KGAT_0123456789abcdef"),
    "~/.kaggle/kaggle.json": lambda home, env: _write(home / ".kaggle" / "kaggle.json", '{"username": "l", "key": "k"}'),
    "$KAGGLE_CONFIG_DIR/kaggle.json": lambda home, env: (env.update(KAGGLE_CONFIG_DIR=str(home / "elsewhere")),
                                                         _write(home / "elsewhere" / "kaggle.json", "{}")),
    "$XDG_CONFIG_HOME/kaggle/kaggle.json": lambda home, env: _write(home / ".config" / "kaggle" / "kaggle.json", "{}"),
    "~/.kaggle/access_token": lambda home, env: _write(home / ".kaggle" / "access_token", "KGAT_0123456789abcdef"),
    "~/.kaggle/access_token.txt": lambda home, env: _write(home / ".kaggle" / "access_token.txt", "KGAT_0123456789"),
    "kaggle auth login (OAuth: ~/.kaggle/credentials.json)": lambda home, env: _write(
        home / ".kaggle" / "credentials.json", '{"refresh_token": "r", "access_token": "a", "username": "l"}'),
}


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def fresh_home(tmp_path, monkeypatch):
    """A home folder with no Kaggle sign-in at all, and no Kaggle variable set."""
    for var in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN", "KAGGLE_CONFIG_DIR", "XDG_CONFIG_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    return tmp_path / "home"


@pytest.mark.parametrize("way", SIGN_INS)
def test_every_way_the_kaggle_client_signs_in_is_recognised(way, fresh_home, monkeypatch):
    assert not has_kaggle_credentials()
    env: dict = {}
    SIGN_INS[way](fresh_home, env)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert has_kaggle_credentials(), way


def test_an_empty_credentials_file_is_no_sign_in(fresh_home):
    _write(fresh_home / ".kaggle" / "credentials.json", "")
    assert not has_kaggle_credentials()
