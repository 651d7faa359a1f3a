"""Prediction with a trained model: the ``predict`` command, one photo of a learner's, and labelled
photos from another source.

What the model is shown (flip TTA, centre crops) is notebook 05's code, exported to
``catsdogs.submission``; nothing here imports the training code, the downloader or the runner:
predicting needs the model, the photos, the device and a checkpoint, never an optimiser.
"""
from __future__ import annotations

import math
import os
import shutil
import sys
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from .archives import DatasetError, safe_extract
from .checkpoints import load_checkpoint, newest_run
from .config import SHIPPED_WEIGHTS, scratch_dir
from .data import default_workers, eval_loader
from .device import Device
from .images import CLASSES, UnreadableImage, image_id, list_images, no_pictures_message, read_rgb, warn_unreadable
from .inference import predict_loader
from .metrics import Evaluation
from .model import ModelConfig, build_model
from .submission import checkpoint_crop, tta_crops, tta_predict, write_submission


def checkpoint_to_use(checkpoint_dir: Path, checkpoint: Path | str | None = None) -> tuple[Path, str]:
    """The checkpoint notebooks 05 and 07 use, and why: the one named, else the best epoch of the run
    trained last in ``checkpoint_dir``, else the shipped weights (so they run without training)."""
    if checkpoint:
        return Path(checkpoint), "named in the parameters cell"
    trained = newest_run(checkpoint_dir)
    if trained is not None:
        return trained / "best.pt", "trained by notebook 04 in this workspace"
    return SHIPPED_WEIGHTS, "the shipped weights: notebook 04 has not trained a model here"


def load_model(checkpoint: Path | None = None, device: Device | None = None) -> tuple[nn.Module, dict]:
    """A model in eval mode from a training checkpoint or, by default, the shipped weights."""
    device = device or Device.pick()
    path = Path(checkpoint) if checkpoint else SHIPPED_WEIGHTS
    state = load_checkpoint(path, map_location=device.device)
    model = build_model(ModelConfig(**state.get("model_config", {})))
    model.load_state_dict({k: v.float() for k, v in state["model"].items()})
    return model.to(device.device).eval(), state


class PhotoFiles(Dataset):
    """Photo files decoded as they are read (uint8 CHW, 224x224), for a one-off prediction that
    should leave nothing on disk. An unreadable file yields a blank picture and is remembered."""

    def __init__(self, files: list[Path], size: int = 224):
        self.files, self.size = list(files), size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        try:
            image, error = read_rgb(self.files[i], self.size).copy(), ""  # writable, for torch
        except UnreadableImage as err:
            image, error = np.zeros((self.size, self.size, 3), np.uint8), str(err)
        return torch.from_numpy(image).permute(2, 0, 1), error


def predict_folder(images_dir: Path, out: Path, checkpoint: Path | None = None, *, flip: bool = True,
                   clip: float = 0.0, crops: tuple[float, ...] | None = None, batch_size: int = 64,
                   workers: int | None = None) -> Path:
    """Write ``id,label`` (label = P(dog)) for every picture in ``images_dir``; nothing else is written.

    The photos are decoded as they stream through the model (no cache on disk). ``crops`` defaults to
    the mean over the :func:`tta_crops` of the checkpoint's training crops (:func:`matched_crop`),
    the option notebook 05 chose for the shipped weights. Unreadable
    files get 0.5, the label that costs least when we know nothing, and are named in one warning, so
    the file always has one row per picture. Raises if no picture at all could be read.
    """
    files = list_images(images_dir)
    if not files:
        raise FileNotFoundError(no_pictures_message(images_dir))
    device = Device.pick()
    model, state = load_model(checkpoint, device)
    crops = tta_crops(checkpoint_crop(state)) if crops is None else tuple(crops)
    workers = min(default_workers(), 4) if workers is None else workers  # decoding overlaps the model
    workers = min(workers, math.ceil(len(files) / batch_size))  # a worker without a batch only costs its start
    loader = DataLoader(PhotoFiles(files), batch_size=batch_size, num_workers=workers, pin_memory=device.type == "cuda")
    probs, reasons = predict_loader(lambda images: tta_predict(model, images, device, crops=crops, flip=flip), loader)
    bad = {f.name: reason for f, reason in zip(files, reasons) if reason}
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warn_unreadable(bad, f"in {images_dir} (P(dog) = 0.5)")
    if len(bad) == len(files):
        raise RuntimeError(f"None of the {len(files)} files in {images_dir} could be read as a picture.")
    if bad:
        probs[[i for i, r in enumerate(reasons) if r]] = 0.5
        print(f"{len(bad)} unreadable file(s), named in the warning above, get P(dog) = 0.5.")
    return write_submission([image_id(f.name) for f in files], probs, out, clip=clip)


