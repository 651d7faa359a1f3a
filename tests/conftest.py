"""Shared fixtures: every test runs on data the tests generate, never on ../shared or downloads."""
from __future__ import annotations

import zipfile
from dataclasses import asdict
from pathlib import Path

import pytest

from catsdogs.checkpoints import save_checkpoint
from catsdogs.demo import make_demo_archive
from catsdogs.model import ModelConfig, build_model


@pytest.fixture(autouse=True)
def isolated_data(tmp_path, monkeypatch):
    """Each test gets its own empty data folder and the small profile."""
    monkeypatch.setenv("CATSDOGS_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("CATSDOGS_PROFILE", "small")
    monkeypatch.delenv("CATSDOGS_ARCHIVE", raising=False)
    return tmp_path / "data"


@pytest.fixture(scope="session")
def untrained_checkpoint(tmp_path_factory) -> Path:
    """Weights of a freshly built (untrained) model: predict needs weights, not good ones."""
    path = tmp_path_factory.mktemp("weights") / "untrained.pt"
    save_checkpoint(path, model=build_model(ModelConfig()).state_dict(), model_config=asdict(ModelConfig()),
                    epoch=0, train_config={"recipe": "untrained"})
    return path


@pytest.fixture(scope="session")
def demo_archive(tmp_path_factory) -> Path:
    """A tiny Kaggle-layout archive (16 cats, 16 dogs, 8 test photos), generated once per session."""
    return make_demo_archive(tmp_path_factory.mktemp("archive") / "dogs-vs-cats-redux-kernels-edition.zip",
                             per_class=16, n_test=8, size=64)


def zip_with(path: Path, members: dict[str, bytes]) -> Path:
    """Write a zip with the given member names and contents (for hostile-archive tests)."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path
