"""Interrupted training loses nothing: a killed run resumes from its last checkpoint and ends with each
epoch once; a failed checkpoint write keeps the previous one; a checkpoint that would run code is
refused."""
from __future__ import annotations

import json
import os
from dataclasses import asdict
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
import torch

from catsdogs.__main__ import main
from catsdogs.config import REPO_DIR
from catsdogs.demo import make_demo_archive
from catsdogs.model import ModelConfig, build_model
from catsdogs.predict import load_model
from catsdogs.checkpoints import load_checkpoint, save_checkpoint
from catsdogs.files import atomic_write

EPOCHS = 3
TIMEOUT = 900  # seconds for one headless run; about a minute on an idle 2-core machine


def _catsdogs_run(data: Path, archive: Path, out_dir: Path, *only: str) -> subprocess.Popen:
    """``python -m catsdogs run --archive ... -p epochs=3 ... --only ...`` in its own process group: the
    full profile on a tiny archive, with the recipe shortened through notebook 04's parameters."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CATSDOGS_")}
    env.update(CATSDOGS_DATA=str(data))
    recipe = [f"-p=epochs={EPOCHS}", "-p=batch_size=16", "-p=teacher_epochs=1", "-p=warmup_epochs=0"]
    return subprocess.Popen([sys.executable, "-m", "catsdogs", "run", "--profile", "full", "--archive", str(archive),
                             *recipe, "--out-dir", str(out_dir), "--only", *only], cwd=REPO_DIR, env=env,
                            start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _descendants(pid: int) -> list[int]:
    """Processes started by ``pid``, directly or not (the Jupyter kernel runs in a session of its own)."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = [], [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def _kill_everything(proc: subprocess.Popen) -> None:
    """SIGKILL the run and its kernel, as a power cut or the out-of-memory killer would."""
    victims = [proc.pid, *_descendants(proc.pid)]
    for pid in victims:
        try:
            os.killpg(pid, signal.SIGKILL) if os.getpgid(pid) == pid else os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(timeout=60)
    deadline = time.time() + 60
    while any(Path(f"/proc/{pid}").exists() and "Z" not in _state(pid) for pid in victims) and time.time() < deadline:
        time.sleep(0.1)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


def _finish(proc: subprocess.Popen) -> str:
    try:
        output, _ = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        _kill_everything(proc)
        raise
    assert proc.returncode == 0, output[-3000:]
    return output


def _notebook_text(path: Path) -> str:
    nb = nbformat.read(path, as_version=4)
    return "".join(out.get("text", "") for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs)


def test_a_killed_training_run_resumes_and_ends_with_each_epoch_once(tmp_path):
    data = tmp_path / "data"
    archive = make_demo_archive(tmp_path / "archive.zip", per_class=48, n_test=8, size=96)
    run_dir = data / "kaggle" / "checkpoints" / "modern"
    first = _catsdogs_run(data, archive, tmp_path / "first", "01", "02", "04")
    try:
        deadline = time.time() + TIMEOUT
        while not (run_dir / "history.json").exists():  # written last, after last.pt and best.pt
            assert first.poll() is None, f"the run ended before its first checkpoint:\n{first.stdout.read()[-3000:]}"
            assert time.time() < deadline, "no checkpoint in time"
            time.sleep(0.05)
    finally:
        _kill_everything(first)  # now in epoch 2
    killed = load_checkpoint(run_dir / "last.pt")
    assert killed["epoch"] == 1 and [h["epoch"] for h in killed["history"]] == [1]

    output = _finish(_catsdogs_run(data, archive, tmp_path / "second", "04"))
    log = _notebook_text(tmp_path / "second" / "04_train.ipynb")
    assert "resuming after epoch 1" in log, output[-3000:]
    student_epochs = [line.split(" - ")[0] for line in log.splitlines() if line.startswith("Epoch : ")]  # not "teacher Epoch"
    assert student_epochs == ["Epoch : 2", "Epoch : 3"]
    history = json.loads((run_dir / "history.json").read_text())
    last = load_checkpoint(run_dir / "last.pt")
    assert [h["epoch"] for h in history] == [h["epoch"] for h in last["history"]] == [1, 2, 3]
    assert last["epoch"] == EPOCHS and history[0] == killed["history"][0]  # epoch 1 kept, not redone
    assert load_checkpoint(run_dir / "best.pt")["epoch"] in (1, 2, 3)
    assert not list(run_dir.glob("*.partial"))


def test_a_failed_checkpoint_write_keeps_the_previous_one(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint(path, epoch=1, weights=torch.ones(3))

    def disk_full(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"the first half of a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError, match="No space left"):
        save_checkpoint(path, epoch=2, weights=torch.zeros(3))
    state = load_checkpoint(path)
    assert state["epoch"] == 1 and torch.equal(state["weights"], torch.ones(3))
    assert list(tmp_path.iterdir()) == [path]  # the half-written temporary file is gone


def test_a_folder_filled_aside_appears_only_once_complete(tmp_path):
    dest = tmp_path / "photos"
    with pytest.raises(OSError, match="cut short"), atomic_write(dest) as staging:
        (staging / "cat").mkdir(parents=True)
        raise OSError("cut short")
    assert list(tmp_path.iterdir()) == []
    with atomic_write(dest) as staging:
        staging.mkdir()
        (staging / "1.jpg").write_bytes(b"a photo")
    assert list(tmp_path.iterdir()) == [dest] and [p.name for p in dest.iterdir()] == ["1.jpg"]


class _RunsCode:
    """Unpickling this calls ``open(marker, "w")``: any code could stand in its place."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path, capsys):
    marker = tmp_path / "code-ran"
    path = tmp_path / "tampered.pt"
    torch.save({"model": build_model(ModelConfig()).state_dict(), "model_config": asdict(ModelConfig()),
                "epoch": 1, "note": _RunsCode(marker)}, path)
    for load in (load_checkpoint, load_model):
        with pytest.raises(RuntimeError, match="was refused.*could run code") as err:
            load(path)
        assert "io.open" in str(err.value) or "builtins.open" in str(err.value)
    (tmp_path / "photos").mkdir()
    assert main(["predict", str(tmp_path / "photos"), "--out", str(tmp_path / "out.csv"), "--checkpoint", str(path)]) == 1
    assert "No pictures" in capsys.readouterr().err
    (tmp_path / "photos" / "1.png").write_bytes(b"")  # one (unreadable) picture: predict now loads the weights
    assert main(["predict", str(tmp_path / "photos"), "--out", str(tmp_path / "out.csv"), "--checkpoint", str(path)]) == 1
    assert "was refused" in capsys.readouterr().err
    assert not marker.exists()
