"""Every exercise that is code runs.

The convention: a notebook's exercises sit in its markdown cells from the one that starts with
``## Exercises`` on. Each numbered exercise that asks for code carries one fenced ```` ```python ````
block, written to run in a new cell at the end of the notebook after *Run All*. A notebook's blocks
run one after another in the same kernel, so an exercise gives what it builds new names
(``model16``, not ``model``) and puts back what it changes. An exercise that trains or predicts
takes its sizes from the notebook's ``parameters`` cell (``epochs``, ``batch_size``, ...), so the
small profile shrinks it as it shrinks the notebook.

tests/test_notebooks_alone.py runs each notebook alone on the small profile (its parameters injected
by :func:`catsdogs.run.small_copies`, in an empty data folder) with its blocks appended as code cells
tagged ``exercise`` (:func:`with_exercises`); the first block that raises fails that test, and its
cell names the exercise. Notebooks listed in
``EVERY_EXERCISE_IS_CODE`` must give a block to every numbered exercise.
"""
from __future__ import annotations

import re
import textwrap
from pathlib import Path

import nbformat
import pytest

from catsdogs.run import notebooks

NOTEBOOKS = notebooks()
NOTEBOOK_DIR = NOTEBOOKS[0].parent
EVERY_EXERCISE_IS_CODE = {"01_download", "02_split", "03_model", "06_vit_classes_explained", "07_attention_and_linformer"}

BLOCK = re.compile(r"^(?P<indent>[ \t]*)```python[ \t]*\n(?P<code>.*?)^(?P=indent)```[ \t]*$", re.MULTILINE | re.DOTALL)
NUMBERED = re.compile(r"^(\d+)\.[ \t]", re.MULTILINE)


def exercises_text(nb: nbformat.NotebookNode) -> str:
    """The markdown of the exercises: the cell that starts with ``## Exercises`` and every markdown
    cell after it."""
    starts = [i for i, cell in enumerate(nb.cells)
              if cell.cell_type == "markdown" and cell.source.lstrip().startswith("## Exercises")]
    if not starts:
        return ""
    return "\n\n".join(cell.source for cell in nb.cells[starts[0]:] if cell.cell_type == "markdown")


def numbered_exercises(text: str) -> list[int]:
    return [int(n) for n in NUMBERED.findall(BLOCK.sub("", text))]


def exercise_blocks(text: str) -> list[tuple[int, str]]:
    """(exercise number, code) for each fenced python block, in order; the number is that of the
    last numbered item above the block."""
    blocks = []
    for m in BLOCK.finditer(text):
        above = NUMBERED.findall(BLOCK.sub("", text[:m.start()]))
        if not above:
            raise ValueError(f"a python block comes before the first numbered exercise: {m.group('code')[:80]!r}")
        blocks.append((int(above[-1]), textwrap.dedent(m["code"])))
    return blocks


def with_exercises(nb: nbformat.NotebookNode) -> tuple[nbformat.NotebookNode, list[int]]:
    """``nb`` with one code cell per exercise block appended (tagged ``exercise``), and their numbers."""
    blocks = exercise_blocks(exercises_text(nb))
    for number, code in blocks:
        nb.cells.append(nbformat.v4.new_code_cell(f"# exercise {number}\n{code}", metadata={"tags": ["exercise"]}))
    return nb, [number for number, _ in blocks]


def stored(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


WITH_BLOCKS = [p for p in NOTEBOOKS if exercise_blocks(exercises_text(stored(p)))]


# ---------------------------------------------------------------------------------------------
# Cheap checks: the blocks are there and are Python


@pytest.mark.parametrize("name", sorted(EVERY_EXERCISE_IS_CODE))
def test_every_exercise_has_its_code(name):
    text = exercises_text(stored(NOTEBOOK_DIR / f"{name}.ipynb"))
    numbers = numbered_exercises(text)
    assert numbers, f"{name}.ipynb: no numbered exercise under `## Exercises`"
    with_code = [n for n, _ in exercise_blocks(text)]
    assert with_code == numbers, (f"{name}.ipynb: exercises {numbers}, python blocks for {with_code}: give each "
                                  f"exercise one ```python block")


@pytest.mark.parametrize("notebook", WITH_BLOCKS, ids=lambda p: p.stem)
def test_exercise_blocks_compile(notebook):
    for number, code in exercise_blocks(exercises_text(stored(notebook))):
        try:
            compile(code, f"{notebook.name}, exercise {number}", "exec")
        except SyntaxError as err:
            pytest.fail(f"{notebook.name}: exercise {number} is not valid Python: {err}")


def test_the_parser_reads_numbered_exercises_and_their_blocks():
    text = ("## Exercises\n\nIntro.\n\n1. **One.** Words.\n\n   ```python\n   a = 1\n   if a:\n       print(a)\n   ```\n\n"
            "2. **Two.** Only words, and an inline `code`.\n3. Three:\n\n   ```python\n   b = 2\n   ```\n")
    assert numbered_exercises(text) == [1, 2, 3]
    assert exercise_blocks(text) == [(1, "a = 1\nif a:\n    print(a)\n"), (3, "b = 2\n")]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(text)])
    nb, numbers = with_exercises(nb)
    assert numbers == [1, 3] and nb.cells[-1].source == "# exercise 3\nb = 2\n"
    assert nb.cells[-1].metadata["tags"] == ["exercise"]
