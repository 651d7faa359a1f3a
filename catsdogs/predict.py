"""The ``predict`` command: a trained model's P(dog) for every photo of a folder, written as a
submission file; and the model notebooks 05 and 07 use.

What the model is shown (flip TTA, centre crops) is notebook 05's code, exported to
``catsdogs.submission``; nothing here imports the training code, the downloader or the runner:
predicting needs the model, the photos, the device and a checkpoint, never an optimiser. A learner's
own photo is :mod:`catsdogs.my_photo`; photos from another source, :mod:`catsdogs.second_source`.
"""
from __future__ import annotations

import math
import warnings
from pathlib import Path

from torch import nn

from .checkpoints import load_checkpoint, newest_run
from .config import SHIPPED_WEIGHTS
from .data import default_workers
from .device import Device
from .images import image_id, list_images, no_pictures_message, warn_unreadable
from .model import ModelConfig, build_model
from .photo_files import tta_probs
from .submission import checkpoint_crop, tta_crops, write_submission


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


def predict_folder(images_dir: Path, out: Path, checkpoint: Path | None = None, *, flip: bool = True,
                   clip: float = 0.0, crops: tuple[float, ...] | None = None, batch_size: int = 64,
                   workers: int | None = None) -> Path:
    """Write ``id,label`` (label = P(dog)) for every picture in ``images_dir``; nothing else is written.

    The photos are decoded as they stream through the model (no cache on disk). ``crops`` defaults to
    the :func:`tta_crops` around the crop matched to the checkpoint's training crops, the option
    notebook 05 chose for the shipped weights. Unreadable files get 0.5, the label that costs least
    when we know nothing, and are named in one warning, so the file always has one row per picture.
    Raises if no picture at all could be read.
    """
    files = list_images(images_dir)
    if not files:
        raise FileNotFoundError(no_pictures_message(images_dir))
    device = Device.pick()
    model, state = load_model(checkpoint, device)
    crops = tta_crops(checkpoint_crop(state)) if crops is None else tuple(crops)
    workers = min(default_workers(), 4) if workers is None else workers  # decoding overlaps the model
    workers = min(workers, math.ceil(len(files) / batch_size))  # a worker without a batch only costs its start
    probs, reasons = tta_probs(model, files, device, flip=flip, crops=crops, batch_size=batch_size, workers=workers)
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
