"""Exercises that are settings of a notebook's parameters cell and a rerun (notebook 04: ``recipe =
"adamw"``, ``optimizer = "adamw"``, ...; notebook 05: ``compare_options = False``, ``second_source =
"my_photos"``). Each exercise's settings must name parameters the cell has, with values of the same
kind, and the notebook must run to the end with them: here with the small profile's sizes
(``notebooks/params/small.yaml``) on the tests' demo data, as nbval runs the notebook itself, and a
generated stand-in where a setting names the learner's own photos. An exercise whose settings differ
from the notebook's own only in its ``recipe`` name and sizes is the run nbval already makes, so it
is checked but not run again. (Exercises that are code are tests/test_exercises.py's.)"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat
import numpy as np
import papermill
import pytest
from PIL import Image

from catsdogs.config import parameter_sources
from catsdogs.run import NOTEBOOK_DIR, preset
from test_exercises import BLOCK, exercises_text

ITEM = re.compile(r"^(\d+)\.\s(.*?)(?=^\d+\.\s|^\S|\Z)", re.MULTILINE | re.DOTALL)
SETTING = re.compile(r"`(\w+) = ([^`]+)`")
SIZES = set(preset("small"))  # epochs, batch_size, ...: the profile's, whatever an exercise says
MINUTES_IN_TESTS = 0.2  # an exercise's `minutes = N` becomes 12 seconds of training on the demo data
NOTEBOOKS = ("04_train", "05_submission")


def exercise_settings(notebook: Path) -> dict[int, dict]:
    """{exercise number: {parameter: value}} from the backticked ``name = value`` settings of the
    numbered items in the notebook's ``## Exercises`` cell (code blocks left out)."""
    text = BLOCK.sub("", exercises_text(nbformat.read(notebook, as_version=4)))
    return {int(n): {name: ast.literal_eval(value) for name, value in SETTING.findall(body)}
            for n, body in ITEM.findall(text)}


def defaults(name: str) -> dict:
    return {key: ast.literal_eval(value) for key, value in parameter_sources(NOTEBOOK_DIR / f"{name}.ipynb").items()}


EXERCISES = {(name, n): s for name in NOTEBOOKS for n, s in exercise_settings(NOTEBOOK_DIR / f"{name}.ipynb").items() if s}


def test_the_exercises_set_parameters_their_notebook_has_with_values_of_their_kind():
    assert sum(name == "04_train" for name, _ in EXERCISES) >= 5 and sum(name == "05_submission" for name, _ in EXERCISES) >= 2
    for (name, number), settings in EXERCISES.items():
        cell = defaults(name)
        for key, value in settings.items():
            assert key in cell, f"{name}, exercise {number} sets {key!r}, which its parameters cell lacks"
            default = cell[key]
            assert default is None or isinstance(value, type(default)) or (isinstance(default, float) and isinstance(value, int)), (
                f"{name}, exercise {number}: {key} = {value!r}, but the cell's {key} is a {type(default).__name__}")
        if name == "04_train":
            assert settings.get("recipe") not in (None, cell["recipe"]), (
                f"exercise {number} must name its own recipe, so its run does not replace the modern one")


def _runs(name: str, settings: dict) -> bool:
    cell = defaults(name)
    return any(key not in SIZES | {"recipe"} and value != cell[key] for key, value in settings.items())


def _stand_ins(settings: dict, folder: Path) -> dict:
    """The settings, with the learner's own photos replaced by generated ones and minutes by seconds."""
    settings = dict(settings)
    if "minutes" in settings:
        settings["minutes"] = MINUTES_IN_TESTS
    if "second_source" in settings:
        rng = np.random.default_rng(0)
        for label in ("cat", "dog"):
            (folder / "my_photos" / label).mkdir(parents=True)
            for i in range(3):
                pixels = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / "my_photos" / label / f"{i}.jpg")
        settings["second_source"] = str(folder / "my_photos")
    return settings


@pytest.mark.parametrize("name, number", [key for key, s in EXERCISES.items() if _runs(key[0], s)],
                         ids=lambda v: str(v))
def test_the_exercise_runs_its_notebook_to_the_end(name, number, tmp_path, isolated_data):
    settings = _stand_ins(EXERCISES[name, number], tmp_path)
    cell = defaults(name)
    parameters = {key: value for key, value in {**settings, **preset("small")}.items() if key in cell}
    done = papermill.execute_notebook(str(NOTEBOOK_DIR / f"{name}.ipynb"), str(tmp_path / f"{name}.ipynb"),
                                      parameters=parameters, cwd=str(NOTEBOOK_DIR), kernel_name="python3",
                                      progress_bar=False, log_output=False)
    printed = "".join(out.get("text", "") for cell in done.cells for out in cell.get("outputs", []))
    if name == "04_train":
        assert "best checkpoint (epoch" in printed
        assert (isolated_data / "demo-small" / "checkpoints" / settings["recipe"] / "best.pt").exists()
    if "minutes" in settings:
        assert f"planned for {MINUTES_IN_TESTS} minutes" in printed
    if "second_source" in settings:
        assert "second source (my_photos): 6 photos" in printed
    if settings.get("compare_options") is False:
        assert "compare_options = False: one crop measured" in printed
