"""``python -m catsdogs run``: what the user sees while notebooks run, when one fails, and at the end.

Small notebooks written here run in a real Jupyter kernel (four kernel starts in all: they cost
seconds each)."""
from __future__ import annotations

import ast
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from catsdogs.__main__ import main
from catsdogs.config import REPO_DIR, workspace
from catsdogs.config import parameter_sources
from catsdogs.run import (PRESET_DIR, NotebookResult, StreamEcho, notebooks, parameters_for, preset, print_summary,
                          run_notebooks, small_copies)

PRINTS = new_notebook(cells=[
    new_markdown_cell("# prints, a progress bar, a table"),
    new_code_cell("import sys\nfrom tqdm import tqdm\nprint('\\x1b[32mepoch 1\\x1b[0m: loss 0.5')\n"
                  "for _ in tqdm(range(4), desc='train', mininterval=0, file=sys.stderr):\n    pass\n"
                  "for _ in tqdm(range(4), desc='scratch', mininterval=0, leave=False):\n    pass\n"
                  "print('epoch 2: loss 0.4')"),
    new_code_cell("from IPython.display import HTML\nHTML('<table><tr><td>big table</td></tr></table>')"),
    # a cell whose value is long, like a model's repr
    new_code_cell("class Model:\n    def __repr__(self):\n"
                  "        return '\\n'.join(f'repr line {i}' for i in range(1, 9))\nModel()"),
])
FAILS = new_notebook(cells=[
    new_code_cell("print('reading the archive')"),
    new_code_cell(""),  # empty: never executed, so the failing cell is In [2] though the third code cell
    new_code_cell("check_archive = True  # the cell that fails\n"
                  "raise ValueError('bad zip\\nsecond line of the message')"),
])
NEVER = new_notebook(cells=[new_code_cell("print('this never runs')")])


