"""The learner's path through the repository: a short front page with the commands near the top, no
dead links, and notebooks built the same way (objectives first, parameters in one cell, short
markdown cells, a summary and exercises at the end).

These tests only read files: they run in well under a second.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import unquote

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = sorted((REPO / "docs").glob("*.md"))
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))

README_MAX_CHARS = 15_000
COMMANDS_WITHIN = 5_000
COMMANDS = ("pip install -r requirements.txt && python -m catsdogs run",
            "pip install -r requirements-dev.txt && python -m pytest")
MARKDOWN_CELL_MAX = 3_000
MARKDOWN_BEFORE_CODE_MAX = 2_500


def rel(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


# ---------------------------------------------------------------------------------------------
# The README as a front page


def test_readme_is_at_most_15000_characters():
    n = len(README.read_text(encoding="utf-8"))
    assert n <= README_MAX_CHARS, (
        f"README.md has {n:,} characters, over the {README_MAX_CHARS:,} of a front page: move long "
        f"material to a page in docs/ and link it")


@pytest.mark.parametrize("command", COMMANDS)
def test_readme_set_up_commands_come_within_the_first_5000_characters(command):
    text = README.read_text(encoding="utf-8")
    lines = [m.start() for m in re.finditer(rf"^{re.escape(command)}$", text, flags=re.MULTILINE)]
    assert lines, f"README.md has no line `{command}` (CI and learners run the README's commands)"
    assert lines[0] < COMMANDS_WITHIN, (
        f"README.md: the line `{command}` starts at character {lines[0]:,}, after the first "
        f"{COMMANDS_WITHIN:,}: put the set-up commands nearer the top")


def stored_text(notebook: Path) -> str:
    """Everything a notebook's stored outputs print (streams and plain-text results)."""
    parts = []
    for cell in json.loads(notebook.read_text(encoding="utf-8"))["cells"]:
        for output in cell.get("outputs", []):
            text = output.get("text") or output.get("data", {}).get("text/plain", "")
            parts.append("".join(text) if isinstance(text, list) else text)
    return "\n".join(parts)


def test_stored_outputs_are_one_run_on_the_kaggle_photos():
    """Every notebook's stored outputs come from the Kaggle photos (never the DEMO archive), and all
    of them from the same data folder: one run of the pipeline, not pieces of several."""
    folders = {}
    for path in NOTEBOOKS:
        stored = stored_text(path)
        assert "DEMO" not in stored, f"{rel(path)}: the stored outputs are of the generated DEMO archive"
        folders[path.name] = set(re.findall(r"Kaggle photos: [a-z ]+? (?:in|into) (\S+) \([\d,]+ labelled", stored))
    assert set().union(*folders.values()), "no notebook's stored outputs name the folder of the Kaggle photos"
    assert len(set().union(*folders.values())) == 1, f"stored outputs from more than one data folder: {folders}"


# ---------------------------------------------------------------------------------------------
# No dead links

FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", flags=re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1", flags=re.DOTALL)
MD_LINK = re.compile(r"\]\(\s*<?([^()\s<>]+)>?(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)")
HTML_LINK = re.compile(r"""\b(?:href|src)\s*=\s*["']([^"']+)["']""", flags=re.IGNORECASE)
EXTERNAL = ("http://", "https://", "mailto:", "data:")


def relative_links(markdown: str) -> list[str]:
    """The relative link targets of a markdown text, anchors stripped (code blocks and spans skipped)."""
    text = INLINE_CODE.sub("", FENCE.sub("", markdown))
    links = []
    for target in MD_LINK.findall(text) + HTML_LINK.findall(text):
        if target.lower().startswith(EXTERNAL) or target.startswith("#"):
            continue
        target = unquote(target.split("#", 1)[0].split("?", 1)[0])
        if target:
            links.append(target)
    return links


def dead_links(markdown: str, folder: Path) -> list[str]:
    """The links of ``markdown`` that do not name a file or folder inside the repository, resolved from
    ``folder``. (A link out of the repository, such as ``../shared/...``, is dead in a learner's clone
    even when this machine happens to have the file.)"""
    dead = []
    for link in relative_links(markdown):
        target = (folder / link).resolve()
        if not target.is_relative_to(REPO):
            dead.append(f"{link} (outside the repository)")
        elif not target.exists():
            dead.append(f"{link} (no such file)")
    return dead


