"""The generated modules are exactly what the notebooks' ``#| export`` cells say
(``scripts/export_lessons.py``), so the code a learner edits and the code the package runs are one."""
from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("export_lessons", REPO / "scripts" / "export_lessons.py")
export_lessons = importlib.util.module_from_spec(spec)
spec.loader.exec_module(export_lessons)


def test_every_generated_module_equals_its_notebooks_exported_cells():
    assert export_lessons.stale() == [], "run: python scripts/export_lessons.py"
    for notebook, module in export_lessons.EXPORTS.items():
        text = (REPO / module).read_text()
        assert f"notebooks/{notebook}" in text.splitlines()[0], f"{module} does not name the notebook it comes from"
        assert export_lessons.exported_cells(REPO / "notebooks" / notebook), f"{notebook} exports nothing"


def test_an_edited_exported_cell_makes_its_module_stale(tmp_path):
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "catsdogs").mkdir()
    for notebook, module in export_lessons.EXPORTS.items():
        shutil.copy(REPO / "notebooks" / notebook, tmp_path / "notebooks" / notebook)
        shutil.copy(REPO / module, tmp_path / module)
    assert export_lessons.stale(tmp_path) == []
    path = tmp_path / "notebooks" / "04_train.ipynb"
    nb = json.loads(path.read_text())
    cell = next(c for c in nb["cells"] if "".join(c["source"]).startswith("#| export\n") and "def train_epoch" in "".join(c["source"]))
    cell["source"] = "".join(cell["source"]).replace("model.train()", "model.eval()  # an edit")
    path.write_text(json.dumps(nb))
    assert export_lessons.stale(tmp_path) == ["catsdogs/training.py"]


def test_only_cells_marked_on_their_first_line_are_exported(tmp_path):
    cells = [{"cell_type": "code", "source": "#| export\ndef kept(): pass", "metadata": {}},
             {"cell_type": "code", "source": "x = 1  #| export", "metadata": {}},
             {"cell_type": "markdown", "source": "#| export\nnot code", "metadata": {}},
             {"cell_type": "code", "source": "# a comment\n#| export\ndef dropped(): pass", "metadata": {}}]
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps({"cells": cells}))
    assert export_lessons.exported_cells(path) == ["def kept(): pass"]
    module = export_lessons.module_text(path)
    assert module.startswith('"""Generated from notebooks/nb.ipynb') and module.endswith("def kept(): pass\n")
    compile(module, "generated", "exec")
