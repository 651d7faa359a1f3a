"""Benchmark: the blog's training pipeline against ours, in one run, same machine, same photos.

What it measures, and why
-------------------------
The tutorial claims its pipeline trains the blog's Linformer-ViT several times faster on a small
CPU. This script puts a number on that claim, measured rather than remembered:

1. **The blog's pipeline**, reproduced faithfully: a ``Dataset`` that opens every JPEG with PIL in
   every epoch and applies the blog's transforms (``Resize((224, 224))``, ``RandomResizedCrop(224)``,
   ``RandomHorizontalFlip()``, ``ToTensor()``), a ``DataLoader`` with batch 64, shuffling and no
   workers, fp32, the seed model (``catsdogs.model.build_model()``), Adam at 3e-5, plain
   cross-entropy and the blog's loop (forward, loss, zero_grad, backward, step, accumulate
   ``acc``/``loss``). Training images/s over N batches after 2 warm-up batches. The blog's
   ``epoch_loss += loss / len(train_loader)`` keeps every batch's autograd graph alive: on a CPU the
   process then grows by 200-300 MB a batch (about 60 GB over an epoch), so the loop stops at
   ``--blog-max-rss-gb`` and reports the rate measured so far; ``--blog-detach`` accumulates
   ``loss.detach()`` instead, the one change that lets a whole epoch run.
2. **Our pipeline**: exactly the code a learner runs. Notebooks 01, 02 and 04 are executed headless
   (``catsdogs.run.run_notebooks``) for one epoch of the modern recipe without its CNN teacher
   (``CATSDOGS_DISTILL=0``: the blog has none; notebook 04 reports the teacher's cost). ``train_img_s``
   and ``epoch_s`` come from the run's ``history.json``. Also the peak resident memory of the training
   kernel (``getrusage(RUSAGE_CHILDREN)`` in the process that runs the notebook, see ``run_stage``)
   and the size of the decode-once cache on disk.
3. **Inference**: ``catsdogs.predict.predict_probs`` on the archive's test photos through the
   decode-once cache (timed once the cache is built; its one-time build is reported apart), against
   the blog-style loop (PIL per photo, fp32, batch 64, ``model.eval()``, ``torch.no_grad()`` but no
   ``inference_mode``), and the time for Kaggle's 12,500 test photos extrapolated from the rate.

4. **Accuracy per epoch, bf16 against fp32** (``--precision-check EPOCHS``): notebook 04 again,
   from scratch, once with ``CATSDOGS_PRECISION=fp32`` and once with ``bf16``, same seed, same photos
   (``--precision-photos``, default 6,000), and the validation accuracy and log loss of every epoch
   side by side: mixed precision must not buy its speed with accuracy.

Both pipelines train on the same photos: the training subset of the split notebook 02 writes.
The last line printed is one JSON object with every figure, for scripts and the README.

Usage::

    python scripts/benchmark.py --quick                 # under 5 minutes: a smoke run
    python scripts/benchmark.py --archive PATH.zip      # one full epoch of each pipeline
    python scripts/benchmark.py --archive PATH.zip --precision-check 3   # and bf16 against fp32

Without ``--archive`` the competition archive in ``data/`` is used, or else a generated DEMO archive
(synthetic pictures: the figures then say little about the real photos, and the output says so).
Work files go to ``--bench-dir`` (default ``data/bench``): extracted photos, caches and checkpoints
of the benchmark, never those of ``data/kaggle``. Extraction and caches are reused by later runs
(``--fresh`` rebuilds them); the benchmark's checkpoints are deleted before each run so notebook 04
never resumes an earlier one. Run it on an otherwise idle machine: every figure is a wall-clock rate.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402
from torchvision import transforms  # noqa: E402
from tqdm import tqdm  # noqa: E402

from catsdogs.config import ARCHIVE_NAME, Workspace, profile, workspace  # noqa: E402

KAGGLE_TEST_PHOTOS = 12_500
EPOCH_PHOTOS = 20_000  # the blog's training split of the 25,000 labelled photos
MARKER = ".catsdogs-benchmark"
BLOG_BATCH = 64
BLOG_LR = 3e-5
BLOG_SEED = 42


# ---------------------------------------------------------------------------------------------
# The machine
# ---------------------------------------------------------------------------------------------
def cpu_model() -> str:
    """The CPU's name from /proc/cpuinfo (``platform.processor()`` elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def total_ram_gb() -> float:
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30


