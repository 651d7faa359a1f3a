"""Running a model over a loader without autograd: the plumbing under prediction. What the model is
shown (centre crops, mirror images) is notebook 05's lesson; validation is notebook 04's ``evaluate``."""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm


@torch.inference_mode()
def predict_loader(predict_batch: Callable[[torch.Tensor], torch.Tensor], loader: DataLoader, *,
                   desc: str = "predicting") -> tuple[np.ndarray, np.ndarray]:
    """``predict_batch(images)`` for every batch of ``loader``, joined along the last axis (the photos),
    in float64; and the second item of the batches (labels, or why a photo could not be read)."""
    outputs, seconds = [], []
    for images, second in tqdm(loader, desc=desc, unit="batch", leave=False):
        outputs.append(predict_batch(images).double().cpu())
        seconds += second.tolist() if torch.is_tensor(second) else list(second)
    return torch.cat(outputs, dim=-1).numpy() if outputs else np.zeros(0), np.asarray(seconds)
