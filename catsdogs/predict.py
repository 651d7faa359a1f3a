"""Inference and the Kaggle submission: P(dog) for every test photo, written and validated."""
from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2
from tqdm import tqdm

from .cache import CachedPhotos, ImageCache, default_workers
from .config import SHIPPED_WEIGHTS
from .images import (UnreadableImage, image_id, list_images, no_pictures_message, numeric_sort_key, read_rgb,
                     warn_unreadable)
from .model import ModelConfig, build_model
from .training import autocast, load_checkpoint, pick_device, pick_precision, to_model_input


def matched_crop(crop_scale: tuple[float, float]) -> float:
    """The centre crop (fraction of each side) that shows objects at the size training showed them.

    Training crops cover between ``crop_scale[0]`` and ``crop_scale[1]`` of a photo's area, drawn
    uniformly, and are resized to 224: on average the model sees things magnified by
    1/sqrt(mean area). A full test photo shows them smaller; cropping its centre to that side fraction
    and resizing it to 224 undoes the difference (Touvron et al. 2019, "Fixing the train-test
    resolution discrepancy"). The modern recipe's (0.35, 1) gives 0.82, the blog's (0.08, 1) 0.73; no
    crop augmentation, (1, 1), gives 1.
    """
    return math.sqrt(sum(crop_scale) / 2)


def checkpoint_crop(state: dict) -> float:
    """The matched centre crop for a checkpoint's recipe; 1 (the whole photo) if it records no crops."""
    crop_scale = state.get("train_config", {}).get("crop_scale")
    return matched_crop(tuple(crop_scale)) if crop_scale else 1.0


def centre_crop(images: torch.Tensor, fraction: float) -> torch.Tensor:
    """Keep the central ``fraction`` of each side of a uint8 batch and resize it back to full size."""
    if fraction >= 1.0:
        return images
    if not 0.0 < fraction:
        raise ValueError(f"the centre crop must keep a fraction in (0, 1] of each side, got {fraction}")
    size = images.shape[-1]
    cropped = v2.functional.center_crop(images, [round(size * fraction)] * 2)
    return v2.functional.resize(cropped, [size, size], antialias=True)


@torch.inference_mode()
def predict_probs(model: nn.Module, loader: Iterable, device: torch.device, precision: str,
                  flip_tta: bool = False, crop: float = 1.0, desc: str = "predicting") -> np.ndarray:
    """P(dog) for every photo of ``loader`` (a DataLoader, or any sized iterable of (uint8 images, anything)
    batches), in eval mode (no dropout), batched, without autograd.

    With ``flip_tta`` each photo is also seen mirrored and the two probabilities are averaged; with
    ``crop`` < 1 the model sees the centre of each photo (see :func:`matched_crop`).
    """
    model.eval()
    probs = []
    for images, _ in tqdm(loader, desc=desc, unit="batch", leave=False):
        x = to_model_input(centre_crop(images, crop), device, precision)
        with autocast(device, precision):
            p = model(x).float().softmax(dim=1)[:, 1]
            if flip_tta:
                p = (p + model(x.flip(3)).float().softmax(dim=1)[:, 1]) / 2
        probs.append(p)
    return torch.cat(probs).cpu().double().numpy() if probs else np.zeros(0)


def log_loss(labels: np.ndarray, probs: np.ndarray, eps: float = 1e-15) -> float:
    """Kaggle's metric for this competition: mean binary cross-entropy of P(dog)."""
    p = np.clip(np.asarray(probs, dtype=np.float64), eps, 1 - eps)  # in float32, 1 - 1e-15 rounds to 1
    return float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)))


def eval_loader(cache: ImageCache, rows: np.ndarray, labels: np.ndarray | None = None,
                batch_size: int = 256, workers: int = 0) -> DataLoader:
    return DataLoader(CachedPhotos(cache, rows, labels), batch_size=batch_size, shuffle=False,
                      num_workers=workers, pin_memory=torch.cuda.is_available())


def load_model(checkpoint: Path | None = None, device: torch.device | None = None) -> tuple[nn.Module, dict]:
    """A model in eval mode from a training checkpoint or, by default, the shipped weights."""
    device = device or pick_device()
    path = Path(checkpoint) if checkpoint else SHIPPED_WEIGHTS
    state = load_checkpoint(path, map_location=device)
    model = build_model(ModelConfig(**state.get("model_config", {})))
    model.load_state_dict({k: v.float() for k, v in state["model"].items()})
    return model.to(device).eval(), state


def write_submission(ids: list[str], probs: np.ndarray, path: Path, clip: float = 0.0) -> Path:
    """Write ``id,label`` rows sorted by numeric id; ``clip`` bounds P(dog) to [clip, 1-clip],
    which caps the log-loss cost of a confident mistake."""
    if len(ids) != len(probs):
        raise ValueError(f"{len(ids)} ids but {len(probs)} probabilities")
    rows = sorted(zip(ids, np.clip(probs, clip, 1 - clip)), key=lambda r: numeric_sort_key(r[0]))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    with open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "label"])
        writer.writerows((i, f"{p:.6f}") for i, p in rows)
    os.replace(tmp, path)
    return path


class InvalidSubmission(ValueError):
    """A submission Kaggle would reject or score wrongly; the message names the first bad row."""


