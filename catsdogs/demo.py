"""The generated demo archive: the layout of Kaggle's, filled with synthetic cartoon cats and dogs, so that
every notebook and test runs on a fresh machine without Kaggle. It is not the real data: everything
computed on it is labelled DEMO."""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from .files import atomic_write
from .config import is_small

def _draw_animal(rng: np.random.Generator, label: int, size: int) -> Image.Image:
    """A cartoon face: cats have pointed ears and whiskers, dogs floppy ears and a big nose.
    Background, fur colour, position and scale vary, so the demo has something to learn."""
    bg = tuple(int(v) for v in rng.integers(60, 230, 3))
    img = Image.new("RGB", (size, size), bg)
    d = ImageDraw.Draw(img)
    for _ in range(6):  # clutter
        x, y = rng.integers(0, size, 2)
        r = int(rng.integers(size // 20, size // 6))
        d.ellipse([x - r, y - r, x + r, y + r], fill=tuple(int(v) for v in rng.integers(40, 240, 3)))
    fur = tuple(int(v) for v in (rng.integers(170, 255), rng.integers(90, 170), rng.integers(20, 90))) if label == 0 \
        else tuple(int(v) for v in (rng.integers(90, 160), rng.integers(60, 110), rng.integers(30, 70)))
    r = int(size * rng.uniform(0.18, 0.3))
    cx, cy = (int(v) for v in rng.integers(r + size // 10, size - r - size // 10, 2))
    if label == 0:
        for side in (-1, 1):
            d.polygon([(cx + side * r * 0.9, cy - r * 0.3), (cx + side * r * 0.2, cy - r * 0.8),
                       (cx + side * r * 0.8, cy - r * 1.5)], fill=fur)
    else:
        for side in (-1, 1):
            d.ellipse([cx + side * r * 0.7 - r * 0.35, cy - r * 0.6, cx + side * r * 0.7 + r * 0.35, cy + r * 0.9],
                      fill=tuple(max(0, c - 40) for c in fur))
    d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fur)
    for side in (-1, 1):
        d.ellipse([cx + side * r * 0.4 - r * 0.1, cy - r * 0.3, cx + side * r * 0.4 + r * 0.1, cy - r * 0.1], fill=(0, 0, 0))
    if label == 0:
        for side in (-1, 1):
            for dy in (-0.05, 0.1):
                d.line([(cx + side * r * 0.2, cy + r * 0.3), (cx + side * r * 1.1, cy + r * (0.3 + dy))], fill=(20, 20, 20), width=max(1, size // 100))
    else:
        d.ellipse([cx - r * 0.3, cy + r * 0.15, cx + r * 0.3, cy + r * 0.5], fill=(10, 10, 10))
    return img.filter(ImageFilter.GaussianBlur(rng.uniform(0, 1.2)))


def _jpeg(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def make_demo_archive(path: Path, *, per_class: int = 300, n_test: int = 100, size: int = 160, seed: int = 0) -> Path:
    """Write a small archive with the layout of Kaggle's (``train.zip`` with ``train/cat.N.jpg`` and
    ``train/dog.N.jpg``, ``test.zip`` with ``test/N.jpg``, ``sample_submission.csv``) of synthetic pictures."""
    rng = np.random.default_rng(seed)
    path = Path(path)  # atomic_write makes its folder
    train, test = io.BytesIO(), io.BytesIO()
    with zipfile.ZipFile(train, "w", zipfile.ZIP_STORED) as zf:
        for label, name in enumerate(("cat", "dog")):
            for i in range(per_class):
                zf.writestr(f"train/{name}.{i}.jpg", _jpeg(_draw_animal(rng, label, size)))
    with zipfile.ZipFile(test, "w", zipfile.ZIP_STORED) as zf:
        for i in range(1, n_test + 1):
            zf.writestr(f"test/{i}.jpg", _jpeg(_draw_animal(rng, int(rng.integers(0, 2)), size)))
    sample = "id,label\n" + "".join(f"{i},0.5\n" for i in range(1, n_test + 1))
    with atomic_write(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("train.zip", train.getvalue())
        zf.writestr("test.zip", test.getvalue())
        zf.writestr("sample_submission.csv", sample)
    return path


def demo_size() -> dict:
    """The small profile (tests) uses a tiny demo; the demo run of the full profile a larger one."""
    return dict(per_class=48, n_test=24, size=96) if is_small() else dict(per_class=300, n_test=100, size=160)
