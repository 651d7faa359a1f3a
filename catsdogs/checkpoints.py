"""Checkpoints and training histories, written whole or not at all (``files.atomic_write``), and the
runs of a workspace."""
from __future__ import annotations

import json
import pickle
import re
from pathlib import Path

import torch

from .files import atomic_write


def save_checkpoint(path: Path, **state) -> None:
    """``torch.save`` of plain data and tensors, written atomically."""
    with atomic_write(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict:
    """Load with ``weights_only=True``: tensors and plain data only, so a tampered file cannot run code."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No checkpoint at {path}: train with notebook 04, or use the shipped weights.")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))  # what weights_only refused
        if isinstance(err, pickle.UnpicklingError) and found:
            raise RuntimeError(f"{path} was refused: besides tensors it holds a pickled object ({found.group(1)}) "
                               "that could run code when loaded. Only load checkpoints you trust: ones notebook 04 "
                               "wrote, or the shipped weights.") from None
        raise RuntimeError(f"{path} is not a checkpoint this project wrote ({type(err).__name__}: {err}). Pass one "
                           "that notebook 04 wrote (…/checkpoints/modern/best.pt), or leave out --checkpoint to "
                           "use the shipped weights.") from None


def write_history(path: Path, history: list[dict]) -> None:
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(history, indent=1))


def read_history(path: Path) -> list[dict]:
    """A run's per-epoch history (``history.json``), or an empty list if it has none yet."""
    path = Path(path)
    return json.loads(path.read_text()) if path.exists() else []


def run_histories(checkpoint_dir: Path) -> dict[str, list[dict]]:
    """The history of every training run kept in ``checkpoint_dir``, by run folder name (the recipe
    notebook 04 named it after, or ``teacher``), oldest first."""
    found = sorted(Path(checkpoint_dir).glob("*/history.json"), key=lambda p: p.stat().st_mtime)
    return {path.parent.name: history for path in found if (history := read_history(path))}


def newest_run(checkpoint_dir: Path, exclude: tuple[str, ...] = ("teacher",)) -> Path | None:
    """The run folder whose ``best.pt`` was written last (the teacher's aside), or None."""
    found = [p for p in Path(checkpoint_dir).glob("*/best.pt") if p.parent.name not in exclude]
    return max(found, key=lambda p: p.stat().st_mtime).parent if found else None


def epoch_line(row: dict) -> str:
    """The familiar log line of the blog's notebook."""
    return (f"Epoch : {row['epoch']} - loss : {row['loss']:.4f} - acc: {row['acc']:.4f} - "
            f"val_loss : {row['val_loss']:.4f} - val_acc: {row['val_acc']:.4f}")
