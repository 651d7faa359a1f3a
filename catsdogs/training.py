"""Training: the recipe, the optimisers and their schedule, one epoch of training, and the epochs.

Notebook 04 sets the recipe in its ``parameters`` cell and shows :func:`train_epoch` and :func:`fit`
where it explains them; the CNN teacher (``catsdogs.teacher``) and notebook 06 train with the same
two functions.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from tqdm import tqdm

from .checkpoints import epoch_line, load_checkpoint, save_checkpoint, write_history
from .device import Device
from .muon import BatchedMuon
from .predict import evaluate

# The tests' profile (CATSDOGS_PROFILE=small): the same notebooks, one short epoch on the tiny demo.
SMALL = dict(epochs=1, batch_size=32, warmup_epochs=0.0, teacher_epochs=1)

# The blog's recipe: Adam at a constant 3e-5 (its StepLR is never stepped), batch 64, random resized
# crops at torchvision's default scale, plain cross-entropy, 20 epochs, no teacher.
BLOG = dict(recipe="blog", init="default", epochs=20, batch_size=64, optimizer="adam", lr=3e-5, weight_decay=0.0,
            schedule="constant", warmup_epochs=0.0, label_smoothing=0.0, crop_scale=(0.08, 1.0), grad_clip=0.0,
            distill=0.0)


@dataclass(frozen=True)
class TrainConfig:
    """One training recipe; the defaults are the modern one, :data:`BLOG` the blog's."""

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
    compile_model: bool = False  # torch.compile the model (measured slower on the 2-core CPU: see notebook 04)
    limit_train: int = 0  # 0 = all training photos; a number keeps the first N (quick runs)

    @classmethod
    def blog(cls, **overrides) -> "TrainConfig":
        return cls(**{**BLOG, **overrides})

    @classmethod
    def from_values(cls, values: dict) -> "TrainConfig":
        """The recipe from plain values, e.g. a notebook's ``globals()``: each field by its name."""
        found = {f.name: values[f.name] for f in fields(cls) if f.name in values}
        if "crop_scale" in found:
            found["crop_scale"] = tuple(found["crop_scale"])
        return cls(**found)

    def small(self) -> "TrainConfig":
        """This recipe cut to the tests' profile (:data:`SMALL`)."""
        return replace(self, **{k: v for k, v in SMALL.items() if k in {f.name for f in fields(self)}})

    def to_dict(self) -> dict:
        return asdict(self)


def make_optimizers(model: nn.Module, config: TrainConfig) -> list[torch.optim.Optimizer]:
    """Adam (blog); AdamW; or Muon for the transformer blocks' weight matrices plus AdamW for the
    rest (patch embedding, head, norms, biases, position embedding). Weight decay only on weight
    matrices, never on norms, biases, the position embedding or the class token. A plain list: the
    training step steps each one."""
    if config.optimizer == "adam":
        return [torch.optim.Adam(model.parameters(), lr=config.lr)]
    if config.optimizer not in ("adamw", "muon"):
        raise ValueError(f"optimizer must be 'adam', 'adamw' or 'muon', not {config.optimizer!r}.")

    def for_muon(name: str, param: torch.Tensor) -> bool:  # the matrices inside the transformer blocks
        return config.optimizer == "muon" and param.ndim == 2 and name.startswith("transformer.")

    def decays(name: str, param: torch.Tensor) -> bool:  # vit-pytorch says pos_embedding, Hugging Face position_embeddings
        return param.ndim >= 2 and not any(key in name for key in ("pos_embedding", "position_embedding", "cls_token"))

    rest = [(n, p) for n, p in model.named_parameters() if not for_muon(n, p)]
    adamw = torch.optim.AdamW([{"params": [p for n, p in rest if decays(n, p)], "weight_decay": config.weight_decay},
                               {"params": [p for n, p in rest if not decays(n, p)], "weight_decay": 0.0}], lr=config.lr)
    if config.optimizer == "adamw":
        return [adamw]
    if not hasattr(torch.optim, "Muon"):
        raise RuntimeError(f"torch {torch.__version__} has no torch.optim.Muon (it arrived in torch 2.9): "
                           "pip install -U 'torch>=2.9', or set optimizer = \"adamw\" in notebook 04's parameters.")
    muon = BatchedMuon([p for n, p in model.named_parameters() if for_muon(n, p)], lr=config.muon_lr,
                       weight_decay=config.muon_weight_decay)  # torch.optim.Muon, batched by shape (catsdogs.muon)
    return [muon, adamw]


def lr_factor(step: int, config: TrainConfig, steps_per_epoch: int) -> float:
    """The learning rate at ``step`` as a share of the peak: linear warm-up, then cosine to zero."""
    if config.schedule == "constant":
        return 1.0
    warmup = int(config.warmup_epochs * steps_per_epoch)
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, config.epochs * steps_per_epoch - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def make_schedulers(optimizers: list[torch.optim.Optimizer], config: TrainConfig,
                    steps_per_epoch: int) -> list[torch.optim.lr_scheduler.LambdaLR]:
    """One per-step schedule (:func:`lr_factor`) for each optimiser, each from its own peak rate."""
    return [torch.optim.lr_scheduler.LambdaLR(opt, lambda step: lr_factor(step, config, steps_per_epoch))
            for opt in optimizers]


LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]  # (logits, labels, model input) → loss


