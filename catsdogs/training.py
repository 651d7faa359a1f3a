"""Training plumbing: recipes, device and precision, optimiser schedule, checkpoints.

The training loop itself is written out in notebook 04; this module holds what the loop calls.
"""
from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import pickle
import re
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import torch
from torch import nn

from .config import is_small, kaggle_workspace

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class TrainConfig:
    """One training recipe. ``blog()`` reproduces the popular notebook; ``modern()`` is ours."""

    recipe: str = "modern"
    init: str = "mimetic"  # "mimetic" (attention starts local, see model.mimetic_init_) or "default" (the libraries')
    epochs: int = 30
    batch_size: int = 128
    optimizer: str = "muon"  # "adam" (blog), "adamw", or "muon" (Muon for the transformer's matrices, AdamW elsewhere)
    lr: float = 1e-3  # Adam / AdamW
    weight_decay: float = 0.05
    muon_lr: float = 0.006  # Muon's own scale: its steps are orthogonalised, not divided by a running RMS
    muon_weight_decay: float = 0.008  # lr x decay about equal to AdamW's (0.006 x 0.008 ~ 1e-3 x 0.05)
    schedule: str = "cosine"  # "constant" (blog) or warm-up then "cosine"
    warmup_epochs: float = 2.0
    label_smoothing: float = 0.1
    crop_scale: tuple[float, float] = (0.35, 1.0)  # random resized crop: share of the photo kept
    grad_clip: float = 1.0  # clip the gradient norm to this; 0 = off
    distill: float = 1.0  # weight of the CNN teacher's predictions in the loss (catsdogs.teacher); 0 = labels only
    seed: int = 42
    precision: str = "auto"  # "auto", "bf16", "fp16" or "fp32"
    num_workers: int = -1  # -1 = sized to the machine
    compile: bool = False  # torch.compile the model (measured slower on the 2-core CPU: see notebook 04)
    limit_train: int = 0  # 0 = all training photos; a number keeps the first N (quick runs)

    @classmethod
    def blog(cls, **overrides) -> "TrainConfig":
        """The blog's recipe: Adam at a constant 3e-5 (its StepLR is never stepped), batch 64,
        random resized crop at torchvision's default scale, plain cross-entropy, 20 epochs."""
        base = cls(recipe="blog", init="default", epochs=20, batch_size=64, optimizer="adam", lr=3e-5, weight_decay=0.0,
                   schedule="constant", warmup_epochs=0.0, label_smoothing=0.0, crop_scale=(0.08, 1.0),
                   grad_clip=0.0, distill=0.0)
        return replace(base, **overrides)

    @classmethod
    def modern(cls, **overrides) -> "TrainConfig":
        return replace(cls(), **overrides)

    @classmethod
    def from_env(cls, recipe: str | None = None) -> "TrainConfig":
        """The recipe named by ``$CATSDOGS_RECIPE`` (default ``modern``), with any field overridden
        by ``$CATSDOGS_<FIELD>`` (for example ``CATSDOGS_EPOCHS=3``). The ``small`` profile trains
        one short epoch."""
        recipe = os.environ.get("CATSDOGS_RECIPE", recipe or "modern")
        if recipe not in ("blog", "modern"):
            raise ValueError(f"CATSDOGS_RECIPE must be 'blog' or 'modern', not {recipe!r}.")
        config = cls.blog() if recipe == "blog" else cls.modern()
        if is_small():
            config = replace(config, epochs=1, batch_size=32, warmup_epochs=0.0)
        overrides = {}
        for field in fields(cls):
            raw = os.environ.get(f"CATSDOGS_{field.name.upper()}")
            if raw is None or field.name == "recipe":
                continue
            current = getattr(config, field.name)
            if isinstance(current, tuple):
                overrides[field.name] = tuple(float(v) for v in raw.split(","))
            elif isinstance(current, bool):  # bool("0") would be True
                overrides[field.name] = raw.strip().lower() in ("1", "true", "yes", "on")
            else:
                overrides[field.name] = type(current)(raw)
        return replace(config, **overrides)

    def to_dict(self) -> dict:
        return asdict(self)


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def pick_precision(device: torch.device, requested: str = "auto") -> str:
    """bf16 where the hardware does it natively (recent GPUs, CPUs with AVX512-BF16 or AMX), fp16
    on older GPUs, fp32 elsewhere: emulated bf16 on an older CPU is slower than fp32."""
    if requested != "auto":
        if requested not in ("bf16", "fp16", "fp32"):
            raise ValueError(f"precision must be auto, bf16, fp16 or fp32, not {requested!r}")
        return requested
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    return "bf16" if native else "fp32"


