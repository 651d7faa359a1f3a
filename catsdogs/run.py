"""Run the numbered notebooks headless, in order, with papermill (a real Jupyter kernel): the text their
cells print echoed as it arrives; a failure in one line (notebook, cell, error) and the path of the
executed notebook that holds its traceback; at the end, how each went, the trained model, the results."""
from __future__ import annotations

import ast
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TextIO

import nbformat
import papermill
import yaml
import zmq
from papermill.exceptions import PapermillExecutionError
from papermill.iorw import load_notebook_node
from traitlets.config import Config

from .checkpoints import newest_run, read_history
from .config import REPO_DIR, data_dir, is_small, parameter_sources, profile, shown, workspace

NOTEBOOK_DIR = REPO_DIR / "notebooks"
# Parameter files, as papermill's -f reads them: `--recipe NAME` injects NAME.yaml (blog.yaml: the blog's
# recipe), the small profile small.yaml; each notebook takes the names its parameters cell has.
PRESET_DIR = NOTEBOOK_DIR / "params"
INDENT = "  "
# Parameters that hand a notebook data rather than change what it trains or chooses: --inplace takes
# them (notebook 05's second source), and the stored notebook shows them in its injected cell.
DATA_PARAMETERS = {"second_source", "my_photo"}
# CSI sequences (colours, cursor moves), OSC sequences (titles, links) and two-byte escapes
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")


def strip_ansi(text: str) -> str:
    """``text`` without terminal escape codes (colours in IPython tracebacks, in some progress bars)."""
    return _ANSI.sub("", text)


