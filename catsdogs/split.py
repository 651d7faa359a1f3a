"""The train/validation split: one seeded, stratified split, written once and read by every notebook."""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from .config import Workspace
from .images import list_labelled


def make_split(names: list[str], labels: np.ndarray, *, val_fraction: float = 0.2, seed: int = 42) -> pd.DataFrame:
    """Hold out ``val_fraction`` of the labelled photos for validation, stratified (both sets keep the
    cat/dog balance) and seeded (the same photos every time). One row per photo: file, label, subset."""
    train_names, val_names, train_labels, val_labels = train_test_split(
        names, labels, test_size=val_fraction, stratify=labels, random_state=seed)
    return pd.concat([
        pd.DataFrame({"file": train_names, "label": train_labels, "subset": "train"}),
        pd.DataFrame({"file": val_names, "label": val_labels, "subset": "val"}),
    ], ignore_index=True)


def load_or_make_split(ws: Workspace) -> pd.DataFrame:
    """The split notebook 02 wrote to ``split.csv``; if there is none yet (a notebook opened on its
    own), the same seeded split, made and written now. Says which."""
    if ws.split_csv.exists():
        split = pd.read_csv(ws.split_csv)
        how = f"read from {ws.split_csv} (notebook 02)"
    else:
        files, labels = list_labelled(ws.train_dir)
        split = make_split([f.name for f in files], labels)
        split.to_csv(ws.split_csv, index=False)
        how = f"no split.csv yet (notebook 02 has not run here): made the same seeded split now, {ws.split_csv}"
    counts = split.subset.value_counts()
    print(f"split: {how}; {counts.get('train', 0):,} train, {counts.get('val', 0):,} val")
    return split
