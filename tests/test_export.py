"""The generated modules are exactly what the notebooks' ``#| export`` cells say
(``scripts/export_lessons.py``), so the code a learner edits and the code the package runs are one."""
from __future__ import annotations

import ast
import importlib.util
import json
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("export_lessons", REPO / "scripts" / "export_lessons.py")
export_lessons = importlib.util.module_from_spec(spec)
spec.loader.exec_module(export_lessons)


def _copy(repo: Path) -> Path:
    """The notebooks and the package's generated modules, copied into ``repo``."""
    shutil.copytree(REPO / "notebooks", repo / "notebooks", ignore=shutil.ignore_patterns("*.py"))
    (repo / "catsdogs").mkdir()
    for module in export_lessons.exports(REPO).values():
        shutil.copy(REPO / module, repo / module)
    return repo


def _edit(notebook: Path, find: str, old: str, new: str) -> None:
    nb = json.loads(notebook.read_text())
    cell = next(c for c in nb["cells"] if find in "".join(c["source"]))
    cell["source"] = "".join(cell["source"]).replace(old, new)
    notebook.write_text(json.dumps(nb))


def test_every_generated_module_equals_its_notebooks_exported_cells():
    assert export_lessons.stale() == [], "run: python scripts/export_lessons.py"
    found = export_lessons.exports()
    assert {nb.name[:2] for nb in found} >= {"02", "03", "04", "05"}  # the notebooks whose code the package runs
    for notebook, module in found.items():
        text = (REPO / module).read_text()
        assert f"notebooks/{notebook.name}" in text.splitlines()[0], f"{module} does not name the notebook it comes from"
        assert export_lessons.exported_cells(notebook), f"{notebook.name} exports nothing"
        assert f"\n# notebooks/{notebook.name}, cell " in text


def test_an_edit_to_an_exported_cell_or_to_the_directive_makes_the_module_stale(tmp_path):
    repo = _copy(tmp_path)
    assert export_lessons.stale(repo) == []
    train = repo / "notebooks" / "04_train.ipynb"
    _edit(train, "def train_epoch", "model.train()", "model.eval()  # an edit")
    assert export_lessons.stale(repo) == ["catsdogs/training.py"]
    _edit(train, "#| default_exp training", "#| default_exp training", "#| default_exp trainer")
    assert export_lessons.stale(repo) == ["catsdogs/trainer.py", "catsdogs/training.py"]  # new, and orphaned


def _notebook(path: Path, *sources: str) -> Path:
    cells = [{"cell_type": "code", "source": s, "metadata": {}} for s in sources]
    path.write_text(json.dumps({"cells": [{"cell_type": "markdown", "source": "# title", "metadata": {}}, *cells]}))
    return path


def test_only_cells_marked_in_their_leading_directives_are_exported(tmp_path):
    path = _notebook(tmp_path / "nb.ipynb",
                     "#| default_exp lesson\n#| export\ndef kept(): pass",
                     "x = 1  #| export",
                     "# a comment\n#| export\ndef dropped(): pass",
                     "#| hide\n#| export\ndef also_kept(): pass")
    assert export_lessons.module_name(path) == "lesson"
    assert export_lessons.exported_cells(path) == [(2, "def kept(): pass"), (5, "def also_kept(): pass")]
    (tmp_path / "notebooks").mkdir()
    shutil.move(path, tmp_path / "notebooks" / path.name)
    assert list(export_lessons.exports(tmp_path).values()) == ["catsdogs/lesson.py"]


def test_a_module_has_its_imports_at_the_top_then_each_cell_under_its_name(tmp_path):
    path = _notebook(tmp_path / "05_x.ipynb",
                     "#| default_exp x\n#| export\nimport math\nfrom typing import (\n    Any,\n    Callable,\n)\n\n"
                     "RATE = 0.5\n_private = 1\n\n\ndef area(r: float) -> float:\n    import os  # stays: not top level\n"
                     "    return math.pi * r * r",
                     "print('not exported')",
                     "#| export\nfrom __future__ import annotations\nimport math\nimport csv\n\nclass Table:\n    pass")
    text = export_lessons.module_text(path)
    tree = ast.parse(text)
    assert ast.get_docstring(tree).startswith("Generated from notebooks/05_x.ipynb")
    top = [ast.get_source_segment(text, node) for node in tree.body[1:]]
    assert top[:6] == ["from __future__ import annotations", '__all__ = ["RATE", "area", "Table"]', "import math",
                       "from typing import (\n    Any,\n    Callable,\n)", "import csv", "RATE = 0.5"]
    assert text.count("import math") == 1 and "    import os  # stays" in text and "not exported" not in text
    assert text.index("# notebooks/05_x.ipynb, cell 2\nRATE = 0.5") < text.index("# notebooks/05_x.ipynb, cell 4\nclass Table")
    compile(text, "generated", "exec")