def parse_parameter(text: str) -> tuple[str, object]:
    """``epochs=3`` → ("epochs", 3); a value that is not a Python literal stays a string."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip().isidentifier():
        raise ValueError(f"-p takes NAME=VALUE, e.g. -p epochs=3, not {text!r}")
    try:
        return name.strip(), ast.literal_eval(value.strip())
    except (ValueError, SyntaxError):
        return name.strip(), value.strip()


def preset(name: str, folder: Path = PRESET_DIR) -> dict[str, Any]:
    """The values of the parameter file ``<folder>/<name>.yaml``."""
    path = Path(folder) / f"{name}.yaml"
    if not path.is_file():
        found = ", ".join(sorted(p.stem for p in path.parent.glob("*.yaml")))
        raise ValueError(f"no recipe {name!r}: the parameter files in {shown(path.parent)} are {found or 'none'}")
    return yaml.safe_load(path.read_text()) or {}


def notebooks(only: list[str] | None = None, *, folder: Path = NOTEBOOK_DIR) -> list[Path]:
    """The numbered notebooks (``01_*.ipynb`` ...), optionally those whose number is in ``only``."""
    found = sorted(Path(folder).glob("[0-9][0-9]_*.ipynb"))
    return [nb for nb in found if not only or nb.name[:2] in only]


class StreamEcho:
    """Writes what a kernel prints to our stdout as it arrives, indented under the notebook's name. On a
    terminal as is, so that tqdm's carriage returns redraw a bar in place; elsewhere (CI, a log file) those
    redraws would be hundreds of garbled lines, so only complete lines, each as a terminal would finally
    show it (a finished bar's last state), without ANSI codes."""

    def __init__(self, out: TextIO | None = None, tty: bool | None = None):
        self.out = out if out is not None else sys.stdout
        self.tty = self.out.isatty() if tty is None else tty
        self._pending: dict[str, str] = {}  # not a terminal: per stream, the text after the last newline
        self._line = ""  # terminal: what is drawn on the current line (after the last \r or \n) ...
        self._line_stream = ""  # ... and by which stream

    def write(self, text: str, stream: str = "stdout") -> None:
        """Echo text printed by a cell on ``stream`` (the kernel's stdout or stderr)."""
        if self.tty:
            bar, bar_stream = self._line, self._line_stream
            lift = bool(bar) and stream != bar_stream  # another stream's unfinished line (a progress bar) is on screen
            if lift:
                self.out.write("\r\x1b[K")
                self._line = ""
            self._draw(text, stream)
            if lift and not self._line:  # the text ended its line: the bar goes back below it
                self._draw(bar, bar_stream)
        else:
            *lines, self._pending[stream] = (self._pending.get(stream, "") + strip_ansi(text)).split("\n")
            for line in lines:
                self._write_line(line)
        self.out.flush()

    def _draw(self, text: str, stream: str) -> None:
        for piece in re.split(r"([\r\n])", text):
            if piece in ("\r", "\n"):
                self._line = ""
            elif piece:
                if not self._line:
                    self.out.write(INDENT)
                self._line += piece
                self._line_stream = stream
            self.out.write(piece)

    def stream(self, name: str) -> SimpleNamespace:
        """A file-like view of one of the kernel's streams (``stdout``, ``stderr``), for papermill."""
        return SimpleNamespace(write=lambda text: self.write(text, name), flush=self.out.flush)

    def finish(self) -> None:
        """End of a cell's output: write what is left of unfinished lines, end the terminal's line."""
        if self.tty and self._line:
            self.out.write("\n")
            self._line = ""
        for rest in filter(None, self._pending.values()):  # not a terminal
            self._write_line(rest)
        self._pending.clear()
        self.out.flush()

    def _write_line(self, line: str) -> None:
        shown = final_text(line)  # redrawn in place: what was drawn last; a bar cleared with spaces is gone
        if shown.strip() or "\r" not in line:
            self.out.write(INDENT + shown + "\n")


@dataclass
class NotebookResult:
    """How one notebook went: ``ok``, ``failed`` or ``not run``; where its executed copy is."""

    name: str
    status: str = "not run"
    seconds: float | None = None
    executed: Path | None = None
    error: str | None = None  # the one-line failure report


class NotebookFailed(RuntimeError):
    """A notebook stopped with an error (already reported on the terminal): its one-line report."""


def _first_line(text: str) -> str:
    return next((line.strip() for line in strip_ansi(text).splitlines() if line.strip()), "")


def describe_failure(name: str, err: BaseException) -> str:
    """One line: the notebook, the cell (its In [n] number and first source line), the error."""
    if isinstance(err, PapermillExecutionError):
        what = ": ".join(filter(None, (strip_ansi(err.ename), _first_line(err.evalue))))
        return f"✗ {name} failed, cell {err.exec_count} (`{_first_line(err.source)[:60]}`): {what}"
    return f"✗ {name} failed: {type(err).__name__}: {_first_line(str(err))}"  # the kernel died, a time-out...


def parameters_for(notebook: Path, parameters: dict[str, Any], *, recipe: str | None = None,
                   small: bool = False) -> dict[str, Any]:
    """The parameters one notebook gets: a recipe's (:func:`preset`), then the small profile's, then
    ``parameters`` (``-p NAME=VALUE``), each only where the notebook's parameters cell has the name."""
    names = parameter_sources(notebook)
    chosen = {**(preset(recipe) if recipe else {}), **(preset("small") if small else {}), **parameters}
    return {name: value for name, value in chosen.items() if name in names}


def final_text(text: str) -> str:
    """Printed text as a terminal finally shows it: of a line redrawn in place (a progress bar's
    carriage returns) its last drawing; a line left blank by a bar that cleared itself, dropped."""
    lines = [next((part for part in reversed(line.split("\r")) if part), "") for line in text.split("\n")]
    return "\n".join(line for line, raw in zip(lines, text.split("\n")) if line.strip() or "\r" not in raw)


def without_run_metadata(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The notebook as it is committed: what papermill records about one run (timestamps, durations,
    empty tags) dropped, and progress bars as they ended (:func:`final_text`), not every redraw."""
    nb.metadata.pop("papermill", None)
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                output["text"] = final_text(output["text"])
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        if cell.metadata.get("tags") == []:
            del cell.metadata["tags"]
    return nb


def own_parameters(path: Path) -> nbformat.NotebookNode:
    """A notebook as its own parameters cell sets it: the values a stored run injected (notebook 05's
    second source) are shown in the committed notebook, but a new run starts without them."""
    nb = load_notebook_node(str(path))
    nb.cells = [cell for cell in nb.cells if "injected-parameters" not in cell.metadata.get("tags", [])]
    return nb


def small_copies(folder: Path, dest: Path) -> list[Path]:
    """What the tests run with nbval: copies of the numbered notebooks in ``dest``, ``small.yaml``'s
    parameters injected by papermill, and the notebooks' own modules beside them."""
    dest.mkdir(parents=True, exist_ok=True)
    for module in Path(folder).glob("*.py"):
        shutil.copy2(module, dest / module.name)
    for path in notebooks(folder=folder):
        papermill.execute_notebook(own_parameters(path), str(dest / path.name), parameters=parameters_for(path, {}, small=True),
                                   prepare_only=True, kernel_name="python3", language="python", progress_bar=False)
    return [dest / path.name for path in notebooks(folder=folder)]


def run_notebooks(only: list[str] | None = None, out_dir: Path | None = None, *, inplace: bool = False,
                  timeout: int | None = None, folder: Path = NOTEBOOK_DIR, parameters: dict[str, Any] | None = None,
                  recipe: str | None = None, out: TextIO | None = None) -> list[NotebookResult]:
    """Execute the notebooks in ``folder`` in order, echoing their printed text, then print a summary.
    Outputs go to ``data/runs/<profile>/`` unless ``inplace`` (a failed notebook always goes there). Each
    notebook gets its :func:`parameters_for`; a name no notebook has is an error. The kernel inherits this
    process's environment. Stops at the first failing cell: :class:`NotebookFailed` after the summary."""
    parameters = dict(parameters or {})
    echo = StreamEcho(out)
    out_dir = Path(out_dir or data_dir() / "runs" / profile())
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = notebooks(only, folder=folder)
    if not paths:
        numbered = f" is numbered {' or '.join(only)}" if only else ""
        raise FileNotFoundError(f"no numbered notebook in {folder}{numbered}")
    known = set().union(*(parameter_sources(path) for path in paths))
    unknown = sorted(set(parameters) - known)
    if unknown:
        raise ValueError(f"no notebook run here has a parameter {', '.join(unknown)} (they have: {', '.join(sorted(known))})")
    injected = [parameters_for(path, parameters, recipe=recipe, small=is_small()) for path in paths]
    if inplace and any(set(chosen) - DATA_PARAMETERS for chosen in injected):
        raise ValueError("--inplace keeps each notebook's own parameters (only data may be handed in: "
                         f"{', '.join(sorted(DATA_PARAMETERS))}): leave out the others (and the small profile), or --inplace.")
    results = [NotebookResult(path.name) for path in paths]
    # ipykernel >= 7.4 warns "Kernel is running over TCP without encryption" on every start unless the manager
    # gives it CurveZMQ keys: asking for them (where libzmq has Curve) removes the cause rather than hiding the log
    kernel = Config({"KernelManager": {"transport_encryption": "auto"}}) if zmq.has("curve") else Config()
    for path, result, chosen in zip(paths, results, injected):
        print(f"▶ {path.name}", file=out, flush=True)
        if chosen:
            print(INDENT + "parameters: " + ", ".join(f"{k} = {v!r}" for k, v in chosen.items()), file=out)
        result.executed = out_dir / path.name
        start = time.monotonic()
        try:
            papermill.execute_notebook(own_parameters(path), str(result.executed), parameters=chosen, kernel_name="python3", language="python",
                                       progress_bar=False, stdout_file=echo.stream("stdout"),
                                       stderr_file=echo.stream("stderr"), cwd=str(path.parent),
                                       start_timeout=300, execution_timeout=timeout, coalesce_streams=True,
                                       config=kernel)
            result.status = "ok"
        except Exception as err:  # noqa: BLE001 - any failure is reported in one line, not a traceback
            result.status, result.error = "failed", describe_failure(path.name, err)
        finally:
            echo.finish()
            result.seconds = time.monotonic() - start
        if result.error:
            print(f"{result.error}\n  full traceback: {result.executed}", file=out, flush=True)
            break
        if inplace:  # only a notebook that ran to the end replaces the committed one
            nbformat.write(without_run_metadata(nbformat.read(result.executed, as_version=4)), path)
            result.executed = path
        print(f"  ✓ {path.name} ok in {format_seconds(result.seconds)}", file=out, flush=True)
    print_summary(results, out_dir, out=out)
    if any(r.error for r in results):
        raise NotebookFailed(next(r.error for r in results if r.error))
    return results


def format_seconds(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``, ``1 h 02 min``."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def print_summary(results: list[NotebookResult], out_dir: Path, *, out: TextIO | None = None) -> None:
    """Each notebook's status and time; the validation scores of the run notebook 04 trained last;
    where the results are."""
    lines = ["", "Summary"]
    width = max((len(r.name) for r in results), default=0)
    for r in results:
        took = format_seconds(r.seconds) if r.seconds is not None else ""
        lines.append(f"  {r.status:<8} {r.name:<{width}}  {took}".rstrip())
    try:
        ws = workspace()  # read now: the command sets CATSDOGS_* before the run
        run = newest_run(ws.checkpoint_dir)
        rows = [row for row in read_history(run / "history.json") if isinstance(row.get("val_loss"), (int, float))] \
            if run else []
    except Exception as err:  # noqa: BLE001 - a summary must not hide the run's own result
        lines.append(f"  (results not located: {err})")
    else:
        if rows:
            best = min(rows, key=lambda row: row["val_loss"])
            lines.append(f"  model:        {run.name}, best epoch {best.get('epoch', '?')} of {len(rows)} (lowest validation "
                         f"log loss): accuracy {best.get('val_acc', float('nan')):.4f}, log loss {best['val_loss']:.4f}")
        else:
            lines.append(f"  model:        none trained yet (no run in {ws.checkpoint_dir})")
        lines.append(f"  data:         {ws.label}")
        lines.append(f"  submission:   {ws.submission}" + ("" if ws.submission.exists() else " (not written)"))
        lines.append(f"  checkpoints:  {run or ws.checkpoint_dir}" + ("" if run else " (none)"))
    executed = sorted({str(r.executed.parent) for r in results if r.executed})
    lines.append(f"  notebooks:    {', '.join(executed) if executed else out_dir} (executed)")
    print("\n".join(lines), file=out, flush=True)
