"""Where things live, and which profile we run in. Every notebook and command asks this module for
paths, so the same files serve a learner on the real Kaggle photos (profile ``full``) and the test suite
on a generated demo archive (``small``)."""
from __future__ import annotations

import ast
import json
import os
from dataclasses import dataclass
from pathlib import Path

COMPETITION = "dogs-vs-cats-redux-kernels-edition"
ARCHIVE_NAME = f"{COMPETITION}.zip"
RULES_URL = f"https://www.kaggle.com/competitions/{COMPETITION}/rules"
REPO_DIR = Path(__file__).resolve().parent.parent  # the package's folder is in the repository's root
SHIPPED_WEIGHTS = REPO_DIR / "weights" / "linformer_vit_catsdogs.pt"


def profile() -> str:
    """``full`` or ``small`` (the tests' tiny demo archive): which data the notebooks find when there is no
    Kaggle archive. It changes no recipe: the tests' short runs inject ``notebooks/params/small.yaml``."""
    value = os.environ.get("CATSDOGS_PROFILE", "full").strip().lower() or "full"
    if value not in {"full", "small"}:
        raise ValueError(f"CATSDOGS_PROFILE must be 'full' or 'small', not {value!r}.")
    return value


def is_small() -> bool:
    return profile() == "small"


def data_dir() -> Path:
    """The data folder: ``$CATSDOGS_DATA`` if set, else ``data/`` beside the notebooks. It keeps what
    is worth keeping: the archive, the split, checkpoints, submissions."""
    return Path(os.environ.get("CATSDOGS_DATA", REPO_DIR / "data")).expanduser().resolve()


def scratch_dir() -> Path:
    """Where the extracted photos and the decode caches go: ``$CATSDOGS_SCRATCH`` if set, else the data
    folder (Colab's Google Drive option keeps this one on the machine's own disk: see ``colab.py``)."""
    return Path(os.environ.get("CATSDOGS_SCRATCH") or data_dir()).expanduser().resolve()


def shown(path: Path | str) -> str:
    """A path as the notebooks print it, so that their outputs say nothing of the machine they ran
    on: relative to the repository (``data/kaggle/split.csv``), else to ``$CATSDOGS_DATA`` or
    ``$CATSDOGS_SCRATCH``; a file anywhere else by its name alone."""
    path = Path(path).expanduser().resolve()
    for root, name in ((REPO_DIR, ""), (data_dir(), "$CATSDOGS_DATA/"), (scratch_dir(), "$CATSDOGS_SCRATCH/")):
        if path.is_relative_to(root):
            return name + str(path.relative_to(root)) if path != root else (name.rstrip("/") or ".")
    return path.name


@dataclass
class Workspace:
    """The files of one dataset, the Kaggle photos (``data/kaggle``) or the demo (``data/demo``): ``root``
    keeps the archive, split, checkpoints and submission; ``local`` (``scratch``, or the same folder unless
    :func:`scratch_dir` says otherwise) what can be rebuilt from the archive."""

    root: Path
    is_demo: bool
    scratch: Path | None = None

    def __post_init__(self):
        root = self.root
        local = self.local = self.scratch or root
        self.archive, self.split_csv, self.submission = root / ARCHIVE_NAME, root / "split.csv", root / "submission.csv"
        self.checkpoint_dir = root / "checkpoints"
        self.train_dir, self.test_dir, self.cache_dir = local / "train", local / "test", local / "cache"
        self.sample_submission, self.extracted_marker = local / "sample_submission.csv", local / ".extracted"
        self.label = "DEMO (synthetic pictures, not the Kaggle photos)" if self.is_demo else "Kaggle photos"

    def run_dir(self, name: str) -> Path:
        """The checkpoints and history of one training run: ``checkpoints/<name>``, named by notebook
        04's ``recipe`` (``teacher`` for the CNN teacher)."""
        return self.checkpoint_dir / name


def kaggle_workspace() -> Workspace:
    return Workspace(data_dir() / "kaggle", is_demo=False, scratch=scratch_dir() / "kaggle")


def demo_workspace() -> Workspace:
    """The generated demo: a tiny one for the ``small`` profile, a larger one otherwise."""
    name = "demo-small" if is_small() else "demo"
    return Workspace(data_dir() / name, is_demo=True, scratch=scratch_dir() / name)


def workspace() -> Workspace:
    """The dataset the notebooks work on: the Kaggle photos once notebook 1 has put them in place,
    otherwise the demo. The ``small`` profile always uses the demo."""
    real = kaggle_workspace()
    return real if not is_small() and real.extracted_marker.exists() else demo_workspace()


def parameter_sources(notebook: Path | str) -> dict[str, str]:
    """What a notebook's cell tagged ``parameters`` assigns (papermill's convention): name → the
    value's source text, in order."""
    cells = json.loads(Path(notebook).read_text())["cells"]
    cell = next((c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])), {"source": []})
    tree = ast.parse("".join(cell["source"]))
    return {target.id: ast.unparse(node.value) for node in tree.body if isinstance(node, ast.Assign)
            for target in node.targets if isinstance(target, ast.Name)}


def notebook_parameters(notebook: Path | str, namespace: dict) -> dict:
    """The whole recipe as plain data, for a checkpoint to keep: the names of a notebook's ``parameters``
    cell (a relative path is found beside the notebooks), their values from ``namespace`` (``globals()``)."""
    path = Path(notebook)
    if not path.is_absolute() and not path.exists():
        path = REPO_DIR / "notebooks" / path
    return {name: namespace[name] for name in parameter_sources(path)}
