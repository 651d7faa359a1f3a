"""The README's figures for the default recipe are the lines the committed notebooks print.

Notebook 04 prints its best epoch and the teacher's figures and minutes, notebook 05 prints its
choice of test-time options and, when `second_source` is set, the figures on that second source.
Each test reads those lines from the notebooks' stored stream outputs (nbformat) and checks that
the README's results table row, or its sentence about the stored run, gives the same numbers. Then
a rerun of the notebooks cannot leave the README behind. (tests/test_learner_path.py compares the
same rows with notebook 05's stored table of options; these tests compare them with what the
notebooks print.)

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

NUMBER = r"0\.\d{4}"
BEST = re.compile(rf"^best checkpoint \(epoch (?P<epoch>\d+)\): val accuracy (?P<acc>{NUMBER}), log loss (?P<loss>{NUMBER})$",
                  re.MULTILINE)
RUN = re.compile(rf"^(?P<name>\w+)\s+(?P<epochs>\d+) epochs, best val_loss (?P<loss>{NUMBER}) at epoch (?P<epoch>\d+) "
                 rf"\(val_acc (?P<acc>{NUMBER})\), (?P<minutes>\d+(?:\.\d+)?) min in all$", re.MULTILINE)
TEACHER = re.compile(rf"^teacher: validation accuracy (?P<acc>{NUMBER}), log loss (?P<loss>{NUMBER})$", re.MULTILINE)
CHOSEN = re.compile(rf"^matched crop (?P<matched>\d\.\d+); chosen: flip TTA (?P<flip>yes|no), crop (?P<crops>\d\.\d\d(?:\+\d\.\d\d)*) "
                    rf"\(validation accuracy (?P<acc>{NUMBER}), log loss (?P<loss>{NUMBER})\)$", re.MULTILINE)
SECOND = re.compile(rf"^second source \((?P<name>[^)]*)\): (?P<photos>[\d,]+) photos, accuracy (?P<acc>{NUMBER}), "
                    rf"log loss (?P<loss>{NUMBER})$", re.MULTILINE)
README_MINUTES = re.compile(r"notebook 04 trained the CNN teacher in (?P<teacher>\d+(?:\.\d+)?) min, then the (?P<epochs>\d+)\s+"
                            r"ViT epochs in (?P<vit>\d+(?:\.\d+)?) min")


def rel(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


@cache
def printed(notebook: Path) -> str:
    """What a notebook's stored outputs print: the text of its stream outputs, in order."""
    nb = nbformat.read(notebook, as_version=4)
    return "\n".join(output.get("text", "") for cell in nb.cells if cell.cell_type == "code"
                     for output in cell.get("outputs", []) if output.get("output_type") == "stream")


def printed_line(notebook: Path, pattern: re.Pattern, what: str) -> re.Match:
    found = list(pattern.finditer(printed(notebook)))
    if len(found) != 1:
        pytest.fail(f"{rel(notebook)}: its stored outputs print {len(found)} lines {what} (pattern {pattern.pattern!r}), "
                    f"expected one: rerun the notebook, or follow its new wording here")
    return found[0]


def runs_printed() -> dict[str, re.Match]:
    """Notebook 04's summary lines, one per run: `modern      30 epochs, best val_loss ... min in all`."""
    runs = {m["name"]: m for m in RUN.finditer(printed(NB04))}
    assert "teacher" in runs and len(runs) >= 2, (
        f"{rel(NB04)}: its stored outputs lack the summary lines of the teacher and the ViT "
        f"(`<run> N epochs, best val_loss ... min in all`); found {sorted(runs)}")
    return runs


def vit_run() -> re.Match:
    """The summary line of the run whose best epoch notebook 04 reports (the default recipe's)."""
    best = printed_line(NB04, BEST, "`best checkpoint (epoch N): val accuracy ..., log loss ...`")
    vit = [m for name, m in runs_printed().items() if name != "teacher"
           and (m["epoch"], m["acc"], m["loss"]) == (best["epoch"], best["acc"], best["loss"])]
    assert len(vit) == 1, (f"{rel(NB04)}: no run summary line (or several) agrees with `{best[0]}`: "
                           f"{[m[0] for m in runs_printed().values()]}")
    return vit[0]


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


# ---------------------------------------------------------------------------------------------
# Notebook 04: the best epoch, the teacher, the minutes


def test_readme_best_epoch_row_is_what_notebook_04_prints():
    """`best checkpoint (epoch 29): val accuracy 0.8331, log loss 0.3736` and the run's summary line
    (30 epochs) are the README's `best epoch (29 of 30), whole photos` row."""
    best, vit = printed_line(NB04, BEST, "`best checkpoint (epoch N): ...`"), vit_run()
    m, row = results_row(r"^\*\*default recipe\*\*.*best epoch \((\d+) of (\d+)\), whole photos$",
                         "the default recipe's best epoch on whole photos")
    assert (m[1], m[2]) == (best["epoch"], vit["epochs"]), (
        f"README.md says best epoch {m[1]} of {m[2]}; notebook 04 prints epoch {best['epoch']} of {vit['epochs']}")
    assert figures(row) == (best["acc"], best["loss"]), (
        f"README.md's whole-photo figures {figures(row)} differ from notebook 04's `{best[0]}`")


