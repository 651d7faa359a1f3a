"""``catsdogs.config`` and ``catsdogs.data``: which dataset the notebooks find, the decode-once
cache, and augmented batches."""
from __future__ import annotations

import json
import os

import numpy as np
import torch

from catsdogs.config import workspace
from catsdogs.data import CachedPhotos, labelled_cache
from catsdogs.training import train_transform
from catsdogs.device import Device
from catsdogs.download import prepare_dataset


def test_workspace_follows_profile_and_extraction(isolated_data, monkeypatch, demo_archive):
    assert workspace().root == isolated_data / "demo-small"
    monkeypatch.setenv("CATSDOGS_PROFILE", "full")
    assert workspace().is_demo  # nothing extracted yet: the demo
    ws = prepare_dataset(archive=demo_archive)
    assert not ws.is_demo and workspace() == ws
    counts = json.loads((ws.root / ".extracted").read_text())
    assert counts == {"archive": counts["archive"], "train": 32, "cats": 16, "dogs": 16, "test": 8,
                      "sample_submission_rows": 8}


def test_small_profile_generates_its_demo():
    ws = prepare_dataset()
    assert ws.is_demo
    assert len(list(ws.train_dir.glob("cat.*.jpg"))) == 48 and len(list(ws.test_dir.glob("*.jpg"))) == 24


def test_cache_is_built_once_and_rebuilt_when_a_photo_changes(monkeypatch, demo_archive):
    monkeypatch.setenv("CATSDOGS_PROFILE", "full")
    ws = prepare_dataset(archive=demo_archive)
    cache = labelled_cache(ws)
    assert cache.images.shape == (32, 224, 224, 3) and cache.ok.all()
    built = cache.path.stat().st_mtime_ns
    assert labelled_cache(ws).path.stat().st_mtime_ns == built  # reused
    photo = ws.train_dir / "cat.0.jpg"
    os.utime(photo, ns=(photo.stat().st_atime_ns, photo.stat().st_mtime_ns + 10**9))
    rebuilt = labelled_cache(ws)
    assert rebuilt.path.stat().st_mtime_ns != built
    np.testing.assert_array_equal(rebuilt.images[0], cache.images[0])


def test_augmented_batches_are_uint8_and_model_input_is_channels_last(monkeypatch, demo_archive):
    monkeypatch.setenv("CATSDOGS_PROFILE", "full")
    ws = prepare_dataset(archive=demo_archive)
    cache = labelled_cache(ws)
    data = CachedPhotos(cache, np.arange(4), np.array([0, 0, 1, 1]), train_transform())
    image, label = data[2]
    assert image.dtype == torch.uint8 and image.shape == (3, 224, 224) and label == 1
    x = Device(torch.device("cpu"), "bf16").input(torch.stack([data[i][0] for i in range(4)]))
    assert x.dtype == torch.bfloat16 and x.is_contiguous(memory_format=torch.channels_last)


def test_extracted_kaggle_data_is_used_once_the_archive_is_gone(monkeypatch, demo_archive, tmp_path):
    monkeypatch.setenv("CATSDOGS_PROFILE", "full")
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "no-kaggle"))
    for var in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    ws = prepare_dataset(archive=demo_archive)
    assert prepare_dataset() == ws and not ws.is_demo
