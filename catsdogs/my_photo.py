"""One photo of a learner's, classified: the one named, else one uploaded in Colab, else a test photo."""
from __future__ import annotations

import sys
from pathlib import Path

from torch import nn

from .config import scratch_dir
from .device import Device
from .images import UnreadableImage
from .predict import tta_probs


def classify_photo(model: nn.Module, path: Path | str, device: Device, *, flip: bool = True,
                   crops: tuple[float, ...] = (1.0,)) -> float:
    """P(dog) for one photo file, seen as the submission sees a test photo: read upright (a phone
    photo's EXIF orientation applied), resized to 224, then the same flip TTA and centre crop."""
    probs, reasons = tta_probs(model, [Path(path)], device, flip=flip, crops=crops, batch_size=1, desc="classifying")
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
