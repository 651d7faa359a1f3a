"""``catsdogs.metrics``: the competition's log loss, and accuracy."""
from __future__ import annotations

import numpy as np
import pytest

from catsdogs.metrics import Evaluation, accuracy, log_loss


def test_log_loss_matches_the_definition():
    labels, probs = np.array([1, 0]), np.array([0.8, 0.4])
    assert log_loss(labels, probs) == pytest.approx(-(np.log(0.8) + np.log(0.6)) / 2)


def test_log_loss_stays_finite_for_certain_float32_predictions():
    """A confidently wrong float32 probability of exactly 1 is clipped, not log(0) = -inf."""
    loss = log_loss(np.array([0, 1]), np.array([1.0, 1.0], dtype=np.float32))
    assert loss == pytest.approx(-np.log(1e-15) / 2, rel=1e-3)


def test_accuracy_counts_each_photo_on_the_right_side_of_one_half():
    labels, probs = np.array([1, 0, 1, 0]), np.array([0.5, 0.49, 0.2, 0.9])
    assert accuracy(labels, probs) == 0.5  # P(dog) = 0.5 counts as a dog
    scored = Evaluation.of(probs, labels)
    assert (scored.accuracy, scored.log_loss) == (accuracy(labels, probs), log_loss(labels, probs))
