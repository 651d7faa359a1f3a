"""Generated from notebooks/04_train.ipynb by scripts/export_lessons.py: the code of its cells marked
``#| export``. Edit the notebook, not this file, then run the script."""
from __future__ import annotations

__all__ = ["train_transform", "normalise", "conv_stage", "Teacher", "distillation_loss", "make_loss",
           "newton_schulz", "make_optimizers", "lr_factor", "make_schedulers", "train_epoch", "evaluate",
           "resume", "fit", "seconds_per_epoch", "plan_epochs"]

from torchvision.transforms import v2
import torch
import torch.nn.functional as F
from torch import nn
import math
from catsdogs.speed import BatchedMuon
import time
from tqdm import tqdm
from catsdogs.metrics import Evaluation
from pathlib import Path
from catsdogs.checkpoints import epoch_line, load_checkpoint, save_checkpoint, write_history
from catsdogs.config import shown
import copy
import itertools
import json


# notebooks/04_train.ipynb, cell 7
def train_transform(size: int = 224, scale: tuple[float, float] = (0.35, 1.0)) -> v2.Compose:
    """A random crop of ``scale`` of the photo's area (aspect ratio 3:4 to 4:3) resized to ``size``,
    then a mirror image half of the time; on uint8 tensors (no PIL round trip: about 0.2 ms a photo)."""
    return v2.Compose([v2.RandomResizedCrop(size, scale=scale, antialias=True), v2.RandomHorizontalFlip()])


# notebooks/04_train.ipynb, cell 12
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def normalise(images: torch.Tensor) -> torch.Tensor:
    """uint8 photos (N, 3, H, W) → floats centred per channel: (pixel / 255 - mean) / std."""
    mean = torch.tensor(IMAGENET_MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=images.device).view(1, 3, 1, 1)
    return (images.float() / 255 - mean) / std


# notebooks/04_train.ipynb, cell 22
def conv_stage(c_in: int, c_out: int) -> nn.Sequential:
    """Halve the picture and widen it: two 3x3 convolutions, each followed by batch norm and ReLU."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
                         nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class Teacher(nn.Module):
    """A small CNN, widths 24-48-96-192-192 (1.3 M parameters). It takes the student's own input
    (224x224, normalised) and shrinks it to ``image_size`` first, so it answers for the very crop the
    student sees and trains with the student's loop."""

    def __init__(self, *, width: int = 24, image_size: int = 128):
        super().__init__()
        w, self.image_size = width, image_size
        self.net = nn.Sequential(
            nn.Conv2d(3, w, 3, 2, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True),
            conv_stage(w, 2 * w), conv_stage(2 * w, 4 * w), conv_stage(4 * w, 8 * w), conv_stage(8 * w, 8 * w),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(8 * w, 2),
        ).to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.image_size:  # plain bilinear: antialiasing has no bf16 kernel on a CPU
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False)
        return self.net(x.contiguous(memory_format=torch.channels_last))


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the student's prediction against the teacher's probabilities (the KL
    divergence up to a constant): the student is pulled towards how sure the teacher is."""
    return -(teacher_logits.softmax(dim=1) * student_logits.log_softmax(dim=1)).sum(dim=1).mean()


# notebooks/04_train.ipynb, cell 23
def make_loss(*, label_smoothing: float = 0.0, teacher: nn.Module | None = None, distill: float = 0.0, device=None):
    """The training loss ``loss_fn(logits, labels, x)``."""
    criterion = nn.CrossEntropyLoss(label_smoothing=label_smoothing)

    def loss_fn(logits: torch.Tensor, labels: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        loss = criterion(logits, labels)
        if teacher is not None and distill:  # soft distillation: the teacher's answer for the same crop
            with torch.no_grad(), device.autocast():
                answer = teacher(x).float()
            loss = (1 - distill) * loss + distill * distillation_loss(logits, answer)
        return loss

    return loss_fn


# notebooks/04_train.ipynb, cell 26
def newton_schulz(g: torch.Tensor, steps: int = 5, coefficients: tuple[float, float, float] = (3.4445, -4.7750, 2.0315),
                  eps: float = 1e-7) -> torch.Tensor:
    """Approximately the orthogonal matrix nearest to ``g`` (singular values pushed to about 1), by
    ``steps`` Newton-Schulz iterations: matrix products only, no SVD. torch.optim.Muon's coefficients."""
    a, b, c = coefficients
    x = g / g.norm().clamp(min=eps)  # the Frobenius norm bounds every singular value: now all at most 1
    tall = x.shape[0] > x.shape[1]
    if tall:
        x = x.T  # iterate on the wide side: its Gram matrix x @ x.T is the smaller one
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.T if tall else x


