"""The package is layered: each module imports only modules below it, inference stands apart from
training and the tooling, and ``import catsdogs`` is light."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "catsdogs"
MAX_FLOORS = 6


def imports(path: Path) -> set[str]:
    """The package modules a module imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1:
                found |= {node.module} if node.module else {a.name for a in node.names}
            elif node.module and node.module.startswith("catsdogs."):
                found.add(node.module.split(".")[1])
            elif node.module == "catsdogs":
                found |= {a.name for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("catsdogs.")}
    return {name.split(".")[0] for name in found} & {p.stem for p in PACKAGE.glob("*.py")} - {path.stem}


def graph() -> dict[str, set[str]]:
    return {p.stem: imports(p) for p in PACKAGE.glob("*.py") if p.stem != "__init__"}


def floors(edges: dict[str, set[str]]) -> dict[str, int]:
    """1 for a module that imports none of the package; else one more than the highest it imports.
    Raises on a cycle."""
    floor: dict[str, int] = {}

    def visit(module: str, path: tuple[str, ...]) -> int:
        if module in path:
            raise AssertionError(f"import cycle: {' → '.join(path[path.index(module):] + (module,))}")
        if module not in floor:
            floor[module] = 1 + max((visit(m, path + (module,)) for m in edges[module]), default=0)
        return floor[module]

    for module in edges:
        visit(module, ())
    return floor


def test_no_import_cycle_and_at_most_six_floors():
    found = floors(graph())
    assert max(found.values()) <= MAX_FLOORS, sorted(found.items(), key=lambda item: item[1])


def test_the_floor_check_finds_a_cycle():
    try:
        floors({"config": {"data"}, "data": {"checkpoints"}, "checkpoints": {"config"}})
    except AssertionError as err:
        assert "import cycle" in str(err)
    else:
        raise AssertionError("the cycle config → data → checkpoints → config went unnoticed")


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sorted(m for m in sys.modules if m.startswith('catsdogs') or m in ('torch', 'numpy', 'PIL', 'pandas', 'papermill'))))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    return set(result.stdout.split())


def test_inference_imports_neither_training_nor_the_downloader_runner_or_colab():
    """`predict` needs the model, the photos, the device and a checkpoint, never an optimiser."""
    loaded = _loaded_after("import catsdogs.predict")
    assert "catsdogs.predict" in loaded
    for module in ("training", "download", "run", "colab", "__main__"):
        assert f"catsdogs.{module}" not in loaded, module


def test_importing_the_package_loads_no_heavy_library():
    assert _loaded_after("import catsdogs") == {"catsdogs"}


def test_one_hand_written_training_loop():
    """One `zero_grad` across the notebooks and the package's hand-written modules: every model trains
    through notebook 04's loop (exported to catsdogs/training.py)."""
    generated = {REPO / m for m in ("catsdogs/split.py", "catsdogs/model.py", "catsdogs/training.py", "catsdogs/submission.py")}
    sources = [p.read_text() for p in PACKAGE.glob("*.py") if p not in generated]
    sources += [p.read_text() for p in (REPO / "notebooks").glob("*.ipynb")] + [p.read_text() for p in (REPO / "notebooks").glob("*.py")]
    assert sum(s.count("zero_grad(") for s in sources) == 1
