"""The competition archive: found, checked whole before use, extracted safely, its photos counted. A zip
may be the learner's own download, cut short or damaged, or not the competition's at all: every check
says what is wrong and which file to pass instead."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from .config import ARCHIVE_NAME, COMPETITION, Workspace, data_dir, kaggle_workspace
from .files import stamp
from .images import list_images, list_labelled

REQUIRED_MEMBERS = ("train.zip", "test.zip", "sample_submission.csv")
DATA_URL = f"https://www.kaggle.com/competitions/{COMPETITION}/data"


class DatasetError(RuntimeError):
    """Something is wrong with the data or the download; the message says what to do."""


def _safe_member(name: str) -> bool:
    path = PurePosixPath(name.replace("\\", "/"))
    return not path.is_absolute() and ".." not in path.parts and not (path.parts and ":" in path.parts[0])


ARCHIVE_ADVICE = (f"Pass the competition's own zip instead ({ARCHIVE_NAME}, as downloaded from {DATA_URL} or with "
                  f"`kaggle competitions download -c {COMPETITION}`), e.g. python -m catsdogs run --archive PATH.")


def check_archive(path: Path, required: tuple[str, ...] = REQUIRED_MEMBERS, *, name: str | None = None,
                  advice: str = ARCHIVE_ADVICE) -> list[str]:
    """Check a zip whole before use: readable, every CRC right, no member that would land outside the
    target folder, the required members present; returns the member names. A message names what is wrong
    with ``name`` (default: the path) and ends with ``advice``, never "delete it": the file may be the user's."""
    path = Path(path)
    name = name or str(path)
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            bad = zf.testzip()
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as err:  # zlib.error: damaged compressed data
        raise DatasetError(f"{name} is not a readable zip ({err}): it is not the {COMPETITION} archive, or a copy "
                           f"of it that was cut short or damaged. {advice}") from None
    if bad is not None:
        raise DatasetError(f"{name} is damaged: its member {bad!r} fails its CRC check, so it is not an intact copy "
                           f"of the {COMPETITION} archive. {advice}")
    unsafe = [n for n in names if not _safe_member(n)]
    if unsafe:
        raise DatasetError(f"{name} has members that would be written outside the data folder, e.g. {unsafe[0]!r}; "
                           f"refusing to extract it. It is not the {COMPETITION} archive. {advice}")
    missing = [m for m in required if m not in names]
    if missing:
        raise DatasetError(f"{name} is missing {', '.join(missing)}: it is not the {COMPETITION} archive, which holds "
                           f"{', '.join(REQUIRED_MEMBERS)}. {advice}")
    return names


def find_archive(explicit: Path | str | None = None) -> Path | None:
    """The competition archive given by argument or ``$CATSDOGS_ARCHIVE``, or one already in ``data/``."""
    given = explicit or os.environ.get("CATSDOGS_ARCHIVE")
    if given:
        path = Path(given).expanduser()
        if not path.is_file():
            what = "is a folder, not a zip" if path.is_dir() else "does not exist"
            raise DatasetError(f"The archive given, {path}, {what}. {ARCHIVE_ADVICE}")
        return path
    return next((found for found in (data_dir() / ARCHIVE_NAME, kaggle_workspace().archive) if found.is_file()), None)


def safe_extract(archive: Path, dest: Path, members: list[str] | None = None) -> None:
    """Extract (selected members of) a zip into ``dest``, refusing any member path that escapes it."""
    dest = Path(dest).resolve()
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            if members is not None and info.filename not in members:
                continue
            if not _safe_member(info.filename) or not (dest / info.filename).resolve().is_relative_to(dest):
                raise DatasetError(f"{archive} member {info.filename!r} would be written outside {dest}; refusing.")
            zf.extract(info, dest)


def is_extracted(archive: Path, ws: Workspace) -> bool:
    """True when the workspace already holds this very archive's photos, checked."""
    marker = ws.extracted_marker
    return marker.exists() and json.loads(marker.read_text()).get("archive") == stamp(archive)


def extract_competition(archive: Path, ws: Workspace) -> Workspace:
    """Unpack the archive and its ``train.zip`` / ``test.zip`` into the workspace and verify the counts, once
    per archive: the workspace counts as extracted only once the marker is written, last."""
    marker = ws.extracted_marker
    if is_extracted(archive, ws):
        ws.root.mkdir(parents=True, exist_ok=True)
        return ws
    check_archive(archive)
    ws.local.mkdir(parents=True, exist_ok=True)
    ws.root.mkdir(parents=True, exist_ok=True)  # the kept folder (split, checkpoints), when elsewhere
    marker.unlink(missing_ok=True)
    safe_extract(archive, ws.local, ["sample_submission.csv"])
    with tempfile.TemporaryDirectory(prefix=".staging-", dir=ws.local) as staging:  # the inner zips
        safe_extract(archive, staging, ["train.zip", "test.zip"])
        for inner, folder in (("train.zip", ws.train_dir), ("test.zip", ws.test_dir)):
            check_archive(Path(staging) / inner, required=(), name=f"{inner} inside {archive}")
            shutil.rmtree(folder, ignore_errors=True)
            safe_extract(Path(staging) / inner, ws.local)
            if not folder.is_dir():
                raise DatasetError(f"{inner} in {archive} has no {folder.name}/ folder.")
    counts = verify_counts(ws)
    marker.write_text(json.dumps({"archive": stamp(archive), **counts}))
    return ws


def verify_counts(ws: Workspace) -> dict:
    """Count what was extracted: both classes present, one sample submission row per test photo."""
    files, labels = list_labelled(ws.train_dir)
    test = list_images(ws.test_dir)
    with open(ws.sample_submission) as f:
        sample_rows = sum(1 for _ in f) - 1
    counts = {"train": len(files), "cats": int((labels == 0).sum()), "dogs": int((labels == 1).sum()),
              "test": len(test), "sample_submission_rows": sample_rows}
    if counts["cats"] == 0 or counts["dogs"] == 0:
        raise DatasetError(f"{ws.train_dir} should hold cat.N.jpg and dog.N.jpg photos; found {counts}.")
    if sample_rows != len(test):
        raise DatasetError(f"sample_submission.csv has {sample_rows} rows but test/ has {len(test)} photos.")
    return counts
