"""Test-wide settings, applied before any notebook kernel starts (kernels inherit the environment):
the small profile and a private data folder, so tests never touch data/ or real Kaggle files.

nbval runs copies of the notebooks, written here to ``build/nbval/`` before pytest collects them:
each copy has the small profile's parameters (``notebooks/params/small.yaml``) in a cell tagged
``injected-parameters`` right after its ``parameters`` cell, as papermill injects them, so no
learner's cell ever branches on the profile."""
import os
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent
for key in [k for k in os.environ if k.startswith("CATSDOGS_")]:
    del os.environ[key]
os.environ["CATSDOGS_PROFILE"] = "small"
os.environ["CATSDOGS_DATA"] = tempfile.mkdtemp(prefix="catsdogs-tests-")
os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])
sys.path.insert(0, str(REPO))

from catsdogs.run import small_copies  # noqa: E402  (after the environment is set)

NBVAL_DIR = REPO / "build" / "nbval"
shutil.rmtree(NBVAL_DIR, ignore_errors=True)
small_copies(REPO / "notebooks", NBVAL_DIR)
