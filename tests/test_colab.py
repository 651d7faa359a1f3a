"""Colab as a learner meets it: the repository address in one place, a setup cell that clones once and
survives a rerun and a restart, Kaggle secrets, Google Drive; and a fresh machine's `import kaggle`.

The Colab paths run against a stand-in ``google.colab`` package (tests/standins) and a local clone URL.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import warnings
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from catsdogs.colab import use_drive
from catsdogs.config import REPO_DIR
from catsdogs.download import SIGN_INS, prepare_dataset

sys.path.insert(0, str(REPO_DIR / "scripts"))
from set_repository import (PLACEHOLDER, badge_url, is_setup_cell, notebook_paths, repository_url,  # noqa: E402
                            set_repository, setup_cell)

STANDINS = Path(__file__).parent / "standins"
KEY = "3f9c2e7a1b8d4c6e9f0a2b4c6d8e1f3a"


@pytest.fixture
def fake_colab(monkeypatch):
    """``import google.colab`` finds the stand-in, in this process and in kernels started from it."""
    monkeypatch.syspath_prepend(str(STANDINS))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(STANDINS), os.environ.get("PYTHONPATH")])))
    for name in [m for m in sys.modules if m == "google" or m.startswith("google.")]:
        monkeypatch.delitem(sys.modules, name)
    import google.colab  # noqa: F401
    from google.colab import drive, files, userdata

    monkeypatch.setattr(userdata, "SECRETS", {})
    monkeypatch.setattr(files, "UPLOADS", {})
    monkeypatch.setattr(files, "CALLS", [])
    monkeypatch.setattr(drive, "MOUNTED", [])
    yield sys.modules["google.colab"]
    for name in [m for m in sys.modules if m == "google" or m.startswith("google.")]:
        sys.modules.pop(name, None)


# ---------------------------------------------------------------------------------------------
# The repository address: one place, written everywhere by one command
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("notebook", notebook_paths(), ids=lambda p: p.name)
def test_badge_and_setup_cell_name_the_repository_of_pyproject(notebook):
    url = repository_url()
    nb = nbformat.read(notebook, as_version=4)
    setups = [cell for cell in nb.cells if is_setup_cell(cell)]
    assert len(setups) == 1 and setups[0].source == setup_cell(url), \
        f"{notebook.name}: its setup cell differs from scripts/set_repository.py SETUP_CELL: run python scripts/set_repository.py {url}"
    assert nb.cells.index(setups[0]) == next(i for i, c in enumerate(nb.cells) if c.cell_type == "code")
    assert badge_url(url, notebook.name) in nb.cells[0].source
    assert nb.cells[0].source.count("colab.research.google.com/github/") == 1


def test_readme_badges_name_the_repository_of_pyproject():
    readme = (REPO_DIR / "README.md").read_text()
    badges = re.findall(r"https://colab\.research\.google\.com/github/\S+?\.ipynb", readme)
    assert sorted(badges) == sorted(badge_url(repository_url(), p.name) for p in notebook_paths())


def test_set_repository_writes_pyproject_every_badge_and_setup_cell(tmp_path):
    shutil.copy(REPO_DIR / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copy(REPO_DIR / "README.md", tmp_path / "README.md")
    shutil.copytree(REPO_DIR / "notebooks", tmp_path / "notebooks")
    outputs_before = {p.name: [c.get("outputs") for c in nbformat.read(p, as_version=4).cells]
                      for p in notebook_paths(tmp_path / "notebooks")}
    url = "https://github.com/learner/my-cats"
    changed = set_repository(url + ".git", repo_dir=tmp_path)
    assert len(changed) == 2 + len(outputs_before)
    assert repository_url(tmp_path / "pyproject.toml") == url
    readme = (tmp_path / "README.md").read_text()
    assert "colab.research.google.com/github/OWNER" not in readme and readme.count("colab.research.google.com/github/learner/my-cats/") == len(outputs_before)
    for path in notebook_paths(tmp_path / "notebooks"):
        nb = nbformat.read(path, as_version=4)
        assert f"https://colab.research.google.com/github/learner/my-cats/blob/main/notebooks/{path.name}" in nb.cells[0].source
        assert sum(c.source == setup_cell(url) for c in nb.cells) == 1
        assert PLACEHOLDER not in json.dumps([c.source for c in nb.cells])
        assert [c.get("outputs") for c in nb.cells] == outputs_before[path.name]  # outputs kept
    assert set_repository(url, repo_dir=tmp_path) == []  # nothing left to change
    with pytest.raises(ValueError, match="GitHub"):
        set_repository("https://gitlab.com/learner/my-cats", repo_dir=tmp_path)


# ---------------------------------------------------------------------------------------------
# The setup cell in a (stand-in) Colab kernel
# ---------------------------------------------------------------------------------------------
def _run(cells: list[str], cwd: Path) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in cells])
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}).execute()
    return nb


def _text(cell) -> str:
    return "".join(out.get("text", "") for out in cell.outputs)


@pytest.mark.skipif(shutil.which("git") is None or not (REPO_DIR / ".git").exists(), reason="needs git and a checkout")
def test_setup_cell_clones_once_and_works_again_after_a_rerun_and_a_restart(fake_colab, tmp_path):
    colab_dir = tmp_path / "content" / "catsdogs-vit"
    cell = setup_cell(f"file://{REPO_DIR}", colab_dir=str(colab_dir))
    where = "import catsdogs, os\nprint(catsdogs.__file__)\nprint(os.getcwd())"
    nb = _run(["import google.colab", cell, where, cell, where], cwd=tmp_path)
    assert (colab_dir / ".ready").exists() and (colab_dir / "catsdogs" / "__init__.py").exists()
    expected = f"{colab_dir / 'catsdogs' / '__init__.py'}\n{colab_dir / 'notebooks'}\n"
    assert _text(nb.cells[2]) == expected and _text(nb.cells[4]) == expected

    (colab_dir / "kept.txt").write_text("a second clone would remove me")
    nb = _run(["import google.colab", cell, where], cwd=tmp_path)  # "Restart runtime": a new kernel
    assert _text(nb.cells[2]) == expected
    assert (colab_dir / "kept.txt").exists()  # no second clone


def test_setup_cell_without_a_repository_stops_with_one_line(fake_colab, tmp_path):
    colab_dir = tmp_path / "content" / "catsdogs-vit"
    with pytest.raises(CellExecutionError) as failure:
        _run(["import google.colab", setup_cell(PLACEHOLDER, colab_dir=str(colab_dir))], cwd=tmp_path)
    assert "SystemExit" in str(failure.value) and "scripts/set_repository.py" in str(failure.value)
    assert not colab_dir.exists()  # no clone was tried


def test_setup_cell_outside_colab_uses_this_checkout(tmp_path):
    nb = _run([setup_cell(PLACEHOLDER, colab_dir=str(tmp_path / "never")), "import catsdogs\nprint(catsdogs.__file__)"],
              cwd=REPO_DIR / "notebooks")
    assert _text(nb.cells[1]).strip() == str(REPO_DIR / "catsdogs" / "__init__.py")
    assert not (tmp_path / "never").exists()


# ---------------------------------------------------------------------------------------------
# Kaggle credentials from Colab secrets, never printed
# ---------------------------------------------------------------------------------------------
def _no_kaggle_variables(monkeypatch):
    """No Kaggle variable set, and any that colab_credentials() sets undone after the test."""
    for name in {name for way in SIGN_INS for name in way.variables}:
        monkeypatch.setenv(name, "")  # recorded, so that the teardown restores the machine's own value (or none)
        monkeypatch.delenv(name)


@pytest.mark.parametrize("way", [way for way in SIGN_INS if way.variables], ids=lambda way: "+".join(way.variables))
def test_colab_secrets_of_every_way_that_is_a_variable_sign_in(way, fake_colab, tmp_path, monkeypatch, capsys):
    """KAGGLE_USERNAME + KAGGLE_KEY become a private kaggle.json; KAGGLE_API_TOKEN is set for the session only."""
    from catsdogs.download import colab_credentials, has_kaggle_credentials

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "kaggle"))
    _no_kaggle_variables(monkeypatch)
    assert not has_kaggle_credentials() and not colab_credentials()
    assert fake_colab.files.CALLS == []  # no upload widget unless asked for (it would block "Run all")
    secrets = {name: ("KGAT_" + KEY if name == "KAGGLE_API_TOKEN" else KEY) if name in way.secret else "learner"
               for name in way.variables}
    fake_colab.userdata.SECRETS.update(secrets)
    assert colab_credentials() and has_kaggle_credentials()
    path = tmp_path / "kaggle" / "kaggle.json"
    if way.colab_to_kaggle_json:
        assert json.loads(path.read_text()) == {"username": "learner", "key": KEY}
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    else:
        assert all(os.environ[name] == value for name, value in secrets.items())
        assert not (tmp_path / "kaggle").exists()  # nothing written to disk
    assert KEY not in capsys.readouterr().out


def test_an_uploaded_kaggle_json_is_used_when_asked_for(fake_colab, tmp_path, monkeypatch):
    from catsdogs.download import colab_credentials

    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "kaggle"))
    for name in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    fake_colab.files.UPLOADS["kaggle.json"] = json.dumps({"username": "learner", "key": KEY}).encode()
    assert colab_credentials(ask_upload=True)
    assert json.loads((tmp_path / "kaggle" / "kaggle.json").read_text())["key"] == KEY


def test_a_notebook_opened_alone_asks_for_kaggle_json_before_it_falls_back_to_the_demo(fake_colab, tmp_path,
                                                                                       monkeypatch, demo_archive):
    """In Colab, without an archive, photos or credentials, every notebook's prepare_dataset() first offers
    the kaggle.json upload; cancelled, it falls back to the demo with a warning, not a quiet line."""
    from catsdogs.download import DemoDataWarning

    monkeypatch.setenv("CATSDOGS_PROFILE", "full")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "kaggle"))
    for name in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    with pytest.warns(DemoDataWarning, match="DEMO archive .* not the Kaggle photos"):
        ws = prepare_dataset()
    assert ws.is_demo and len(fake_colab.files.CALLS) == 1  # asked once; the learner cancelled
    prepare_dataset(archive=demo_archive)  # once the Kaggle photos are in place (here: extracted earlier) ...
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not prepare_dataset().is_demo  # ... they are used, and nothing is asked
    assert len(fake_colab.files.CALLS) == 1


# ---------------------------------------------------------------------------------------------
# Google Drive: what a disconnect must not lose
# ---------------------------------------------------------------------------------------------
def test_drive_keeps_archive_split_and_checkpoints_and_a_new_machine_rebuilds_the_rest(
        fake_colab, tmp_path, monkeypatch, demo_archive):
    from catsdogs.checkpoints import save_checkpoint
    from catsdogs.data import load_or_make_split

    monkeypatch.setenv("CATSDOGS_PROFILE", "full")
    monkeypatch.setenv("CATSDOGS_SCRATCH", "")  # recorded, so use_drive's setting is undone after the test
    machine = tmp_path / "machine"
    keep = use_drive(mount_point=str(tmp_path / "drive"), scratch=machine / "data")
    assert keep == tmp_path / "drive" / "MyDrive" / "catsdogs-vit" / "data"
    shutil.copy(demo_archive, keep / demo_archive.name)
    ws = prepare_dataset()
    assert not ws.is_demo and ws.root == keep / "kaggle" and ws.local == machine / "data" / "kaggle"
    assert (ws.train_dir / "cat.0.jpg").exists() and not (keep / "kaggle" / "train").exists()
    split = load_or_make_split(ws)
    save_checkpoint(ws.run_dir("modern") / "last.pt", epoch=7)
    assert (keep / "kaggle" / "checkpoints" / "modern" / "last.pt").exists()

    shutil.rmtree(machine)  # disconnected: a new machine, the same Drive
    use_drive(mount_point=str(tmp_path / "drive"), scratch=machine / "data")
    again = prepare_dataset()
    assert again == ws and (ws.train_dir / "cat.0.jpg").exists()
    assert load_or_make_split(again).equals(split)
    assert (again.run_dir("modern") / "last.pt").exists()


def test_drive_outside_colab_changes_nothing(monkeypatch, isolated_data):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    assert use_drive() == isolated_data.resolve()
    assert os.environ["CATSDOGS_DATA"] == str(isolated_data)


# ---------------------------------------------------------------------------------------------
# A fresh machine: everything the kaggle client imports is installed
# ---------------------------------------------------------------------------------------------
def test_import_kaggle_works_with_credentials_set(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAGGLE_")}
    env.update(HOME=str(tmp_path), KAGGLE_USERNAME="learner", KAGGLE_KEY=KEY)
    result = subprocess.run([sys.executable, "-c", "import kaggle; print(type(kaggle.api).__name__)"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "KaggleApi"