def _write(folder: Path, notebooks: dict[str, nbformat.NotebookNode]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, nb in notebooks.items():
        nbformat.write(nb, folder / name)
    return folder


def test_a_failing_notebook_gets_one_line_and_the_later_ones_do_not_run(tmp_path, capfd):
    notebooks = _write(tmp_path / "notebooks", {"01_prints.ipynb": PRINTS, "02_fails.ipynb": FAILS,
                                                "03_never.ipynb": NEVER})
    out_dir = tmp_path / "out"
    code = main(["run", "--notebook-dir", str(notebooks), "--out-dir", str(out_dir), "--inplace"])
    out, err = capfd.readouterr()  # file descriptors: the kernels' own output would land here too
    assert code == 1
    lines = out.splitlines()
    # the printed text is streamed: complete lines only (no \r redraws), no colour codes, not a test-suite tty
    assert "  epoch 1: loss 0.5" in lines and "  epoch 2: loss 0.4" in lines
    assert [line for line in lines if "train" in line and "%" in line] == \
        [next(line for line in lines if "train: 100%" in line)]  # the finished bar, once
    assert not any("scratch" in line for line in lines)  # a bar that clears itself leaves nothing
    assert "\r" not in out and "\x1b" not in out + err
    assert "big table" not in out and "repr line" not in out  # only printed text is echoed, not a cell's value
    # the failure: one line naming notebook, cell (number and first line) and error, then where the traceback is
    failure = [line for line in lines if "02_fails.ipynb failed" in line]
    assert failure == ["✗ 02_fails.ipynb failed, cell 2 (`check_archive = True  # the cell that fails`): "
                       "ValueError: bad zip"]
    executed = out_dir / "02_fails.ipynb"
    assert f"  full traceback: {executed}" in lines
    assert "Traceback" not in out + err and "second line of the message" not in out + err
    assert "this never runs" not in out and "without encryption" not in out + err
    # the summary
    summary = lines[lines.index("Summary"):]
    assert summary[1].split()[:2] == ["ok", "01_prints.ipynb"]
    assert summary[2].split()[:2] == ["failed", "02_fails.ipynb"]
    assert summary[3].split() == ["not", "run", "03_never.ipynb"]
    assert any(line.startswith("  model:") and "none trained yet" in line for line in summary)
    # the executed notebooks: the failed one in the out-dir, with the traceback; its source untouched
    traceback = [o for cell in nbformat.read(executed, as_version=4).cells if cell.cell_type == "code"
                 for o in cell.outputs if o.output_type == "error"]
    assert traceback and traceback[0].ename == "ValueError" and "second line" in traceback[0].evalue
    assert not any(cell.get("outputs") for cell in nbformat.read(notebooks / "02_fails.ipynb", as_version=4).cells)
    assert not (out_dir / "03_never.ipynb").exists()
    ran_inplace = nbformat.read(notebooks / "01_prints.ipynb", as_version=4)  # --inplace: ok ones in place
    assert "epoch 2" in "".join(o.get("text", "") for cell in ran_inplace.cells if cell.cell_type == "code"
                                for o in cell.outputs)


class _TimedWrites(io.StringIO):
    """A stand-in terminal that remembers when each piece of text reached it."""

    def __init__(self):
        super().__init__()
        self.writes: list[tuple[float, str]] = []

    def write(self, text: str) -> int:
        self.writes.append((time.monotonic(), text))
        return super().write(text)

    def when(self, text: str) -> float:
        return next(t for t, written in self.writes if text in written)


def test_text_is_echoed_while_the_cell_runs_and_the_summary_reports_the_model(tmp_path):
    ws = workspace()
    run_dir = ws.checkpoint_dir / "modern"
    run_dir.mkdir(parents=True)
    (run_dir / "best.pt").write_bytes(b"")
    (run_dir / "history.json").write_text(json.dumps([
        {"epoch": 1, "val_acc": 0.71, "val_loss": 0.55},
        {"epoch": 2, "val_acc": 0.8125, "val_loss": 0.4321},
        {"epoch": 3, "val_acc": 0.83, "val_loss": 0.47},  # more accurate, but not the lowest log loss
    ]))
    ws.submission.write_text("id,label\n1,0.5\n")
    notebooks = _write(tmp_path / "notebooks", {"04_slow.ipynb": new_notebook(cells=[new_code_cell(
        "import time\nprint('early', flush=True)\ntime.sleep(3)\nprint('late')")])})
    terminal = _TimedWrites()
    results = run_notebooks(out_dir=tmp_path / "out", folder=notebooks, out=terminal)
    assert [(r.name, r.status) for r in results] == [("04_slow.ipynb", "ok")]
    assert terminal.when("late") - terminal.when("early") > 1.5  # echoed as it came, not when the cell ended
    text = terminal.getvalue()
    assert "  model:        modern, best epoch 2 of 3 (lowest validation log loss): accuracy 0.8125, log loss 0.4321" in text
    assert f"  data:         {ws.label}" in text
    assert f"  submission:   {ws.submission}\n" in text and f"  checkpoints:  {run_dir}\n" in text
    assert f"  notebooks:    {tmp_path / 'out'} (executed)" in text
    assert (tmp_path / "out" / "04_slow.ipynb").exists()


def test_on_a_terminal_progress_bars_redraw_in_place():
    screen = io.StringIO()
    echo = StreamEcho(screen, tty=True)
    echo.write("\r\x1b[32mtrain  50%\x1b[0m", "stderr")
    echo.write("\rtrain 100%", "stderr")
    echo.write("epoch 1 done\n", "stdout")  # a line from the other stream lifts the bar, then redraws it
    echo.finish()
    assert screen.getvalue() == "\r  \x1b[32mtrain  50%\x1b[0m\r  train 100%\r\x1b[K  epoch 1 done\n  train 100%\n"


def test_the_summary_says_plainly_when_nothing_was_trained(tmp_path):
    screen = io.StringIO()
    print_summary([NotebookResult("01_download.ipynb", "failed", 3.0, tmp_path / "01_download.ipynb"),
                   NotebookResult("02_split.ipynb")], tmp_path, out=screen)
    lines = screen.getvalue().splitlines()
    assert lines[2].split() == ["failed", "01_download.ipynb", "3", "s"]
    assert lines[3].split() == ["not", "run", "02_split.ipynb"]
    assert any("none trained yet" in line for line in lines)
    assert any(line.startswith("  submission:") and line.endswith("(not written)") for line in lines)


def test_the_summary_reports_the_run_that_notebook_04_trained_last(tmp_path):
    """`-p recipe=long` (or `--recipe blog`) trains into checkpoints/<recipe>: the summary, like
    notebook 05, reads the run written last, not the default recipe's."""
    ws = workspace()
    for age, (recipe, val_loss) in enumerate((("long", 0.3), ("modern", 0.5), ("teacher", 0.1))):
        run_dir = ws.checkpoint_dir / recipe
        run_dir.mkdir(parents=True)
        (run_dir / "history.json").write_text(json.dumps([{"epoch": 1, "val_acc": 0.9, "val_loss": val_loss}]))
        (run_dir / "best.pt").write_bytes(b"")
        os.utime(run_dir / "best.pt", (1e9 + age, 1e9 + age))
    screen = io.StringIO()
    print_summary([NotebookResult("04_train.ipynb", "ok", 3.0, tmp_path / "04_train.ipynb")], tmp_path, out=screen)
    text = screen.getvalue()
    assert "modern, best epoch 1 of 1" in text and "log loss 0.5000" in text  # the teacher is never "the model"
    assert f"  checkpoints:  {ws.checkpoint_dir / 'modern'}\n" in text
    os.utime(ws.checkpoint_dir / "long" / "best.pt", (2e9, 2e9))
    screen = io.StringIO()
    print_summary([], tmp_path, out=screen)
    assert "long, best epoch 1 of 1" in screen.getvalue()


def test_every_preset_names_parameters_its_notebook_has():
    """The parameter files (the blog recipe, the small profile) are injected by name: a misspelt one
    would be silently dropped, and a number YAML reads as text (3e-5) would reach the notebook as a string."""
    defaults = {name: ast.literal_eval(source) for nb in notebooks() for name, source in parameter_sources(nb).items()}
    for path in sorted(PRESET_DIR.glob("*.yaml")):
        values = preset(path.stem)
        assert values and set(values) <= set(defaults), f"{path.name}: no notebook has {set(values) - set(defaults)}"
        assert not [n for n, v in values.items() if isinstance(v, str) != isinstance(defaults[n], str)], path.name
    assert set(preset("blog")) <= set(parameter_sources(REPO_DIR / "notebooks" / "04_train.ipynb"))
    [train] = notebooks(["04"])
    assert parameters_for(train, {"epochs": 3}, recipe="blog", small=True) == {
        **preset("blog"), **{k: v for k, v in preset("small").items() if k in parameter_sources(train)},
        "epochs": 3}  # the recipe, then the small profile, then -p


def test_misspelt_or_inplace_parameters_are_refused_before_anything_runs(tmp_path):
    params = new_code_cell("epochs = 30\nlr, other = 1e-3, 2\ncrop_scale = (0.35, 1.0)\ngrad_clip = 1.0  # 0 = off")
    params.metadata["tags"] = ["parameters"]
    folder = _write(tmp_path / "notebooks", {"01_x.ipynb": new_notebook(cells=[params, new_code_cell("print(epochs)")])})
    # papermill.inspect_notebook would drop grad_clip: its line parser fails on the '=' in the comment
    assert parameter_sources(folder / "01_x.ipynb") == {"epochs": "30", "crop_scale": "(0.35, 1.0)", "grad_clip": "1.0"}
    with pytest.raises(ValueError, match="no notebook run here has a parameter batch_sise"):
        run_notebooks(folder=folder, out_dir=tmp_path / "out", parameters={"batch_sise": 8})
    with pytest.raises(ValueError, match="--inplace"):
        run_notebooks(folder=folder, inplace=True, parameters={"epochs": 3})
    with pytest.raises(ValueError, match="no recipe 'bolg'"):
        run_notebooks(folder=folder, recipe="bolg")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_inplace_takes_data_but_no_recipe_change_and_the_stored_notebook_shows_it(tmp_path):
    """Notebook 05's second source is data, not a choice: a final --inplace run may hand it in, and the
    stored notebook then shows the value in its injected cell; anything else is refused."""
    params = new_code_cell("second_source = None\ncompare_options = True")
    params.metadata["tags"] = ["parameters"]
    folder = _write(tmp_path / "notebooks", {"05_x.ipynb": new_notebook(cells=[params, new_code_cell("print(second_source)")])})
    with pytest.raises(ValueError, match="only data may be handed in: my_photo, second_source"):
        run_notebooks(folder=folder, out_dir=tmp_path / "out", inplace=True,
                      parameters={"second_source": "w.zip", "compare_options": False})
    run_notebooks(folder=folder, out_dir=tmp_path / "out", inplace=True, parameters={"second_source": "web.zip"},
                  out=io.StringIO())
    stored = nbformat.read(folder / "05_x.ipynb", as_version=4)
    injected = [c for c in stored.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert [c.source.strip().splitlines()[-1] for c in injected] == ['second_source = "web.zip"']
    assert stored.cells[-1].outputs[0]["text"] == "web.zip\n"
    # a later run, and the tests' copies, start from the notebook's own parameters, not the stored run's
    run_notebooks(folder=folder, out_dir=tmp_path / "again", out=io.StringIO())
    again = nbformat.read(tmp_path / "again" / "05_x.ipynb", as_version=4)
    assert again.cells[-1].outputs[0]["text"] == "None\n"
    copy = nbformat.read(small_copies(folder, tmp_path / "copies")[0], as_version=4)
    assert not [c for c in copy.cells if "injected-parameters" in c.metadata.get("tags", [])]


def test_the_tests_notebook_copies_carry_the_small_profile_as_injected_parameters(tmp_path):
    copies = {path.name: path for path in small_copies(REPO_DIR / "notebooks", tmp_path)}
    assert set(copies) == {path.name for path in notebooks()}
    assert (tmp_path / "vit_classes.py").exists() or not (REPO_DIR / "notebooks" / "vit_classes.py").exists()
    small = preset("small")
    for name, path in copies.items():
        nb = nbformat.read(path, as_version=4)
        injected = [i for i, c in enumerate(nb.cells) if "injected-parameters" in c.metadata.get("tags", [])]
        tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
        takes = {k: v for k, v in small.items() if k in parameter_sources(REPO_DIR / "notebooks" / name)}
        if takes:
            assert injected == [tagged[0] + 1], name
            namespace: dict = {}
            exec(nb.cells[injected[0]].source, namespace)
            assert {k: namespace[k] for k in takes} == takes
        else:
            assert injected == [], name


def test_a_damaged_archive_ends_the_real_run_in_a_few_plain_lines(tmp_path):
    damaged = tmp_path / "dogs-vs-cats-redux-kernels-edition.zip"
    damaged.write_bytes(b"PK\x03\x04" + os.urandom(4000))  # a zip's first bytes, then noise
    env = {k: v for k, v in os.environ.items() if not k.startswith("CATSDOGS_")}
    env.update(CATSDOGS_DATA=str(tmp_path / "data"), CATSDOGS_PROFILE="full")  # small would use the demo
    proc = subprocess.run([sys.executable, "-m", "catsdogs", "run", "--only", "01", "--archive", str(damaged),
                           "--out-dir", str(tmp_path / "out")], cwd=REPO_DIR, env=env, capture_output=True,
                          text=True, timeout=600)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output
    assert len(output.splitlines()) <= 15, output
    assert "\x1b" not in output and "Traceback" not in output and "without encryption" not in output
    failure = next(line for line in output.splitlines() if "failed" in line and "01_download.ipynb" in line)
    assert "cell " in failure and "DatasetError" in failure and str(damaged) in failure
    assert f"full traceback: {tmp_path / 'out' / '01_download.ipynb'}" in output
    assert (tmp_path / "out" / "01_download.ipynb").exists()
