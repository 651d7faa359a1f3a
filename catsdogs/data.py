"""The photos as the model sees them: the decode-once cache, the split, datasets and loaders. Decoding
a JPEG costs more than a training step's share of compute on a small CPU, so instead of decoding every
photo in every epoch (the blog's pipeline) we decode each one once into a memory-mapped ``.npy`` file
(224x224x3 bytes a photo: 3.4 GB for the 22,500 training photos), rebuilt when the photos change;
random crops and flips then run on those bytes as tensors."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from .config import Workspace, shown
from .files import atomic_write, stamp
from .images import UnreadableImage, list_images, list_labelled, read_rgb, warn_unreadable
from .split import make_split

CACHE_VERSION = 2  # 2: photos are turned upright by their EXIF orientation tag


@dataclass
class ImageCache:
    """Decoded photos: ``images[i]`` is the (H, W, 3) uint8 picture of ``names[i]``; ``ok[i]`` is
    False where the file could not be read (its pixels are zeros and it must not be used)."""

    images: np.ndarray
    names: list[str]
    ok: np.ndarray
    path: Path

    def __len__(self) -> int:
        return len(self.names)

    def rows(self, names: list[str]) -> np.ndarray:
        """Row numbers of the given file names."""
        where = {name: i for i, name in enumerate(self.names)}
        missing = [n for n in names if n not in where]
        if missing:
            raise KeyError(f"{len(missing)} file(s) are not in the cache {self.path.name}, e.g. {missing[0]!r}: "
                           "the photos changed since the split was made; rerun notebook 02.")
        return np.array([where[n] for n in names], dtype=np.int64)


def _decode(args: tuple[str, int]) -> tuple[np.ndarray | None, str | None]:
    path, size = args
    try:
        return read_rgb(Path(path), size), None
    except UnreadableImage as err:
        return None, str(err)


def default_workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def build_cache(files: list[Path], cache_file: Path, size: int = 224, *, workers: int | None = None,
                desc: str = "decoding photos") -> ImageCache:
    """Load the cache of ``files`` at ``size`` pixels, building it first if it is missing or stale
    (written whole or not at all). Unreadable files are named in a warning and marked in ``ok``."""
    files = [Path(f) for f in files]
    cache_file = Path(cache_file)
    meta_file = cache_file.with_suffix(".json")
    stamps = f"v{CACHE_VERSION}:{size}" + "".join(f"{stamp(f)}\n" for f in files)
    fingerprint = hashlib.sha256(stamps.encode()).hexdigest()[:16]
    meta = json.loads(meta_file.read_text()) if cache_file.exists() and meta_file.exists() else {}
    if meta.get("fingerprint") != fingerprint:  # decode every file into the cache, then write its metadata
        ok, bad = np.zeros(len(files), dtype=bool), {}
        workers = workers or default_workers()
        jobs = [(str(f), size) for f in files]
        with atomic_write(cache_file) as tmp:
            images = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(files), size, size, 3))
            with ProcessPoolExecutor(workers) if workers > 1 else contextlib.nullcontext() as pool:
                results = pool.map(_decode, jobs, chunksize=64) if pool else map(_decode, jobs)
                for i, (pixels, error) in enumerate(tqdm(results, total=len(files), desc=desc, unit="img")):
                    if pixels is None:
                        bad[files[i].name] = error
                    else:
                        images[i] = pixels
                        ok[i] = True
            images.flush()
            del images
        meta = {"fingerprint": fingerprint, "size": size, "names": [f.name for f in files], "ok": ok.tolist(),
                "unreadable": bad}
        with atomic_write(meta_file) as tmp:
            tmp.write_text(json.dumps(meta))
    # named on every load, not just the first: a reused cache must not hide its unreadable files
    warn_unreadable(meta["unreadable"], f"in {files[0].parent if files else '?'} (not used)")
    return ImageCache(np.load(cache_file, mmap_mode="r"), meta["names"], np.array(meta["ok"], bool), cache_file)


class CachedPhotos(Dataset):
    """Rows of an :class:`ImageCache` as (uint8 CHW tensor, label) pairs, optionally augmented."""

    def __init__(self, cache: ImageCache, rows: np.ndarray, labels: np.ndarray | None = None, transform=None):
        rows = np.asarray(rows, dtype=np.int64)
        keep = cache.ok[rows]
        self.skipped = int((~keep).sum())
        self.cache, self.rows = cache, rows[keep]
        self.labels = None if labels is None else np.asarray(labels, dtype=np.int64)[keep]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int):
        image = torch.from_numpy(np.array(self.cache.images[self.rows[i]])).permute(2, 0, 1)  # a writable copy
        if self.transform is not None:
            image = self.transform(image)
        return image, (-1 if self.labels is None else int(self.labels[i]))


def labelled_cache(ws: Workspace, size: int = 224) -> ImageCache:
    """The decode-once cache of every labelled photo in ``train/``."""
    files, _ = list_labelled(ws.train_dir)
    return build_cache(files, ws.cache_dir / f"train_{size}.npy", size, desc="caching train/")


def test_cache(ws: Workspace, size: int = 224) -> ImageCache:
    """The decode-once cache of every photo in ``test/``, in numeric id order."""
    return build_cache(list_images(ws.test_dir), ws.cache_dir / f"test_{size}.npy", size, desc="caching test/")


# The split (made by notebook 02's make_split) on disk ----------------------------------------
def load_or_make_split(ws: Workspace, *, quiet: bool = False) -> pd.DataFrame:
    """The split notebook 02 wrote to ``split.csv``; if there is none yet (a notebook opened on its
    own), the same seeded split, made and written now. Says which, unless ``quiet``."""
    if ws.split_csv.exists():
        split = pd.read_csv(ws.split_csv)
        how = f"read from {shown(ws.split_csv)} (notebook 02)"
    else:
        files, labels = list_labelled(ws.train_dir)
        split = make_split([f.name for f in files], labels)
        with atomic_write(ws.split_csv) as tmp:
            split.to_csv(tmp, index=False)
        how = f"no split.csv yet (notebook 02 has not run here): made the same seeded split now, {shown(ws.split_csv)}"
    counts = split.subset.value_counts()
    if not quiet:
        print(f"split: {how}; {counts.get('train', 0):,} train, {counts.get('val', 0):,} val")
    return split


def photos(ws: Workspace, subset: str, *, size: int = 224, transform=None, limit: int = 0) -> CachedPhotos:
    """The ``train`` or ``val`` photos of the workspace's split as a dataset of (uint8 CHW, label),
    read from the decode-once cache; ``transform`` augments each one, ``limit`` keeps the first N."""
    split = load_or_make_split(ws, quiet=True)
    rows = split[split.subset == subset].iloc[:limit or None]  # limit 0: all
    cache = labelled_cache(ws, size)
    return CachedPhotos(cache, cache.rows(list(rows.file)), rows.label.to_numpy(), transform)


def eval_loader(photos: Dataset, batch_size: int = 256, workers: int = 0) -> DataLoader:
    """Batches in order, for evaluation and prediction (no shuffling, no augmentation)."""
    return DataLoader(photos, batch_size=batch_size, num_workers=workers, pin_memory=torch.cuda.is_available())
