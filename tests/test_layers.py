"""The package is layered: each module imports only modules below it, inference stands apart from
training and the tooling, and ``import catsdogs`` is light."""
from __future__ import annotations

import ast
import json
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
    """`predict`, a learner's photo and a second source need the model, the photos, the device and a
    checkpoint, never an optimiser."""
    loaded = _loaded_after("import catsdogs.predict, catsdogs.my_photo, catsdogs.second_source")
    assert {"catsdogs.predict", "catsdogs.my_photo", "catsdogs.second_source"} <= loaded
    for module in ("training", "download", "run", "colab", "__main__"):
        assert f"catsdogs.{module}" not in loaded, module


def test_importing_the_package_loads_no_heavy_library():
    assert _loaded_after("import catsdogs") == {"catsdogs"}


# Every loop that runs training steps (a `.backward()` and a `.step()`, or a call of a function of the
# same code that makes both), by where it is: the one that trains every model, the others with why.
TRAINING_LOOPS = {
    ("notebooks/04_train.ipynb", "train_epoch"): "the training loop: every model trains through it",
    ("notebooks/04_train.ipynb", "a cell"): "a few plain steps on a copy of the model, to show what a step does",
    ("scripts/benchmark.py", "blog_train"): "the blog's own loop: the baseline the benchmark measures ours against",
    ("scripts/benchmark.py", "trick_step_times"): "one step timed with each speed-up and without it",
}


def _python_sources():
    """(where, code) of the package's hand-written modules, the scripts, the notebooks' modules and
    code cells (magics made Python); the generated modules are their notebooks' cells."""
    from IPython.core.inputtransformer2 import TransformerManager

    paths = [*PACKAGE.glob("*.py"), *(REPO / "scripts").glob("*.py"), *(REPO / "notebooks").glob("*.py")]
    for path in paths:
        if not path.read_text().startswith('"""Generated from notebooks/'):
            yield str(path.relative_to(REPO)), path.read_text()
    for path in (REPO / "notebooks").glob("*.ipynb"):
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] == "code":
                yield str(path.relative_to(REPO)), TransformerManager().transform_cell("".join(cell["source"]))


def training_loops(code: str) -> set[str]:
    """The functions of ``code`` (or "a cell": its top level) holding a loop that runs training steps."""
    def calls(node: ast.AST, names: set[str]) -> bool:
        called = [n.func for n in ast.walk(node) if isinstance(n, ast.Call)]
        attributes = {f.attr for f in called if isinstance(f, ast.Attribute)}
        return {"backward", "step"} <= attributes or any(isinstance(f, ast.Name) and f.id in names for f in called)

    tree = ast.parse(code)
    steps = {f.name for f in ast.walk(tree) if isinstance(f, ast.FunctionDef) and calls(f, set())}
    found = set()

    def visit(node: ast.AST, where: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.For, ast.While)) and calls(child, steps):
                found.add(where)
            else:
                visit(child, child.name if isinstance(child, ast.FunctionDef) and where == "a cell" else where)

    visit(tree, "a cell")
    return found


def test_one_training_loop_trains_every_model():
    """Every model trains through notebook 04's loop (exported to catsdogs/training.py); no other loop
    of training steps exists in the package, the scripts or the notebooks but those listed, with why."""
    found = {(where, function) for where, code in _python_sources() for function in training_loops(code)}
    assert found == set(TRAINING_LOOPS)


def test_the_loop_finder_sees_steps_called_through_a_function():
    code = ("def step(m, opt):\n    m(1).backward()\n    opt.step()\n\ndef fit(m, opt):\n    for _ in range(3):\n"
            "        step(m, opt)\n\ndef timed(m):\n    for _ in range(3):\n        m(1).backward()\n\n"
            "while True:\n    loss.backward()\n    scaler.step(opt)\n")
    assert training_loops(code) == {"fit", "a cell"}