def validate_submission(path: Path, expected_ids: list[str] | None = None) -> int:
    """Check a submission file and return its number of rows, or raise :class:`InvalidSubmission`.

    Checks the header ``id,label``; every label a number in [0, 1] (no NaN); no duplicate ids; and,
    given ``expected_ids`` (for example from ``sample_submission.csv``), no missing or unknown id.
    """
    path = Path(path)
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header != ["id", "label"]:
            raise InvalidSubmission(f"{path.name}: the header must be 'id,label', found {','.join(header or [])!r}")
        seen: set[str] = set()
        expected = None if expected_ids is None else set(map(str, expected_ids))
        for line_no, row in enumerate(reader, start=2):
            if len(row) != 2:
                raise InvalidSubmission(f"{path.name} line {line_no}: expected 2 columns, found {len(row)}: {row!r}")
            rid, raw = row[0].strip(), row[1].strip()
            if rid in seen:
                raise InvalidSubmission(f"{path.name} line {line_no}: duplicate id {rid!r}")
            if expected is not None and rid not in expected:
                raise InvalidSubmission(f"{path.name} line {line_no}: unknown id {rid!r} (not a test photo)")
            try:
                value = float(raw)
            except ValueError:
                raise InvalidSubmission(f"{path.name} line {line_no}: label {raw!r} is not a number") from None
            if math.isnan(value):
                raise InvalidSubmission(f"{path.name} line {line_no}: label is NaN for id {rid!r}")
            if not 0.0 <= value <= 1.0:
                raise InvalidSubmission(f"{path.name} line {line_no}: label {value} for id {rid!r} is outside [0, 1]")
            seen.add(rid)
    if expected is not None and seen != expected:
        missing = sorted(expected - seen, key=numeric_sort_key)
        raise InvalidSubmission(f"{path.name}: {len(missing)} test id(s) have no row, the first is {missing[0]!r}")
    return len(seen)


def predict_cache(model: nn.Module, cache: ImageCache, device: torch.device, precision: str,
                  flip_tta: bool = False, crop: float = 1.0, batch_size: int = 256) -> np.ndarray:
    """P(dog) for every row of a cache, in its order; 0.5 (the label that costs least when we know
    nothing) for files that could not be read, so a submission is never short."""
    probs = np.full(len(cache), 0.5)
    loader = eval_loader(cache, np.arange(len(cache)), batch_size=batch_size)
    probs[cache.ok] = predict_probs(model, loader, device, precision, flip_tta, crop)
    return probs


class PhotoFiles(Dataset):
    """Picture files decoded on demand, each as (uint8 CHW tensor, its index, why it is unreadable or "").

    Streaming is what lets :func:`predict_folder` leave nothing on disk: a decode cache pays off only
    for photos read again and again (training), not for photos predicted once. An unreadable file
    gives black pixels and its reason instead of an error, so one bad file does not stop the others.
    """

    def __init__(self, files: list[Path], size: int = 224):
        self.files, self.size = [Path(f) for f in files], size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, str]:
        try:
            pixels = np.array(read_rgb(self.files[i], self.size))  # a writable copy, as torch wants
            return torch.from_numpy(pixels).permute(2, 0, 1), i, ""
        except UnreadableImage as err:
            return torch.zeros(3, self.size, self.size, dtype=torch.uint8), i, str(err) or "unreadable"


class _ReadableBatches:
    """The batches of a loader over :class:`PhotoFiles` with the unreadable photos taken out, as
    :func:`predict_probs` wants them; notes which rows were read and why the others were not."""

    def __init__(self, loader: DataLoader):
        self.loader = loader
        self.rows: list[int] = []
        self.bad: dict[int, str] = {}

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for images, index, reasons in self.loader:
            ok = torch.tensor([not r for r in reasons], dtype=torch.bool)
            self.bad.update((int(i), r) for i, r in zip(index, reasons) if r)
            if ok.any():
                self.rows.extend(index[ok].tolist())
                yield images[ok], None


def predict_folder(images_dir: Path, out: Path, checkpoint: Path | None = None, *, flip_tta: bool = True,
                   clip: float = 0.0, crop: float | None = None, batch_size: int = 256,
                   workers: int | None = None) -> Path:
    """Write ``id,label`` (label = P(dog)) for every picture in ``images_dir``, and nothing else.

    Photos are decoded as they are needed (``workers`` processes, default sized to the machine; 0
    decodes in this process), so no cache is written: the photos' folder and the output folder
    hold afterwards only what they held before, plus the CSV.

    ``crop`` defaults to the centre crop matched to the checkpoint's training crops
    (:func:`matched_crop`), or 1 (the whole photo) when the checkpoint does not record them.

    Unreadable files get 0.5, the label that costs least when we know nothing, so the file always
    has one row per picture. Raises if no picture at all could be read.
    """
    files = list_images(images_dir)
    if not files:
        raise FileNotFoundError(no_pictures_message(images_dir))
    device = pick_device()
    model, state = load_model(checkpoint, device)
    crop = checkpoint_crop(state) if crop is None else crop
    precision = pick_precision(device)
    workers = default_workers() if workers is None else workers
    loader = DataLoader(PhotoFiles(files), batch_size=batch_size, shuffle=False, num_workers=workers,
                        pin_memory=torch.cuda.is_available())
    batches = _ReadableBatches(loader)
    probs = np.full(len(files), 0.5)
    readable = predict_probs(model, batches, device, precision, flip_tta, crop)
    probs[batches.rows] = readable
    warn_unreadable({files[i].name: reason for i, reason in sorted(batches.bad.items())},
                    f"in {images_dir} (they get P(dog) = 0.5)")
    if not batches.rows:
        raise RuntimeError(f"None of the {len(files)} files in {images_dir} could be read as a picture.")
    if batches.bad:
        print(f"{len(batches.bad)} unreadable file(s), named in the warning above, get P(dog) = 0.5.")
    return write_submission([image_id(f.name) for f in files], probs, out, clip)
