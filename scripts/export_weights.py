"""Strip a training checkpoint to the shipped weights (``weights/linformer_vit_catsdogs.pt``).

Notebook 05 and ``python -m catsdogs predict`` use the shipped weights when no model was trained
here. A maintainer makes them once from a checkpoint notebook 04 wrote:

    python scripts/export_weights.py data/kaggle/checkpoints/modern-full/best.pt --data "Kaggle train, 80% split"
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_DIR))  # runs from a checkout, without installing the package

from catsdogs.checkpoints import load_checkpoint, save_checkpoint  # noqa: E402
from catsdogs.config import SHIPPED_WEIGHTS  # noqa: E402


def git_commit() -> str:
    """The commit of this checkout, so the weights say which code trained them."""
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_DIR, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def export_weights(checkpoint: Path, out: Path = SHIPPED_WEIGHTS, data: str = "") -> Path:
    """The shipped weights: a training checkpoint stripped to fp16 model weights (about 5.7 MB) plus
    what made them (model config, recipe, epoch, that epoch's validation scores, data, commit).
    Optimiser state, which only matters to resume training, is dropped."""
    state = load_checkpoint(checkpoint)
    row = next(h for h in state["history"] if h["epoch"] == state["epoch"])
    save_checkpoint(Path(out), model={k: v.half() for k, v in state["model"].items()},
                    model_config=state["model_config"], train_config=state["train_config"], epoch=state["epoch"],
                    val_acc=row["val_acc"], val_loss=row["val_loss"], history=state["history"], data=data,
                    commit=git_commit())
    return Path(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Strip a training checkpoint to the shipped fp16 weights.")
    parser.add_argument("checkpoint", type=Path, help="a checkpoint notebook 04 wrote, e.g. …/modern-full/best.pt")
    parser.add_argument("--out", type=Path, default=SHIPPED_WEIGHTS,
                        help="default: weights/linformer_vit_catsdogs.pt")
    parser.add_argument("--data", default="", help="what the model was trained on, for the metadata")
    args = parser.parse_args(argv)
    try:
        print(f"wrote {export_weights(args.checkpoint, args.out, args.data)}")
    except (FileNotFoundError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
