"""Benchmark: the blog's training loop against our notebooks, in one run, on the same photos.

1. **The blog's loop**, as the blog wrote it: PIL opens every JPEG each time, the blog's transforms
   (``Resize((224, 224))``, ``RandomResizedCrop(224)``, ``RandomHorizontalFlip()``, ``ToTensor()``),
   batch 64 shuffled, no workers, fp32, ``catsdogs.model.build_model()``, Adam 3e-5, cross-entropy,
   the blog's loop body. One fix, in the baseline: the blog's ``epoch_loss += loss / len(train_loader)``
   keeps every batch's autograd graph (the process grows 200-300 MB a batch), so the baseline adds
   ``loss.detach()``; ``--blog-leak`` also times the verbatim leaky loop, reported apart
   (``blog_leaky_img_s``). Images/s over ``--blog-batches`` batches after 2 warm-up batches.
2. **Ours**, exactly what a learner runs: notebooks 01, 02, 04, 05 headless (``run_notebooks``), the
   default recipe with its CNN teacher, 1 teacher epoch and 1 ViT epoch. The ViT's ``train_img_s``
   (its loop includes the teacher's answers) and the epoch times come from the ``history.json`` files.
3. ``speedup`` = ours' images/s / the blog loop's (leak fixed). ``pipeline_min`` = the default
   pipeline projected: notebooks 01 + 02 + 05 + the teacher's and the ViT's epochs as notebook 04's
   parameters cell sets them (``teacher_epochs``, and ``epochs`` or fewer as its ``minutes`` plan gives) + the rest of notebook 04. When ``limit_train`` cut the photos, an epoch's
   training part is scaled to the whole training split; its validation part (every photo) is not.
   ``minutes_to_final_accuracy`` = the same projection up to the default recipe's final accuracy:
   the best epoch and the figures that notebooks 04 and 05 store in their outputs (the run on the
   Kaggle photos the repository keeps), then notebook 05's test-time options;
   ``epochs_to_final_accuracy`` = that best epoch: with ``speedup``, the two factors of time to
   accuracy apart (ViT epochs needed, and photos a second against the blog's loop), comparable
   across machines.

Every figure is a wall-clock rate: noisy on a busy machine (flagged ``busy``: other work on the
CPU, see ``machine_busy``). bf16 against fp32 accuracy was measured earlier (the old
``--precision-check``): see the README. Without ``--archive``: the zip in ``data/``, else a
generated DEMO archive (synthetic: the figures say little). Work files go to ``--bench-dir``
(default ``data/bench``), never ``data/kaggle``; its checkpoints are deleted first so notebook 04
never resumes. The last line printed is the JSON.

``--tricks`` instead times what the speed-ups buy (``catsdogs.speed.BatchedMuon``, the per-pixel
normalisation table of ``Device.input``): the training step of the seed model (batch 128, the
default recipe's Muon, no teacher) on random photos, with all of them and with each one swapped for
the plain code it stands in for, interleaved, the median of three rounds.

    python scripts/benchmark.py --quick --archive PATH/dogs-vs-cats-redux-kernels-edition.zip
    python scripts/benchmark.py --tricks
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import resource
import shutil
import sys
import time
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import torch  # noqa: E402
from PIL import Image  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402
from torchvision import transforms  # noqa: E402
from tqdm import tqdm  # noqa: E402

from catsdogs.config import ARCHIVE_NAME  # noqa: E402  (reads no environment variable)
from catsdogs.run import parse_parameter  # noqa: E402

NOTEBOOKS = ["01", "02", "04", "05"]
MARKER = ".catsdogs-benchmark"
BLOG_BATCH, BLOG_LR, BLOG_SEED = 64, 3e-5, 42

# --- The blog's pipeline -----------------------------------------------------------------------
train_transforms = transforms.Compose([
    transforms.Resize((224, 224)),
    transforms.RandomResizedCrop(224),
    transforms.RandomHorizontalFlip(),
    transforms.ToTensor(),
])


class CatsDogsDataset(Dataset):
    """The blog's dataset: every item opens and decodes its JPEG again; the label from the file name."""

    def __init__(self, file_list, transform=None):
        self.file_list = file_list
        self.transform = transform

    def __len__(self):
        self.filelength = len(self.file_list)
        return self.filelength

    def __getitem__(self, idx):
        img_path = self.file_list[idx]
        img = Image.open(img_path)
        if img.mode != "RGB":  # not in the blog, which cannot batch a grayscale photo with the others
            img = img.convert("RGB")
        img_transformed = self.transform(img)
        label = img_path.split("/")[-1].split(".")[0]
        label = 1 if label == "dog" else 0
        return img_transformed, label