# ---------------------------------------------------------------------------------------------
# Photos from elsewhere: a learner's own, and a second source of labelled photos
# ---------------------------------------------------------------------------------------------
def classify_photo(model: nn.Module, path: Path | str, device: Device, *, flip: bool = True,
                   crops: tuple[float, ...] = (1.0,)) -> float:
    """P(dog) for one photo file, seen as the submission sees a test photo: read upright (a phone
    photo's EXIF orientation applied), resized to 224, then the same flip TTA and centre crop."""
    loader = eval_loader(PhotoFiles([Path(path)]), batch_size=1)
    probs, reasons = predict_loader(lambda images: tta_predict(model, images, device, crops=crops, flip=flip), loader,
                                    desc="classifying")
    if reasons[0]:
        raise UnreadableImage(f"{path} cannot be read as a picture: {reasons[0]}")
    return float(probs[0])


def photo_to_classify(my_photo: Path | str | None, fallback: Path) -> Path:
    """The photo to classify: ``my_photo`` if given; else in Colab one uploaded now; else (locally,
    headless, or nothing uploaded) ``fallback``, said in one line, so the cell always shows a result."""
    if my_photo:
        path = Path(my_photo).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"my_photo = {str(my_photo)!r}: there is no such file.")
        return path
    if "google.colab" in sys.modules:
        from google.colab import files  # type: ignore

        print("Upload a photo of a cat or a dog (or cancel to use a test photo):")
        uploaded = files.upload()
        if uploaded:
            name, data = next(iter(uploaded.items()))
            path = scratch_dir() / "uploads" / Path(name).name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            return path
    print(f"my_photo = None: classifying the test photo {Path(fallback).name} instead (set my_photo to a photo's path).")
    return Path(fallback)


def _extracted(archive: Path) -> Path:
    """A zip's contents, extracted once into the scratch folder (again only if the zip changes)."""
    st = archive.stat()
    dest = scratch_dir() / "photo-sets" / f"{archive.stem}-{st.st_size}-{st.st_mtime_ns}"
    if dest.is_dir():
        return dest
    staging = dest.with_name(dest.name + ".partial")  # renamed when complete: a cut-short extraction never counts
    shutil.rmtree(staging, ignore_errors=True)
    try:
        safe_extract(archive, staging)
    except (zipfile.BadZipFile, EOFError) as err:
        shutil.rmtree(staging, ignore_errors=True)
        raise DatasetError(f"{archive} is not a readable zip ({err}).") from None
    os.replace(staging, dest)
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
    files, labels = [], []
    for label, name in enumerate(CLASSES):
        found = list_images(folders[name])
        files += found
        labels += [label] * len(found)
    if not files:
        raise DatasetError(f"{source}: its cat/ and dog/ folders hold no pictures.")
    return files, np.array(labels, dtype=np.int64)


@dataclass
class PhotoSetEvaluation(Evaluation):
    """An :class:`Evaluation` of photo files: which ones (unreadable files left out), and the set's name."""

    files: list[Path] = field(default_factory=list)
    name: str = ""


def evaluate_photos(model: nn.Module, source: Path | str, device: Device, *, flip: bool = True,
                    crops: tuple[float, ...] = (1.0,), batch_size: int = 64) -> PhotoSetEvaluation:
    """Accuracy and log loss on labelled photos from another source than Kaggle's (a folder or zip
    with ``cat/`` and ``dog/``), each seen as :func:`classify_photo` sees it. Photos from another
    website show how far the model's skill carries beyond the competition's own photos.
    Unreadable files are named in a warning and left out."""
    source = Path(source).expanduser()
    files, labels = labelled_photos(source)
    probs, reasons = predict_loader(lambda images: tta_predict(model, images, device, crops=crops, flip=flip),
                                    eval_loader(PhotoFiles(files), batch_size=batch_size), desc="evaluating")
    keep = np.array([not reason for reason in reasons], dtype=bool)
    warn_unreadable({str(f): r for f, r, k in zip(files, reasons, keep) if not k}, f"in {source} (not used)")
    if not keep.any():
        raise DatasetError(f"None of the {len(files)} pictures in {source} could be read.")
    files, probs, labels = [f for f, k in zip(files, keep) if k], probs[keep], labels[keep]
    name = source.stem if source.is_file() else source.name
    return PhotoSetEvaluation.of(probs, labels, files=files, name=name)
