"""Write this repository's GitHub address everywhere the notebooks need it.

A Colab badge opens one notebook on a new machine whose setup cell clones this repository, so the
address must be right in every badge and setup cell. It lives in one place, ``[project.urls]
Repository`` in ``pyproject.toml``; this script writes it there and into every badge and setup cell,
and tests/test_colab.py checks that they agree. Run it once after forking, then push:

    python scripts/set_repository.py https://github.com/YOU/catsdogs-vit
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

REPO_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_DIR))
from catsdogs.run import notebooks  # noqa: E402  (the numbered notebooks, one pattern)
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
REPOSITORY = "{repository}"  # written by `python scripts/set_repository.py URL`
COLAB_DIR = "{colab_dir}"
USE_DRIVE = False
import os, sys
if "google.colab" in sys.modules:
    if "/OWNER/" in REPOSITORY:
        raise SystemExit("This copy names no repository yet: in your clone run `python scripts/set_repository.py "
                         "https://github.com/YOU/REPO`, push, and open the notebook from that repository.")
    if not os.path.exists(f"{{COLAB_DIR}}/.ready"):  # clone and install once per machine
        !rm -rf {{COLAB_DIR}} && git clone -q --depth 1 {{REPOSITORY}} {{COLAB_DIR}}
        !{{sys.executable}} -m pip install -q -r {{COLAB_DIR}}/requirements.txt && touch {{COLAB_DIR}}/.ready
    os.chdir(f"{{COLAB_DIR}}/notebooks")
if os.path.abspath("..") not in sys.path:
    sys.path.insert(0, os.path.abspath(".."))  # the catsdogs helper package sits beside notebooks/
if USE_DRIVE:
    from catsdogs.colab import use_drive
    use_drive()
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
    return notebooks(folder=notebook_dir)


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write this repository's GitHub address into pyproject.toml, "
                                     "the README's badges and every notebook's Colab badge and setup cell.")
    parser.add_argument("url", help="e.g. https://github.com/you/catsdogs-vit")
    args = parser.parse_args(argv)
    try:
        changed = set_repository(args.url)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"{args.url} written into {len(changed)} file(s)" + "".join(f"\n  {p}" for p in changed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