def markdown_cells(path: Path) -> list[tuple[int, str]]:
    nb = json.loads(path.read_text(encoding="utf-8"))
    return [(i, source(cell)) for i, cell in enumerate(nb["cells"]) if cell["cell_type"] == "markdown"]


def source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


@pytest.mark.parametrize("path", [README, *DOCS], ids=rel)
def test_markdown_file_has_no_dead_relative_links(path):
    dead = dead_links(path.read_text(encoding="utf-8"), path.parent)
    assert not dead, f"{rel(path)} links to what a clone of the repository does not have: " + "; ".join(dead)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=rel)
def test_notebook_markdown_has_no_dead_relative_links(path):
    dead = [f"cell {i}: {d}" for i, text in markdown_cells(path) for d in dead_links(text, path.parent)]
    assert not dead, f"{rel(path)} links to what a clone of the repository does not have: " + "; ".join(dead)


def test_docs_folder_exists_and_every_page_links_back_to_the_readme():
    assert DOCS, "docs/ holds no .md page"
    for page in DOCS:
        first = page.read_text(encoding="utf-8").lstrip().splitlines()[0]
        assert "](../README.md" in first, f"{rel(page)}: the first line should link back to the README, found {first!r}"


def test_the_link_checker_finds_dead_links():
    """The checker itself: a dead link, a link out of the repository, and what it must skip."""
    text = ("[ok](README.md#results) [gone](no/such/file.md) [out](../shared/MEASUREMENTS.md) "
            "[web](https://example.com/x.md) [mail](mailto:a@b.c) [anchor](#top) `[code](nope.md)`\n"
            "```\n[fenced](nope.md)\n```\n")
    assert dead_links(text, REPO) == ["no/such/file.md (no such file)", "../shared/MEASUREMENTS.md (outside the repository)"]


# ---------------------------------------------------------------------------------------------
# Every notebook built the same way


def cells(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=rel)
def test_notebook_has_one_parameters_cell(path):
    tagged = [i for i, c in enumerate(cells(path)) if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{rel(path)}: expected one cell tagged 'parameters', found {len(tagged)} (cells {tagged})"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=rel)
def test_notebook_markdown_cells_are_short(path):
    long = [f"cell {i} ({len(text):,} characters)" for i, text in markdown_cells(path) if len(text) > MARKDOWN_CELL_MAX]
    assert not long, (f"{rel(path)}: markdown cells over {MARKDOWN_CELL_MAX:,} characters: " + "; ".join(long)
                      + ": split them, or move the detail to docs/")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=rel)
def test_notebook_reaches_code_quickly(path):
    before, first_code = 0, None
    for i, cell in enumerate(cells(path)):
        if cell["cell_type"] == "code":
            first_code = i
            break
        if cell["cell_type"] == "markdown":
            before += len(source(cell))
    assert first_code is not None, f"{rel(path)} has no code cell"
    assert before <= MARKDOWN_BEFORE_CODE_MAX, (
        f"{rel(path)}: {before:,} characters of markdown before the first code cell (cell {first_code}), "
        f"over {MARKDOWN_BEFORE_CODE_MAX:,}")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=rel)
def test_notebook_code_has_no_nbval_markers(path):
    marked = [i for i, c in enumerate(cells(path)) if c["cell_type"] == "code" and "NBVAL_" in source(c)]
    assert not marked, f"{rel(path)}: code cells {marked} contain an NBVAL_ comment (use cell tags instead)"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=rel)
def test_notebook_starts_with_what_you_will_learn(path):
    md = markdown_cells(path)
    assert md, f"{rel(path)} has no markdown cell"
    i, text = md[0]
    assert "What you will learn" in text, f"{rel(path)}: the first markdown cell (cell {i}) has no 'What you will learn'"


@pytest.mark.parametrize("heading", ["## Summary", "## Exercises"])
@pytest.mark.parametrize("path", NOTEBOOKS, ids=rel)
def test_notebook_has_summary_and_exercises(path, heading):
    found = [i for i, text in markdown_cells(path) if text.lstrip().startswith(heading)]
    assert found, f"{rel(path)}: no markdown cell starts with {heading!r}"


def test_the_recipe_is_named_in_notebook_04_alone():
    """Notebook 05 predicts with the run notebook 04 trained last, so `-p recipe=...` and `--recipe
    blog` need no second name to agree with: `recipe` is a parameter of notebook 04 only."""
    from catsdogs.config import parameter_sources

    having = [path.name for path in NOTEBOOKS if "recipe" in parameter_sources(path)]
    assert having == ["04_train.ipynb"]
