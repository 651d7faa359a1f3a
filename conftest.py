"""Test-wide settings, applied before any notebook kernel starts (kernels inherit the environment):
the small profile, and a private data folder, so tests never touch data/ or real Kaggle files."""
import os
import tempfile

for key in [k for k in os.environ if k.startswith("CATSDOGS_")]:
    del os.environ[key]
os.environ["CATSDOGS_PROFILE"] = "small"
os.environ["CATSDOGS_DATA"] = tempfile.mkdtemp(prefix="catsdogs-tests-")
