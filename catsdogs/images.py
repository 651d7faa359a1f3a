"""Reading photos, and what their file names say: Kaggle names training photos ``cat.123.jpg`` /
``dog.45.jpg`` and test photos ``123.jpg``, and the label and the id come from those names alone."""
from __future__ import annotations

import contextlib
import re
import warnings
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageFile, ImageOps

ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated JPEG is an error, not a grey half-picture
Image.MAX_IMAGE_PIXELS = 200_000_000  # big camera photos are fine; decompression bombs are not

SIXTEEN_BIT = {"I;16", "I;16B", "I;16L", "I"}  # Pillow opens 16-bit grayscale as I;16 (older versions: I)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
CLASSES = ("cat", "dog")  # index = label: 0 = cat, 1 = dog (Kaggle's label is P(dog))
_LABELLED = re.compile(r"(cat|dog)\.([0-9]+)\.[A-Za-z]+\Z")  # [0-9], not \d ("٣"); \Z, not $ ("\n")


class UnreadableImage(Exception):
    """A file that cannot be decoded as a picture; the message says why."""


def label_from_name(name: str) -> int:
    """``cat.12.jpg`` → 0, ``dog.7.jpg`` → 1. Anything else is an error that names the file."""
    match = _LABELLED.match(Path(name).name)
    if not match:
        raise ValueError(f"{name!r} is not a labelled Kaggle file name like 'cat.12.jpg' or 'dog.7.jpg'.")
    return CLASSES.index(match.group(1))


def image_id(name: str) -> str:
    """The submission id of a photo: its file name without the extension (``123.jpg`` → ``123``)."""
    return Path(name).stem


def numeric_sort_key(name: str) -> tuple:
    """Sort ``2.jpg`` before ``10.jpg``, as Kaggle's submission does; non-numeric ids go last."""
    stem = image_id(name)
    numeric = stem.isascii() and stem.isdigit()  # "²".isdigit() is True, but int("²") fails
    return (0, int(stem), "") if numeric else (1, 0, stem)


def _is_picture(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES


def list_images(folder: Path) -> list[Path]:
    """Picture files in a folder (not recursive), numerically sorted by id."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"No folder {folder}: run notebook 01 (or pass an existing folder).")
    return sorted((p for p in folder.iterdir() if _is_picture(p)), key=lambda p: numeric_sort_key(p.name))


def no_pictures_message(folder: Path) -> str:
    """Why a folder yielded no pictures, and what to pass instead: pictures sorted into subfolders
    (``photos/cat/``, ``photos/dog/``) are the usual cause, so it names those, with their counts."""
    folder = Path(folder)
    message = f"No pictures ({', '.join(sorted(IMAGE_SUFFIXES))}) directly in {folder}."
    counts = {}
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        with contextlib.suppress(OSError):  # a subfolder we may not read: say nothing about it
            counts[sub] = sum(1 for p in sub.iterdir() if _is_picture(p))
    counts = {sub: n for sub, n in counts.items() if n}
    if counts:
        shown = "\n".join(f"  {sub} ({n} picture{'s' if n != 1 else ''})" for sub, n in list(counts.items())[:10])
        more = f"\n  ... and {len(counts) - 10} more" if len(counts) > 10 else ""
        message += (f" Subfolders are not searched, and {len(counts)} subfolder(s) hold pictures:\n{shown}{more}\n"
                    "Pass one of these folders instead.")
    return message


def list_labelled(folder: Path) -> tuple[list[Path], np.ndarray]:
    """The labelled training photos of a Kaggle ``train/`` folder and their labels (0 cat, 1 dog)."""
    files = sorted((p for p in list_images(folder) if _LABELLED.match(p.name)), key=lambda p: p.name)
    return files, np.array([label_from_name(p.name) for p in files], dtype=np.int64)


def upright(img: Image.Image) -> Image.Image:
    """The picture as viewers show it: phone cameras store pixels sideways and say so in the EXIF
    Orientation tag. A picture without the tag, or with an unreadable EXIF block, is returned as stored."""
    try:
        orientation = img.getexif().get(ExifTags.Base.Orientation, 1)
    except Exception:  # noqa: BLE001 - malformed EXIF is common and must not cost the photo itself
        return img
    return ImageOps.exif_transpose(img) if orientation in range(2, 9) else img  # 1 = upright; outside 1-8: invalid


def read_rgb(path: Path, size: int) -> np.ndarray:
    """Decode any picture (grayscale of 8 or 16 bits, palette, RGBA, CMYK...) to an RGB ``size``x``size``
    uint8 array (H, W, 3), upright (:func:`upright`); a large JPEG is decoded at a reduced scale first
    (``draft``: much faster, and nothing lost at 224 pixels). Raises :class:`UnreadableImage` with the reason."""
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise UnreadableImage("the file is empty")
        with Image.open(path) as img:
            img.draft("RGB", (size, size))
            img = upright(img)  # after draft: the (reduced) decode is what gets turned
            if img.mode in SIXTEEN_BIT:  # 16-bit grayscale PNG: convert("RGB") would clip it to white
                img = Image.fromarray((np.asarray(img, dtype=np.float32) / 257).clip(0, 255).astype(np.uint8))
            if img.mode in ("RGBA", "LA", "P", "PA"):  # transparent pixels become white, not black
                img = Image.alpha_composite(Image.new("RGBA", img.size, (255, 255, 255, 255)), img.convert("RGBA"))
            img = img.convert("RGB").resize((size, size), Image.Resampling.BILINEAR, reducing_gap=3.0)
            return np.asarray(img, dtype=np.uint8)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise UnreadableImage(f"{type(err).__name__}: {err}") from None


def warn_unreadable(bad: dict[str, str], what: str) -> None:
    """One warning that names every unreadable file and why, so nothing is skipped silently."""
    if bad:
        lines = "\n".join(f"  {name}: {reason}" for name, reason in list(bad.items())[:20])
        more = f"\n  ... and {len(bad) - 20} more" if len(bad) > 20 else ""
        warnings.warn(f"{len(bad)} unreadable file(s) {what}:\n{lines}{more}", stacklevel=2)
