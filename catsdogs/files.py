"""Files written whole or not at all (checkpoints, histories, caches, the submission, an extracted
photo set), and the stamp that says a file has changed."""
from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Iterator


def _remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_write(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to write a file or fill a folder at: on success it replaces
    ``path``; on failure it goes (as does one a killed run left), so nothing looks complete that is not."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    _remove(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        _remove(tmp)


def stamp(path: Path, sep: str = ":") -> str:
    """``name:size:mtime_ns`` of a file: another one whenever the file is replaced or edited."""
    st = Path(path).stat()
    return sep.join([Path(path).name, str(st.st_size), str(st.st_mtime_ns)])
