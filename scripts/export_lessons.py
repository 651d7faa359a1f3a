"""Write the package modules that the notebooks generate: every code cell that starts with
``#| export`` (nbdev's marker; d2l's ``#@save``), in notebook order, into the module named in
:data:`EXPORTS`.

The notebooks are where the lesson's code is written and edited; the generated modules are how the
CLI's ``predict``, notebook 06, the benchmark and the tests reach the same code without copying it.
``tests/test_export.py`` fails when a generated module differs from what its notebook says.

    python scripts/export_lessons.py          # rewrite the generated modules
    python scripts/export_lessons.py --check  # exit 1 if any is out of date
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MARKER = "#| export"
EXPORTS = {  # notebook → the module its exported cells make
    "02_split.ipynb": "catsdogs/split.py",
    "03_model.ipynb": "catsdogs/model.py",
    "04_train.ipynb": "catsdogs/training.py",
    "05_submission.ipynb": "catsdogs/submission.py",
}


def exported_cells(notebook: Path) -> list[str]:
    """The sources of the notebook's code cells marked ``#| export``, the marker line removed."""
    cells = json.loads(Path(notebook).read_text())["cells"]
    sources = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    return [s.split("\n", 1)[1].strip("\n") if "\n" in s else "" for s in sources
            if s.split("\n", 1)[0].strip() == MARKER]


def module_text(notebook: Path) -> str:
    """The generated module of a notebook: a header naming its source, then its exported cells."""
    name = Path(notebook).name
    header = (f'"""Generated from notebooks/{name} by scripts/export_lessons.py: the code of its cells marked\n'
              f'``{MARKER}``. Edit the notebook, not this file, then run the script."""\n'
              "from __future__ import annotations")
    return "\n\n".join([header, "\n\n\n".join(exported_cells(notebook))]) + "\n"


def stale(repo: Path = REPO) -> list[str]:
    """The generated modules that differ from what their notebooks export now."""
    return [module for notebook, module in EXPORTS.items()
            if not (repo / module).exists()
            or (repo / module).read_text() != module_text(repo / "notebooks" / notebook)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only say which generated modules are out of date")
    args = parser.parse_args(argv)
    if args.check:
        out_of_date = stale()
        for module in out_of_date:
            print(f"{module} is out of date: run python scripts/export_lessons.py")
        return 1 if out_of_date else 0
    for notebook, module in EXPORTS.items():
        (REPO / module).write_text(module_text(REPO / "notebooks" / notebook))
        print(f"wrote {module} from notebooks/{notebook}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