def load_average() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def warn_if_busy(when: str) -> None:
    """Wall-clock rates mean nothing on a busy machine: say so when the load is high."""
    load, cores = load_average(), os.cpu_count() or 1
    if load > 0.5 * cores:
        print(f"WARNING ({when}): load average {load:.1f} on {cores} cores: the machine is busy, these "
              "figures are NOT representative. Run again on an idle machine.", flush=True)


def banner(text: str) -> None:
    line = "!" * 100
    print(f"\n{line}\n{text}\n{line}\n", flush=True)


# ---------------------------------------------------------------------------------------------
# Archive and work folder
# ---------------------------------------------------------------------------------------------
def default_archive() -> Path | None:
    """The competition archive in the repository's ``data/`` (or ``data/kaggle/``), if any."""
    for candidate in (REPO / "data" / ARCHIVE_NAME, REPO / "data" / "kaggle" / ARCHIVE_NAME):
        if candidate.is_file():
            return candidate
    return None


def demo_archive(bench_dir: Path) -> Path:
    """A generated Kaggle-layout archive (synthetic pictures), big enough for 20 blog batches."""
    from catsdogs.download import make_demo_archive

    path = bench_dir / "generated-demo" / ARCHIVE_NAME
    if not path.exists():
        print(f"generating a demo archive at {path} ...", flush=True)
        make_demo_archive(path, per_class=1500, n_test=512, size=160)
    return path


def prepare_bench_dir(bench_dir: Path, fresh: bool) -> Path:
    """Create (or reuse) the benchmark's own data folder. A non-empty folder that the benchmark did
    not create is refused: the benchmark deletes checkpoints in it, and must never touch
    ``data/kaggle`` of a real training run."""
    bench_dir = bench_dir.expanduser().resolve()
    if bench_dir.exists() and any(bench_dir.iterdir()) and not (bench_dir / MARKER).exists():
        raise SystemExit(f"error: {bench_dir} is not empty and was not made by this benchmark; "
                         "choose another --bench-dir.")
    if fresh:
        for child in ("kaggle", "demo", "runs"):
            shutil.rmtree(bench_dir / child, ignore_errors=True)
    bench_dir.mkdir(parents=True, exist_ok=True)
    (bench_dir / MARKER).write_text("work folder of scripts/benchmark.py; safe to delete\n")
    return bench_dir


def set_environment(bench_dir: Path, archive: Path, limit_train: int) -> dict[str, str]:
    """The variables the notebooks read: no stray ``CATSDOGS_*`` override from the caller's shell,
    the full profile, the modern recipe without its teacher, one epoch, and this archive in the
    benchmark's folder."""
    for key in [k for k in os.environ if k.startswith("CATSDOGS_")]:
        del os.environ[key]
    settings = {"CATSDOGS_DATA": str(bench_dir), "CATSDOGS_ARCHIVE": str(archive), "CATSDOGS_PROFILE": "full",
                "CATSDOGS_RECIPE": "modern", "CATSDOGS_EPOCHS": "1", "CATSDOGS_DISTILL": "0"}
    if limit_train:
        settings["CATSDOGS_LIMIT_TRAIN"] = str(limit_train)
    os.environ.update(settings)
    return settings


def inside(path: Path, folder: Path) -> bool:
    return folder.resolve() in path.resolve().parents


