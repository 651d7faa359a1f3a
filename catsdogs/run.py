"""Run the numbered notebooks headless, in order, with a real Jupyter kernel (nbclient).

While a notebook runs, the text its cells print (the training's epoch lines, progress bars) is
echoed to the terminal as it arrives; at the end a summary says how each notebook went, how good
the trained model is, and where the results are. A failing notebook gets one line (notebook, cell,
error) and the path of the executed notebook that holds the full traceback.
"""
from __future__ import annotations

import ast
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from traitlets.config import Config

from .config import REPO_DIR, data_dir, profile

NOTEBOOK_DIR = REPO_DIR / "notebooks"
INDENT = "  "
RESULT_LINES = 5  # a cell's plain-text value is echoed up to this many lines
# CSI sequences (colours, cursor moves), OSC sequences (titles, links) and two-byte escapes
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")


def strip_ansi(text: str) -> str:
    """``text`` without terminal escape codes (colours in IPython tracebacks, in some progress bars)."""
    return _ANSI.sub("", text)


def notebooks(only: list[str] | None = None, *, folder: Path = NOTEBOOK_DIR) -> list[Path]:
    """The numbered notebooks (``01_*.ipynb`` ...), optionally those whose number is in ``only``."""
    found = sorted(Path(folder).glob("[0-9][0-9]_*.ipynb"))
    return [nb for nb in found if not only or nb.name[:2] in only]


class StreamEcho:
    """Writes what a kernel prints to our stdout as it arrives, indented under the notebook's name.

    On a terminal the text passes through as is, so tqdm's carriage returns redraw a bar in place.
    Elsewhere (CI, a log file) those in-place redraws would be hundreds of garbled lines, so only
    complete lines are written, each as a terminal would finally show it (a finished bar's last
    state), without ANSI codes."""

    def __init__(self, out: TextIO | None = None, tty: bool | None = None):
        self.out = out if out is not None else sys.stdout
        self.tty = self.out.isatty() if tty is None else tty
        self._pending: dict[str, str] = {}  # not a terminal: per stream, the text after the last newline
        self._line = ""  # terminal: what is drawn on the current line (after the last \r or \n) ...
        self._line_stream = ""  # ... and by which stream
        self._at_line_start = True  # terminal: whether the cursor is at the start of a line

    def write(self, text: str, stream: str = "stdout") -> None:
        """Echo text printed by a cell on ``stream`` (the kernel's stdout or stderr)."""
        if self.tty:
            if not self._at_line_start and stream != self._line_stream:
                # another stream's unfinished line (a progress bar) is on screen: lift it, write, put it back
                bar, bar_stream = self._line, self._line_stream
                self.out.write("\r\x1b[K")
                self._at_line_start, self._line = True, ""
                self._draw(text, stream)
                if self._at_line_start and bar:
                    self._draw(bar, bar_stream)
            else:
                self._draw(text, stream)
        else:
            *lines, self._pending[stream] = (self._pending.get(stream, "") + strip_ansi(text)).split("\n")
            for line in lines:
                self._write_line(line)
        self.out.flush()

    def _draw(self, text: str, stream: str) -> None:
        for piece in re.split(r"([\r\n])", text):
            if piece in ("\r", "\n"):
                self._at_line_start, self._line = True, ""
            elif piece:
                if self._at_line_start:
                    self.out.write(INDENT)
                    self._at_line_start = False
                self._line += piece
                self._line_stream = stream
            self.out.write(piece)

    def note(self, text: str) -> None:
        """A line of our own between the kernel's (a marker for a figure, say)."""
        self.finish()
        self.out.write(INDENT + (text if self.tty else strip_ansi(text)) + "\n")
        self.out.flush()

    def finish(self) -> None:
        """End of a cell's output: write what is left of unfinished lines, end the terminal's line."""
        if self.tty:
            if not self._at_line_start:
                self.out.write("\n")
                self._at_line_start, self._line = True, ""
        else:
            for stream, rest in list(self._pending.items()):
                if rest:
                    self._write_line(rest)
                self._pending[stream] = ""
        self.out.flush()

    def _write_line(self, line: str) -> None:
        if "\r" in line:  # redrawn in place: keep what was drawn last; a bar cleared with spaces is gone
            line = next((part for part in reversed(line.split("\r")) if part), "")
            if not line.strip():
                return
        self.out.write(INDENT + line + "\n")


def _rich_marker(data: dict[str, Any]) -> str | None:
    """A short stand-in for a figure or table, which a terminal cannot show; None for plain text."""
    if any(kind.startswith("image/") for kind in data):
        return "[figure]"
    if "text/html" in data:
        return "[table]" if "<table" in str(data["text/html"]) else "[html output]"
    if "text/markdown" in data:
        return "[markdown]"
    if set(data) - {"text/plain"}:
        return f"[{sorted(set(data) - {'text/plain'})[0]} output]"
    return None


