"""Hostile and broken archives: refused or named before anything is used, and nothing written
outside the data folder; extraction runs once; an interrupted write never looks complete."""
from __future__ import annotations

import json
import shutil
import struct
import zipfile
from pathlib import Path

import pytest

import catsdogs.archives as archives
from catsdogs.archives import DatasetError, check_archive, extract_competition, safe_extract
from catsdogs.config import ARCHIVE_NAME, COMPETITION, Workspace
from catsdogs.demo import make_demo_archive
from catsdogs.download import prepare_dataset
from conftest import zip_with

ESCAPING = ["../../../evil.txt", "train/../../../../evil.txt", "..\\..\\..\\evil.txt", "/tmp/catsdogs-evil/evil.txt"]


def _kaggle_members(archive: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(archive) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def _workspace(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path / "data" / "kaggle", is_demo=False)


def _evil_files(tmp_path: Path) -> list[Path]:
    return list(tmp_path.rglob("evil.txt")) + list(Path("/tmp/catsdogs-evil").glob("*"))


@pytest.mark.parametrize("member", ESCAPING)
def test_outer_members_escaping_the_folder_are_refused(tmp_path, demo_archive, member):
    archive = zip_with(tmp_path / ARCHIVE_NAME, {**_kaggle_members(demo_archive), member: b"pwned"})
    ws = _workspace(tmp_path)
    with pytest.raises(DatasetError, match="outside the data folder") as err:
        extract_competition(archive, ws)
    assert repr(member) in str(err.value)
    assert _evil_files(tmp_path) == [] and not ws.train_dir.exists()


@pytest.mark.parametrize("member", ESCAPING)
def test_inner_members_escaping_the_folder_are_refused(tmp_path, demo_archive, member):
    """The nested train.zip is checked as carefully as the outer archive."""
    members = _kaggle_members(demo_archive)
    inner = zip_with(tmp_path / "train.zip", {"train/cat.0.jpg": b"x", member: b"pwned"})
    archive = zip_with(tmp_path / ARCHIVE_NAME, {**members, "train.zip": inner.read_bytes()})
    with pytest.raises(DatasetError, match="outside the data folder"):
        extract_competition(archive, _workspace(tmp_path))
    assert _evil_files(tmp_path) == []


@pytest.mark.parametrize("member", ESCAPING)
def test_safe_extract_refuses_on_its_own(tmp_path, member):
    """safe_extract does not rely on check_archive having run first."""
    archive = zip_with(tmp_path / "hostile.zip", {"fine.txt": b"ok", member: b"pwned"})
    with pytest.raises(DatasetError, match="would be written outside"):
        safe_extract(archive, tmp_path / "data" / "x" / "y")
    assert _evil_files(tmp_path) == []


def test_a_truncated_archive_is_named_before_use(tmp_path, monkeypatch, demo_archive):
    monkeypatch.setenv("CATSDOGS_PROFILE", "full")
    cut = tmp_path / ARCHIVE_NAME
    cut.write_bytes(demo_archive.read_bytes()[: demo_archive.stat().st_size // 2])
    with pytest.raises(DatasetError, match="not a readable zip.*cut short") as err:
        prepare_dataset(archive=cut)
    assert str(cut) in str(err.value)
    _assert_says_what_to_pass_instead(str(err.value))
    assert not (tmp_path / "data" / "kaggle" / "train").exists()


@pytest.mark.parametrize("compression, where", [(zipfile.ZIP_STORED, "middle"), (zipfile.ZIP_DEFLATED, "middle"),
                                                (zipfile.ZIP_DEFLATED, "start")])
def test_a_corrupt_archive_is_named_before_use(tmp_path, demo_archive, compression, where):
    """One damaged byte inside a member: caught by its CRC, or by zlib when the compressed
    stream itself no longer makes sense (a reserved block type at its start)."""
    archive = tmp_path / ARCHIVE_NAME
    with zipfile.ZipFile(archive, "w", compression) as zf:
        for name, data in _kaggle_members(demo_archive).items():
            zf.writestr(name, data)
    with zipfile.ZipFile(archive) as zf:
        info = zf.getinfo("test.zip")
    raw = bytearray(archive.read_bytes())
    name_len, extra_len = struct.unpack("<HH", raw[info.header_offset + 26: info.header_offset + 30])
    start = info.header_offset + 30 + name_len + extra_len
    if where == "start":
        raw[start] = 0xFF  # final block, block type 3: "invalid block type"
    else:
        raw[start + info.compress_size // 2] ^= 0xFF
    archive.write_bytes(bytes(raw))
    ws = _workspace(tmp_path)
    with pytest.raises(DatasetError, match=rf"{ARCHIVE_NAME}.*(fails its CRC check|not a readable zip)") as err:
        extract_competition(archive, ws)
    assert f"not an intact copy of the {COMPETITION} archive" in str(err.value) or "cut short" in str(err.value)
    _assert_says_what_to_pass_instead(str(err.value))
    assert not ws.train_dir.exists() and not ws.sample_submission.exists()


def test_missing_members_are_named(tmp_path, demo_archive):
    members = _kaggle_members(demo_archive)
    del members["test.zip"]
    archive = zip_with(tmp_path / ARCHIVE_NAME, members)
    with pytest.raises(DatasetError, match="is missing test.zip") as err:
        extract_competition(archive, _workspace(tmp_path))
    _assert_says_what_to_pass_instead(str(err.value))


def _assert_says_what_to_pass_instead(message: str) -> None:
    """The zip may be the user's own: say which file to pass, never to delete it or download it again."""
    assert f"kaggle competitions download -c {COMPETITION}" in message and "--archive" in message, message
    assert "delete" not in message.lower() and "download it again" not in message, message


@pytest.mark.parametrize("kind", ["other-zip", "text", "empty"])
def test_a_file_that_is_not_the_competition_archive_says_what_to_pass(tmp_path, monkeypatch, kind):
    """``python -m catsdogs run --archive MY.zip`` with the wrong file: named, kept, and the right one described."""
    monkeypatch.setenv("CATSDOGS_PROFILE", "full")
    mine = tmp_path / "holiday-photos.zip"
    if kind == "other-zip":
        zip_with(mine, {"photos/1.jpg": b"\xff\xd8", "notes.txt": b"mine"})
    else:
        mine.write_text("" if kind == "empty" else "just some text\n")
    before = mine.read_bytes()
    with pytest.raises(DatasetError) as err:
        prepare_dataset(archive=mine)
    message = str(err.value)
    assert str(mine) in message and f"it is not the {COMPETITION} archive" in message
    assert ("is missing train.zip, test.zip, sample_submission.csv" if kind == "other-zip"
            else "is not a readable zip") in message
    _assert_says_what_to_pass_instead(message)
    assert mine.read_bytes() == before


def test_a_damaged_inner_zip_is_named_inside_the_archive(tmp_path, demo_archive):
    members = {**_kaggle_members(demo_archive), "test.zip": b"PK\x03\x04 not really a zip"}
    archive = zip_with(tmp_path / ARCHIVE_NAME, members)
    with pytest.raises(DatasetError) as err:
        extract_competition(archive, _workspace(tmp_path))
    assert f"test.zip inside {archive} is not a readable zip" in str(err.value)
    _assert_says_what_to_pass_instead(str(err.value))


def test_an_archive_given_that_does_not_exist_says_what_to_pass(tmp_path, monkeypatch):
    monkeypatch.setenv("CATSDOGS_PROFILE", "full")
    for given in (tmp_path / "no-such.zip", tmp_path):
        with pytest.raises(DatasetError, match="does not exist|is a folder, not a zip") as err:
            prepare_dataset(archive=given)
        assert str(given) in str(err.value)
        _assert_says_what_to_pass_instead(str(err.value))


def test_extracting_twice_is_a_no_op(tmp_path, monkeypatch, demo_archive):
    archive = Path(shutil.copy(demo_archive, tmp_path / ARCHIVE_NAME))
    ws = extract_competition(archive, _workspace(tmp_path))
    watched = [ws.root / ".extracted", ws.sample_submission, *sorted(ws.train_dir.iterdir())[:3]]
    before = [p.stat().st_mtime_ns for p in watched]

    def must_not_extract(*args, **kwargs):
        raise AssertionError("extracted again")

    monkeypatch.setattr(archives, "safe_extract", must_not_extract)
    assert extract_competition(archive, ws) == ws
    assert [p.stat().st_mtime_ns for p in watched] == before


def test_an_interrupted_re_extraction_is_redone_not_trusted(tmp_path, monkeypatch, demo_archive):
    """A new archive (re-downloaded) is extracted again; if that is cut short, the old
    "extracted" marker must already be gone, so the half-replaced folder is never used."""
    archive = Path(shutil.copy(demo_archive, tmp_path / ARCHIVE_NAME))
    ws = extract_competition(archive, _workspace(tmp_path))
    archive.touch()
    real = archives.safe_extract

    def dies_on_test_zip(zip_path, dest, members=None):
        if Path(zip_path).name == "test.zip":
            raise KeyboardInterrupt  # the user stops the cell, or the machine goes down, half way
        return real(zip_path, dest, members)

    monkeypatch.setattr(archives, "safe_extract", dies_on_test_zip)
    with pytest.raises(KeyboardInterrupt):
        extract_competition(archive, ws)
    assert not (ws.root / ".extracted").exists()
    monkeypatch.setattr(archives, "safe_extract", real)
    extract_competition(archive, ws)
    assert len(list(ws.test_dir.iterdir())) == 8
    assert json.loads((ws.root / ".extracted").read_text())["test"] == 8


def test_an_interrupted_archive_write_never_looks_complete(tmp_path, monkeypatch):
    path = tmp_path / ARCHIVE_NAME
    real = zipfile.ZipFile.writestr

    def dies_on_test_zip(self, name, data, *args, **kwargs):
        if name == "test.zip":
            raise KeyboardInterrupt
        return real(self, name, data, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "writestr", dies_on_test_zip)
    with pytest.raises(KeyboardInterrupt):
        make_demo_archive(path, per_class=2, n_test=2, size=32)
    assert not path.exists()
    monkeypatch.setattr(zipfile.ZipFile, "writestr", real)
    assert check_archive(make_demo_archive(path, per_class=2, n_test=2, size=32))
