"""The shipped weights: a trained checkpoint stripped to fp16 model weights plus what made them."""
from __future__ import annotations

import subprocess
from pathlib import Path

from .config import REPO_DIR, SHIPPED_WEIGHTS
from .training import load_checkpoint, save_checkpoint


def git_commit() -> str:
    """The commit of this checkout, so the weights say which code trained them."""
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_DIR, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def export_weights(checkpoint: Path, out: Path = SHIPPED_WEIGHTS, data: str = "") -> Path:
    """Keep the model weights (fp16 halves the file: about 5.7 MB) and the metadata: model config,
    recipe, epoch, validation accuracy and log loss of that epoch, data, commit. Optimiser state,
    which only matters to resume training, is dropped."""
    state = load_checkpoint(checkpoint)
    row = next(h for h in state["history"] if h["epoch"] == state["epoch"])
    save_checkpoint(Path(out), model={k: v.half() for k, v in state["model"].items()},
                    model_config=state["model_config"], train_config=state["train_config"], epoch=state["epoch"],
                    val_acc=row["val_acc"], val_loss=row["val_loss"], history=state["history"], data=data,
                    commit=git_commit())
    return Path(out)