class EchoingClient(NotebookClient):
    """A NotebookClient that echoes each cell's printed text while the cell runs (not when it ends),
    and remembers which cell it is running so that a failure can name it."""

    def __init__(self, nb: nbformat.NotebookNode, echo: StreamEcho, **kw: Any):
        super().__init__(nb, **kw)
        self.echo = echo
        self.current_cell: tuple[int, nbformat.NotebookNode] | None = None  # (index, cell)

    async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
        self.current_cell = (cell_index, cell)
        try:
            return await super().async_execute_cell(cell, cell_index, execution_count, store_history)
        finally:
            self.echo.finish()

    def process_message(self, msg, cell, cell_index):
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            self.echo.write(content.get("text", ""), content.get("name", "stdout"))
        elif kind in ("display_data", "execute_result"):
            data = content.get("data", {})
            marker = _rich_marker(data)
            if marker:
                self.echo.note(marker)
            elif data.get("text/plain"):  # a cell's value: a number is worth showing, a model's repr is not
                lines = data["text/plain"].rstrip("\n").splitlines()
                more = f"\n… {len(lines) - RESULT_LINES} more lines in the executed notebook" \
                    if len(lines) > RESULT_LINES else ""
                self.echo.write("\n".join(lines[:RESULT_LINES]) + more + "\n")
        # errors are not echoed: the one-line report at the end of the notebook names them
        return super().process_message(msg, cell, cell_index)


def kernel_config() -> Config:
    """Kernel manager settings. ipykernel >= 7.4 warns "Kernel is running over TCP without
    encryption" on every start unless the manager gives it CurveZMQ keys; asking for them (when our
    libzmq has Curve and the kernel says it supports it: ``auto``) removes the cause of the warning
    rather than hiding the kernel's log, which may carry real problems."""
    import zmq

    return Config({"KernelManager": {"transport_encryption": "auto"}}) if zmq.has("curve") else Config()


@dataclass
class NotebookResult:
    """How one notebook went: ``ok``, ``failed`` or ``not run``; where its executed copy is."""

    name: str
    status: str = "not run"
    seconds: float | None = None
    executed: Path | None = None
    error: str | None = None  # the one-line failure report


class NotebookFailed(RuntimeError):
    """A notebook stopped with an error (already reported on the terminal)."""

    def __init__(self, results: list[NotebookResult]):
        failed = next(r for r in results if r.status == "failed")
        super().__init__(failed.error)
        self.results = results


def _first_line(text: str) -> str:
    return next((line.strip() for line in strip_ansi(text).splitlines() if line.strip()), "")


def describe_failure(name: str, err: BaseException, client: EchoingClient) -> str:
    """One line: the notebook, the cell (its In [n] number and first source line), the error."""
    where = ""
    if client.current_cell is not None:
        index, cell = client.current_cell
        # the In [n] of the executed notebook; counting code cells would also count the empty ones, never run
        number = cell.get("execution_count") or sum(1 for c in client.nb.cells[: index + 1] if c.cell_type == "code")
        where = f", cell {number} (`{_first_line(cell.source)[:60]}`)"
    if isinstance(err, CellExecutionError):
        message = _first_line(err.evalue)
        what = f"{strip_ansi(err.ename)}: {message}" if message else strip_ansi(err.ename)
    else:  # the kernel died, a cell timed out, the kernel did not start
        what = f"{type(err).__name__}: {_first_line(str(err))}"
    return f"✗ {name} failed{where}: {what}"


def parameter_values(nb: nbformat.NotebookNode) -> dict[str, str]:
    """What the notebook's cell tagged ``parameters`` assigns (papermill's convention): name -> the
    value's source text."""
    cell = next((c for c in nb.cells if "parameters" in c.metadata.get("tags", [])), None)
    if cell is None:
        return {}
    tree = ast.parse(cell.source)
    return {target.id: ast.unparse(node.value) for node in tree.body if isinstance(node, ast.Assign)
            for target in node.targets if isinstance(target, ast.Name)}


def parameter_names(nb: nbformat.NotebookNode) -> set[str]:
    """The names the notebook's ``parameters`` cell assigns."""
    return set(parameter_values(nb))


def inject_parameters(nb: nbformat.NotebookNode, parameters: dict[str, Any]) -> dict[str, Any]:
    """Put a cell tagged ``injected-parameters`` right after the ``parameters`` cell that sets those of
    ``parameters`` the notebook has (as papermill does); returns what was injected."""
    chosen = {name: value for name, value in parameters.items() if name in parameter_names(nb)}
    if chosen:
        index = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
        source = "# Injected parameters\n" + "\n".join(f"{name} = {value!r}" for name, value in chosen.items())
        nb.cells.insert(index + 1, nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]}))
    return chosen


