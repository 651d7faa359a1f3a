"""How good a set of P(dog) is: the competition's log loss, and accuracy."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def log_loss(labels: np.ndarray, probs: np.ndarray, eps: float = 1e-15) -> float:
    """Kaggle's metric for this competition: mean binary cross-entropy of P(dog)."""
    p = np.clip(np.asarray(probs, dtype=np.float64), eps, 1 - eps)  # in float32, 1 - 1e-15 rounds to 1
    return float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)))


def accuracy(labels: np.ndarray, probs: np.ndarray) -> float:
    """The share of photos on the right side of P(dog) = 0.5."""
    return float(np.mean((np.asarray(probs) >= 0.5) == np.asarray(labels)))


@dataclass
class Evaluation:
    """P(dog) for each photo of a labelled set, and how good they are."""

    probs: np.ndarray
    labels: np.ndarray
    accuracy: float
    log_loss: float

    @classmethod
    def of(cls, probs: np.ndarray, labels: np.ndarray, **extra) -> "Evaluation":
        """The probabilities scored against the labels (``extra``: a subclass's own fields)."""
        return cls(probs, labels, accuracy(labels, probs), log_loss(labels, probs), **extra)