def blog_train(files: list[str], batches: int, *, leak=False, warmup=2, batch_size=BLOG_BATCH) -> dict:
    """The blog's training loop for ``warmup + batches`` batches (another epoch when the photos run
    out); images/s over the last ``batches``. ``leak``: the blog's ``epoch_loss += loss / ...``,
    which keeps each batch's autograd graph; otherwise ``loss.detach()``."""
    from catsdogs.model import build_model

    torch.manual_seed(BLOG_SEED)
    device = "cpu"
    train_loader = DataLoader(dataset=CatsDogsDataset(files, transform=train_transforms),
                              batch_size=batch_size, shuffle=True)
    model = build_model().to(device)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=BLOG_LR)
    model.train()
    epoch_loss, epoch_accuracy, done, images, start = 0, 0, 0, 0, time.perf_counter()
    while done < warmup + batches:
        for data, label in tqdm(train_loader, desc=f"blog loop{' (leaky)' if leak else ''}", leave=False):
            data = data.to(device)
            label = label.to(device)

            output = model(data)
            loss = criterion(output, label)

            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

            acc = (output.argmax(dim=1) == label).float().mean()
            epoch_accuracy += acc / len(train_loader)
            epoch_loss += (loss if leak else loss.detach()) / len(train_loader)  # the blog: `loss`
            done += 1
            if done == warmup:
                start = time.perf_counter()
            elif done > warmup:
                images += len(label)
            if done == warmup + batches:
                break
    seconds = time.perf_counter() - start
    return dict(img_s=images / seconds, images=images, epoch_loss=epoch_loss,
                peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


# --- Ours: the notebooks -----------------------------------------------------------------------
def epoch_figures(run_dir: Path, photos: int, full: int) -> dict:
    """A run's images/s and epoch seconds; one epoch projected to ``full`` photos (validation as measured)."""
    from catsdogs.checkpoints import read_history

    history = read_history(run_dir / "history.json")
    if not history:
        raise SystemExit(f"error: notebook 04 wrote no history in {run_dir}")
    row = history[-1]
    train_s = photos / row["train_img_s"]
    return dict(img_s=row["train_img_s"], epoch_s=row["epoch_s"], seconds=sum(r["epoch_s"] for r in history),
                full_epoch_s=full / row["train_img_s"] + max(0.0, row["epoch_s"] - train_s))


# --- The machine, the archive, the folder ------------------------------------------------------
def stored_final_accuracy(folder: Path = REPO / "notebooks") -> dict | None:
    """The default recipe's final accuracy as the stored run wrote it ("This run in numbers" of notebooks
    04 and 05): the best epoch on whole photos and with notebook 05's test-time options; None where
    they are not stored."""
    def summary(name: str) -> dict | None:
        nb = nbformat.read(folder / name, as_version=4)
        return next((o["data"]["application/json"] for c in nb.cells if c.cell_type == "code"
                     for o in c.get("outputs", []) if "application/json" in o.get("data", {})), None)

    trained, submitted = summary("04_train.ipynb"), summary("05_submission.ipynb")
    if not (trained and submitted):
        return None
    return {"best_epoch": trained["best_epoch"], "val_acc": trained["validation"]["accuracy"],
            "val_loss": trained["validation"]["log_loss"],
            "with_tta": {"val_acc": submitted["validation"]["accuracy"], "val_loss": submitted["validation"]["log_loss"]}}


def cpu_model() -> str:
    info = Path("/proc/cpuinfo")
    lines = info.read_text().splitlines() if info.exists() else []
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "unknown")