def train_epoch(model: nn.Module, loader, *, optimizers: list, schedulers: list, scaler: torch.amp.GradScaler,
                device: Device, loss_fn: LossFn, grad_clip: float = 0.0, desc: str = "training") -> dict:
    """One pass over the training photos: forward in mixed precision, loss, backward, step.

    ``loss_fn(logits, labels, x)`` sees the model's input too, so a teacher can answer for the very
    same crops. Where the device takes fewer photos at once than a batch (``device.batch_limit``: a
    CPU in fp32), the batch goes through in pieces whose gradients add up to the whole batch's.
    Returns the epoch's mean loss, accuracy and training images per second.
    """
    model.train()
    started = time.time()
    loss_sum, correct, seen = torch.zeros((), device=device.device), torch.zeros((), device=device.device), 0
    for images, labels in tqdm(loader, desc=desc, unit="batch", mininterval=2, leave=False):
        model.zero_grad(set_to_none=True)
        piece = device.batch_limit or len(labels)
        for part, part_labels in zip(images.split(piece), labels.split(piece)):
            x, y = device.input(part), part_labels.to(device.device, non_blocking=True)
            with device.autocast():
                logits = model(x).float()
            loss = loss_fn(logits, y, x)
            scaler.scale(loss * len(y) / len(labels)).backward()  # the batch's mean loss, one piece at a time
            loss_sum += loss.detach() * len(y)  # detach: keep the number, not the autograd graph
            correct += (logits.argmax(dim=1) == y).sum()
            seen += len(y)
        if grad_clip:
            for optimizer in optimizers:
                scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        for optimizer in optimizers:
            scaler.step(optimizer)
        scaler.update()
        for scheduler in schedulers:
            scheduler.step()
    return dict(loss=(loss_sum / max(seen, 1)).item(), acc=(correct / max(seen, 1)).item(),
                train_img_s=seen / (time.time() - started))


def resume(path: Path, expected: dict, *, model: nn.Module, optimizers: list, schedulers: list,
           scaler: torch.amp.GradScaler, device: Device) -> list[dict]:
    """Load a run's ``last.pt`` into the model, optimisers, schedules and scaler if it was written with
    the same recipe (every entry of ``expected`` equal to the checkpoint's), and return its history;
    empty when there is nothing to resume. A run with another recipe is moved aside, never overwritten."""
    path = Path(path)
    if not path.exists():
        return []
    state = load_checkpoint(path, device.device)
    if any(state.get(key) != value for key, value in expected.items()):
        kept = path.parent.with_name(f"{path.parent.name}.previous-{time.strftime('%Y%m%d-%H%M%S')}")
        path.parent.rename(kept)
        print(f"the recipe changed: the earlier run is kept in {kept}; starting afresh")
        return []
    model.load_state_dict(state["model"])
    for thing, saved in zip([*optimizers, *schedulers, scaler], [*state["optimizers"], *state["schedulers"], state["scaler"]]):
        thing.load_state_dict(saved)
    return state["history"]


def fit(model: nn.Module, train_loader, val_loader, *, config: TrainConfig, device: Device, loss_fn: LossFn,
        run_dir: Path | None = None, name: str = "", extra: dict | None = None) -> list[dict]:
    """Train for ``config.epochs``: each epoch :func:`train_epoch`, then :func:`~catsdogs.predict.evaluate`
    on the validation photos, a log line, and (with a ``run_dir``) ``last.pt``, ``best.pt`` (lowest
    validation log loss) and ``history.json``. A run that was interrupted resumes after its last
    finished epoch, with the same crops and order as if it had not been. Returns the history."""
    optimizers = make_optimizers(model, config)
    schedulers = make_schedulers(optimizers, config, steps_per_epoch=len(train_loader))
    scaler = device.grad_scaler()
    identity = dict(train_config=config.to_dict(), **(extra or {}))  # what a resumed run must match
    history = []
    if run_dir is not None:
        history = resume(Path(run_dir) / "last.pt", identity, model=model, optimizers=optimizers,
                         schedulers=schedulers, scaler=scaler, device=device)
        if history:
            done = "already trained" if len(history) >= config.epochs else "resuming after"
            print(f"{name}{done} epoch {len(history)} of {config.epochs}: {Path(run_dir) / 'last.pt'}")

    def save(path: Path) -> None:
        save_checkpoint(path, model=model.state_dict(), optimizers=[o.state_dict() for o in optimizers],
                        schedulers=[s.state_dict() for s in schedulers], scaler=scaler.state_dict(),
                        epoch=len(history), history=history, **identity)

    for epoch in range(len(history), config.epochs):
        torch.manual_seed(config.seed + epoch)  # the same crops and order whether or not the run was resumed
        started = time.time()
        row = train_epoch(model, train_loader, optimizers=optimizers, schedulers=schedulers, scaler=scaler,
                          device=device, loss_fn=loss_fn, grad_clip=config.grad_clip,
                          desc=f"{name}epoch {epoch + 1}/{config.epochs}")
        val = evaluate(model, val_loader, device)
        history.append(dict(epoch=epoch + 1, **row, val_loss=val.log_loss, val_acc=val.accuracy,
                            lr=optimizers[0].param_groups[0]["lr"], epoch_s=time.time() - started))
        print(name + epoch_line(history[-1]), f"- {history[-1]['epoch_s']:.0f} s ({row['train_img_s']:.0f} img/s)",
              flush=True)
        if run_dir is not None:
            save(Path(run_dir) / "last.pt")
            if history[-1]["val_loss"] <= min(h["val_loss"] for h in history):
                save(Path(run_dir) / "best.pt")
            write_history(Path(run_dir) / "history.json", history)
    return history