def autocast(device: torch.device, precision: str):
    """The mixed-precision context for a forward pass (a no-op in fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


def num_workers(device: torch.device, requested: int = -1) -> int:
    """DataLoader workers: on a GPU machine augmentation overlaps with compute, so use the cores. On
    a CPU the cores are busy computing: a worker process competing with them was measured slower
    (188 against 202 images/s on 2 cores) than augmenting in the main process."""
    if requested >= 0:
        return requested
    cores = os.cpu_count() or 1
    return min(4, cores) if device.type == "cuda" else 0


def to_model_input(images: torch.Tensor, device: torch.device, precision: str) -> torch.Tensor:
    """uint8 NCHW batch → ImageNet-normalised float on the device, channels-last in memory.

    Channels-last makes the ViT's patch rearrangement read contiguous runs of pixels: on the
    2-core CPU this alone is worth about 30% of the training step. Under bf16 the bytes go straight
    to bf16 (a quarter of the memory traffic of an fp32 detour) and are normalised in place there.
    """
    images = images.to(device, non_blocking=True)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    x = torch.empty(images.shape, dtype=dtype, device=device, memory_format=torch.channels_last)
    scale, shift = _normalisation(device, dtype, *images.shape[-2:])
    return x.copy_(images).mul_(scale).add_(shift)


@functools.lru_cache(maxsize=8)
def _normalisation(device: torch.device, dtype: torch.dtype, height: int, width: int):
    """(x / 255 - mean) / std as x * scale + shift, with scale and shift spelled out for every pixel
    in channels-last order. Broadcasting a (1, 3, 1, 1) mean instead leaves the CPU a vector of only
    three values to work with: 20 ms per batch of 64 photos here, against 2 ms for this."""
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1) * 255
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1) * 255
    scale = (1 / std).expand(1, 3, height, width).to(dtype, memory_format=torch.channels_last)
    shift = (-mean / std).expand(1, 3, height, width).to(dtype, memory_format=torch.channels_last)
    return scale, shift


class MuonWithAdamW(torch.optim.Optimizer):
    """Muon (Jordan et al. 2024) for the transformer's weight matrices, AdamW for everything else
    (patch embedding, head, norms, biases, position embedding), stepped as one optimiser so the
    scheduler, the gradient scaler and the checkpoints see a single object."""

    def __init__(self, muon_params: list[torch.Tensor], adamw_groups: list[dict], *, lr: float, muon_lr: float,
                 muon_weight_decay: float):
        self.muon = torch.optim.Muon(muon_params, lr=muon_lr, weight_decay=muon_weight_decay)
        self.adamw = torch.optim.AdamW(adamw_groups, lr=lr)
        super().__init__([p for group in self._inner_groups() for p in group["params"]], {})
        self.param_groups = self._inner_groups()  # the inner optimisers' own dicts: the scheduler sets their lr

    def _inner_groups(self) -> list[dict]:
        return self.muon.param_groups + self.adamw.param_groups

    @torch.no_grad()
    def step(self, closure=None):
        self.muon.step()
        self.adamw.step()

    def state_dict(self) -> dict:
        return {"muon": self.muon.state_dict(), "adamw": self.adamw.state_dict()}

    def load_state_dict(self, state_dict: dict) -> None:
        self.muon.load_state_dict(state_dict["muon"])
        self.adamw.load_state_dict(state_dict["adamw"])
        self.param_groups = self._inner_groups()  # loading replaced the inner group dicts


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """Adam (blog), AdamW, or Muon with AdamW; weight decay only on weight matrices, never on norms,
    biases or the position embedding and class token."""
    if config.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=config.lr)
    if config.optimizer not in ("adamw", "muon"):
        raise ValueError(f"optimizer must be 'adam', 'adamw' or 'muon', not {config.optimizer!r}.")

    def for_muon(name: str, param: torch.Tensor) -> bool:  # the matrices inside the transformer blocks
        return config.optimizer == "muon" and param.ndim == 2 and name.startswith("transformer.")

    def decays(name: str, param: torch.Tensor) -> bool:
        return param.ndim >= 2 and "pos_embedding" not in name and "cls_token" not in name

    rest = [(n, p) for n, p in model.named_parameters() if not for_muon(n, p)]
    groups = [{"params": [p for n, p in rest if decays(n, p)], "weight_decay": config.weight_decay},
              {"params": [p for n, p in rest if not decays(n, p)], "weight_decay": 0.0}]
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr)
    if not hasattr(torch.optim, "Muon"):
        raise RuntimeError(f"torch {torch.__version__} has no torch.optim.Muon (it arrived in torch 2.9): "
                           "pip install -U 'torch>=2.9', or train with CATSDOGS_OPTIMIZER=adamw.")
    muon_params = [p for n, p in model.named_parameters() if for_muon(n, p)]
    return MuonWithAdamW(muon_params, groups, lr=config.lr, muon_lr=config.muon_lr,
                         muon_weight_decay=config.muon_weight_decay)


def make_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int):
    """Per-step learning-rate factor: linear warm-up, then cosine decay to zero (or constant)."""
    total = max(1, config.epochs * steps_per_epoch)
    warmup = int(config.warmup_epochs * steps_per_epoch)

    def factor(step: int) -> float:
        if config.schedule == "constant":
            return 1.0
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def save_checkpoint(path: Path, **state) -> None:
    """Write atomically: a temporary file, then a rename, so a crash mid-write never leaves a
    checkpoint that looks complete but is not."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    finally:  # after a failed write (disk full...) the half-written temporary file goes
        tmp.unlink(missing_ok=True)


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict:
    """Load with ``weights_only=True``: tensors and plain data only, so a tampered file cannot run code."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No checkpoint at {path}: train with notebook 04, or use the shipped weights.")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))  # what weights_only refused
        if isinstance(err, pickle.UnpicklingError) and found:
            raise RuntimeError(f"{path} was refused: besides tensors it holds a pickled object ({found.group(1)}) "
                               "that could run code when loaded. Only load checkpoints you trust: ones notebook 04 "
                               "wrote, or the shipped weights.") from None
        best = kaggle_workspace().checkpoint_dir / "modern-full" / "best.pt"
        raise RuntimeError(f"{path} is not a checkpoint this project wrote, or it is damaged ({type(err).__name__}: "
                           f"{err}). Pass a checkpoint written by notebook 04 (e.g. {best}), or leave out "
                           "--checkpoint to use the shipped weights.") from None


def write_history(path: Path, history: list[dict]) -> None:
    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(json.dumps(history, indent=1))
    os.replace(tmp, path)


def epoch_line(row: dict) -> str:
    """The familiar log line of the blog's notebook."""
    return (f"Epoch : {row['epoch']} - loss : {row['loss']:.4f} - acc: {row['acc']:.4f} - "
            f"val_loss : {row['val_loss']:.4f} - val_acc: {row['val_acc']:.4f}")


def load_histories(checkpoint_dir: Path, profile: str) -> dict[str, list[dict]]:
    """The saved per-epoch history of each recipe trained in this checkpoint folder, by recipe."""
    histories = {}
    for recipe in ("blog", "modern"):
        path = Path(checkpoint_dir) / f"{recipe}-{profile}" / "history.json"
        if path.exists():
            histories[recipe] = json.loads(path.read_text())
    return histories