# notebooks/04_train.ipynb, cell 30
def make_optimizers(model: nn.Module, *, optimizer: str, lr: float, weight_decay: float, muon_lr: float = 0.006,
                    muon_weight_decay: float = 0.008) -> list[torch.optim.Optimizer]:
    """Adam (blog); AdamW; or Muon for the transformer blocks' weight matrices plus AdamW for the
    rest. Weight decay only on weight matrices, never on norms, biases, the position embedding or the
    class token. A plain list: the training step steps each one."""
    if optimizer == "adam":
        return [torch.optim.Adam(model.parameters(), lr=lr)]
    if optimizer not in ("adamw", "muon"):
        raise ValueError(f"optimizer must be 'adam', 'adamw' or 'muon', not {optimizer!r}.")

    def for_muon(name: str, param: torch.Tensor) -> bool:  # the matrices inside the transformer blocks
        return optimizer == "muon" and param.ndim == 2 and name.startswith("transformer.")

    def decays(name: str, param: torch.Tensor) -> bool:  # vit-pytorch: pos_embedding; Hugging Face: position_embeddings
        return param.ndim >= 2 and not any(key in name for key in ("pos_embedding", "position_embedding", "cls_token"))

    rest = [(n, p) for n, p in model.named_parameters() if not for_muon(n, p)]
    adamw = torch.optim.AdamW([{"params": [p for n, p in rest if decays(n, p)], "weight_decay": weight_decay},
                               {"params": [p for n, p in rest if not decays(n, p)], "weight_decay": 0.0}], lr=lr)
    if optimizer == "adamw":
        return [adamw]
    muon = BatchedMuon([p for n, p in model.named_parameters() if for_muon(n, p)], lr=muon_lr,
                       weight_decay=muon_weight_decay)
    return [muon, adamw]


# notebooks/04_train.ipynb, cell 32
def lr_factor(step: int, *, schedule: str, warmup_steps: int, total_steps: int) -> float:
    """The learning rate at ``step`` as a share of the peak: constant, or linear warm-up then cosine to zero."""
    if schedule == "constant":
        return 1.0
    if schedule != "cosine":
        raise ValueError(f"schedule must be 'cosine' or 'constant', not {schedule!r}.")
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def make_schedulers(optimizers: list, **schedule) -> list[torch.optim.lr_scheduler.LambdaLR]:
    """One per-step schedule (:func:`lr_factor` with these keywords) for each optimiser, from its own peak."""
    return [torch.optim.lr_scheduler.LambdaLR(opt, lambda step: lr_factor(step, **schedule)) for opt in optimizers]


# notebooks/04_train.ipynb, cell 34
def train_epoch(model: nn.Module, loader, *, optimizers: list, schedulers: list, scaler: torch.amp.GradScaler,
                device, loss_fn, grad_clip: float = 0.0, desc: str = "training") -> dict:
    """One pass over the training photos. Returns the epoch's mean loss, accuracy and photos per second."""
    model.train()
    started, seen = time.time(), 0
    loss_sum, correct = torch.zeros((), device=device.device), torch.zeros((), device=device.device)
    for images, labels in tqdm(loader, desc=desc, unit="batch", mininterval=2, leave=False):
        x, y = device.input(images), labels.to(device.device, non_blocking=True)
        model.zero_grad(set_to_none=True)
        with device.autocast():
            logits = model(x).float()
        loss = loss_fn(logits, y, x)
        scaler.scale(loss).backward()
        if grad_clip:
            for optimizer in optimizers:
                scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        for optimizer in optimizers:
            scaler.step(optimizer)  # optimizer.step(), skipped if fp16 gradients overflowed
        scaler.update()
        for scheduler in schedulers:
            scheduler.step()
        loss_sum += loss.detach() * len(y)  # detach: keep the number, not the autograd graph
        correct += (logits.argmax(dim=1) == y).sum()
        seen += len(y)
    return dict(loss=(loss_sum / max(seen, 1)).item(), acc=(correct / max(seen, 1)).item(),
                train_img_s=seen / (time.time() - started))


# notebooks/04_train.ipynb, cell 36
@torch.inference_mode()
def evaluate(model: nn.Module, loader, device) -> Evaluation:
    """Accuracy and log loss of ``model`` on the whole photos of a labelled loader."""
    model.eval()
    probs, labels = [], []
    for images, y in tqdm(loader, desc="evaluating", unit="batch", leave=False):
        with device.autocast():
            logits = model(device.input(images)).float()
        probs.append(logits.softmax(dim=1)[:, 1].double().cpu())  # P(dog)
        labels.append(y)
    return Evaluation.of(torch.cat(probs).numpy(), torch.cat(labels).numpy())


