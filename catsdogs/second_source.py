"""Labelled photos from another source than Kaggle's (a folder or zip holding ``cat/`` and ``dog/``),
and the model's accuracy and log loss on them: how far its skill carries beyond the competition's photos."""
from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from torch import nn

from .archives import DatasetError, safe_extract
from .config import scratch_dir
from .device import Device
from .files import atomic_write, stamp
from .images import CLASSES, list_images, warn_unreadable
from .metrics import Evaluation
from .predict import tta_probs


def _extracted(archive: Path) -> Path:
    """A zip's contents, extracted once into the scratch folder (again only if the zip changes)."""
    dest = scratch_dir() / "photo-sets" / stamp(archive, sep="-")
    if not dest.is_dir():
        with atomic_write(dest) as staging:  # renamed when complete: a cut-short extraction never counts
            try:
                safe_extract(archive, staging)
            except (zipfile.BadZipFile, EOFError) as err:
                raise DatasetError(f"{archive} is not a readable zip ({err}).") from None
    return dest


def _class_folders(root: Path, source: Path) -> dict[str, Path]:
    """The ``cat/`` and ``dog/`` folders (any letter case) in ``root`` or, as zips often wrap
    everything in one folder, in the shallowest folder below it that holds both."""
    folders = [root] + sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: (len(p.parts), str(p)))
    for folder in folders:
        found = {p.name.lower(): p for p in folder.iterdir() if p.is_dir() and p.name.lower() in CLASSES}
        if len(found) == len(CLASSES):
            return found
    raise DatasetError(f"{source} has no cat/ and dog/ folders: put the photos of cats in cat/ and those of dogs "
                       "in dog/ (e.g. cat/1.jpg, dog/1.jpg), at the top of the folder or zip.")


def labelled_photos(source: Path | str) -> tuple[list[Path], np.ndarray]:
    """The photos of a folder or zip sorted into ``cat/`` and ``dog/``, and their labels (0 cat, 1 dog).
    A zip is extracted once into the scratch folder and read from there."""
    source = Path(source).expanduser()
    if not source.exists():
        raise FileNotFoundError(f"{source} does not exist: pass a folder or a zip holding cat/ and dog/.")
    folders = _class_folders(_extracted(source) if source.is_file() else source, source)
    by_class = [list_images(folders[name]) for name in CLASSES]  # a photo's label: its class's index
    files = [f for found in by_class for f in found]
    if not files:
        raise DatasetError(f"{source}: its cat/ and dog/ folders hold no pictures.")
    return files, np.repeat(np.arange(len(CLASSES), dtype=np.int64), [len(found) for found in by_class])


@dataclass
class PhotoSetEvaluation(Evaluation):
    """An :class:`Evaluation` of photo files: which ones (unreadable files left out), and the set's name."""

    files: list[Path] = field(default_factory=list)
    name: str = ""


def evaluate_photos(model: nn.Module, source: Path | str, device: Device, *, flip: bool = True,
                    crops: tuple[float, ...] = (1.0,), batch_size: int = 64) -> PhotoSetEvaluation:
    """Accuracy and log loss on the labelled photos of ``source``, each seen as the submission sees a
    test photo. Unreadable files are named in a warning and left out."""
    source = Path(source).expanduser()
    files, labels = labelled_photos(source)
    probs, reasons = tta_probs(model, files, device, flip=flip, crops=crops, batch_size=batch_size, desc="evaluating")
    keep = np.array([not reason for reason in reasons], dtype=bool)
    warn_unreadable({str(f): r for f, r, k in zip(files, reasons, keep) if not k}, f"in {source} (not used)")
    if not keep.any():
        raise DatasetError(f"None of the {len(files)} pictures in {source} could be read.")
    files, probs, labels = [f for f, k in zip(files, keep) if k], probs[keep], labels[keep]
    name = source.stem if source.is_file() else source.name
    return PhotoSetEvaluation.of(probs, labels, files=files, name=name)
