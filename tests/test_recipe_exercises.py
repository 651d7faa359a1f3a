"""Notebook 04's exercises are settings of its parameters cell (``recipe = "adamw"``, ``optimizer =
"adamw"``, ...) and a rerun. Each exercise's settings must name parameters the cell has, with values
of the same kind, and the notebook must run to the end with them: here with the small profile's
sizes (``notebooks/params/small.yaml``) on the tests' demo data, as nbval runs the notebook itself.
An exercise whose settings differ from the notebook's own only in its ``recipe`` name and sizes is
the run nbval already makes, so it is checked but not run again."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat
import papermill
import pytest

from catsdogs.config import parameter_sources
from catsdogs.run import NOTEBOOK_DIR, preset

NB04 = NOTEBOOK_DIR / "04_train.ipynb"
ITEM = re.compile(r"^(\d+)\.\s(.*?)(?=^\d+\.\s|^\S|\Z)", re.MULTILINE | re.DOTALL)
SETTING = re.compile(r"`(\w+) = ([^`]+)`")
SIZES = set(preset("small"))  # epochs, batch_size, ...: the profile's, whatever an exercise says
MINUTES_IN_TESTS = 0.2  # an exercise's `minutes = N` becomes 12 seconds of training on the demo data


def exercise_settings(notebook: Path = NB04) -> dict[int, dict]:
    """{exercise number: {parameter: value}} from the backticked ``name = value`` settings of the
    numbered items in the notebook's ``## Exercises`` cell."""
    nb = nbformat.read(notebook, as_version=4)
    text = next(c.source for c in nb.cells if c.cell_type == "markdown" and c.source.startswith("## Exercises"))
    return {int(n): {name: ast.literal_eval(value) for name, value in SETTING.findall(body)}
            for n, body in ITEM.findall(text)}


EXERCISES = exercise_settings()
DEFAULTS = {name: ast.literal_eval(value) for name, value in parameter_sources(NB04).items()}


def test_every_exercise_sets_parameters_the_notebook_has_with_values_of_their_kind():
    assert len(EXERCISES) >= 5 and all(EXERCISES.values()), EXERCISES
    for number, settings in EXERCISES.items():
        for name, value in settings.items():
            assert name in DEFAULTS, f"exercise {number} sets {name!r}, which notebook 04's parameters cell lacks"
            default = DEFAULTS[name]
            assert isinstance(value, type(default)) or (isinstance(default, float) and isinstance(value, int)), (
                f"exercise {number}: {name} = {value!r}, but the cell's {name} is a {type(default).__name__}")
        assert settings.get("recipe") not in (None, DEFAULTS["recipe"]), (
            f"exercise {number} must name its own recipe, so its run does not replace the modern one")


def _runs(settings: dict) -> bool:
    return any(name not in SIZES | {"recipe"} and value != DEFAULTS[name] for name, value in settings.items())


@pytest.mark.parametrize("number", [n for n, s in EXERCISES.items() if _runs(s)])
def test_the_exercise_runs_notebook_04_to_the_end(number, tmp_path, isolated_data):
    settings = dict(EXERCISES[number])
    if "minutes" in settings:
        settings["minutes"] = MINUTES_IN_TESTS
    parameters = {**settings, **preset("small")}
    parameters = {name: value for name, value in parameters.items() if name in DEFAULTS}
    done = papermill.execute_notebook(str(NB04), str(tmp_path / "04.ipynb"), parameters=parameters, cwd=str(NOTEBOOK_DIR),
                                      kernel_name="python3", progress_bar=False, log_output=False)
    printed = "".join(out.get("text", "") for cell in done.cells for out in cell.get("outputs", []))
    assert "best checkpoint (epoch" in printed
    assert (isolated_data / "demo-small" / "checkpoints" / settings["recipe"] / "best.pt").exists()
    if "minutes" in settings:
        assert f"planned for {MINUTES_IN_TESTS} minutes" in printed
