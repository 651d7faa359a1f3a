"""A speed-up that computes what the plain code it stands in for computes, kept here so that the
lesson's code stays the plain one: :class:`BatchedMuon`, ``torch.optim.Muon`` with its Newton-Schulz
iterations batched by shape (docs/speed.md has what it buys; tests/test_speed.py checks its numbers).
``torch.optim.Muon`` orthogonalises the seed model's 96 weight matrices one at a time, about 1,400
tiny matrix products a step; they come in four shapes, so stacked by shape the same iterations run
as a few batched products. They run in bf16, as torch's do, where the hardware has bf16 units, and
in fp32 elsewhere (emulated bf16 made the optimiser 2.6 s of a 4.2 s step on an AVX2 CPU). The rest
(momentum, Nesterov, weight decay, the learning-rate adjustment, the saved state) is torch's own."""
from __future__ import annotations

import math

import torch

from .device import native_bf16

try:  # torch's own learning-rate adjustment is private: reached here only, written out below without it
    import torch.optim._muon as _torch_muon
except ImportError:
    _torch_muon = None


def adjusted_lr(lr: float, adjust_lr_fn: str | None, shape: torch.Size) -> float:
    """The learning rate ``torch.optim.Muon`` applies to a matrix of ``shape``: torch's private
    ``torch.optim._muon._adjust_lr`` where this torch has it, else the rules every torch from 2.11 has
    written out (a newer torch's extra rules, such as "spectral_unclamped", fall to the plain rate there)."""
    adjust = getattr(_torch_muon, "_adjust_lr", None)
    if adjust is not None:
        return adjust(lr, adjust_lr_fn, shape)
    rows, cols = shape[:2]
    if adjust_lr_fn is None or adjust_lr_fn == "original":  # Keller Jordan's
        return lr * math.sqrt(max(1, rows / cols))
    if adjust_lr_fn == "match_rms_adamw":  # Moonshot's: the update's RMS matched to AdamW's
        return lr * (0.2 * math.sqrt(max(rows, cols)))
    return lr


def newton_schulz(grads: torch.Tensor, coefficients: tuple[float, float, float], steps: int,
                  eps: float, dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
    """``torch.optim._muon._zeropower_via_newtonschulz`` for a stack (n, rows, cols) of matrices,
    computed in ``dtype`` (torch's: bf16): notebook 04's ``newton_schulz``, batched and fused."""
    a, b, c = coefficients
    x = grads.to(dtype)
    tall = grads.size(-2) > grads.size(-1)
    if tall:
        x = x.mT
    x = x / x.norm(dim=(-2, -1), keepdim=True).clamp(min=eps)  # spectral norm at most 1
    for _ in range(steps):
        gram = x @ x.mT
        x = torch.baddbmm(x, torch.baddbmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
    return x.mT if tall else x


class BatchedMuon(torch.optim.Muon):
    """Drop-in ``torch.optim.Muon``: the same arguments, state and updates, batched by shape; the
    iterations in bf16 where it is native (bit for bit torch's), else in fp32 (``dtype`` forces one)."""

    def __init__(self, params, *args, dtype: torch.dtype | None = None, **kwargs):
        super().__init__(params, *args, **kwargs)
        self.dtype = dtype

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params, grads, buffers = [], [], []
            self._init_group(group, params, grads, buffers)
            if not params:
                continue
            momentum, lr = group["momentum"], float(group["lr"])
            torch._foreach_lerp_(buffers, grads, 1 - momentum)
            updates = torch._foreach_lerp(grads, buffers, momentum) if group["nesterov"] else buffers
            by_shape: dict[torch.Size, list[int]] = {}
            for i, p in enumerate(params):
                by_shape.setdefault(p.shape, []).append(i)
            dtype = self.dtype or (torch.bfloat16 if native_bf16(params[0].device) else torch.float32)
            for shape, index in by_shape.items():
                stacked = newton_schulz(torch.stack([updates[i] for i in index]), group["ns_coefficients"],
                                        group["ns_steps"], group["eps"], dtype)
                chosen = [params[i] for i in index]
                torch._foreach_mul_(chosen, 1 - lr * group["weight_decay"])
                torch._foreach_add_(chosen, list(stacked.to(chosen[0].dtype).unbind(0)),
                                    alpha=-adjusted_lr(lr, group["adjust_lr_fn"], shape))
        return loss
