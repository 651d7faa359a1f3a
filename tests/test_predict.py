"""``predict`` streams the photos: it writes the CSV and nothing else, and gives the same P(dog) as
the decode-once cache the notebooks use; by default it averages the centre crops matched to the
checkpoint's training crops."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from catsdogs.__main__ import main
from catsdogs.data import CachedPhotos, build_cache, eval_loader
from catsdogs.demo import _draw_animal
from catsdogs.device import Device
from catsdogs.inference import predict_loader
from catsdogs.predict import load_model, predict_folder
from catsdogs.submission import checkpoint_crop, matched_crop, tta_crops, tta_predict

UNREADABLE = "7.jpg"


def _photos(folder: Path) -> list[str]:
    """Generated JPEGs and a PNG of several sizes, and one file that is not a picture at all."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(3)
    names = []
    for i in range(1, 11):
        if f"{i}.jpg" == UNREADABLE:
            (folder / UNREADABLE).write_bytes(b"this is not a JPEG")
        else:
            img = _draw_animal(rng, i % 2, int(rng.integers(96, 300)))
            img.save(folder / f"{i}.{'png' if i == 4 else 'jpg'}", **({} if i == 4 else {"quality": 90}))
        names.append(f"{i}.{'png' if i == 4 else 'jpg'}")
    return names


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under ``root`` (hidden ones too), with size and modification time."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


def _read(path: Path) -> dict[str, float]:
    with open(path, newline="") as f:
        return {row["id"]: float(row["label"]) for row in csv.DictReader(f)}


@pytest.mark.parametrize("workers", [0, 2])
def test_predict_folder_writes_only_the_csv_and_matches_the_cache(tmp_path, workers):
    names = _photos(tmp_path / "run" / "photos")
    before = _snapshot(tmp_path / "run")
    out = tmp_path / "run" / "out" / "submission.csv"
    with pytest.warns(UserWarning, match=r"1 unreadable file\(s\)") as caught:
        assert predict_folder(tmp_path / "run" / "photos", out, workers=workers) == out
    assert any(UNREADABLE in str(w.message) for w in caught)
    after = _snapshot(tmp_path / "run")
    assert after == {**before, "out": after["out"], "out/submission.csv": after["out/submission.csv"]}
    probs = _read(out)
    assert list(probs) == [Path(n).stem for n in names]
    assert probs[Path(UNREADABLE).stem] == 0.5

    # the path notebook 05 takes: the decode-once cache, then tta_predict over its readable photos
    # (0.5 for the others), same weights and options
    device = Device.pick()
    model, state = load_model(device=device)
    with pytest.warns(UserWarning, match="unreadable"):
        cache = build_cache([tmp_path / "run" / "photos" / n for n in names], tmp_path / "cache" / "p.npy", 224,
                            workers=1)
    crops = tta_crops(checkpoint_crop(state))  # predict's default: the mean over these
    cached = np.full(len(cache), 0.5)
    cached[cache.ok], _ = predict_loader(lambda images: tta_predict(model, images, device, crops=crops, flip=True),
                                         eval_loader(CachedPhotos(cache, np.flatnonzero(cache.ok))))
    np.testing.assert_allclose([probs[Path(n).stem] for n in names], cached, atol=1e-4)


