"""Where things live, and which profile we run in.

Every notebook and command asks this module for paths, so the same files serve a learner on the
real Kaggle photos (profile ``full``) and the test suite on a generated demo archive (``small``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

COMPETITION = "dogs-vs-cats-redux-kernels-edition"
ARCHIVE_NAME = f"{COMPETITION}.zip"
RULES_URL = f"https://www.kaggle.com/competitions/{COMPETITION}/rules"
PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent
SHIPPED_WEIGHTS = REPO_DIR / "weights" / "linformer_vit_catsdogs.pt"


def profile() -> str:
    """``full`` (real data, real training) or ``small`` (demo archive, one short epoch: tests, CI)."""
    value = os.environ.get("CATSDOGS_PROFILE", "full").strip().lower() or "full"
    if value not in {"full", "small"}:
        raise ValueError(f"CATSDOGS_PROFILE must be 'full' or 'small', not {value!r}.")
    return value


def is_small() -> bool:
    return profile() == "small"


def data_dir() -> Path:
    """The data folder: ``$CATSDOGS_DATA`` if set, else ``data/`` beside the notebooks."""
    return Path(os.environ.get("CATSDOGS_DATA", REPO_DIR / "data")).expanduser().resolve()


@dataclass(frozen=True)
class Workspace:
    """The files of one dataset: the Kaggle photos (``data/kaggle``) or the demo (``data/demo``)."""

    root: Path
    is_demo: bool

    @property
    def archive(self) -> Path:
        return self.root / ARCHIVE_NAME

    @property
    def train_dir(self) -> Path:
        return self.root / "train"

    @property
    def test_dir(self) -> Path:
        return self.root / "test"

    @property
    def sample_submission(self) -> Path:
        return self.root / "sample_submission.csv"

    @property
    def split_csv(self) -> Path:
        return self.root / "split.csv"

    @property
    def cache_dir(self) -> Path:
        return self.root / "cache"

    @property
    def checkpoint_dir(self) -> Path:
        return self.root / "checkpoints"

    @property
    def submission(self) -> Path:
        return self.root / "submission.csv"

    @property
    def label(self) -> str:
        return "DEMO (synthetic pictures, not the Kaggle photos)" if self.is_demo else "Kaggle photos"


def kaggle_workspace() -> Workspace:
    return Workspace(data_dir() / "kaggle", is_demo=False)


def demo_workspace() -> Workspace:
    """The generated demo: a tiny one for the ``small`` profile, a larger one otherwise."""
    return Workspace(data_dir() / ("demo-small" if is_small() else "demo"), is_demo=True)


def workspace() -> Workspace:
    """The dataset the notebooks work on: the Kaggle photos once notebook 1 has put them in place,
    otherwise the demo. The ``small`` profile always uses the demo."""
    if is_small():
        return demo_workspace()
    real = kaggle_workspace()
    if (real.root / ".extracted").exists():
        return real
    return demo_workspace()
