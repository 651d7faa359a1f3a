"""Colab: Google Drive for what must outlast a disconnected session (the notebooks' setup cell, kept by
``scripts/set_repository.py``, calls :func:`use_drive` when ``USE_DRIVE = True``)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from .config import REPO_DIR, data_dir


def use_drive(folder: str = "catsdogs-vit", mount_point: str = "/content/drive",
              scratch: Path = REPO_DIR / "data") -> Path:
    """Keep the data folder in Google Drive (``MyDrive/<folder>/data``): the archive, split, checkpoints and
    submissions survive a disconnect, and notebook 04 resumes. The extracted photos and decode caches stay on
    the machine's disk (``scratch``), where small files and a memory-mapped cache are fast, rebuilt in minutes."""
    if "google.colab" not in sys.modules:
        print("USE_DRIVE applies in Colab only: the data folder stays where it is.")
        return data_dir()
    from google.colab import drive  # type: ignore

    drive.mount(mount_point)
    keep = Path(mount_point) / "MyDrive" / folder / "data"
    keep.mkdir(parents=True, exist_ok=True)
    os.environ["CATSDOGS_DATA"] = str(keep)
    os.environ["CATSDOGS_SCRATCH"] = str(scratch)
    print(f"data folder on Google Drive: {keep}\nphotos and caches on this machine: {scratch}")
    return keep