# ---------------------------------------------------------------------------------------------
# Our pipeline: the notebooks, headless
# ---------------------------------------------------------------------------------------------
@dataclass
class Stage:
    seconds: float
    peak_rss_mb: float


# The child process that runs the notebooks. Its kernels are its children, so after the run
# getrusage(RUSAGE_CHILDREN).ru_maxrss is the largest resident set of those kernels (and of what
# they waited for, like the decoding pool of notebook 02), in KiB.
RUN_CODE = """
import json, resource, sys
from catsdogs.run import run_notebooks
run_notebooks(sys.argv[3:], out_dir=sys.argv[2])
with open(sys.argv[1], "w") as f:
    json.dump({"ru_maxrss_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}, f)
"""


def run_stage(only: list[str], out_dir: Path) -> Stage:
    """Run notebooks with ``catsdogs.run.run_notebooks`` in a child process; return the wall time
    and the peak RSS of its kernels.

    Why a child process that measures its own children: Linux charges a new process, at ``exec``,
    with the peak RSS of the process that spawned it. Taking ``RUSAGE_CHILDREN`` here, in a
    benchmark process grown to gigabytes by the blog's loop, would report the benchmark's size, not
    the kernel's; and the kernel of notebook 02 (which writes the cache) would count as well.
    """
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    report = out_dir / f".rusage-{'-'.join(only)}.json"
    out_dir.mkdir(parents=True, exist_ok=True)
    report.unlink(missing_ok=True)
    start = time.perf_counter()
    returncode = subprocess.run([sys.executable, "-c", RUN_CODE, str(report), str(out_dir), *only],
                                cwd=REPO, env=env).returncode
    seconds = time.perf_counter() - start
    if returncode != 0 or not report.exists():
        raise SystemExit(f"error: notebook(s) {', '.join(only)} failed (exit {returncode}); "
                         f"the executed notebook with the error is in {out_dir}.")
    return Stage(seconds, json.loads(report.read_text())["ru_maxrss_kib"] / 1024)


def run_dir(ws: Workspace) -> Path:
    return ws.checkpoint_dir / f"modern-{profile()}"


def read_history(ws: Workspace) -> dict:
    """The last row of the run's history.json (notebook 04 writes one row per epoch)."""
    path = run_dir(ws) / "history.json"
    if not path.exists():
        raise SystemExit(f"error: notebook 04 wrote no {path}.")
    return json.loads(path.read_text())[-1]


def our_precision() -> str:
    from catsdogs.training import TrainConfig, pick_device, pick_precision

    return pick_precision(pick_device(), TrainConfig.from_env().precision)


def cache_bytes(ws: Workspace) -> int:
    return sum(f.stat().st_size for f in ws.cache_dir.glob("*.npy"))


def precision_check(ws: Workspace, out_dir: Path, epochs: int, photos: int) -> dict[str, list[dict]]:
    """Notebook 04 from scratch in fp32 and in bf16 (same seed, photos and recipe); the history of each."""
    histories = {}
    for precision in ("fp32", "bf16"):
        os.environ.update(CATSDOGS_PRECISION=precision, CATSDOGS_EPOCHS=str(epochs), CATSDOGS_LIMIT_TRAIN=str(photos))
        shutil.rmtree(ws.checkpoint_dir, ignore_errors=True)  # inside the benchmark's folder: never resume
        print(f"\n== precision check: notebook 04, {precision}, {epochs} epoch(s) on {photos} photos", flush=True)
        run_stage(["04"], out_dir / f"precision-{precision}")
        histories[precision] = json.loads((run_dir(ws) / "history.json").read_text())
    for key in ("CATSDOGS_PRECISION", "CATSDOGS_EPOCHS", "CATSDOGS_LIMIT_TRAIN"):
        os.environ.pop(key, None)
    return histories