def test_readme_teacher_row_is_what_notebook_04_prints():
    """The teacher's `teacher: validation accuracy ..., log loss ...` line, its summary line and the
    README's CNN teacher row give the same two figures."""
    teacher, summary = printed_line(NB04, TEACHER, "`teacher: validation accuracy ..., log loss ...`"), runs_printed()["teacher"]
    assert (teacher["acc"], teacher["loss"]) == (summary["acc"], summary["loss"]), (
        f"{rel(NB04)} prints two different teachers: `{teacher[0]}` and `{summary[0]}`")
    _, row = results_row(r"^the \*\*CNN teacher\*\*", "the CNN teacher")
    assert row[1] == "4,500 validation photos" and figures(row) == (teacher["acc"], teacher["loss"]), (
        f"README.md's teacher row ({row[1]}: {figures(row)}) differs from notebook 04's `{teacher[0]}`")


def test_readme_training_minutes_are_what_notebook_04_prints():
    """The README's sentence on the stored run gives the teacher's and the ViT's minutes and the ViT's
    epochs of notebook 04's summary lines (`11.9 min in all`, `30 epochs ... 37.6 min in all`)."""
    readme = re.sub(r"\s+", " ", README.read_text(encoding="utf-8"))
    m = README_MINUTES.search(readme)
    assert m, ("README.md no longer says `notebook 04 trained the CNN teacher in X min, then the N ViT epochs in "
               "Y min`: keep that sentence, or tie its new wording to notebook 04 here")
    teacher, vit = runs_printed()["teacher"], vit_run()
    assert (m["teacher"], m["epochs"], m["vit"]) == (teacher["minutes"], vit["epochs"], vit["minutes"]), (
        f"README.md: `{m[0]}`; notebook 04 prints `{teacher[0]}` and `{vit[0]}`")


# ---------------------------------------------------------------------------------------------
# Notebook 05: the chosen test-time options, the second source


def test_readme_chosen_options_row_is_what_notebook_05_prints():
    """`matched crop 0.822; chosen: flip TTA yes, crop 1.00+0.90+0.82+0.80+0.70 (validation accuracy
    0.8720, log loss 0.3145)` is the README's row for notebook 05's choice, crops and figures."""
    chosen = printed_line(NB05, CHOSEN, "`matched crop ...; chosen: flip TTA ..., crop ... (validation ...)`")
    m, row = results_row(r"^the same model (with|without) flip TTA and crops? (\S+) averaged \(notebook 05's choice\)$",
                         "notebook 05's choice")
    assert (m[1] == "with") == (chosen["flip"] == "yes"), f"README.md: flip TTA {m[1]}; notebook 05 prints `{chosen[0]}`"
    assert m[2] == chosen["crops"], f"README.md: crops {m[2]}; notebook 05 chose {chosen['crops']}"
    assert figures(row) == (chosen["acc"], chosen["loss"]), (
        f"README.md's figures with notebook 05's choice {figures(row)} differ from its `{chosen[0]}`")
    assert f"{float(chosen['matched']):.2f}" in chosen["crops"].split("+"), (
        f"notebook 05's crops {chosen['crops']} leave out the matched crop {chosen['matched']}")


def test_readme_second_source_row_is_notebook_05s_stored_evaluation():
    """`second source (<name>): 821 photos, accuracy ..., log loss ...`, which notebook 05 prints when
    the stored run hands it the web photos (`-p second_source=`), is the README's second-source row."""
    second = printed_line(NB05, SECOND, "`second source (<name>): N photos, accuracy ..., log loss ...`")
    _, row = results_row(r"^the same model on the \*\*second source\*\*", "the default recipe on the second source")
    photos = second["photos"].replace(",", "")
    assert re.sub(r"\D", "", row[1]) == photos, f"README.md measures on `{row[1]}`; notebook 05 on {second['photos']} photos"
    assert figures(row) == (second["acc"], second["loss"]), (
        f"README.md's second-source figures {figures(row)} differ from notebook 05's `{second[0]}`")


# ---------------------------------------------------------------------------------------------
# The parsers themselves


def test_the_patterns_read_the_lines_notebooks_04_and_05_print():
    """The regexes on the notebooks' own wording (the f-strings of their cells), so that a rewording
    of a print shows up here and not as a puzzling miss above."""
    assert BEST.search("best checkpoint (epoch 29): val accuracy 0.8331, log loss 0.3736")
    assert TEACHER.search("teacher: validation accuracy 0.9269, log loss 0.1765")
    runs = {m["name"]: m["minutes"] for m in RUN.finditer(
        "teacher     15 epochs, best val_loss 0.1765 at epoch 15 (val_acc 0.9269), 11.9 min in all\n"
        "modern      30 epochs, best val_loss 0.3736 at epoch 29 (val_acc 0.8331), 37.6 min in all")}
    assert runs == {"teacher": "11.9", "modern": "37.6"}
    chosen = CHOSEN.search("matched crop 0.822; chosen: flip TTA yes, crop 1.00+0.90+0.82+0.80+0.70 "
                           "(validation accuracy 0.8720, log loss 0.3145)")
    assert chosen and chosen["crops"] == "1.00+0.90+0.82+0.80+0.70"
    second = SECOND.search("second source (web-photos): 821 photos, accuracy 0.7588, log loss 0.5038\n"
                           "  validation photos: accuracy 0.8720, log loss 0.3145")
    assert second and (second["photos"], second["acc"], second["loss"]) == ("821", "0.7588", "0.5038")
    source = "".join(c.source for c in nbformat.read(NB05, as_version=4).cells if c.cell_type == "code")
    assert all(part in source for part in ('f"second source ({', '} photos, accuracy {', ':.4f}, log loss {')), (
        f"{rel(NB05)} no longer prints its second-source line as SECOND expects: update SECOND")
