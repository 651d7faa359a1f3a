"""The README's figures for the default recipe are the figures the stored run wrote.

Notebooks 04 and 05 each end with "This run in numbers": a cell that displays the run's figures as
JSON (`application/json`, kept in the notebook's stored outputs). Each test reads that summary with
nbformat and checks that the README's results table, or its sentence on the stored run, gives the
same numbers, so a rerun of the notebooks cannot leave the README behind. No test reads the
notebooks' printed wording.

These tests only read files: they run in well under a second.
"""
from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
NB04 = REPO / "notebooks" / "04_train.ipynb"
NB05 = REPO / "notebooks" / "05_submission.ipynb"
README_MINUTES = re.compile(r"notebook 04 trained the CNN teacher in (?P<teacher>\d+(?:\.\d+)?) min, then the (?P<epochs>\d+)\s+"
                            r"ViT epochs in (?P<vit>\d+(?:\.\d+)?) min")


def rel(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


def summaries(notebook: Path) -> list[dict]:
    """The JSON outputs a notebook's stored cells display."""
    nb = nbformat.read(notebook, as_version=4)
    return [output["data"]["application/json"] for cell in nb.cells if cell.cell_type == "code"
            for output in cell.get("outputs", []) if "application/json" in output.get("data", {})]


@cache
def run_figures(notebook: Path) -> dict:
    """The one summary of the run stored in ``notebook`` ("This run in numbers")."""
    found = summaries(notebook)
    if len(found) != 1:
        pytest.fail(f"{rel(notebook)} stores {len(found)} JSON summaries of its run, expected one: rerun it "
                    "(`python -m catsdogs run --inplace`)")
    return found[0]


def four(x: float) -> str:
    return f"{x:.4f}"


@cache
def results_rows() -> tuple[tuple[str, ...], ...]:
    """The cells of each row of the README's results table (the first table under `## Results`)."""
    text = README.read_text(encoding="utf-8")
    section = re.search(r"^## Results\n(.*?)(?=^## )", text, re.MULTILINE | re.DOTALL)
    assert section, "README.md has no `## Results` section"
    table = re.search(r"^\|.*?(?=^[^|])", section.group(1), re.MULTILINE | re.DOTALL)
    assert table, "README.md: the Results section has no table"
    rows = [tuple(cell.strip() for cell in line.strip().strip("|").split("|")) for line in table.group(0).splitlines()]
    return tuple(row for row in rows[2:] if row)  # the header and the --- line left out


def results_row(first_cell: str, what: str) -> tuple[re.Match, tuple[str, ...]]:
    """The README results row whose first cell matches ``first_cell``, and that match."""
    found = [(m, row) for row in results_rows() if (m := re.search(first_cell, row[0]))]
    assert len(found) == 1, (f"README.md: {len(found)} rows of the results table are {what} "
                             f"(first cell matching {first_cell!r}), expected one")
    return found[0]


def figures(row: tuple[str, ...]) -> tuple[str, str]:
    """A results row's accuracy and log loss, bold or not."""
    assert len(row) == 4, f"README.md: a results row has {len(row)} cells instead of 4: {' | '.join(row)}"
    return row[2].strip("*"), row[3].strip("*")


def photos(cell: str) -> int:
    """`2,250 validation photos (...)` -> 2250."""
    m = re.match(r"([\d,]+) ", cell)
    assert m, f"README.md: `{cell}` does not start with a number of photos"
    return int(m[1].replace(",", ""))


# ---------------------------------------------------------------------------------------------
# Notebook 04: the best epoch, the teacher, the minutes


def test_readme_best_epoch_row_is_notebook_04s_summary():
    run = run_figures(NB04)
    m, row = results_row(r"^\*\*default recipe\*\*.*best epoch \((\d+) of (\d+)\), whole photos$",
                         "the default recipe's best epoch on whole photos")
    assert (int(m[1]), int(m[2])) == (run["best_epoch"], run["epochs"]), (
        f"README.md says best epoch {m[1]} of {m[2]}; notebook 04's summary {run['best_epoch']} of {run['epochs']}")
    validation = run["validation"]
    assert photos(row[1]) == validation["photos"]
    assert figures(row) == (four(validation["accuracy"]), four(validation["log_loss"])), (
        f"README.md's whole-photo figures {figures(row)} differ from notebook 04's summary {validation}")


def test_readme_teacher_row_is_notebook_04s_summary():
    teacher = run_figures(NB04)["teacher"]
    assert teacher, f"{rel(NB04)}: the stored run trained no teacher, but the README has a teacher row"
    _, row = results_row(r"^the \*\*CNN teacher\*\*", "the CNN teacher")
    assert photos(row[1]) == run_figures(NB04)["validation"]["photos"]
    assert figures(row) == (four(teacher["accuracy"]), four(teacher["log_loss"])), (
        f"README.md's teacher row {figures(row)} differs from notebook 04's summary {teacher}")


def test_readme_training_minutes_are_notebook_04s_summary():
    """The README's sentence on the stored run: the teacher's minutes, the ViT's epochs and minutes."""
    readme = re.sub(r"\s+", " ", README.read_text(encoding="utf-8"))
    m = README_MINUTES.search(readme)
    assert m, ("README.md no longer says `notebook 04 trained the CNN teacher in X min, then the N ViT epochs in "
               "Y min`: keep that sentence, or tie its new wording to notebook 04's summary here")
    run = run_figures(NB04)
    expected = (f"{run['teacher']['minutes']:.1f}", str(run["epochs"]), f"{run['vit_minutes']:.1f}")
    assert (m["teacher"], m["epochs"], m["vit"]) == expected, f"README.md: `{m[0]}`; notebook 04's summary: {expected}"


# ---------------------------------------------------------------------------------------------
# Notebook 05: the chosen test-time options, the second source


def test_readme_chosen_options_row_is_notebook_05s_summary():
    run = run_figures(NB05)
    m, row = results_row(r"^the same model (with|without) flip TTA and crops? (\S+) averaged \(notebook 05's choice\b",
                         "notebook 05's choice")
    chosen, validation = run["chosen"], run["validation"]
    assert (m[1] == "with") == chosen["flip_tta"], f"README.md: flip TTA {m[1]}; notebook 05's summary: {chosen}"
    assert m[2] == "+".join(f"{c:.2f}" for c in chosen["crops"]), f"README.md: crops {m[2]}; notebook 05's summary: {chosen}"
    assert photos(row[1]) == validation["photos"], f"README.md scores on `{row[1]}`; notebook 05 on {validation['photos']}"
    assert figures(row) == (four(validation["accuracy"]), four(validation["log_loss"])), (
        f"README.md's figures with notebook 05's choice {figures(row)} differ from its summary {validation}")


def test_notebook_05_scores_its_choice_on_photos_that_did_not_make_it():
    run = run_figures(NB05)
    assert run["chosen"]["chosen_on"] > 0 and run["validation"]["photos"] > 0
    assert run["checkpoint"]["epoch"] == run_figures(NB04)["best_epoch"], "notebooks 04 and 05 store different runs"


def test_readme_second_source_row_is_notebook_05s_summary():
    """The web photos handed to the stored run (`-p second_source=`) are the README's second-source row."""
    second = run_figures(NB05)["second_source"]
    assert second, f"{rel(NB05)}: the stored run measured no second source; rerun it with `-p second_source=`"
    _, row = results_row(r"^the same model on the \*\*second source\*\*", "the default recipe on the second source")
    assert photos(row[1]) == second["photos"], f"README.md measures on `{row[1]}`; notebook 05 on {second['photos']} photos"
    assert figures(row) == (four(second["accuracy"]), four(second["log_loss"])), (
        f"README.md's second-source figures {figures(row)} differ from notebook 05's summary {second}")


def test_the_summary_reader_finds_one_summary_and_only_json_outputs(tmp_path):
    """The reader takes `application/json` outputs, ignores every other output, and fails on none."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("print(1)", outputs=[nbformat.v4.new_output("stream", text="{\"a\": 1}")]),
                nbformat.v4.new_code_cell("display(...)", outputs=[nbformat.v4.new_output(
                    "display_data", data={"application/json": {"epochs": 3}, "text/plain": "{...}"})])]
    path = tmp_path / "run.ipynb"
    nbformat.write(nb, path)
    assert summaries(path) == [{"epochs": 3}]
    nb.cells = nb.cells[:1]
    nbformat.write(nb, path)
    assert summaries(path) == []