def print_precision_check(histories: dict[str, list[dict]]) -> None:
    rows = [("epoch", "fp32 val acc / log loss", "bf16 val acc / log loss")]
    for fp32, bf16 in zip(histories["fp32"], histories["bf16"]):
        rows.append((str(fp32["epoch"]), f"{fp32['val_acc']:.4f} / {fp32['val_loss']:.4f}",
                     f"{bf16['val_acc']:.4f} / {bf16['val_loss']:.4f}"))
    rows.append(("train img/s", fmt(np.mean([h["train_img_s"] for h in histories["fp32"]])),
                 fmt(np.mean([h["train_img_s"] for h in histories["bf16"]]))))
    print("\n" + table(rows))


# ---------------------------------------------------------------------------------------------
# The blog's pipeline, reproduced
# ---------------------------------------------------------------------------------------------
BLOG_TRAIN_TRANSFORMS = transforms.Compose([
    transforms.Resize((224, 224)),
    transforms.RandomResizedCrop(224),
    transforms.RandomHorizontalFlip(),
    transforms.ToTensor(),
])
BLOG_TEST_TRANSFORMS = transforms.Compose([
    transforms.Resize(256),
    transforms.CenterCrop(224),
    transforms.ToTensor(),
])


class CatsDogsDataset(Dataset):
    """The blog's dataset: every item opens and decodes its JPEG again, label from the file name."""

    def __init__(self, file_list: list[str], transform=None):
        self.file_list = file_list
        self.transform = transform

    def __len__(self) -> int:
        self.filelength = len(self.file_list)
        return self.filelength

    def __getitem__(self, idx: int):
        img_path = self.file_list[idx]
        img = Image.open(img_path)
        if img.mode != "RGB":  # not in the blog, which would fail to batch a grayscale photo
            img = img.convert("RGB")
        img_transformed = self.transform(img)
        label = img_path.split("/")[-1].split(".")[0]
        label = 1 if label == "dog" else 0
        return img_transformed, label


def blog_train_files(ws: Workspace) -> list[str]:
    """The training photos of the split notebook 02 wrote: the same photos our pipeline trains on."""
    from catsdogs.cache import load_split

    split = load_split(ws)
    return [str(ws.train_dir / name) for name in split[split.subset == "train"].file]


def endless(loader: DataLoader):
    """Batches of one epoch after another (a small demo set has fewer batches than asked for)."""
    while True:
        yield from loader


def rss_mb() -> float:
    """This process's resident set now, in MB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def release_free_memory() -> None:
    """Return freed heap pages to the system (glibc ``malloc_trim``; a no-op elsewhere)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


@dataclass
class BlogRun:
    img_s: float
    images: int
    batches: int
    planned: int
    stopped_at_mb: float | None  # the RSS limit stopped the loop early
    growth_mb_per_batch: float