def find_archive(given: Path | None, bench_dir: Path) -> tuple[Path, bool]:
    """The archive to use (given, else the one in data/, as the notebooks find it) and whether it is
    the generated demo."""
    from catsdogs.archives import DatasetError, find_archive as competition_archive

    try:
        found = competition_archive(given)
    except DatasetError as err:
        raise SystemExit(f"error: {err}") from None
    if found is not None:
        return Path(found).resolve(), False
    from catsdogs.demo import make_demo_archive

    path = bench_dir / "demo-archive" / ARCHIVE_NAME
    if not path.exists():
        make_demo_archive(path, per_class=1500, n_test=500, size=160)
    print("!" * 90 + f"\nNO ARCHIVE GIVEN AND NONE IN data/: USING A GENERATED DEMO ARCHIVE ({path}).\n"
          "Synthetic pictures: these figures say little about the real photos. Pass --archive.\n" + "!" * 90)
    return path, True


def prepare_bench_dir(bench_dir: Path) -> Path:
    """The benchmark's own folder; refuses a non-empty one it did not make (a real run's data)."""
    bench_dir = bench_dir.expanduser().resolve()
    if bench_dir.exists() and any(bench_dir.iterdir()) and not (bench_dir / MARKER).exists():
        raise SystemExit(f"error: {bench_dir} is not empty and not made by this benchmark: choose another --bench-dir")
    bench_dir.mkdir(parents=True, exist_ok=True)
    (bench_dir / MARKER).write_text("work folder of scripts/benchmark.py; safe to delete\n")
    return bench_dir


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--archive", type=Path, help="the competition zip (default: the one in data/, else a generated DEMO)")
    p.add_argument("--bench-dir", type=Path, default=REPO / "data" / "bench", help="work folder (default data/bench)")
    p.add_argument("--quick", action="store_true", help="a few minutes: 20 blog batches, 3,000 training photos")
    p.add_argument("--blog-batches", type=int, help="blog batches timed after 2 warm-up ones (default 50, --quick 20)")
    p.add_argument("--limit-train", type=int, help="training photos for notebook 04 (default all, --quick 3000)")
    p.add_argument("--blog-leak", action="store_true", help="also time the blog's verbatim leaky loss accumulation "
                   "(grows 200-300 MB a batch)")
    p.add_argument("--fresh", action="store_true", help="extract the photos and build the caches again")
    p.add_argument("--tricks", action="store_true", help="only time what each speed-up of catsdogs/speed.py buys")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="another notebook parameter (a Python literal), e.g. batch_size=32")
    return p.parse_args(argv)


def machine_busy(load_start: float, load_end: float, cores: int, threads: int) -> bool:
    """Whether other work shared the CPU. The 1-minute load average at the end counts this benchmark's
    own ``threads`` too, so only load beyond them (by half the cores) is someone else's; at the start
    nothing of ours runs yet."""
    return load_start > cores / 2 or load_end > threads + cores / 2


