"""Write the package modules that the notebooks generate, as nbdev does: a notebook that says
``#| default_exp NAME`` (in the leading ``#|`` lines of a code cell) makes ``catsdogs/NAME.py`` of
its code cells whose leading ``#|`` lines include ``#| export``, in notebook order.

A generated module reads like code: its docstring, then ``__all__`` (the public names the cells
define), then every import of the cells gathered at the top, then each cell's other code under a
comment that names its notebook and cell (counted from the top, from 1). The notebooks are where the
lesson's code is written and edited; ``tests/test_export.py`` fails when a module differs from them.

    python scripts/export_lessons.py          # rewrite the generated modules
    python scripts/export_lessons.py --check  # exit 1 if any is out of date
"""
from __future__ import annotations

import argparse
import ast
import json
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGE = "catsdogs"
MARKER, MODULE = "#| export", "#| default_exp"
GENERATED = '"""Generated from notebooks/'  # the first line of every generated module


def _code_cells(notebook: Path) -> list[tuple[int, list[str], str]]:
    """(cell number from 1, its leading ``#|`` directive lines, the code after them) of each code cell."""
    cells = []
    for number, cell in enumerate(json.loads(Path(notebook).read_text())["cells"], 1):
        if cell["cell_type"] == "code":
            lines = "".join(cell["source"]).split("\n")
            n = next((i for i, line in enumerate(lines) if not line.startswith("#|")), len(lines))
            cells.append((number, [line.strip() for line in lines[:n]], "\n".join(lines[n:]).strip("\n")))
    return cells


def module_name(notebook: Path) -> str | None:
    """The module named by the notebook's ``#| default_exp`` directive, or None."""
    return next((line.removeprefix(MODULE).strip() for _, directives, _ in _code_cells(notebook)
                 for line in directives if line.startswith(MODULE + " ")), None)


def exports(repo: Path = REPO) -> dict[Path, str]:
    """Each notebook that names a module → that module's path, relative to the repository."""
    found = {nb: module_name(nb) for nb in sorted((repo / "notebooks").glob("*.ipynb"))}
    return {nb: f"{PACKAGE}/{name.replace('.', '/')}.py" for nb, name in found.items() if name}


def exported_cells(notebook: Path) -> list[tuple[int, str]]:
    """(cell number, code without its directive lines) of the notebook's cells marked ``#| export``."""
    return [(number, code) for number, directives, code in _code_cells(notebook) if MARKER in directives]


def _split_imports(code: str) -> tuple[list[str], str]:
    """A cell's top-level import statements (as written, multi-line ones whole) and the rest of its code."""
    lines, imports, dropped = code.split("\n"), [], set()
    for node in ast.parse(code).body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            imports.append(ast.get_source_segment(code, node))
            dropped.update(range(node.lineno - 1, node.end_lineno))
    return imports, "\n".join(line for i, line in enumerate(lines) if i not in dropped).strip("\n")


def public_names(code: str) -> list[str]:
    """The names a module defines at its top level (functions, classes, assignments) not starting with ``_``."""
    names = []
    for node in ast.parse(code).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.append(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names += [t.id for t in targets if isinstance(t, ast.Name)]
    return [name for name in dict.fromkeys(names) if not name.startswith("_")]


def module_text(notebook: Path) -> str:
    """The generated module of a notebook (see the script's docstring)."""
    name, imports, blocks = Path(notebook).name, [], []
    for number, code in exported_cells(notebook):
        found, rest = _split_imports(code)
        imports += [i for i in found if i not in imports and i != "from __future__ import annotations"]
        if rest:
            blocks.append(f"# notebooks/{name}, cell {number}\n{rest}")
    header = (f'{GENERATED}{name} by scripts/export_lessons.py: the code of its cells marked\n'
              f'``{MARKER}``. Edit the notebook, not this file, then run the script."""\n'
              "from __future__ import annotations")
    listed = textwrap.fill(", ".join(f'"{n}"' for n in public_names("\n\n".join(blocks))), 110,
                           initial_indent="__all__ = [", subsequent_indent=" " * 11) + "]"
    return "\n\n".join(filter(None, [header, listed, "\n".join(imports)])) + "\n\n\n" + "\n\n\n".join(blocks) + "\n"


def stale(repo: Path = REPO) -> list[str]:
    """The generated modules that differ from what their notebooks export now, and generated modules
    that no notebook names any more."""
    wanted = exports(repo)
    out_of_date = [module for notebook, module in wanted.items()
                   if not (repo / module).exists() or (repo / module).read_text() != module_text(notebook)]
    return out_of_date + orphans(repo, wanted.values())


def orphans(repo: Path, wanted) -> list[str]:
    """Generated modules (by their first line) that no notebook makes any more."""
    return [str(p.relative_to(repo)) for p in sorted((repo / PACKAGE).rglob("*.py"))
            if str(p.relative_to(repo)) not in wanted and p.read_text().startswith(GENERATED)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only say which generated modules are out of date")
    args = parser.parse_args(argv)
    if args.check:
        out_of_date = stale()
        for module in out_of_date:
            print(f"{module} is out of date: run python scripts/export_lessons.py")
        return 1 if out_of_date else 0
    wanted = exports()
    for notebook, module in wanted.items():
        (REPO / module).write_text(module_text(notebook))
        print(f"wrote {module} from notebooks/{notebook.name}")
    for module in orphans(REPO, wanted.values()):
        (REPO / module).unlink()
        print(f"removed {module}: no notebook names it any more")
    return 0


if __name__ == "__main__":
    sys.exit(main())
