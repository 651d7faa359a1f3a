"""Each notebook opened on its own, on a fresh machine (as a Colab badge opens it), runs top to bottom:
it finds what the earlier notebooks would have made, or makes it, and says which. (nbval runs them
in order, sharing one data folder; here each starts from an empty one.) Like nbval, these run the
copies with the small profile's parameters injected. Each notebook's exercises that are code run after
it, as a learner would add them (tests/test_exercises.py: a failure names the exercise)."""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from catsdogs.run import notebooks, small_copies
from test_exercises import with_exercises

NOTEBOOKS = notebooks()


@pytest.fixture(scope="module")
def copies(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("notebooks")
    small_copies(NOTEBOOKS[0].parent, folder)
    return folder

SAYS = {  # what each notebook must tell a learner who opened it alone
    "01_download": ["extracted just now into"],
    "02_split": ["extracted just now into"],
    "03_model": ["extracted just now into"],
    "04_train": ["extracted just now into", "no split.csv yet (notebook 02 has not run here)"],
    "05_submission": ["the shipped weights: notebook 04 has not trained a model here",
                      "no split.csv yet (notebook 02 has not run here)"],
    "06_vit_classes_explained": ["no split.csv yet (notebook 02 has not run here)"],
    "07_attention_and_linformer": ["the shipped weights: notebook 04 has not trained a model here",
                                   "no split.csv yet (notebook 02 has not run here)"],
}


@pytest.mark.parametrize("notebook", [p for p in NOTEBOOKS if p.stem in SAYS], ids=lambda p: p.stem)
def test_notebook_runs_alone_in_an_empty_workspace(notebook, isolated_data, copies):
    assert not isolated_data.exists()
    nb, exercises = with_exercises(nbformat.read(copies / notebook.name, as_version=4))
    NotebookClient(nb, timeout=900, startup_timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(copies)}}).execute()
    ran = [c for c in nb.cells if "exercise" in c.metadata.get("tags", [])]
    assert len(ran) == len(exercises) and all(c.get("execution_count") for c in ran)
    printed = "".join(out.get("text", "") for cell in nb.cells for out in cell.get("outputs", []))
    for sentence in SAYS[notebook.stem]:
        assert sentence in printed, f"{notebook.name} run alone did not say {sentence!r}"
    assert (isolated_data / "demo-small" / ".extracted").exists()
