"""Bad and unusual picture files: readable ones become RGB and are used, unreadable ones are named
with the reason, and neither the cache nor ``python -m catsdogs predict`` loses a row over them."""
from __future__ import annotations

import csv
import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from catsdogs.__main__ import main
from catsdogs.data import CachedPhotos, build_cache
from catsdogs.images import UnreadableImage, list_images, read_rgb
from catsdogs.validate import validate_submission

RED, WHITE = (255, 0, 0), (255, 255, 255)


def _jpeg_bytes(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", **kw)
    return buf.getvalue()


def _noise(size: int = 64) -> Image.Image:
    return Image.fromarray(np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8))


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` x ``height`` pixels but holds none: a decompression bomb's header."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IEND", b""))


def _palette_png(transparent: bool) -> Image.Image:
    img = Image.new("P", (8, 8), 1)
    img.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)  # index 0 black, index 1 red
    img.paste(0, (0, 0, 4, 8))  # left half index 0
    if transparent:
        img.info["transparency"] = 0
    return img


def _rgba() -> Image.Image:
    img = Image.new("RGBA", (8, 8), (0, 0, 0, 0))  # transparent *black*: must come out white
    img.paste((255, 0, 0, 255), (4, 0, 8, 8))  # opaque red right half
    return img


# name, writer, expected colour of the left and right halves
READABLE = {
    "grayscale.png": (lambda p: Image.new("L", (8, 8), 100).save(p), (100,) * 3, (100,) * 3),
    "gray16.png": (lambda p: Image.fromarray(np.full((8, 8), 200 * 257, np.uint16)).save(p), (200,) * 3, (200,) * 3),
    "palette.png": (lambda p: _palette_png(False).save(p), (0, 0, 0), RED),
    "palette_transparent.png": (lambda p: _palette_png(True).save(p), WHITE, RED),
    "rgba.png": (lambda p: _rgba().save(p), WHITE, RED),
    "cmyk.jpg": (lambda p: Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(p, quality=95), RED, RED),
    "one_pixel.jpg": (lambda p: Image.new("RGB", (1, 1), RED).save(p, quality=95), RED, RED),
    "one_pixel.png": (lambda p: Image.new("RGB", (1, 1), RED).save(p), RED, RED),
}

UNREADABLE = {  # name, bytes, what the reason must say
    "zero_bytes.jpg": (lambda: b"", "the file is empty"),
    "not_a_picture.jpg": (lambda: b"<html>404 Not Found</html>", "cannot identify"),
    "truncated.jpg": (lambda: _jpeg_bytes(_noise())[:900], "truncated"),
    "bomb.png": (lambda: _png_header_only(30_000, 30_000), "DecompressionBomb"),
}


@pytest.mark.parametrize("name", READABLE)
def test_readable_kinds_become_rgb_with_the_right_colours(tmp_path, name):
    write, left, right = READABLE[name]
    write(tmp_path / name)
    pixels = read_rgb(tmp_path / name, 16)
    assert pixels.shape == (16, 16, 3) and pixels.dtype == np.uint8
    np.testing.assert_allclose(pixels[8, 1], left, atol=12)
    np.testing.assert_allclose(pixels[8, 14], right, atol=12)


@pytest.mark.parametrize("name", UNREADABLE)
def test_unreadable_files_raise_with_the_reason(tmp_path, name):
    content, reason = UNREADABLE[name]
    (tmp_path / name).write_bytes(content())
    with pytest.raises(UnreadableImage, match=reason):
        read_rgb(tmp_path / name, 16)


def test_a_very_large_photo_is_decoded_at_reduced_scale(tmp_path, monkeypatch):
    """A 6000x4500 camera photo: read right, and never resized at full size (JPEG draft mode
    decodes it at 1/8 scale: about 6x faster and 64x less memory)."""
    photo = Image.new("RGB", (6000, 4500), RED)
    photo.paste((0, 0, 255), (3000, 0, 6000, 4500))
    photo.save(tmp_path / "big.jpg", quality=70)
    resized_from = []
    original = Image.Image.resize
    monkeypatch.setattr(Image.Image, "resize", lambda self, *a, **kw: resized_from.append(self.size) or original(self, *a, **kw))
    pixels = read_rgb(tmp_path / "big.jpg", 224)
    assert pixels.shape == (224, 224, 3)
    np.testing.assert_allclose(pixels[112, 10], RED, atol=12)
    np.testing.assert_allclose(pixels[112, 214], (0, 0, 255), atol=12)
    assert resized_from and max(max(size) for size in resized_from) <= 1000, resized_from


def _mixed_folder(folder: Path) -> tuple[list[str], list[str]]:
    """Test photos named like Kaggle's: readable kinds and unreadable ones. Returns (good, bad) names."""
    folder.mkdir(parents=True)
    good, bad = [], []
    for i, (write, _, _) in enumerate(READABLE.values(), start=1):
        name = f"{i}{Path(list(READABLE)[i - 1]).suffix}"
        write(folder / name)
        good.append(name)
    for i, (content, _) in enumerate(UNREADABLE.values(), start=len(good) + 1):
        name = f"{i}{Path(list(UNREADABLE)[i - len(good) - 1]).suffix}"
        (folder / name).write_bytes(content())
        bad.append(name)
    (folder / "notes.txt").write_text("not a picture name: ignored")
    return good, bad


def _unreadable_warning(caught) -> str:
    """The one warning that names the unreadable files."""
    (message,) = [str(w.message) for w in caught if "unreadable" in str(w.message)]
    return message


def test_cache_skips_unreadable_files_with_a_count_every_time_it_loads(tmp_path):
    good, bad = _mixed_folder(tmp_path / "photos")
    files = list_images(tmp_path / "photos")
    assert len(files) == len(good) + len(bad)
    for attempt in ("build", "reuse"):
        with pytest.warns(UserWarning) as caught:
            cache = build_cache(files, tmp_path / "cache" / "photos.npy", 32, workers=1)
        header, *lines = _unreadable_warning(caught).splitlines()
        assert header.startswith(f"{len(bad)} unreadable file(s)"), attempt
        reasons = dict(line.strip().split(": ", 1) for line in lines)
        assert list(reasons) == bad, attempt
        assert all(reason in reasons[name] for name, (_, reason) in zip(bad, UNREADABLE.values())), reasons
        assert [cache.names[i] for i in np.flatnonzero(~cache.ok)] == bad
        data = CachedPhotos(cache, np.arange(len(cache)), np.zeros(len(cache), int))
        assert (len(data), data.skipped) == (len(good), len(bad))


def test_predict_writes_a_row_for_every_picture_and_half_for_unreadable(tmp_path, untrained_checkpoint, capsys):
    good, bad = _mixed_folder(tmp_path / "test")
    out = tmp_path / "submission.csv"
    with pytest.warns(UserWarning) as caught:
        code = main(["predict", str(tmp_path / "test"), "--out", str(out), "--checkpoint", str(untrained_checkpoint),
                     "--no-tta"])
    assert code == 0, capsys.readouterr().err
    assert all(name in _unreadable_warning(caught) for name in bad)
    with open(out, newline="") as f:
        rows = {row["id"]: float(row["label"]) for row in csv.DictReader(f)}
    ids = [Path(n).stem for n in good + bad]
    assert validate_submission(out, ids) == len(ids)
    assert all(rows[Path(n).stem] == 0.5 for n in bad)
    assert "get P(dog) = 0.5" in capsys.readouterr().out


def test_predict_fails_clearly_when_nothing_can_be_read(tmp_path, untrained_checkpoint, capsys):
    folder = tmp_path / "test"
    folder.mkdir()
    for i, (content, _) in enumerate(UNREADABLE.values(), start=1):
        (folder / f"{i}.jpg").write_bytes(content())
    out = tmp_path / "submission.csv"
    with pytest.warns(UserWarning, match=f"{len(UNREADABLE)} unreadable"):
        code = main(["predict", str(folder), "--out", str(out), "--checkpoint", str(untrained_checkpoint)])
    assert code != 0 and not out.exists()
    assert f"None of the {len(UNREADABLE)} files in {folder} could be read as a picture" in capsys.readouterr().err
