"""Notebook 05's photos from elsewhere: a learner's own photo (upright, predicted as the submission
predicts), and a second source of labelled photos in cat/ and dog/ folders, as a folder or a zip."""
from __future__ import annotations

import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from catsdogs.archives import DatasetError
from catsdogs.data import CachedPhotos, build_cache, eval_loader
from catsdogs.demo import _draw_animal, _jpeg
from catsdogs.device import Device
from catsdogs.inference import predict_loader
from catsdogs.metrics import accuracy, log_loss
from catsdogs.model import ModelConfig, build_model
from catsdogs.my_photo import classify_photo, photo_to_classify
from catsdogs.predict import PhotoFiles
from catsdogs.second_source import evaluate_photos, labelled_photos
from catsdogs.submission import tta_predict

STANDINS = Path(__file__).parent / "standins"
CPU = Device(torch.device("cpu"), "fp32")
ORIENTATION = 0x0112
CROPS = (0.82,)


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    """A small random model whose answers vary from photo to photo (a larger head than at init)."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(dim=32, depth=2, heads=2, k=16)).eval()
    with torch.no_grad():
        model.mlp_head[-1].weight.mul_(3)
    return model


def _photos(folder: Path) -> tuple[Path, Path, Path]:
    """One picture three times: upright; stored sideways with the EXIF tag that says so (as phones
    do); stored sideways without the tag."""
    folder.mkdir(parents=True, exist_ok=True)
    upright = _draw_animal(np.random.default_rng(5), 1, 224).resize((288, 192))
    a, b, c = folder / "upright.jpg", folder / "tagged.jpg", folder / "sideways.jpg"
    upright.save(a, quality=100)
    turned = upright.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    turned.save(b, quality=100, exif=exif.tobytes())
    turned.save(c, quality=100)
    return a, b, c


def test_a_tagged_sideways_photo_gets_the_p_dog_of_the_upright_one(tmp_path, model):
    a, b, c = _photos(tmp_path)
    p = {f.stem: classify_photo(model, f, CPU, flip=True, crops=CROPS) for f in (a, b, c)}
    assert p["tagged"] == pytest.approx(p["upright"], abs=0.002), p
    assert abs(p["sideways"] - p["upright"]) > 5 * abs(p["tagged"] - p["upright"]), p  # the tag is what matters


def _tta_probs(model, loader, flip: bool, crops: tuple[float, ...]) -> np.ndarray:
    """P(dog) of every photo of a loader as the submission predicts it (notebook 05's cell)."""
    return predict_loader(lambda images: tta_predict(model, images, CPU, crops=crops, flip=flip), loader)[0]


def test_classify_photo_is_tta_predict_on_the_submissions_decode_once_cache(tmp_path, model):
    _, tagged, _ = _photos(tmp_path)
    cache = build_cache([tagged], tmp_path / "cache.npy", workers=1)
    loader = eval_loader(CachedPhotos(cache, np.arange(1)))
    for flip, crops in ((True, CROPS), (False, (1.0,))):
        expected = _tta_probs(model, loader, flip, crops)[0]
        assert classify_photo(model, tagged, CPU, flip=flip, crops=crops) == pytest.approx(expected, abs=1e-6)


def test_without_my_photo_outside_colab_a_fallback_photo_is_used_and_said(tmp_path, capsys):
    fallback = tmp_path / "1.jpg"
    assert photo_to_classify(None, fallback) == fallback
    assert capsys.readouterr().out.count("\n") == 1
    with pytest.raises(FileNotFoundError, match="no such file"):
        photo_to_classify(tmp_path / "missing.jpg", fallback)


@pytest.fixture
def colab_files(monkeypatch):
    """The stand-in ``google.colab`` of tests/standins (as in test_colab.py), its upload widget returned."""
    monkeypatch.syspath_prepend(str(STANDINS))
    for name in [m for m in sys.modules if m == "google" or m.startswith("google.")]:
        monkeypatch.delitem(sys.modules, name)
    from google.colab import files

    monkeypatch.setattr(files, "UPLOADS", {})
    yield files
    for name in [m for m in sys.modules if m == "google" or m.startswith("google.")]:
        sys.modules.pop(name, None)


def test_without_my_photo_in_colab_the_uploaded_photo_is_used(tmp_path, colab_files, isolated_data):
    colab_files.UPLOADS["my cat.jpg"] = _jpeg(_draw_animal(np.random.default_rng(0), 0, 64))
    photo = photo_to_classify(None, tmp_path / "1.jpg")
    assert photo.name == "my cat.jpg" and photo.is_relative_to(isolated_data)
    assert photo.read_bytes() == colab_files.UPLOADS["my cat.jpg"]


def _second_source(path: Path, cats: int = 3, dogs: int = 4, top: str = "web-photos/") -> Path:
    """A zip of generated photos in cat/ and dog/, wrapped in one folder as zips often are."""
    rng = np.random.default_rng(2)
    with zipfile.ZipFile(path, "w") as zf:
        for label, (name, n) in enumerate((("cat", cats), ("dog", dogs))):
            for i in range(n):
                zf.writestr(f"{top}{name}/{name}{i}.jpg", _jpeg(_draw_animal(rng, label, int(rng.integers(80, 200)))))
        zf.writestr(f"{top}README.txt", "photos from another website")
    return path


def test_a_second_source_zip_is_evaluated_as_tta_predict_sees_its_photos(tmp_path, model):
    source = _second_source(tmp_path / "web-photos.zip")
    result = evaluate_photos(model, source, CPU, flip=True, crops=CROPS)
    assert result.name == "web-photos"
    assert len(result.files) == len(result.probs) == len(result.labels) == 7
    assert sorted(f"{f.parent.name}/{f.name}" for f in result.files)[:3] == ["cat/cat0.jpg", "cat/cat1.jpg", "cat/cat2.jpg"]
    assert result.labels.tolist() == [0, 0, 0, 1, 1, 1, 1]
    files, labels = labelled_photos(source)  # read again: from the folder extracted the first time
    assert files == result.files and labels.tolist() == result.labels.tolist()
    probs = _tta_probs(model, eval_loader(PhotoFiles(files)), True, CROPS)
    assert result.accuracy == accuracy(labels, probs)
    assert result.log_loss == pytest.approx(log_loss(labels, probs))


def test_a_source_without_cat_and_dog_folders_is_refused_with_the_layout_it_needs(tmp_path):
    with zipfile.ZipFile(tmp_path / "flat.zip", "w") as zf:
        zf.writestr("photos/1.jpg", _jpeg(_draw_animal(np.random.default_rng(0), 0, 64)))
    with pytest.raises(DatasetError, match="no cat/ and dog/ folders"):
        labelled_photos(tmp_path / "flat.zip")
    (tmp_path / "not-a-zip.zip").write_text("hello")
    with pytest.raises(DatasetError, match="not a readable zip"):
        labelled_photos(tmp_path / "not-a-zip.zip")
