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
    """The data folder: ``$CATSDOGS_DATA`` if set, else ``data/`` beside the notebooks. It keeps what
    is worth keeping: the archive, the split, checkpoints, submissions."""
    return Path(os.environ.get("CATSDOGS_DATA", REPO_DIR / "data")).expanduser().resolve()


def scratch_dir() -> Path:
    """Where the extracted photos and the decode caches go: ``$CATSDOGS_SCRATCH`` if set, else the
    data folder. Colab's Google Drive option keeps the data folder on Drive and this one on the
    machine's own disk, where thousands of small files and a memory-mapped cache are fast."""
    return Path(os.environ.get("CATSDOGS_SCRATCH") or data_dir()).expanduser().resolve()


@dataclass(frozen=True)
class Workspace:
    """The files of one dataset: the Kaggle photos (``data/kaggle``) or the demo (``data/demo``).

    ``root`` keeps the archive, split, checkpoints and submission; ``scratch`` (the same folder
    unless :func:`scratch_dir` says otherwise) holds what can be rebuilt from the archive."""

    root: Path
    is_demo: bool
    scratch: Path | None = None

    @property
    def local(self) -> Path:
        return self.scratch or self.root

    @property
    def archive(self) -> Path:
        return self.root / ARCHIVE_NAME

    @property
    def train_dir(self) -> Path:
        return self.local / "train"

    @property
    def test_dir(self) -> Path:
        return self.local / "test"

    @property
    def sample_submission(self) -> Path:
        return self.local / "sample_submission.csv"

    @property
    def extracted_marker(self) -> Path:
        return self.local / ".extracted"

    @property
    def split_csv(self) -> Path:
        return self.root / "split.csv"

    @property
    def cache_dir(self) -> Path:
        return self.local / "cache"

    @property
    def checkpoint_dir(self) -> Path:
        return self.root / "checkpoints"

    @property
    def submission(self) -> Path:
        return self.root / "submission.csv"

    def run_dir(self, recipe: str) -> Path:
        """The checkpoints and history of one training run: ``checkpoints/<recipe>-<profile>``
        (``teacher`` for the CNN teacher)."""
        return self.checkpoint_dir / f"{recipe}-{profile()}"

    def split(self):
        """The train/validation split (a DataFrame: file, label, subset), made once and kept."""
        from .data import load_or_make_split

        return load_or_make_split(self)

    def photos(self, subset: str, **options):
        """The ``train`` or ``val`` photos as a dataset (see :func:`catsdogs.data.photos`)."""
        from .data import photos

        return photos(self, subset, **options)

    def histories(self) -> dict[str, list[dict]]:
        """The per-epoch history of each recipe trained in this workspace (``modern``, ``blog``), by name."""
        from .checkpoints import read_history

        found = {recipe: read_history(self.run_dir(recipe) / "history.json") for recipe in ("modern", "blog")}
        return {recipe: history for recipe, history in found.items() if history}

    @property
    def label(self) -> str:
        return "DEMO (synthetic pictures, not the Kaggle photos)" if self.is_demo else "Kaggle photos"


def _workspace(name: str, is_demo: bool) -> Workspace:
    scratch = scratch_dir() / name
    return Workspace(data_dir() / name, is_demo, None if scratch == data_dir() / name else scratch)


def kaggle_workspace() -> Workspace:
    return _workspace("kaggle", is_demo=False)


def demo_workspace() -> Workspace:
    """The generated demo: a tiny one for the ``small`` profile, a larger one otherwise."""
    return _workspace("demo-small" if is_small() else "demo", is_demo=True)


def workspace() -> Workspace:
    """The dataset the notebooks work on: the Kaggle photos once notebook 1 has put them in place,
    otherwise the demo. The ``small`` profile always uses the demo."""
    if is_small():
        return demo_workspace()
    real = kaggle_workspace()
    if real.extracted_marker.exists():
        return real
    return demo_workspace()
