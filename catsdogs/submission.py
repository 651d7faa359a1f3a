"""Generated from notebooks/05_submission.ipynb by scripts/export_lessons.py: the code of its cells marked
``#| export``. Edit the notebook, not this file, then run the script."""
from __future__ import annotations

__all__ = ["matched_crop", "checkpoint_crop", "tta_crops", "centre_crop", "view_probs", "tta_predict",
           "write_submission"]

import math
import torch
from torchvision.transforms import v2
import csv
from pathlib import Path
import numpy as np
from catsdogs.files import atomic_write
from catsdogs.images import numeric_sort_key


# notebooks/05_submission.ipynb, cell 7
def matched_crop(crop_scale: tuple[float, float]) -> float:
    """The centre crop (fraction of each side) that shows objects at the size training showed them:
    √(mean area) of crops drawn uniformly between ``crop_scale[0]`` and ``crop_scale[1]``."""
    return math.sqrt(sum(crop_scale) / 2)


def checkpoint_crop(state: dict) -> float:
    """The matched centre crop for a checkpoint's recipe; 1 (the whole photo) if it records no crops."""
    crop_scale = state.get("train_config", {}).get("crop_scale")
    return matched_crop(tuple(crop_scale)) if crop_scale else 1.0


def tta_crops(matched: float) -> tuple[float, ...]:
    """The centre crops seen at test time: the whole photo, the matched crop and a few around it."""
    return tuple(sorted({1.0, 0.9, round(matched, 2), 0.8, 0.7}, reverse=True))


def centre_crop(images: torch.Tensor, fraction: float) -> torch.Tensor:
    """Keep the central ``fraction`` of each side of a uint8 batch and resize it back to full size."""
    if fraction >= 1.0:
        return images
    if not 0.0 < fraction:
        raise ValueError(f"the centre crop must keep a fraction in (0, 1] of each side, got {fraction}")
    size = images.shape[-1]
    return v2.functional.resize(v2.functional.center_crop(images, [round(size * fraction)] * 2), [size, size],
                                antialias=True)


# notebooks/05_submission.ipynb, cell 8
def view_probs(model: torch.nn.Module, images: torch.Tensor, device, *, crops: tuple[float, ...] = (1.0,),
               flip: bool = True) -> torch.Tensor:
    """P(dog) of a uint8 batch seen in several views, shape (views, batch): each centre crop, then
    (with ``flip``) each crop's mirror image."""
    views = [device.input(centre_crop(images, crop)) for crop in crops]
    if flip:
        views += [x.flip(3) for x in views]  # mirror left-right: the last axis is the width
    with torch.inference_mode(), device.autocast():
        return torch.stack([model(x).float().softmax(dim=1)[:, 1].double() for x in views])


def tta_predict(model: torch.nn.Module, images: torch.Tensor, device, *, crops: tuple[float, ...] = (1.0,),
                flip: bool = True) -> torch.Tensor:
    """P(dog) of a uint8 batch: the mean over its views (test-time augmentation)."""
    return view_probs(model, images, device, crops=crops, flip=flip).mean(dim=0)


# notebooks/05_submission.ipynb, cell 16
def write_submission(ids: list[str], probs: np.ndarray, path: Path, *, clip: float = 0.0) -> Path:
    """Write ``id,label`` rows sorted by numeric id; ``clip`` bounds P(dog) to [clip, 1-clip], which
    caps the log-loss cost of a confident mistake. Written whole or not at all."""
    if len(ids) != len(probs):
        raise ValueError(f"{len(ids)} ids but {len(probs)} probabilities")
    rows = sorted(zip(ids, np.clip(probs, clip, 1 - clip)), key=lambda row: numeric_sort_key(row[0]))
    with atomic_write(Path(path)) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "label"])
        writer.writerows((i, f"{p:.6f}") for i, p in rows)
    return Path(path)