def trick_step_times(rounds: int = 3, steps: int = 3) -> dict:
    """Milliseconds a training step with every speed-up, and with each one replaced by its plain code."""
    import statistics

    import torch.nn.functional as F

    from catsdogs.device import IMAGENET_MEAN, IMAGENET_STD, Device
    from catsdogs.model import build_model, mimetic_init_
    from catsdogs.speed import BatchedMuon
    from catsdogs.training import make_optimizers

    device = Device.pick()
    images, labels = torch.randint(0, 256, (128, 3, 224, 224), dtype=torch.uint8), torch.randint(0, 2, (128,))
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) * 255 for v in (IMAGENET_MEAN, IMAGENET_STD))
    dtype = torch.bfloat16 if device.precision == "bf16" else torch.float32

    def step_of(batched_muon=True, table=True):
        torch.manual_seed(0)
        model = mimetic_init_(build_model())
        optimizers = make_optimizers(model, optimizer="muon", lr=1e-3, weight_decay=0.05)
        if not batched_muon:
            muon = optimizers[0]
            optimizers[0] = torch.optim.Muon([p for g in muon.param_groups for p in g["params"]], lr=0.006,
                                             weight_decay=0.008)
            assert type(muon) is BatchedMuon

        def step():
            x = device.input(images) if table else ((images.float() - mean) / std).to(dtype, memory_format=torch.channels_last)
            model.zero_grad(set_to_none=True)
            with device.autocast():
                loss = F.cross_entropy(model(x).float(), labels, label_smoothing=0.1)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            for optimizer in optimizers:
                optimizer.step()
        return step

    variants = {"all": step_of(), "torch.optim.Muon": step_of(batched_muon=False),
                "plain normalisation": step_of(table=False)}
    times = {name: [] for name in variants}
    for step in variants.values():
        step(), step()  # warm-up
    for _ in range(rounds):
        for name, step in variants.items():
            started = time.perf_counter()
            for _ in range(steps):
                step()
            times[name].append((time.perf_counter() - started) / steps)
    ms = {name: statistics.median(t) * 1000 for name, t in times.items()}
    return {"precision": device.precision, "step_ms": {k: round(v, 1) for k, v in ms.items()},
            "share_of_step": {k: round(v / ms["all"] - 1, 3) for k, v in ms.items() if k != "all"}}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.tricks:
        result = {**trick_step_times(), "cpu": cpu_model(), "torch": torch.__version__,
                  "cpu_capability": torch.backends.cpu.get_cpu_capability(), "threads": torch.get_num_threads()}
        print(json.dumps(result))
        return 0
    blog_batches = args.blog_batches or (20 if args.quick else 50)
    limit_train = args.limit_train if args.limit_train is not None else (3000 if args.quick else 0)
    extra = dict(parse_parameter(p) for p in args.param)
    load_start, started = round(os.getloadavg()[0], 2), time.perf_counter()

    bench_dir = prepare_bench_dir(args.bench_dir)
    for key in [k for k in os.environ if k.startswith("CATSDOGS_")]:  # no stray override from the shell
        del os.environ[key]
    archive, demo = find_archive(args.archive, bench_dir)
    os.environ.update(CATSDOGS_DATA=str(bench_dir), CATSDOGS_ARCHIVE=str(archive), CATSDOGS_PROFILE="full")
    from catsdogs.checkpoints import load_checkpoint
    from catsdogs.config import kaggle_workspace
    from catsdogs.data import load_or_make_split
    from catsdogs.device import Device, native_bf16
    from catsdogs.config import parameter_sources
    from catsdogs.run import NotebookFailed, run_notebooks

    ws = kaggle_workspace()  # an archive given by CATSDOGS_ARCHIVE is extracted here, in the bench folder
    if bench_dir not in ws.root.parents:
        raise SystemExit(f"error: the workspace {ws.root} is outside {bench_dir}")
    if args.fresh:
        shutil.rmtree(ws.root, ignore_errors=True)
    prepared_earlier = ws.extracted_marker.exists()
    shutil.rmtree(ws.checkpoint_dir, ignore_errors=True)  # notebook 04 must train from scratch, never resume
    print(f"archive: {archive}\nbench folder: {bench_dir}", flush=True)

    # Ours: the notebooks, one epoch of the teacher and one of the ViT.
    parameters = dict(epochs=1, teacher_epochs=1, limit_train=limit_train, **extra)
    try:
        results = run_notebooks(NOTEBOOKS, out_dir=bench_dir / "runs", parameters=parameters)
    except NotebookFailed as err:
        raise SystemExit(f"error: {err} (the executed notebooks are in {bench_dir / 'runs'})") from None
    seconds = {r.name[:2]: r.seconds for r in results}

    # The blog's loop, on the same training photos.
    split = load_or_make_split(ws)
    files = [str(ws.train_dir / name) for name in split[split.subset == "train"].file]
    print(f"\n== the blog's loop: {len(files):,} training photos, batch {BLOG_BATCH}, fp32, no workers", flush=True)
    blog = blog_train(files, blog_batches)
    leaky = blog_train(files, blog_batches, leak=True) if args.blog_leak else None

    recipe = {name: ast.literal_eval(value) for name, value in parameter_sources(REPO / "notebooks" / "04_train.ipynb").items()}
    config = load_checkpoint(ws.run_dir(recipe["recipe"]) / "last.pt")["train_config"]
    batch, limit = config["batch_size"], config["limit_train"]
    photos = min(limit or len(files), len(files)) // batch * batch  # drop_last: whole batches only
    full = len(files) // batch * batch
    vit = epoch_figures(ws.run_dir(recipe["recipe"]), photos, full)
    teacher = epoch_figures(ws.run_dir("teacher"), photos, full)  # the teacher trains on the same loader
    teacher_epochs, vit_epochs = recipe["teacher_epochs"], recipe["epochs"]
    if recipe.get("minutes"):  # notebook 04's plan: at most `epochs`, as many as fit in `minutes` after the teacher
        left_s = recipe["minutes"] * 60 - teacher_epochs * teacher["full_epoch_s"]
        vit_epochs = min(vit_epochs, max(0, int(left_s // vit["full_epoch_s"])))
    nb04_other = seconds["04"] - teacher["seconds"] - vit["seconds"]
    pipeline_s = (seconds["01"] + seconds["02"] + seconds["05"] + teacher_epochs * teacher["full_epoch_s"]
                  + vit_epochs * vit["full_epoch_s"] + nb04_other)
    final = stored_final_accuracy()  # the best epoch comes before the last: the rest of 04 and 05 still run
    to_final_s = (pipeline_s - max(0, vit_epochs - final["best_epoch"]) * vit["full_epoch_s"]) if final else None
    amortized = 1 / (1 / vit["img_s"] + teacher_epochs / vit_epochs / teacher["img_s"])
    load_end, cores = round(os.getloadavg()[0], 2), os.cpu_count() or 1
    result = {
        "speedup": round(vit["img_s"] / blog["img_s"], 2), "blog_leak_fixed": True,
        "pipeline_min": round(pipeline_s / 60, 1),
        "minutes_to_final_accuracy": round(to_final_s / 60, 1) if final else None,
        "epochs_to_final_accuracy": final["best_epoch"] if final else None, "final_accuracy": final,
        "blog_img_s": round(blog["img_s"], 2), "ours_img_s": round(vit["img_s"], 2),
        "speedup_teacher_training_amortized": round(amortized / blog["img_s"], 2),
        "teacher_img_s": round(teacher["img_s"], 2),
        "teacher_epoch_s": round(teacher["epoch_s"], 1), "vit_epoch_s": round(vit["epoch_s"], 1),
        "teacher_epoch_s_full": round(teacher["full_epoch_s"], 1), "vit_epoch_s_full": round(vit["full_epoch_s"], 1),
        "projected_epochs": {"teacher": teacher_epochs, "vit": vit_epochs},
        "notebook_s": {k: round(v, 1) for k, v in seconds.items()}, "notebook04_other_s": round(nb04_other, 1),
        "photos": {"train_split": len(files), "trained": photos, "blog_timed": blog["images"]},
        "blog_batches": blog_batches, "ours_precision": Device.pick(config["precision"]).precision,
        "blog_peak_rss_mb": round(blog["peak_rss_mb"]), "parameters": parameters,
        "archive": str(archive), "demo": demo, "quick": args.quick, "prepared_earlier": prepared_earlier,
        "machine": {"cpu": cpu_model(), "cores": cores, "torch": torch.__version__,
                    "cpu_capability": torch.backends.cpu.get_cpu_capability(),  # AVX2, AVX512...
                    "native_bf16": native_bf16(torch.device("cpu")),  # bf16 units: the figures differ widely
                    "torch_threads": torch.get_num_threads(), "load_avg_start": load_start, "load_avg_end": load_end,
                    "busy": machine_busy(load_start, load_end, cores, torch.get_num_threads())},
        "total_s": round(time.perf_counter() - started, 1),
        **({"blog_leaky_img_s": round(leaky["img_s"], 2), "blog_leaky_peak_rss_mb": round(leaky["peak_rss_mb"])}
           if leaky else {}),
    }
    report(result)
    print(json.dumps(result))
    return 0


def report(r: dict) -> None:
    m, nb, n = r["machine"], r["notebook_s"], r["photos"]
    print("\n" + "=" * 90)
    if r["demo"]:
        print("DEMO ARCHIVE (synthetic pictures): these figures say little about the real photos.")
    print(f"machine: {m['cpu']}, {m['cores']} cores, {m['cpu_capability']}, "
          f"{'with' if m['native_bf16'] else 'no'} bf16 units, torch {m['torch']} ({m['torch_threads']} threads); load average "
          f"{m['load_avg_start']} at start, {m['load_avg_end']} at end"
          + ("  BUSY: the figures are noisy" if m["busy"] else ""))
    print(f"blog loop (PIL each epoch, fp32, batch 64, loss detached): {r['blog_img_s']:.1f} img/s over {n['blog_timed']:,} photos")
    if "blog_leaky_img_s" in r:
        print(f"blog loop, verbatim leaky accumulation: {r['blog_leaky_img_s']:.1f} img/s, "
              f"process peak {r['blog_leaky_peak_rss_mb']:,} MB (not the baseline)")
    print(f"ours (notebook 04, ViT + teacher's answers, {r['ours_precision']}): {r['ours_img_s']:.1f} img/s over "
          f"{n['trained']:,} photos  ->  speed-up {r['speedup']:.2f}x "
          f"({r['speedup_teacher_training_amortized']:.2f}x counting the teacher's own training)")
    print(f"one epoch: teacher {r['teacher_epoch_s']:.0f} s ({r['teacher_img_s']:.0f} img/s), ViT {r['vit_epoch_s']:.0f} s"
          f"; on all {n['train_split']:,} photos: {r['teacher_epoch_s_full']:.0f} s and {r['vit_epoch_s_full']:.0f} s")
    print("notebooks: " + ", ".join(f"{k} {v:.0f} s" for k, v in nb.items())
          + (" (photos and caches from an earlier run: 01 and 02 did little)" if r["prepared_earlier"] else ""))
    print(f"whole default pipeline, PROJECTED ({r['projected_epochs']['teacher']} teacher + {r['projected_epochs']['vit']} "
          f"ViT epochs): {r['pipeline_min']:.0f} min; this run took {r['total_s']:.0f} s")
    if r["final_accuracy"]:
        f = r["final_accuracy"]
        print(f"to the default recipe's final accuracy, PROJECTED: {r['minutes_to_final_accuracy']:.0f} min, "
              f"{r['epochs_to_final_accuracy']} ViT epochs (best epoch "
              f"{f['best_epoch']}: {f['val_acc']:.4f} / {f['val_loss']:.4f} on whole photos, {f['with_tta']['val_acc']:.4f} / "
              f"{f['with_tta']['val_loss']:.4f} with notebook 05's test-time options, as the stored notebooks print them)")
    print("=" * 90, flush=True)


if __name__ == "__main__":
    sys.exit(main())