def blog_train(files: list[str], n_batches: int | None, max_rss_mb: float, detach: bool = False,
               warmup: int = 2) -> BlogRun:
    """The blog's training loop; images/s over ``n_batches`` batches after ``warmup`` batches
    (``None``: the rest of one epoch).

    The blog accumulates ``epoch_loss += loss / len(train_loader)``: a tensor that keeps every
    batch's autograd graph alive. Its saved activations are freed by ``backward()``, but the
    surviving graph nodes fragment the heap so much that the process grows by 200-300 MB a batch
    (measured with torch 2.14 / glibc on CPU), about 60 GB over a 280-batch epoch. The loop
    therefore stops once the process passes ``max_rss_mb`` and reports the rate so far. With
    ``detach`` it accumulates ``loss.detach()`` instead (the one change that lets a full epoch run).
    """
    from catsdogs.model import build_model

    torch.manual_seed(BLOG_SEED)
    device = "cpu"
    train_loader = DataLoader(dataset=CatsDogsDataset(files, transform=BLOG_TRAIN_TRANSFORMS),
                              batch_size=BLOG_BATCH, shuffle=True)
    model = build_model().to(device)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=BLOG_LR)
    planned = n_batches or max(1, len(train_loader) - warmup)
    model.train()
    epoch_loss, epoch_accuracy, images, batches, stopped = 0, 0, 0, 0, None
    start, rss_start = time.perf_counter(), rss_mb()
    bar = tqdm(itertools.islice(endless(train_loader), warmup + planned), total=warmup + planned,
               desc="blog training", unit="batch")
    for i, (data, label) in enumerate(bar):
        data = data.to(device)
        label = label.to(device)
        output = model(data)
        loss = criterion(output, label)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        acc = (output.argmax(dim=1) == label).float().mean()
        epoch_accuracy += acc / len(train_loader)
        epoch_loss += (loss.detach() if detach else loss) / len(train_loader)
        if i + 1 == warmup:
            start, rss_start = time.perf_counter(), rss_mb()
        elif i + 1 > warmup:
            images, batches = images + len(label), batches + 1
            if rss_mb() > max_rss_mb:
                stopped = rss_mb()
                break
    seconds = time.perf_counter() - start
    bar.close()
    if stopped:
        print(f"blog: stopped after {batches} of {planned} timed batches: the process holds {stopped:,.0f} MB "
              f"(limit {max_rss_mb:,.0f} MB; see --blog-max-rss-gb and --blog-detach)", flush=True)
    return BlogRun(images / seconds, images, batches, planned, stopped, (rss_mb() - rss_start) / max(1, batches))


def blog_predict(model: nn.Module, files: list[str]) -> float:
    """Blog-style inference (PIL per photo, fp32, batch 64, eval mode, no_grad); images/s after one
    warm-up batch."""
    def run(subset: list[str], desc: str | None) -> None:
        loader = DataLoader(CatsDogsDataset(subset, transform=BLOG_TEST_TRANSFORMS), batch_size=BLOG_BATCH,
                            shuffle=False)
        probs = []
        with torch.no_grad():
            for data, _ in tqdm(loader, desc=desc, unit="batch", disable=desc is None):
                output = model(data)
                probs.append(output.softmax(dim=1)[:, 1])
        torch.cat(probs).numpy()

    model.eval()
    run(files[:BLOG_BATCH], None)
    start = time.perf_counter()
    run(files, "blog inference")
    return len(files) / (time.perf_counter() - start)


# ---------------------------------------------------------------------------------------------
# Our inference
# ---------------------------------------------------------------------------------------------
def trained_model(ws: Workspace) -> tuple[nn.Module, str]:
    """The model the benchmark's notebook 04 run saved, or a freshly built one."""
    from catsdogs.model import build_model
    from catsdogs.predict import load_model

    checkpoint = run_dir(ws) / "last.pt"
    if checkpoint.exists():
        return load_model(checkpoint, torch.device("cpu"))[0], str(checkpoint)
    return build_model().eval(), "freshly built (no checkpoint)"


