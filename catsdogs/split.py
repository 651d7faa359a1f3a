"""Generated from notebooks/02_split.ipynb by scripts/export_lessons.py: the code of its cells marked
``#| export``. Edit the notebook, not this file, then run the script."""
from __future__ import annotations

__all__ = ["make_split"]

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split


# notebooks/02_split.ipynb, cell 6
def make_split(names: list[str], labels: np.ndarray, *, val_fraction: float = 0.2, seed: int = 42) -> pd.DataFrame:
    """Hold out ``val_fraction`` of the labelled photos for validation, stratified (both sets keep the
    cat/dog balance) and seeded (the same photos every time). One row per photo: file, label, subset."""
    train_names, val_names, train_labels, val_labels = train_test_split(
        names, labels, test_size=val_fraction, stratify=labels, random_state=seed)
    return pd.concat([
        pd.DataFrame({"file": train_names, "label": train_labels, "subset": "train"}),
        pd.DataFrame({"file": val_names, "label": val_labels, "subset": "val"}),
    ], ignore_index=True)
