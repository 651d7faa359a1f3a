"""A small convolutional teacher, trained from scratch on the same photos, for distillation.

A ViT must learn from data that nearby pixels belong together; a convolution knows it from the
start, so on 18,000 photos a small CNN learns faster than the ViT. DeiT (Touvron et al., 2021)
turned this into a recipe: the ViT learns from the labels *and* from a CNN teacher's predictions on
the same augmented crop. The teacher's probabilities carry more than a 0/1 label ("this one is
70% dog"), and the student inherits some of the convolution's bias without changing shape.
Nothing here is pretrained: the teacher sees only the training split.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .device import Device
from .training import SMALL, TrainConfig, fit


@dataclass(frozen=True)
class TeacherConfig:
    """Five stride-2 stages of 3x3 convolutions, widths 24-48-96-192-192, on 128x128 photos:
    1.3 M parameters, about 550 training images/s on the 2-core CPU (the ViT does about 270)."""

    width: int = 24
    image_size: int = 128  # the teacher sees the student's crop shrunk to this size
    epochs: int = 15
    lr: float = 2e-3

    def small(self) -> "TeacherConfig":
        """The tests' profile: one short epoch."""
        return replace(self, epochs=SMALL["teacher_epochs"])

    def recipe(self) -> TrainConfig:
        """How the teacher trains: AdamW at twice the ViT's rate, one warm-up epoch then cosine, no
        label smoothing (it would flatten the probabilities the student learns from), no clipping.
        Muon is for a transformer's matrices, not for convolutions."""
        return TrainConfig(recipe="teacher", optimizer="adamw", epochs=self.epochs, lr=self.lr, warmup_epochs=1.0,
                           label_smoothing=0.0, grad_clip=0.0, distill=0.0, seed=0)

    def to_dict(self) -> dict:
        return asdict(self)


def _stage(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
                         nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class Teacher(nn.Module):
    """The CNN, taking the student's own input (224x224, normalised) and shrinking it first, so the
    training step and evaluation treat it like any other model."""

    def __init__(self, config: TeacherConfig = TeacherConfig()):
        super().__init__()
        w = config.width
        self.image_size = config.image_size
        self.net = nn.Sequential(
            nn.Conv2d(3, w, 3, 2, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True),
            _stage(w, 2 * w), _stage(2 * w, 4 * w), _stage(4 * w, 8 * w), _stage(8 * w, 8 * w),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(8 * w, 2),
        ).to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.image_size:
            # Plain bilinear: 224 → 128 is a mild shrink, and antialiasing has no bf16 kernel on the CPU (in
            # fp32 it cost about 0.1-0.2 s a batch of 128 on 2 cores, as much as the teacher itself).
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False)
        return self.net(x.contiguous(memory_format=torch.channels_last))


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the student's prediction against the teacher's probabilities (the KL
    divergence up to a constant): the student is pulled towards how sure the teacher is."""
    return -(teacher_logits.softmax(dim=1) * student_logits.log_softmax(dim=1)).sum(dim=1).mean()


def train_teacher(train_loader, val_loader, *, run_dir: Path, device: Device,
                  config: TeacherConfig = TeacherConfig()) -> tuple[Teacher, list[dict]]:
    """Train the teacher with :func:`catsdogs.training.fit` (the student's own loop), or load it:
    a finished run in ``run_dir`` with this configuration is reused, an interrupted one resumes
    after its last finished epoch."""
    torch.manual_seed(0)
    teacher = Teacher(config).to(device.device)
    history = fit(teacher, train_loader, val_loader, config=config.recipe(), device=device, name="teacher ",
                  loss_fn=lambda logits, labels, x: F.cross_entropy(logits, labels), run_dir=run_dir,
                  extra=dict(teacher_config=config.to_dict()))
    last = history[-1]  # fit validated the final weights already
    print(f"teacher: {len(history)} epochs, validation accuracy {last['val_acc']:.4f}, log loss {last['val_loss']:.4f}")
    return teacher.eval(), history
