"""Photo files through a trained model as the submission sees a test photo: decoded as they are read
(nothing written to disk), then notebook 05's flip TTA and centre crops (``catsdogs.submission``)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from .data import eval_loader
from .device import Device
from .images import UnreadableImage, read_rgb
from .inference import predict_loader
from .submission import tta_predict


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