def our_predict(model: nn.Module, cache, n_photos: int, precision: str) -> float:
    """``predict_probs`` through the decode-once cache as notebook 05 calls it (batch 256, no flip
    TTA); images/s after a warm-up batch."""
    from catsdogs.predict import eval_loader, predict_probs

    rows = np.flatnonzero(cache.ok)[:n_photos]
    device = torch.device("cpu")
    predict_probs(model, eval_loader(cache, rows[:256]), device, precision, desc="warm-up")
    start = time.perf_counter()
    predict_probs(model, eval_loader(cache, rows), device, precision, desc="our inference")
    return len(rows) / (time.perf_counter() - start)


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------
def table(rows: list[tuple[str, str, str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = []
    for k, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))))
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def fmt(value: float, digits: int = 1) -> str:
    return f"{value:,.{digits}f}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archive", type=Path, help="a Kaggle-layout competition zip (default: the one in data/, "
                                                     "else a generated DEMO archive)")
    parser.add_argument("--quick", action="store_true", help="small limits, under 5 minutes: 20 blog batches, "
                                                             "2,560 training photos, 1,024 test photos")
    parser.add_argument("--bench-dir", type=Path, default=REPO / "data" / "bench",
                        help="the benchmark's own data folder (default: data/bench)")
    parser.add_argument("--fresh", action="store_true", help="re-extract the photos and rebuild the caches")
    parser.add_argument("--blog-batches", type=int, help="blog batches timed after 2 warm-up batches "
                                                         "(default: 20 with --quick, else the rest of one epoch)")
    parser.add_argument("--limit-train", type=int, help="CATSDOGS_LIMIT_TRAIN for notebook 04 "
                                                        "(default: 2560 with --quick, else all)")
    parser.add_argument("--blog-detach", action="store_true",
                        help="accumulate loss.detach() in the blog loop (not verbatim: lets a full epoch fit in memory)")
    parser.add_argument("--blog-max-rss-gb", type=float, default=round(0.4 * total_ram_gb(), 1),
                        help="stop the blog loop once this process holds this much (default: 40%% of RAM)")
    parser.add_argument("--predict-photos", type=int, help="test photos to predict (default: 1024 with --quick, "
                                                           "else all)")
    parser.add_argument("--precision-check", type=int, default=0, metavar="EPOCHS",
                        help="also train notebook 04 for EPOCHS epochs in fp32 and in bf16 and compare accuracy per epoch")
    parser.add_argument("--precision-photos", type=int, default=6000,
                        help="training photos for --precision-check (default: 6000)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    blog_batches = args.blog_batches or (20 if args.quick else None)
    limit_train = args.limit_train if args.limit_train is not None else (2560 if args.quick else 0)
    predict_photos = args.predict_photos or (1024 if args.quick else 0)
    started = time.perf_counter()
    load_start = load_average()
    warn_if_busy("start")

    bench_dir = prepare_bench_dir(args.bench_dir, args.fresh)
    archive = args.archive or default_archive()
    demo = archive is None
    if demo:
        archive = demo_archive(bench_dir)
        banner(f"NO ARCHIVE GIVEN AND NONE IN {REPO / 'data'}: USING A GENERATED DEMO ARCHIVE ({archive}).\n"
               "Synthetic pictures, not the Kaggle photos: these figures say little about the real pipeline.\n"
               "Pass --archive PATH/dogs-vs-cats-redux-kernels-edition.zip for the real benchmark.")
    archive = archive.expanduser().resolve()
    if not archive.is_file():
        raise SystemExit(f"error: no archive at {archive}")
    settings = set_environment(bench_dir, archive, limit_train)
    print(f"archive: {archive}\nbench folder: {bench_dir}\nnotebook environment: {settings}", flush=True)
    out_dir = bench_dir / "runs"

    # Our pipeline, part 1: notebooks 01 (extract) and 02 (split, decode-once cache).
    print("\n== our pipeline: notebooks 01 and 02 (extraction and cache are reused when an earlier run made them)", flush=True)
    prep = run_stage(["01", "02"], out_dir)
    ws = workspace()
    if not inside(ws.root, bench_dir):
        raise SystemExit(f"error: the notebooks used {ws.root}, outside {bench_dir}.")
    counts = json.loads((ws.root / ".extracted").read_text())
    print(f"photos: {counts['train']} labelled, {counts['test']} test ({ws.root})", flush=True)
    if counts["train"] < 20_000 and not demo:
        banner(f"This archive holds {counts['train']} labelled photos; Kaggle's holds 25,000. If it is a demo "
               "archive, the figures say little about the real photos.")

    # The blog's pipeline, on the training photos of that split.
    files = blog_train_files(ws)
    print(f"\n== the blog's pipeline: {len(files)} training photos, batch {BLOG_BATCH}, fp32, no workers", flush=True)
    blog = blog_train(files, blog_batches, args.blog_max_rss_gb * 1024, detach=args.blog_detach)
    blog_img_s = blog.img_s
    blog_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"blog: {blog_img_s:.1f} img/s over {blog.images} photos; the process grew "
          f"{blog.growth_mb_per_batch:,.0f} MB a batch", flush=True)
    release_free_memory()  # give the blog loop's heap back before the notebooks and inference run

    # Our pipeline, part 2: notebook 04, one epoch from scratch.
    shutil.rmtree(ws.checkpoint_dir, ignore_errors=True)  # inside the benchmark's folder: never resume
    print("\n== our pipeline: notebook 04, one epoch (its progress bar is inside the notebook)", flush=True)
    train = run_stage(["04"], out_dir)
    history = read_history(ws)
    precision = our_precision()
    print(f"ours: {history['train_img_s']:.1f} img/s, epoch {history['epoch_s']:.0f} s (with validation)", flush=True)

    # Inference: ours through the decode-once cache, then the blog's.
    from catsdogs.cache import test_cache

    print("\n== inference", flush=True)
    cached_before = (ws.cache_dir / "test_224.npy").exists()
    start = time.perf_counter()
    tests = test_cache(ws)
    test_cache_s = time.perf_counter() - start
    model, model_source = trained_model(ws)
    n_predict = min(predict_photos or len(tests), int(tests.ok.sum()))
    predict_img_s = our_predict(model, tests, n_predict, precision)
    test_files = [str(ws.test_dir / tests.names[i]) for i in np.flatnonzero(tests.ok)[:n_predict]]
    blog_predict_img_s = blog_predict(model, test_files)
    cache_gb = cache_bytes(ws) / 1e9
    checked = precision_check(ws, out_dir, args.precision_check, args.precision_photos) if args.precision_check else None
    warn_if_busy("end")

    train_img_s = history["train_img_s"]
    decode_s = 0.0 if cached_before else test_cache_s / max(1, len(tests))
    result = {
        "archive": str(archive), "demo": demo, "quick": args.quick,
        "photos": {"train_split": len(files), "trained_ours": min(limit_train or len(files), len(files)),
                   "test": len(tests), "predicted": n_predict},
        "blog_train_img_s": round(blog_img_s, 2), "train_img_s": round(train_img_s, 2),
        "speedup": round(train_img_s / blog_img_s, 2),
        "epoch_s_per_20000": {"blog": round(EPOCH_PHOTOS / blog_img_s, 1), "ours": round(EPOCH_PHOTOS / train_img_s, 1)},
        "epoch_s": round(history["epoch_s"], 1),
        "predict_img_s": round(predict_img_s, 2), "blog_predict_img_s": round(blog_predict_img_s, 2),
        "predict_speedup": round(predict_img_s / blog_predict_img_s, 2),
        "predict_s_12500_extrapolated": {"ours": round(KAGGLE_TEST_PHOTOS / predict_img_s, 1),
                                         "ours_with_decode_once": round(KAGGLE_TEST_PHOTOS * (1 / predict_img_s + decode_s), 1)
                                         if not cached_before else None,
                                         "blog": round(KAGGLE_TEST_PHOTOS / blog_predict_img_s, 1)},
        "test_cache_s": round(test_cache_s, 1), "test_cache_reused": cached_before,
        "peak_rss_mb": round(train.peak_rss_mb), "prep_peak_rss_mb": round(prep.peak_rss_mb),
        "blog_process_peak_rss_mb": round(blog_rss_mb),
        "blog_loop": {"loss_accumulation": "loss.detach() (--blog-detach)" if args.blog_detach
                      else "loss, keeping the autograd graph (verbatim)",
                      "batches_timed": blog.batches, "batches_planned": blog.planned, "images_timed": blog.images,
                      "stopped_by_rss_limit": blog.stopped_at_mb is not None,
                      "rss_growth_mb_per_batch": round(blog.growth_mb_per_batch)},
        "cache_gb": round(cache_gb, 3), "prep_s": round(prep.seconds, 1), "notebook04_s": round(train.seconds, 1),
        "precision": {"blog": "fp32", "ours": precision},
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "torch": torch.__version__, "python": platform.python_version(),
                    "load_avg_start": round(load_start, 2), "load_avg_end": round(load_average(), 2)},
        "model": model_source, "total_s": round(time.perf_counter() - started, 1),
    }
    if checked:
        result["precision_check"] = {p: [{k: round(row[k], 4) for k in ("epoch", "val_acc", "val_loss", "train_img_s")}
                                         for row in rows] for p, rows in checked.items()}
    print_report(result)
    if checked:
        print_precision_check(checked)
    print(json.dumps(result))
    return 0


