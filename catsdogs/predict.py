"""Inference: P(dog) for photos, the competition's metric, and a model loaded for prediction.

Nothing here imports the training code: predicting needs the model, the photos, the device and a
checkpoint, never an optimiser.
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
from torchvision.transforms import v2
from tqdm import tqdm

from .checkpoints import load_checkpoint
from .config import SHIPPED_WEIGHTS, scratch_dir
from .data import CachedPhotos, ImageCache, default_workers, eval_loader
from .device import Device
from .download import DatasetError, safe_extract
from .images import CLASSES, UnreadableImage, image_id, list_images, no_pictures_message, read_rgb, warn_unreadable
from .model import ModelConfig, build_model
from .submission import write_submission


def log_loss(labels: np.ndarray, probs: np.ndarray, eps: float = 1e-15) -> float:
    """Kaggle's metric for this competition: mean binary cross-entropy of P(dog)."""
    p = np.clip(np.asarray(probs, dtype=np.float64), eps, 1 - eps)  # in float32, 1 - 1e-15 rounds to 1
    return float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)))


def accuracy(labels: np.ndarray, probs: np.ndarray) -> float:
    """The share of photos on the right side of P(dog) = 0.5."""
    return float(np.mean((np.asarray(probs) >= 0.5) == np.asarray(labels)))


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


def tta_crops(matched: float) -> tuple[float, ...]:
    """The centre crops seen at test time: the whole photo, the crop matched to training and a few
    around it. Notebook 05 compares them one by one and their mean (multi-crop TTA: each photo seen
    from near and far), which ``predict`` uses by default."""
    return tuple(sorted({1.0, 0.9, round(matched, 2), 0.8, 0.7}, reverse=True))


def centre_crop(images: torch.Tensor, fraction: float) -> torch.Tensor:
    """Keep the central ``fraction`` of each side of a uint8 batch and resize it back to full size."""
    if fraction >= 1.0:
        return images
    if not 0.0 < fraction:
        raise ValueError(f"the centre crop must keep a fraction in (0, 1] of each side, got {fraction}")
    size = images.shape[-1]
    cropped = v2.functional.center_crop(images, [round(size * fraction)] * 2)
    return v2.functional.resize(cropped, [size, size], antialias=True)


Crops = float | tuple[float, ...]


def as_crops(crop: Crops) -> tuple[float, ...]:
    """One centre crop, or several whose predictions are averaged (multi-crop TTA), as a tuple."""
    crops = (float(crop),) if isinstance(crop, (int, float)) else tuple(float(c) for c in crop)
    if not crops:
        raise ValueError("name at least one centre crop (1 = the whole photo)")
    return crops


@torch.inference_mode()
def _predict_views(model: nn.Module, loader: DataLoader, device: Device, mirror: bool, crop: Crops,
                   desc: str) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """P(dog) for every photo of ``loader`` (with several crops, the mean over them); with ``mirror``
    also for its mirror image (else None); and the second item of its batches (labels, or the reasons
    photos could not be read) gathered alongside."""
    model.eval()
    crops = as_crops(crop)
    p_dog = lambda x: model(x).float().softmax(dim=1)[:, 1].cpu().double()  # noqa: E731  (averaged in float64)
    plain, mirrored, seconds = [], [], []
    for images, second in tqdm(loader, desc=desc, unit="batch", leave=False):
        for part in images.split(device.batch_limit or len(images)):  # pieces a CPU's caches hold
            views = [device.input(centre_crop(part, c)) for c in crops]
            with device.autocast():
                plain.append(sum(p_dog(x) for x in views) / len(views))
                if mirror:
                    mirrored.append(sum(p_dog(x.flip(3)) for x in views) / len(views))
        seconds += second.tolist() if torch.is_tensor(second) else list(second)
    if not plain:
        return np.zeros(0), (np.zeros(0) if mirror else None), np.zeros(0, dtype=np.int64)
    as_array = lambda probs: torch.cat(probs).cpu().double().numpy()  # noqa: E731
    return as_array(plain), (as_array(mirrored) if mirror else None), np.asarray(seconds)


def _predict(model: nn.Module, loader: DataLoader, device: Device, flip_tta: bool, crop: Crops,
             desc: str) -> tuple[np.ndarray, np.ndarray]:
    """P(dog) for every photo of ``loader`` (with ``flip_tta`` the mean over the photo and its mirror
    image), and the second item of its batches gathered alongside."""
    plain, mirrored, seconds = _predict_views(model, loader, device, flip_tta, crop, desc)
    return (plain if mirrored is None else (plain + mirrored) / 2), seconds


def predict_probs(model: nn.Module, loader: DataLoader, device: Device, *, flip_tta: bool = False,
                  crop: Crops = 1.0, desc: str = "predicting") -> np.ndarray:
    """P(dog) for every photo of ``loader``, in eval mode (no dropout), batched, without autograd.

    With ``flip_tta`` each photo is also seen mirrored and the two probabilities are averaged; with
    ``crop`` < 1 the model sees the centre of each photo (see :func:`matched_crop`); with several crops,
    each, and their probabilities are averaged (the photo seen from near and far).
    """
    return _predict(model, loader, device, flip_tta, crop, desc)[0]


@dataclass
class Evaluation:
    """P(dog) for each photo of a labelled loader, and how good they are."""

    probs: np.ndarray
    labels: np.ndarray
    accuracy: float
    log_loss: float

    @classmethod
    def of(cls, probs: np.ndarray, labels: np.ndarray, **extra) -> "Evaluation":
        """The probabilities scored against the labels: accuracy and log loss, defined once above
        (``extra``: a subclass's own fields)."""
        return cls(probs, labels, accuracy(labels, probs), log_loss(labels, probs), **extra)


