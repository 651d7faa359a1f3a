"""scripts/benchmark.py: a whole tiny run (the last line is its JSON, nothing written outside the
bench folder), and the blog loop's leak fix (the accumulated loss keeps no autograd graph)."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from catsdogs.download import make_demo_archive

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "benchmark.py"


def load_script():
    spec = importlib.util.spec_from_file_location("benchmark_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def files_under(folder: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()} if folder.exists() else {}


def test_blog_loop_keeps_no_graph_unless_asked(tmp_path):
    bench = load_script()
    rng = np.random.default_rng(0)
    files = []
    for i, name in enumerate(["cat.0", "dog.0", "cat.1", "dog.1"]):
        path = tmp_path / f"{name}.jpg"
        Image.fromarray(rng.integers(0, 255, (64, 80, 3), dtype=np.uint8)).save(path)
        files.append(str(path))
    fixed = bench.blog_train(files, batches=2, warmup=0, batch_size=2)
    assert fixed["images"] == 4 and fixed["img_s"] > 0
    assert fixed["epoch_loss"].grad_fn is None  # loss.detach(): no batch's graph survives
    leaky = bench.blog_train(files, batches=1, warmup=0, batch_size=2, leak=True)
    assert leaky["epoch_loss"].grad_fn is not None  # the blog's verbatim accumulation keeps it


def test_busy_means_load_from_other_work():
    bench = load_script()
    assert not bench.machine_busy(0.49, 1.89, cores=2, threads=2)  # our own two threads alone
    assert bench.machine_busy(0.49, 4.2, cores=2, threads=2)  # two more threads of someone else's
    assert bench.machine_busy(1.5, 1.9, cores=2, threads=2)  # something ran before we started


def test_quick_run_on_a_tiny_demo_archive(tmp_path):
    archive = make_demo_archive(tmp_path / "archive" / "dogs-vs-cats-redux-kernels-edition.zip",
                                per_class=40, n_test=12, size=64)  # notebook 05 shows 12 test photos
    bench_dir = tmp_path / "bench"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CATSDOGS_")}
    env["CATSDOGS_PROFILE"] = "full"
    watched = [REPO / "data", REPO / "notebooks", tmp_path / "archive"]
    before = {str(folder): files_under(folder) for folder in watched}
    done = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--archive", str(archive),
                           "--bench-dir", str(bench_dir), "--blog-batches", "1", "--limit-train", "64",
                           "--param", "batch_size=16"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["blog_leak_fixed"] is True and "blog_leaky_img_s" not in result
    assert result["speedup"] > 0 and result["pipeline_min"] > 0
    assert result["photos"] == {"train_split": 64, "trained": 64, "blog_timed": 64}
    assert set(result["notebook_s"]) == {"01", "02", "04", "05"}
    fit = int((45 * 60 - 8 * result["teacher_epoch_s_full"]) // result["vit_epoch_s_full"])  # notebook 04's plan
    assert result["projected_epochs"] == {"teacher": 8, "vit": min(30, fit)}
    vit_epochs = result["projected_epochs"]["vit"]
    final = load_script().stored_final_accuracy()  # from the stored notebooks' outputs
    assert result["final_accuracy"] == final and 1 <= final["best_epoch"] <= 30
    assert result["epochs_to_final_accuracy"] == final["best_epoch"]
    per_vit_epoch = result["vit_epoch_s_full"] / 60
    assert result["minutes_to_final_accuracy"] == pytest.approx(
        result["pipeline_min"] - max(0, vit_epochs - final["best_epoch"]) * per_vit_epoch, abs=0.11)
    assert {str(folder): files_under(folder) for folder in watched} == before  # nothing written outside the bench
    assert sorted(p.name for p in tmp_path.iterdir()) == ["archive", "bench"]
    assert (bench_dir / "kaggle" / "checkpoints" / "modern" / "history.json").exists()


def test_final_accuracy_is_read_from_the_stored_outputs_or_none(tmp_path):
    """The projection to the final accuracy uses what notebooks 04 and 05 print; none without outputs."""
    import nbformat
    bench = load_script()
    for name in ("04_train.ipynb", "05_submission.ipynb"):
        nb = nbformat.read(REPO / "notebooks" / name, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.outputs = []
        nbformat.write(nb, tmp_path / name)
    assert bench.stored_final_accuracy(tmp_path) is None
    final = bench.stored_final_accuracy()
    assert 0 < final["val_acc"] < 1 and 0 < final["with_tta"]["val_acc"] < 1 and final["best_epoch"] >= 1
