"""Checking a submission file (``id,label``, label = P(dog), one row per test photo) before a learner
uploads it: Kaggle scores by log loss and rejects, or silently mis-scores, a file with a wrong header, a
missing or repeated id, or a label that is not a probability."""
from __future__ import annotations

import csv
import math
from pathlib import Path

from .images import numeric_sort_key


class InvalidSubmission(ValueError):
    """A submission Kaggle would reject or score wrongly; the message names the first bad row."""


def validate_submission(path: Path, expected_ids: list[str] | None = None) -> int:
    """The number of rows of a valid submission, else :class:`InvalidSubmission`: header ``id,label``,
    labels numbers in [0, 1], no id twice; given ``expected_ids`` (the sample's), none missing or unknown."""
    path = Path(path)
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header != ["id", "label"]:
            raise InvalidSubmission(f"{path.name}: the header must be 'id,label', found {','.join(header or [])!r}")
        seen: set[str] = set()
        expected = None if expected_ids is None else set(map(str, expected_ids))
        for line_no, row in enumerate(reader, start=2):
            if len(row) != 2:
                raise InvalidSubmission(f"{path.name} line {line_no}: expected 2 columns, found {len(row)}: {row!r}")
            rid, raw = row[0].strip(), row[1].strip()
            if rid in seen:
                raise InvalidSubmission(f"{path.name} line {line_no}: duplicate id {rid!r}")
            if expected is not None and rid not in expected:
                raise InvalidSubmission(f"{path.name} line {line_no}: unknown id {rid!r} (not a test photo)")
            try:
                value = float(raw)
            except ValueError:
                raise InvalidSubmission(f"{path.name} line {line_no}: label {raw!r} is not a number") from None
            if math.isnan(value):
                raise InvalidSubmission(f"{path.name} line {line_no}: label is NaN for id {rid!r}")
            if not 0.0 <= value <= 1.0:
                raise InvalidSubmission(f"{path.name} line {line_no}: label {value} for id {rid!r} is outside [0, 1]")
            seen.add(rid)
    if expected is not None and seen != expected:
        missing = sorted(expected - seen, key=numeric_sort_key)
        raise InvalidSubmission(f"{path.name}: {len(missing)} test id(s) have no row, the first is {missing[0]!r}")
    return len(seen)