def evaluate(model: nn.Module, loader: DataLoader, device: Device, *, flip_tta: bool = False,
             crop: Crops = 1.0) -> Evaluation:
    """Accuracy and log loss (the competition's metric) of ``model`` on a labelled loader."""
    probs, labels = _predict(model, loader, device, flip_tta, crop, "evaluating")
    return Evaluation.of(probs, labels)


def evaluate_options(model: nn.Module, loader: DataLoader, device: Device, *,
                     crops: list[float] | tuple[float, ...]) -> dict[tuple[bool, Crops], Evaluation]:
    """:func:`evaluate` for every test-time option (flip TTA off and on, each centre crop, and the mean
    over all the crops: multi-crop TTA), keyed ``(flip_tta, crop)``, the mean's crop being the tuple
    of crops. Flip TTA's unmirrored half is the plain prediction and the mean reuses each crop's, so
    each crop takes one pass with two forward passes a photo, not three, and the mean takes none."""
    plain, mirrored = {}, {}
    for crop in crops:
        without, mirror, labels = _predict_views(model, loader, device, True, crop, f"evaluating crop {crop}")
        plain[(False, crop)] = Evaluation.of(without, labels)
        mirrored[(True, crop)] = Evaluation.of((without + mirror) / 2, labels)
    if len(crops) > 1:
        for options in (plain, mirrored):
            flip_tta = next(iter(options))[0]
            options[(flip_tta, tuple(crops))] = Evaluation.of(np.mean([e.probs for e in options.values()], axis=0),
                                                              labels)
    return {**plain, **mirrored}


def crop_label(crop: Crops) -> str:
    """A crop as a table shows it: ``0.82``, or ``1.00+0.82`` for the mean over several."""
    return "+".join(f"{c:.2f}" for c in as_crops(crop))


def load_model(checkpoint: Path | None = None, device: Device | None = None) -> tuple[nn.Module, dict]:
    """A model in eval mode from a training checkpoint or, by default, the shipped weights."""
    device = device or Device.pick()
    path = Path(checkpoint) if checkpoint else SHIPPED_WEIGHTS
    state = load_checkpoint(path, map_location=device.device)
    model = build_model(ModelConfig(**state.get("model_config", {})))
    model.load_state_dict({k: v.float() for k, v in state["model"].items()})
    return model.to(device.device).eval(), state


def predict_cache(model: nn.Module, cache: ImageCache, device: Device, *, flip_tta: bool = False,
                  crop: Crops = 1.0, batch_size: int = 256) -> np.ndarray:
    """P(dog) for every row of a decode-once cache, in its order; 0.5 (the label that costs least
    when we know nothing) for files that could not be read, so a submission is never short."""
    probs = np.full(len(cache), 0.5)
    loader = eval_loader(CachedPhotos(cache, np.arange(len(cache))), batch_size=batch_size)
    probs[cache.ok] = predict_probs(model, loader, device, flip_tta=flip_tta, crop=crop)
    return probs


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


def predict_folder(images_dir: Path, out: Path, checkpoint: Path | None = None, *, flip_tta: bool = True,
                   clip: float = 0.0, crop: Crops | None = None, batch_size: int = 128,
                   workers: int | None = None) -> Path:
    """Write ``id,label`` (label = P(dog)) for every picture in ``images_dir``; nothing else is written.

    The photos are decoded as they stream through the model (no cache on disk). ``crop`` defaults to
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
    crop = tta_crops(checkpoint_crop(state)) if crop is None else crop
    workers = min(default_workers(), 4) if workers is None else workers  # decoding overlaps the model
    workers = min(workers, math.ceil(len(files) / batch_size))  # a worker without a batch only costs its start
    loader = DataLoader(PhotoFiles(files), batch_size=batch_size, num_workers=workers, pin_memory=device.type == "cuda")
    probs, reasons = _predict(model, loader, device, flip_tta, crop, "predicting")
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
def classify_photo(model: nn.Module, path: Path | str, device: Device, *, flip_tta: bool = True,
                   crop: Crops = 1.0) -> float:
    """P(dog) for one photo file, seen as the submission sees a test photo: read upright (a phone
    photo's EXIF orientation applied), resized to 224, then the same flip TTA and centre crop."""
    loader = eval_loader(PhotoFiles([Path(path)]), batch_size=1)
    probs, reasons = _predict(model, loader, device, flip_tta, crop, "classifying")
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


def evaluate_photos(model: nn.Module, source: Path | str, device: Device, *, flip_tta: bool = True,
                    crop: Crops = 1.0, batch_size: int = 64) -> PhotoSetEvaluation:
    """Accuracy and log loss on labelled photos from another source than Kaggle's (a folder or zip
    with ``cat/`` and ``dog/``), each seen as :func:`classify_photo` sees it. Photos from another
    website show how far the model's skill carries beyond the competition's own photos.
    Unreadable files are named in a warning and left out."""
    source = Path(source).expanduser()
    files, labels = labelled_photos(source)
    probs, reasons = _predict(model, eval_loader(PhotoFiles(files), batch_size=batch_size), device, flip_tta, crop,
                              "evaluating")
    keep = np.array([not reason for reason in reasons], dtype=bool)
    warn_unreadable({str(f): r for f, r, k in zip(files, reasons, keep) if not k}, f"in {source} (not used)")
    if not keep.any():
        raise DatasetError(f"None of the {len(files)} pictures in {source} could be read.")
    files, probs, labels = [f for f, k in zip(files, keep) if k], probs[keep], labels[keep]
    name = source.stem if source.is_file() else source.name
    return PhotoSetEvaluation.of(probs, labels, files=files, name=name)