# notebooks/04_train.ipynb, cell 38
def resume(path: Path, identity: dict, *, model: nn.Module, optimizers: list, schedulers: list, scaler) -> list[dict]:
    """Load a run's ``last.pt`` into the model, optimisers, schedules and scaler if it was written with
    the same ``identity`` (recipe and model), and return its history; empty when there is nothing to
    resume. A run with another identity is moved aside, never overwritten."""
    if not Path(path).exists():
        return []
    state = load_checkpoint(path)
    if any(state.get(key) != value for key, value in identity.items()):
        kept = Path(path).parent.with_name(f"{Path(path).parent.name}.previous-{time.strftime('%Y%m%d-%H%M%S')}")
        Path(path).parent.rename(kept)
        print(f"the recipe changed: the earlier run is kept in {shown(kept)}; starting afresh")
        return []
    model.load_state_dict(state["model"])
    for thing, saved in zip([*optimizers, *schedulers, scaler], [*state["optimizers"], *state["schedulers"], state["scaler"]]):
        thing.load_state_dict(saved)
    return state["history"]


# notebooks/04_train.ipynb, cell 39
def fit(model: nn.Module, train_loader, val_loader, *, optimizers: list, schedulers: list, scaler, device, loss_fn,
        epochs: int, seed: int = 0, grad_clip: float = 0.0, run_dir: Path | None = None, identity: dict | None = None,
        name: str = "") -> list[dict]:
    """Train for ``epochs``: each a :func:`train_epoch`, the validation photos, a log line and (with a
    ``run_dir``) ``last.pt``, ``best.pt`` (lowest validation log loss) and ``history.json``. An
    interrupted run resumes after its last finished epoch, with the same crops and order."""
    identity, history = identity or {}, []
    if run_dir is not None:
        history = resume(Path(run_dir) / "last.pt", identity, model=model, optimizers=optimizers,
                         schedulers=schedulers, scaler=scaler)
        if history:
            print(f"{name}{'already trained' if len(history) >= epochs else 'resuming after'} epoch {len(history)} of {epochs}")

    def save(path: Path) -> None:
        save_checkpoint(path, model=model.state_dict(), optimizers=[o.state_dict() for o in optimizers],
                        schedulers=[s.state_dict() for s in schedulers], scaler=scaler.state_dict(),
                        epoch=len(history), history=history, **identity)

    for epoch in range(len(history), epochs):
        torch.manual_seed(seed + epoch)  # the same crops and order whether or not the run was resumed
        started = time.time()
        row = train_epoch(model, train_loader, optimizers=optimizers, schedulers=schedulers, scaler=scaler,
                          device=device, loss_fn=loss_fn, grad_clip=grad_clip, desc=f"{name}epoch {epoch + 1}/{epochs}")
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


# notebooks/04_train.ipynb, cell 41
def seconds_per_epoch(model: nn.Module, train_loader, val_loader, *, device, loss_fn, optimizer: str = "adamw",
                      batches: int = 4) -> float:
    """An epoch's time here: ``batches`` training steps on a copy of ``model`` (after one untimed step)
    and one validation batch, scaled to the loaders' lengths."""
    trial = copy.deepcopy(model)
    optimizers = make_optimizers(trial, optimizer=optimizer, lr=1e-9, weight_decay=0.0)
    step = dict(optimizers=optimizers, schedulers=[], scaler=device.grad_scaler(), device=device, loss_fn=loss_fn)
    batches_in = iter(train_loader)
    train_epoch(trial, itertools.islice(batches_in, 1), **step, desc="warming up")
    started = time.perf_counter()
    train_epoch(trial, itertools.islice(batches_in, batches), **step, desc="timing")
    train_s = (time.perf_counter() - started) / batches * len(train_loader)
    started = time.perf_counter()
    evaluate(trial, itertools.islice(iter(val_loader), 1), device)
    return train_s + (time.perf_counter() - started) * len(val_loader)


def plan_epochs(minutes: float, *, vit_epoch_s: float, teacher_epoch_s: float = 0.0, teacher_epochs: int = 0) -> int:
    """The most ViT epochs that fit in ``minutes`` after the teacher's epochs."""
    left = minutes * 60 - teacher_epochs * teacher_epoch_s
    if left < vit_epoch_s:
        raise ValueError(f"{minutes} minutes leave no room for one ViT epoch here ({vit_epoch_s / 60:.1f} min after "
                         f"the teacher's {teacher_epochs * teacher_epoch_s / 60:.1f}): give more minutes, "
                         "fewer teacher_epochs, or set minutes = 0 and choose epochs.")
    return int(left // vit_epoch_s)