def run_notebooks(only: list[str] | None = None, out_dir: Path | None = None, *, inplace: bool = False,
                  timeout: int | None = None, folder: Path = NOTEBOOK_DIR, parameters: dict[str, Any] | None = None,
                  out: TextIO | None = None) -> list[NotebookResult]:
    """Execute the notebooks in ``folder`` in order, echoing their printed text, then print a summary.

    Outputs go to ``data/runs/<profile>/`` (the committed notebooks keep theirs) unless ``inplace``;
    a failed notebook always goes there. ``parameters`` override the values of the notebooks' cells
    tagged ``parameters`` (each notebook gets those it has). The kernel inherits this process's
    environment (``CATSDOGS_PROFILE``, ``CATSDOGS_DATA``...). Stops at the first failing cell and raises
    :class:`NotebookFailed` after the summary (so that callers cannot mistake a failure for success)."""
    parameters = dict(parameters or {})
    if parameters and inplace:
        raise ValueError("--inplace keeps each notebook's own parameters: leave out the parameters, or --inplace.")
    out = out if out is not None else sys.stdout
    echo = StreamEcho(out)
    out_dir = Path(out_dir or data_dir() / "runs" / profile())
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = notebooks(only, folder=folder)
    if not paths:
        numbered = f" is numbered {' or '.join(only)}" if only else ""
        raise FileNotFoundError(f"no numbered notebook in {folder}{numbered}")
    known = set().union(*(parameter_names(nbformat.read(path, as_version=4)) for path in paths))
    unknown = sorted(set(parameters) - known)
    if unknown:
        raise ValueError(f"no notebook run here has a parameter {', '.join(unknown)} (they have: {', '.join(sorted(known))})")
    results = [NotebookResult(path.name) for path in paths]
    for path, result in zip(paths, results):
        print(f"▶ {path.name}", file=out, flush=True)
        start = time.monotonic()
        nb = nbformat.read(path, as_version=4)
        injected = inject_parameters(nb, parameters)
        if injected:
            print(INDENT + "parameters: " + ", ".join(f"{k} = {v!r}" for k, v in injected.items()), file=out)
        client = EchoingClient(nb, echo, timeout=timeout, startup_timeout=300, kernel_name="python3",
                               coalesce_streams=True, config=kernel_config(),
                               resources={"metadata": {"path": str(path.parent)}})
        try:
            client.execute()
            result.status = "ok"
        except Exception as err:  # noqa: BLE001 - any failure is reported in one line, not a traceback
            result.status, result.error = "failed", describe_failure(path.name, err, client)
        finally:  # a failed run never overwrites the committed notebook
            result.seconds = time.monotonic() - start
            result.executed = path if inplace and result.status == "ok" else out_dir / path.name
            nbformat.write(nb, result.executed)
        if result.error:
            print(result.error, file=out)
            print(f"  full traceback: {result.executed}", file=out, flush=True)
            break
        print(f"  ✓ {path.name} ok in {format_seconds(result.seconds)}", file=out, flush=True)
    print_summary(results, out_dir, out=out, recipe=parameters.get("recipe", "modern"))
    if any(r.status == "failed" for r in results):
        raise NotebookFailed(results)
    return results


def format_seconds(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``, ``1 h 02 min``."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


@dataclass(frozen=True)
class RunOutputs:
    """Where a run leaves its results, and what data it ran on."""

    data_label: str
    submission: Path
    checkpoints: Path
    history: Path


def run_outputs(recipe: str = "modern") -> RunOutputs:
    """The one place that knows where the notebooks put their results (the summary reads it): notebook
    04's run folder is named by its ``recipe`` parameter. Imported here, not at module level, because
    the command sets CATSDOGS_* first."""
    import catsdogs

    ws = catsdogs.workspace()
    run_dir = ws.run_dir(recipe)
    return RunOutputs(data_label=ws.label, submission=ws.submission, checkpoints=run_dir,
                      history=run_dir / "history.json")


def print_summary(results: list[NotebookResult], out_dir: Path, *, out: TextIO | None = None,
                  recipe: str = "modern") -> None:
    """Each notebook's status and time; the validation scores of the ``recipe`` notebook 04 trained;
    where the results are."""
    out = out if out is not None else sys.stdout
    lines = ["", "Summary"]
    width = max((len(r.name) for r in results), default=0)
    for r in results:
        took = format_seconds(r.seconds) if r.seconds is not None else ""
        lines.append(f"  {r.status:<8} {r.name:<{width}}  {took}".rstrip())
    try:
        from .checkpoints import read_history

        where = run_outputs(recipe)
        rows = [row for row in read_history(where.history) if isinstance(row.get("val_loss"), (int, float))]
    except Exception as err:  # noqa: BLE001 - a summary must not hide the run's own result
        lines.append(f"  (results not located: {err})")
    else:
        if rows:
            best = min(rows, key=lambda row: row["val_loss"])
            lines.append(f"  model:        best epoch {best.get('epoch', '?')} of {len(rows)} (lowest validation log "
                         f"loss): accuracy {best.get('val_acc', float('nan')):.4f}, log loss {best['val_loss']:.4f}")
        else:
            lines.append(f"  model:        none trained yet (no validation scores in {where.history})")
        lines.append(f"  data:         {where.data_label}")
        lines.append(f"  submission:   {where.submission}" + ("" if where.submission.exists() else " (not written)"))
        lines.append(f"  checkpoints:  {where.checkpoints}" + ("" if where.checkpoints.exists() else " (none)"))
    executed = sorted({str(r.executed.parent) for r in results if r.executed})
    lines.append(f"  notebooks:    {', '.join(executed) if executed else out_dir} (executed)")
    print("\n".join(lines), file=out, flush=True)
