"""Running a model over a loader without autograd: the plumbing under validation and prediction.

What the model is shown (the whole photo, centre crops, mirror images) is the lesson of notebook 05;
this module only batches, gathers and scores.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from .device import Device
from .metrics import Evaluation


@torch.inference_mode()
def predict_loader(predict_batch: Callable[[torch.Tensor], torch.Tensor], loader: DataLoader, *,
                   desc: str = "predicting") -> tuple[np.ndarray, np.ndarray]:
    """``predict_batch(images)`` for every batch of ``loader``, joined along the last axis (the photos),
    in float64; and the second item of the batches (labels, or why a photo could not be read)."""
    outputs, seconds = [], []
    for images, second in tqdm(loader, desc=desc, unit="batch", leave=False):
        outputs.append(predict_batch(images).double().cpu())
        seconds += second.tolist() if torch.is_tensor(second) else list(second)
    if not outputs:
        return np.zeros(0), np.asarray(seconds)
    return torch.cat(outputs, dim=-1).numpy(), np.asarray(seconds)


def evaluate(model: nn.Module, loader: DataLoader, device: Device) -> Evaluation:
    """Accuracy and log loss (the competition's metric) of ``model`` on the whole photos of a
    labelled loader, in eval mode (no dropout)."""
    model.eval()

    def p_dog(images: torch.Tensor) -> torch.Tensor:
        with device.autocast():
            return model(device.input(images)).float().softmax(dim=1)[:, 1]

    probs, labels = predict_loader(p_dog, loader, desc="evaluating")
    return Evaluation.of(probs, labels)
