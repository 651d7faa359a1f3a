"""Colab: the repository the notebooks clone, their setup cell, and Google Drive for what must last.

A Colab badge opens one notebook on a new machine. Its setup cell clones this repository and
installs the requirements, so the repository's address must be right in every notebook. It lives
in one place, ``[project.urls] Repository`` in ``pyproject.toml``; ``python -m catsdogs
set-repository URL`` writes it there and into every badge and setup cell, and a test checks that
they agree.
"""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import nbformat

from .config import REPO_DIR

PLACEHOLDER = "https://github.com/OWNER/catsdogs-vit"
COLAB_DIR = "/content/catsdogs-vit"
_GITHUB = re.compile(r"https://github\.com/([A-Za-z0-9_.-]+)/([A-Za-z0-9_.-]+?)(?:\.git)?/?\Z")
_BADGE = re.compile(r"https://colab\.research\.google\.com/github/[^)\s]+?/blob/[^)\s/]+/notebooks/[^)\s]+\.ipynb")
_URLS_LINE = re.compile(r'^Repository = "(.*)"$', re.MULTILINE)

# The first code cell of every notebook. Run twice, or after "Restart runtime", it does the same.
SETUP_CELL = '''\
# Setup. Locally: use this checkout. In Colab: fetch the project once per machine (safe to run again,
# also after "Restart runtime"). USE_DRIVE = True keeps the data folder (archive, split, checkpoints)
# in your Google Drive, so a disconnected Colab session resumes training where it stopped.
REPOSITORY = "{repository}"  # written by `python -m catsdogs set-repository URL`
COLAB_DIR = "{colab_dir}"
USE_DRIVE = False
import os, sys
if "google.colab" in sys.modules:
    if "/OWNER/" in REPOSITORY:
        raise SystemExit("This copy names no repository yet: in your clone run `python -m catsdogs set-repository "
                         "https://github.com/YOU/REPO`, push, and open the notebook from that repository.")
    if not os.path.exists(f"{{COLAB_DIR}}/.ready"):  # clone and install once per machine
        !rm -rf {{COLAB_DIR}} && git clone -q --depth 1 {{REPOSITORY}} {{COLAB_DIR}}
        !{{sys.executable}} -m pip install -q -r {{COLAB_DIR}}/requirements.txt && touch {{COLAB_DIR}}/.ready
    os.chdir(f"{{COLAB_DIR}}/notebooks")
if os.path.abspath("..") not in sys.path:
    sys.path.insert(0, os.path.abspath(".."))  # the catsdogs helper package sits beside notebooks/
import catsdogs
if USE_DRIVE:
    catsdogs.colab.use_drive()
%matplotlib inline'''


def repository_url(pyproject: Path = REPO_DIR / "pyproject.toml") -> str:
    """The repository address the notebooks clone in Colab (the placeholder until it is set)."""
    found = _URLS_LINE.search(Path(pyproject).read_text())
    if not found:
        raise ValueError(f"{pyproject} has no 'Repository = \"...\"' line under [project.urls].")
    return found.group(1)


def setup_cell(repository: str, colab_dir: str = COLAB_DIR) -> str:
    return SETUP_CELL.format(repository=repository, colab_dir=colab_dir)


def badge_url(repository: str, notebook: str, branch: str = "main") -> str:
    """The address that opens ``notebooks/<notebook>`` of a GitHub repository in Colab."""
    found = _GITHUB.match(repository)
    if not found:
        raise ValueError(f"{repository!r} is not a GitHub repository address like https://github.com/you/catsdogs-vit "
                         "(Colab opens notebooks from GitHub).")
    owner, name = found.groups()
    return f"https://colab.research.google.com/github/{owner}/{name}/blob/{branch}/notebooks/{notebook}"


def notebook_paths(notebook_dir: Path = REPO_DIR / "notebooks") -> list[Path]:
    return sorted(Path(notebook_dir).glob("[0-9][0-9]_*.ipynb"))


def is_setup_cell(cell) -> bool:
    return cell.cell_type == "code" and cell.source.startswith("# Setup.")


def set_repository(url: str, repo_dir: Path = REPO_DIR) -> list[Path]:
    """Write ``url`` into ``pyproject.toml``, the README's badges and every notebook's badge and setup
    cell; returns the files changed. The notebooks' outputs are kept."""
    url = url.rstrip("/").removesuffix(".git")
    badge_url(url, "check.ipynb")  # refuses anything that is not a GitHub address
    repo_dir = Path(repo_dir)
    pyproject = repo_dir / "pyproject.toml"
    text = pyproject.read_text()
    if not _URLS_LINE.search(text):
        raise ValueError(f"{pyproject} has no 'Repository = \"...\"' line under [project.urls].")
    changed = []
    new_text = _URLS_LINE.sub(f'Repository = "{url}"', text)
    if new_text != text:
        pyproject.write_text(new_text)
        changed.append(pyproject)
    readme = repo_dir / "README.md"
    if readme.exists():
        text = readme.read_text()
        new_text = _BADGE.sub(lambda m: badge_url(url, m.group(0).rsplit("/", 1)[1]), text)
        if new_text != text:
            readme.write_text(new_text)
            changed.append(readme)
    for path in notebook_paths(repo_dir / "notebooks"):
        nb = nbformat.read(path, as_version=4)
        before = [cell.source for cell in nb.cells]
        for cell in nb.cells:
            if cell.cell_type == "markdown":
                cell.source = _BADGE.sub(badge_url(url, path.name), cell.source)
            elif is_setup_cell(cell):
                cell.source = setup_cell(url)
        if [cell.source for cell in nb.cells] != before:
            nbformat.write(nb, path)
            changed.append(path)
    return changed


def use_drive(folder: str = "catsdogs-vit", mount_point: str = "/content/drive",
              scratch: Path = REPO_DIR / "data") -> Path:
    """Keep the data folder in Google Drive (``MyDrive/<folder>/data``): the archive, the split, the
    checkpoints and submissions survive a disconnect, and notebook 04 resumes from its last epoch.
    The extracted photos and the decode caches stay on the machine's disk (``data/`` of the clone),
    where thousands of small files and a memory-mapped cache are fast; they are rebuilt in minutes."""
    if "google.colab" not in sys.modules:
        print("USE_DRIVE applies in Colab only: the data folder stays where it is.")
        from .config import data_dir

        return data_dir()
    from google.colab import drive  # type: ignore

    drive.mount(mount_point)
    keep = Path(mount_point) / "MyDrive" / folder / "data"
    keep.mkdir(parents=True, exist_ok=True)
    os.environ["CATSDOGS_DATA"] = str(keep)
    os.environ["CATSDOGS_SCRATCH"] = str(scratch)
    print(f"data folder on Google Drive: {keep}\nphotos and caches on this machine: {scratch}")
    return keep
