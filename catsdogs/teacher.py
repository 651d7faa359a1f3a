"""A small convolutional teacher, trained from scratch on the same photos, for distillation.

A ViT must learn from data that nearby pixels belong together; a convolution knows it from the
start, so on 18,000 photos a small CNN learns faster than the ViT. DeiT (Touvron et al., 2021)
turned this into a recipe: the ViT learns from the labels *and* from a CNN teacher's predictions on
the same augmented crop. The teacher's probabilities carry more than a 0/1 label ("this one is
70% dog"), and the student inherits some of the convolution's bias without changing shape.
Nothing here is pretrained: the teacher sees only the training split.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from torchvision.transforms.v2 import functional as TF
from tqdm import tqdm

from .config import is_small
from .predict import log_loss
from .training import (TrainConfig, autocast, epoch_line, load_checkpoint, make_optimizer, make_scheduler,
                       save_checkpoint, to_model_input)


@dataclass(frozen=True)
class TeacherConfig:
    """Five stride-2 stages of 3x3 convolutions, widths 24-48-96-192-192, on 128x128 photos:
    1.3 M parameters, about 550 training images/s on the 2-core CPU (the ViT does about 270)."""

    width: int = 24
    image_size: int = 128  # the teacher sees the student's crop shrunk to this size
    epochs: int = 15
    lr: float = 2e-3

    @classmethod
    def for_profile(cls) -> "TeacherConfig":
        """The full teacher, or one short epoch in the ``small`` profile (tests, CI)."""
        return replace(cls(), epochs=1) if is_small() else cls()

    def to_dict(self) -> dict:
        return asdict(self)


def _stage(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
                         nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


def build_teacher(config: TeacherConfig = TeacherConfig()) -> nn.Module:
    w = config.width
    return nn.Sequential(
        nn.Conv2d(3, w, 3, 2, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True),
        _stage(w, 2 * w), _stage(2 * w, 4 * w), _stage(4 * w, 8 * w), _stage(8 * w, 8 * w),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(8 * w, 2),
    ).to(memory_format=torch.channels_last)


def teacher_logits(teacher: nn.Module, images: torch.Tensor, config: TeacherConfig, device: torch.device,
                   precision: str) -> torch.Tensor:
    """The teacher's logits for a uint8 batch (the very crops the student sees), shrunk to its size."""
    if images.shape[-1] != config.image_size:
        images = TF.resize(images, [config.image_size, config.image_size], antialias=True)
    with autocast(device, precision):
        return teacher(to_model_input(images, device, precision)).float()


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the student's prediction against the teacher's probabilities (the KL
    divergence up to a constant): the student is pulled towards how sure the teacher is."""
    return -(teacher_logits.softmax(dim=1) * student_logits.log_softmax(dim=1)).sum(dim=1).mean()


def train_teacher(train_loader: DataLoader, val_loader: DataLoader, val_labels: np.ndarray, path: Path,
                  device: torch.device, precision: str, config: TeacherConfig = TeacherConfig(),
                  seed: int = 0) -> tuple[nn.Module, list[dict]]:
    """Train the teacher, or load it from ``path`` if a finished one with this configuration is there.

    AdamW with a one-epoch warm-up and cosine decay (the ViT's AdamW settings, at twice the learning
    rate and without label smoothing, which would flatten the probabilities the student learns from;
    Muon is for a transformer's matrices, not for convolutions).
    After every epoch the unfinished teacher is saved beside ``path`` (``teacher_last.pt``), so an
    interrupted run resumes after its last finished epoch instead of starting again.
    """
    teacher = build_teacher(config).to(device)
    path = Path(path)
    if path.exists():
        state = load_checkpoint(path, device)
        if state["teacher_config"] == config.to_dict():
            teacher.load_state_dict(state["model"])
            print(f"teacher loaded from {path}: {epoch_line(state['history'][-1])}")
            return teacher.eval(), state["history"]
    recipe = TrainConfig(optimizer="adamw", epochs=config.epochs, lr=config.lr, warmup_epochs=1.0,
                         label_smoothing=0.0, grad_clip=0.0)
    optimizer = make_optimizer(teacher, recipe)
    scheduler = make_scheduler(optimizer, recipe, steps_per_epoch=len(train_loader))
    history, start, last = [], 0, path.with_name("teacher_last.pt")
    if last.exists():
        state = load_checkpoint(last, device)
        if state["teacher_config"] == config.to_dict():
            teacher.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            history, start = state["history"], state["epoch"]
            print(f"teacher resuming after epoch {start} from {last}")
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")  # fp16 gradients underflow unscaled
    torch.manual_seed(seed + start)
    for epoch in range(start, config.epochs):
        teacher.train()
        started, loss_sum, correct, seen = time.time(), 0.0, 0, 0
        for images, labels in tqdm(train_loader, desc=f"teacher {epoch + 1}/{config.epochs}", unit="batch",
                                   mininterval=2, leave=False):
            labels = labels.to(device)
            logits = teacher_logits(teacher, images, config, device, precision)
            loss = F.cross_entropy(logits, labels)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            loss_sum += loss.item() * len(labels)
            correct += (logits.argmax(dim=1) == labels).sum().item()
            seen += len(labels)
        probs = predict_teacher(teacher, val_loader, config, device, precision)
        history.append(dict(epoch=epoch + 1, loss=loss_sum / seen, acc=correct / seen, val_loss=log_loss(val_labels, probs),
                            val_acc=float(np.mean((probs >= 0.5) == val_labels)), epoch_s=time.time() - started))
        print("teacher", epoch_line(history[-1]), f"- {history[-1]['epoch_s']:.0f} s", flush=True)
        save_checkpoint(last, model=teacher.state_dict(), optimizer=optimizer.state_dict(),
                        scheduler=scheduler.state_dict(), epoch=epoch + 1, history=history,
                        teacher_config=config.to_dict())
    save_checkpoint(path, model=teacher.state_dict(), teacher_config=config.to_dict(), history=history)
    last.unlink(missing_ok=True)
    return teacher.eval(), history


@torch.no_grad()
def predict_teacher(teacher: nn.Module, loader: DataLoader, config: TeacherConfig, device: torch.device,
                    precision: str) -> np.ndarray:
    """P(dog) from the teacher for every photo of ``loader`` (whole photos, eval mode)."""
    teacher.eval()
    probs = [teacher_logits(teacher, images, config, device, precision).softmax(dim=1)[:, 1] for images, _ in loader]
    return torch.cat(probs).cpu().double().numpy()
