"""Prediction: the trained model to use, photo files through it as notebook 05 shows a test photo
(``catsdogs.submission``), and the ``predict`` command: P(dog) for every photo of a folder, as a
submission file. No training code, downloader or runner here: never an optimiser."""
from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from .checkpoints import load_checkpoint, newest_run
from .config import SHIPPED_WEIGHTS
from .data import default_workers, eval_loader
from .device import Device
from .images import UnreadableImage, image_id, list_images, no_pictures_message, read_rgb, warn_unreadable
from .inference import predict_loader
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
    state = load_checkpoint(checkpoint or SHIPPED_WEIGHTS, map_location=device.device)
    model = build_model(ModelConfig(**state.get("model_config", {})))
    model.load_state_dict({k: v.float() for k, v in state["model"].items()})
    return model.to(device.device).eval(), state


class PhotoFiles(Dataset):
    """Photo files decoded as they are read (uint8 CHW, 224x224), for a one-off prediction that
    should leave nothing on disk. An unreadable file yields a blank picture and the reason."""

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


def tta_probs(model: nn.Module, files: list[Path], device: Device, *, flip: bool = True,
              crops: tuple[float, ...] = (1.0,), batch_size: int = 64, workers: int = 0,
              desc: str = "predicting") -> tuple[np.ndarray, np.ndarray]:
    """P(dog) of each file, the mean over its views (:func:`~catsdogs.submission.tta_predict`), and
    why each file could not be read ("" for those that could; their P(dog) means nothing)."""
    loader = eval_loader(PhotoFiles(files), batch_size=batch_size, workers=workers)
    return predict_loader(lambda images: tta_predict(model, images, device, crops=crops, flip=flip), loader, desc=desc)


def predict_folder(images_dir: Path, out: Path, checkpoint: Path | None = None, *, flip: bool = True,
                   clip: float = 0.0, crops: tuple[float, ...] | None = None, batch_size: int = 64,
                   workers: int | None = None) -> Path:
    """Write ``id,label`` (label = P(dog)) for every picture in ``images_dir``, decoded as they stream
    through the model: nothing else is written. ``crops`` defaults to notebook 05's choice for the shipped
    weights (:func:`tta_crops` of the checkpoint's). An unreadable file gets 0.5, the label that costs least
    when we know nothing, and is named in a warning; raises if no picture at all could be read."""
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
