"""Where the model runs and in which precision: one object, because the two always travel together."""
from __future__ import annotations

import contextlib
import functools
import os
from dataclasses import dataclass

import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PRECISIONS = ("bf16", "fp16", "fp32")
FP16_ACCELERATORS = ("cuda", "mps", "xpu")  # fast fp16 where they lack bf16; any other accelerator: fp32


def pick_precision(device: torch.device, requested: str = "auto") -> str:
    """bf16 where the hardware does it natively (:func:`native_bf16`), else fp16 on an accelerator
    (trained with a GradScaler), fp32 on a CPU (emulated bf16 on an older CPU is slower than fp32).
    Apple's MPS takes fp16: bf16 there needs a recent macOS and chip, and not every kernel has it."""
    if requested != "auto":
        if requested not in PRECISIONS:
            raise ValueError(f"precision must be auto, bf16, fp16 or fp32, not {requested!r}")
        return requested
    if native_bf16(device):
        return "bf16"
    return "fp16" if device.type in FP16_ACCELERATORS else "fp32"


def native_bf16(device: torch.device) -> bool:
    """Whether bf16 matrix products run in hardware here: a CUDA GPU of compute capability 8.0 or more
    (A100, L4, RTX 30xx...), an Intel XPU that says so, or a CPU with AVX512-BF16 or AMX. A T4 (7.5,
    Colab's free GPU) or a V100 only emulates bf16, though ``torch.cuda.is_bf16_supported()`` answers
    True, and an emulated bf16 product is many times slower than the same product in fp32."""
    if device.type == "cuda":
        return torch.cuda.get_device_capability(device) >= (8, 0)
    if device.type == "xpu":
        return torch.xpu.is_bf16_supported()
    return device.type == "cpu" and (cpu_has("avx512_bf16") or cpu_has("amx_tile"))


CPUINFO = "/proc/cpuinfo"  # where Linux lists the CPU's flags


def cpu_has(feature: str) -> bool:
    """Whether the CPU has ``avx512_bf16`` or ``amx_tile``: torch's answer (the private
    ``torch.cpu._is_<feature>_supported``), or where this torch has none, the flags of /proc/cpuinfo."""
    probe = getattr(torch.cpu, f"_is_{feature}_supported", None)
    return bool(probe()) if probe is not None else feature in _cpu_flags(CPUINFO)


@functools.lru_cache(maxsize=4)
def _cpu_flags(path: str) -> frozenset[str]:
    """The CPU's feature flags as Linux lists them (the first ``flags`` line), or none (not Linux)."""
    flags = ""
    with contextlib.suppress(OSError), open(path) as f:
        flags = next((line for line in f if line.startswith("flags")), "")
    return frozenset(flags.partition(":")[2].split())


@dataclass(frozen=True)
class Device:
    """A torch device and the precision its forward passes run in (``bf16``, ``fp16`` or ``fp32``)."""

    device: torch.device
    precision: str

    @classmethod
    def pick(cls, precision: str = "auto") -> "Device":
        """The accelerator PyTorch would use (``torch.accelerator``: CUDA, MPS, XPU...), else the CPU,
        in the best precision the hardware does natively."""
        device = torch.accelerator.current_accelerator(check_available=True) or torch.device("cpu")
        return cls(device, pick_precision(device, precision))

    @property
    def type(self) -> str:
        return self.device.type

    @property
    def pin_memory(self) -> bool:
        """Whether a DataLoader should pin its batches (page-locked memory copies to a CUDA GPU faster,
        overlapped with compute); elsewhere it buys nothing."""
        return self.device.type == "cuda"

    def __str__(self) -> str:
        return f"{self.device}, {self.precision}"

    def autocast(self):
        """The mixed-precision context for a forward pass (a no-op in fp32)."""
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16 if self.precision == "bf16" else torch.float16)

    def grad_scaler(self) -> torch.amp.GradScaler:
        """Loss scaling for fp16, whose small gradients would otherwise round to zero; off otherwise."""
        return torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")

    def loader_workers(self) -> int:
        """DataLoader workers: on an accelerator augmentation overlaps with compute, so use the cores.
        On a CPU the cores are busy computing: a worker process competing with them was measured
        slower (188 against 202 images/s on 2 cores) than augmenting in the main process."""
        return min(4, os.cpu_count() or 1) if self.device.type != "cpu" else 0

    def input(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 NCHW batch → ImageNet-normalised float on the device, channels-last in memory (the ViT's
        patches then read contiguous runs of pixels), under bf16 straight to bf16, normalised in place."""
        images = images.to(self.device, non_blocking=True)
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float32
        x = torch.empty(images.shape, dtype=dtype, device=self.device, memory_format=torch.channels_last)
        scale, shift = _normalisation(self.device, dtype, *images.shape[-2:])
        return x.copy_(images).mul_(scale).add_(shift)


@functools.lru_cache(maxsize=8)
def _normalisation(device: torch.device, dtype: torch.dtype, height: int, width: int):
    """(x / 255 - mean) / std as x * scale + shift, spelled out for every pixel in channels-last order: a
    broadcast (1, 3, 1, 1) mean leaves a CPU vectors of three values (20% of a bf16 training step)."""
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1) * 255
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1) * 255
    scale = (1 / std).expand(1, 3, height, width).to(dtype, memory_format=torch.channels_last)
    shift = (-mean / std).expand(1, 3, height, width).to(dtype, memory_format=torch.channels_last)
    return scale, shift