def print_report(r: dict) -> None:
    m, e, p = r["machine"], r["epoch_s_per_20000"], r["predict_s_12500_extrapolated"]
    print("\n" + "=" * 100)
    if r["demo"]:
        print("DEMO ARCHIVE (synthetic pictures): NOT the Kaggle photos. Figures below are for checking the script only.")
    print(f"machine: {m['cpu']}, {m['cores']} cores, {m['torch_threads']} torch threads, torch {m['torch']}, "
          f"Python {m['python']}; load average {m['load_avg_start']} at start, {m['load_avg_end']} at end")
    print(f"archive: {r['archive']}  ({r['photos']['train_split']} training photos in the split, "
          f"{r['photos']['test']} test photos){'  [--quick]' if r['quick'] else ''}\n")
    rows = [("", "blog", "ours"),
            ("precision", r["precision"]["blog"], r["precision"]["ours"]),
            ("photos", "PIL decode, every epoch", "decode-once uint8 cache"),
            ("training images/s", fmt(r["blog_train_img_s"]), fmt(r["train_img_s"])),
            ("training speed-up", "1.0x", f"{r['speedup']:.2f}x"),
            ("s per 20,000-photo epoch (training only)", fmt(e["blog"], 0), fmt(e["ours"], 0)),
            ("measured epoch s (notebook 04, with validation)", "-", fmt(r["epoch_s"], 0)),
            ("peak RSS MB", f"{r['blog_process_peak_rss_mb']:,} (process)", f"{r['peak_rss_mb']:,} (kernel)"),
            ("inference images/s", fmt(r["blog_predict_img_s"]), fmt(r["predict_img_s"])),
            ("inference speed-up", "1.0x", f"{r['predict_speedup']:.2f}x"),
            ("12,500 test photos, s (EXTRAPOLATED)", fmt(p["blog"], 0), fmt(p["ours"], 0)),
            ]
    if p["ours_with_decode_once"] is not None:
        rows.append(("  same, counting the one-time decode (EXTRAPOLATED)", fmt(p["blog"], 0), fmt(p["ours_with_decode_once"], 0)))
    print(table(rows))
    print(f"\nours, one-time costs: notebooks 01+02 {r['prep_s']:.0f} s (extraction + decode-once cache; only kernel "
          f"start-ups when reused), peak RSS {r['prep_peak_rss_mb']:,} MB; test cache {r['test_cache_s']:.1f} s "
          f"({'reused' if r['test_cache_reused'] else 'built'}); cache on disk {r['cache_gb']:.2f} GB")
    b = r["blog_loop"]
    print(f"blog loop: {b['batches_timed']} of {b['batches_planned']} batches timed"
          f"{' (STOPPED by the RSS limit)' if b['stopped_by_rss_limit'] else ''}; loss accumulated as "
          f"{b['loss_accumulation']}; the process grew {b['rss_growth_mb_per_batch']:,} MB a batch")
    print(f"blog: training rate after 2 warm-up batches; ours: notebook 04's whole epoch "
          f"({r['photos']['trained_ours']} photos, first batches included); inference on {r['photos']['predicted']} "
          f"test photos with {r['model']}; total {r['total_s']:.0f} s")
    print("=" * 100)


if __name__ == "__main__":
    sys.exit(main())
