"""The pictures of the notebooks: photo grids, class balance, training curves, mistakes."""
from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from PIL import Image

from .images import CLASSES, upright


def photo_grid(images: list, titles: list[str], *, cols: int = 6, size: float = 2.0, suptitle: str | None = None,
               fontsize: float = 8.0):
    """Pictures (paths, shown upright as the model sees them, or HxWx3 arrays) in a grid, a title over
    each, wrapped to the picture's width; each row as tall as its titles need, so none runs into another."""
    rows = max(1, (len(images) + cols - 1) // cols)
    width = max(8, int(size * 72 / (fontsize * 0.6)))  # characters that fit across one picture
    titles = [_wrap(t, width) for t in titles]
    lines = [max([t.count("\n") + 1 for t in titles[r * cols:(r + 1) * cols]] or [1]) for r in range(rows)]
    title_in = [n * fontsize * 1.3 / 72 + 0.1 for n in lines]  # inches of title above each row
    fig = plt.figure(figsize=(cols * size, sum(size + t for t in title_in) + (0.4 if suptitle else 0)),
                     layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False, gridspec_kw={"height_ratios": [size + t for t in title_in]})
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, title in zip(axes.flat, images, titles):
        if isinstance(image, (str, Path)):
            with Image.open(image) as img:
                image = np.asarray(upright(img).convert("RGB"))
        ax.imshow(image)
        ax.set_title(title, fontsize=fontsize)
    if suptitle:
        fig.suptitle(suptitle)
    return fig


def _wrap(title: str, width: int, max_lines: int = 3) -> str:
    """A title in lines of at most ``width`` characters (its own line breaks kept), cut with "…"
    beyond ``max_lines``: a long file name must not spill over the next picture."""
    lines = [w for line in str(title).splitlines() or [""]
             for w in (textwrap.wrap(line, width, break_long_words=True, break_on_hyphens=False) or [""])]
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1][:width - 1] + "…"
    return "\n".join(lines)


def _laid_out(fig, legend_axes=()):
    """The figure laid out tight, after each of ``legend_axes`` gets a light grid and a small legend."""
    for ax in legend_axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def class_balance(counts: dict[str, dict[str, int]]):
    """Bars of cats and dogs per subset, e.g. ``{"train": {"cat": 9000, "dog": 9000}, ...}``."""
    fig, ax = plt.subplots(figsize=(5, 3))
    names = list(counts)
    x = np.arange(len(names))
    for k, cls in enumerate(CLASSES):
        values = [counts[n].get(cls, 0) for n in names]
        bars = ax.bar(x + (k - 0.5) * 0.38, values, 0.38, label=cls)
        ax.bar_label(bars, fontsize=8)
    ax.set(xticks=x, xticklabels=names, ylabel="photos")
    ax.legend()
    return _laid_out(fig)


