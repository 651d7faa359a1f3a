"""Run the numbered notebooks headless, in order, with a real Jupyter kernel (nbclient)."""
from __future__ import annotations

import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from .config import REPO_DIR, data_dir, profile

NOTEBOOK_DIR = REPO_DIR / "notebooks"


def notebooks(only: list[str] | None = None) -> list[Path]:
    """The numbered notebooks (``01_*.ipynb`` ...), optionally those whose number is in ``only``."""
    found = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
    return [nb for nb in found if not only or nb.name[:2] in only]


def run_notebooks(only: list[str] | None = None, out_dir: Path | None = None, inplace: bool = False,
                  timeout: int | None = None) -> list[Path]:
    """Execute the notebooks in order. Outputs go to ``data/runs/<profile>/`` (the committed
    notebooks keep theirs) unless ``inplace``. The kernel inherits this process's environment, so
    ``CATSDOGS_*`` variables reach the notebooks. Stops at the first failing cell."""
    out_dir = Path(out_dir or data_dir() / "runs" / profile())
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in notebooks(only):
        start = time.time()
        print(f"▶ {path.name} ...", flush=True)
        nb = nbformat.read(path, as_version=4)
        client = NotebookClient(nb, timeout=timeout, startup_timeout=300, kernel_name="python3", coalesce_streams=True,
                                resources={"metadata": {"path": str(NOTEBOOK_DIR)}})
        failed = True
        try:
            client.execute()
            failed = False
        finally:  # a failed run never overwrites the committed notebook
            target = path if inplace and not failed else out_dir / path.name
            nbformat.write(nb, target)
        print(f"  done in {time.time() - start:.0f} s → {target}", flush=True)
        written.append(target)
    return written