def test_the_command_leaves_no_cache_beside_the_csv(tmp_path, capsys):
    _photos(tmp_path / "photos")
    out = tmp_path / "out" / "sub.csv"
    with pytest.warns(UserWarning, match="unreadable"):
        assert main(["predict", str(tmp_path / "photos"), "--out", str(out), "--no-tta"]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["sub.csv"]
    assert "1 unreadable file(s), named in the warning above, get P(dog) = 0.5" in capsys.readouterr().out


def test_the_command_averages_the_crops_it_is_given(tmp_path):
    """`--crop 1 0.82`: each photo seen whole and cut to its centre, the two P(dog) averaged."""
    names = _photos(tmp_path / "photos")
    runs = {}
    for crops in (["1"], ["0.82"], ["1", "0.82"]):
        out = tmp_path / f"{'-'.join(crops)}.csv"
        with pytest.warns(UserWarning, match="unreadable"):
            assert main(["predict", str(tmp_path / "photos"), "--out", str(out), "--crop", *crops]) == 0
        runs[tuple(crops)] = _read(out)
    readable = [Path(n).stem for n in names if n != UNREADABLE]
    whole, centre, both = (np.array([runs[c][i] for i in readable]) for c in (("1",), ("0.82",), ("1", "0.82")))
    assert not np.allclose(whole, centre)
    np.testing.assert_allclose(both, (whole + centre) / 2, atol=1e-5)  # the CSV rounds P(dog)


def test_pictures_only_in_subfolders_are_pointed_to(tmp_path, capsys):
    """Photos sorted into photos/cat/ and photos/dog/: say that subfolders are not searched and which to pass."""
    photos = tmp_path / "photos"
    rng = np.random.default_rng(0)
    for animal, count in (("cat", 3), ("dog", 2)):
        (photos / animal).mkdir(parents=True)
        for i in range(count):
            _draw_animal(rng, animal == "dog", 64).save(photos / animal / f"{i}.jpg")
    (photos / "empty").mkdir()
    (photos / "notes.txt").write_text("not a picture")
    assert main(["predict", str(photos), "--out", str(tmp_path / "sub.csv")]) == 1
    err = capsys.readouterr().err
    assert "No pictures" in err and "Subfolders are not searched" in err
    assert f"{photos / 'cat'} (3 pictures)" in err and f"{photos / 'dog'} (2 pictures)" in err
    assert "empty" not in err and "Pass one of these folders" in err
    assert "Delete" not in err and not (tmp_path / "sub.csv").exists()


@pytest.mark.parametrize("content", [b"root:x:0:0:root:/root:/bin/bash\n", b"PK\x03\x04 half a zip", b""],
                         ids=["text", "broken-zip", "empty"])
def test_a_file_that_is_not_a_checkpoint_says_what_to_pass(tmp_path, capsys, content):
    """``--checkpoint`` given a file the user named (e.g. /etc/passwd): named and kept, the right one described."""
    _photos(tmp_path / "photos")
    mine = tmp_path / "mine.pt"
    mine.write_bytes(content)
    assert main(["predict", str(tmp_path / "photos"), "--out", str(tmp_path / "sub.csv"), "--checkpoint", str(mine)]) == 1
    err = capsys.readouterr().err
    assert f"{mine} is not a checkpoint this project wrote" in err
    assert "notebook 04" in err and str(Path("checkpoints") / "modern" / "best.pt") in err  # ws.run_dir("modern")
    assert "leave out --checkpoint to use the shipped weights" in err
    assert "delete" not in err.lower() and mine.read_bytes() == content and not (tmp_path / "sub.csv").exists()


def test_predict_uses_the_crops_around_the_one_matched_to_the_checkpoint_and_the_crops_option(tmp_path,
                                                                                             untrained_checkpoint):
    from PIL import Image, ImageDraw

    folder = tmp_path / "test"
    folder.mkdir()
    for i in range(1, 4):  # a bright disc in the middle, so a centre crop changes what the model sees
        photo = Image.new("RGB", (200, 200), (20 * i, 40, 60))
        ImageDraw.Draw(photo).ellipse([40 + 5 * i, 40, 160, 160 - 5 * i], fill=(250, 220, 90))
        photo.save(folder / f"{i}.jpg")
    state = torch.load(untrained_checkpoint, weights_only=False)
    state["train_config"]["crop_scale"] = (0.35, 1.0)
    checkpoint = tmp_path / "cropped.pt"
    torch.save(state, checkpoint)
    matched = (matched_crop((0.35, 1.0)),)
    around = tta_crops(matched[0])  # the default: the mean over the whole photo, the matched crop and three more
    outs = {crops: predict_folder(folder, tmp_path / f"{i}.csv", checkpoint, flip=False, crops=crops)
            for i, crops in enumerate((None, around, matched, (1.0,)))}
    read = {crops: [float(r["label"]) for r in csv.DictReader(open(out))] for crops, out in outs.items()}
    assert 0.82 in around and 1.0 in around and len(around) == 5
    assert read[None] == read[around]
    assert read[None] != read[matched] and read[None] != read[(1.0,)] and read[matched] != read[(1.0,)]