def training_curves(histories: dict[str, list[dict]]):
    """Loss and accuracy per epoch, train dashed and validation solid, one colour per run."""
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 3.8))
    for k, (name, history) in enumerate(histories.items()):
        epochs = [h["epoch"] for h in history]
        for ax, train, val in ((ax_loss, "loss", "val_loss"), (ax_acc, "acc", "val_acc")):
            ax.plot(epochs, [h[train] for h in history], "--", color=f"C{k}", label=f"{name} train")
            ax.plot(epochs, [h[val] for h in history], "-", color=f"C{k}", label=f"{name} val")
    ax_loss.set(xlabel="epoch", ylabel="loss (val: log loss)", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    return _laid_out(fig, (ax_loss, ax_acc))


def time_to_accuracy(histories: dict[str, list[dict]], start_minutes: dict[str, float] | None = None):
    """Validation accuracy against wall-clock minutes, one line per run: what a recipe buys per minute
    of this machine. ``start_minutes`` shifts a run by work it needed first (the teacher's training)."""
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for k, (name, history) in enumerate(histories.items()):
        if not history:
            continue
        start = (start_minutes or {}).get(name, 0.0)
        minutes = start + np.cumsum([h["epoch_s"] for h in history]) / 60
        label = f"{name} (after {start:.0f} min of teacher)" if start else name
        ax.plot(minutes, [h["val_acc"] for h in history], "o-", ms=3, color=f"C{k}", label=label)
    ax.set(xlabel="wall-clock minutes", ylabel="validation accuracy", title="accuracy against time", xlim=(0, None))
    return _laid_out(fig, [ax])


def test_time_options(evaluations: dict, matched: float | None = None):
    """Validation accuracy and log loss against the centre crop kept, with and without flip TTA, from
    notebook 05's ``{(flip, crop): evaluation}``; a tuple of crops (their mean) as a dashed line."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    for ax, metric in zip(axes, ("log_loss", "accuracy")):
        for k, (flip, flip_name) in enumerate(((False, "no"), (True, "yes"))):
            single = sorted((crop, getattr(e, metric)) for (tta, crop), e in evaluations.items()
                            if tta == flip and not isinstance(crop, tuple))
            if single:
                ax.plot(*zip(*single), "o-", color=f"C{k}", label=f"flip TTA {flip_name}")
            for (tta, crop), e in evaluations.items():
                if tta == flip and isinstance(crop, tuple):
                    ax.axhline(getattr(e, metric), color=f"C{k}", ls="--",
                               label=f"flip TTA {flip_name}, mean of the {len(crop)} crops")
        if matched is not None:
            ax.axvline(matched, color="grey", ls=":", label=f"matched to training crops ({matched:.2f})")
        name = metric.replace("_", " ")
        ax.set(xlabel="centre crop kept (fraction of each side)", ylabel=f"validation {name}", title=name)
    return _laid_out(fig, axes)


def confusion(labels: np.ndarray, probs: np.ndarray, threshold: float = 0.5):
    """The 2x2 confusion matrix of the validation photos, with counts and row shares."""
    from sklearn.metrics import confusion_matrix

    matrix = confusion_matrix(labels, (probs >= threshold).astype(int), labels=[0, 1])
    fig, ax = plt.subplots(figsize=(3.8, 3.4))
    ax.imshow(matrix, cmap="Blues")
    for i in range(2):
        for j in range(2):
            share = matrix[i, j] / max(1, matrix[i].sum())
            ax.text(j, i, f"{matrix[i, j]}\n{share:.1%}", ha="center", va="center",
                    color="white" if share > 0.5 else "black")
    ax.set_xticks([0, 1], [f"predicted {c}" for c in CLASSES])
    ax.set_yticks([0, 1], [f"true {c}" for c in CLASSES])
    return _laid_out(fig)


def most_confident_mistakes(images: np.ndarray, labels: np.ndarray, probs: np.ndarray, *, n: int = 12):
    """The photos the model got wrong with the most confidence: where to look for what it learned."""
    wrong = np.flatnonzero((probs >= 0.5).astype(int) != labels)
    confidence = np.abs(probs[wrong] - 0.5)
    pick = wrong[np.argsort(-confidence)[:n]]
    titles = [f"{CLASSES[labels[i]]}, P(dog)={probs[i]:.2f}" for i in pick]
    return photo_grid([images[i] for i in pick], titles, cols=6, suptitle="most confident mistakes (true class, P(dog))")


def attention_from_patch(photo: np.ndarray, maps: dict[str, np.ndarray], *, patch: tuple[int, int], grid: int = 7):
    """The photo with one patch outlined, then for each named (grid*grid,) map of that patch's
    attention weights, the weights as a heat map over the photo (each map scaled to its own maximum)."""
    fig, axes = plt.subplots(1, 1 + len(maps), figsize=(3.6 * (1 + len(maps)), 3.8))
    size = photo.shape[0] / grid
    row, col = patch
    for ax in axes:
        ax.imshow(photo)
        ax.add_patch(plt.Rectangle((col * size - 0.5, row * size - 0.5), size, size, fill=False, color="cyan", lw=2))
        ax.axis("off")
    axes[0].set_title("the patch that looks", fontsize=10)
    for ax, (title, weights) in zip(axes[1:], maps.items()):
        heat = np.abs(weights).reshape(grid, grid)
        ax.imshow(heat / heat.max(), cmap="magma", alpha=0.65, extent=(-0.5, photo.shape[1] - 0.5, photo.shape[0] - 0.5, -0.5))
        ax.set_title(title, fontsize=10)
    return _laid_out(fig)
