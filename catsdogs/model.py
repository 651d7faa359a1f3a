"""Generated from notebooks/03_model.ipynb by scripts/export_lessons.py: the code of its cells marked
``#| export``. Edit the notebook, not this file, then run the script."""
from __future__ import annotations

__all__ = ["ModelConfig", "build_model", "count_parameters", "sincos_position_codes", "mimetic_init_",
           "effective_attention"]

from dataclasses import dataclass
import torch
from linformer import Linformer
from torch import nn
from vit_pytorch.efficient import ViT
from linformer.linformer import LinformerSelfAttention


# notebooks/03_model.ipynb, cell 5
@dataclass(frozen=True)
class ModelConfig:
    """The seed configuration: 224x224 photos cut into 7x7 = 49 patches of 32x32 pixels."""

    image_size: int = 224
    patch_size: int = 32
    dim: int = 128
    depth: int = 12
    heads: int = 8
    k: int = 64  # Linformer projects the 50 keys and values down to k before attention
    num_classes: int = 2
    channels: int = 3


def build_model(config: ModelConfig = ModelConfig()) -> nn.Module:
    """``Linformer(dim=128, seq_len=49+1, depth=12, heads=8, k=64)`` inside ``ViT(dim=128,
    image_size=224, patch_size=32, num_classes=2, channels=3)``: +1 token for the class token."""
    num_patches = (config.image_size // config.patch_size) ** 2
    efficient_transformer = Linformer(dim=config.dim, seq_len=num_patches + 1, depth=config.depth,
                                      heads=config.heads, k=config.k)
    return ViT(dim=config.dim, image_size=config.image_size, patch_size=config.patch_size,
               num_classes=config.num_classes, channels=config.channels, transformer=efficient_transformer)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# notebooks/03_model.ipynb, cell 16
def sincos_position_codes(grid: int, dim: int) -> torch.Tensor:
    """(grid * grid, dim) two-dimensional sine-cosine codes: neighbouring patches get similar
    vectors, so a dot product between two codes says how close the patches are."""
    y, x = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
    omega = 1.0 / 10000 ** (torch.arange(dim // 4) / (dim // 4 - 1))
    y, x = y.flatten()[:, None] * omega, x.flatten()[:, None] * omega
    return torch.cat((x.sin(), x.cos(), y.sin(), y.cos()), dim=1)


@torch.no_grad()
def mimetic_init_(model: nn.Module, *, seed: int = 0, alpha: tuple[float, float] = (0.7, 0.4),
                  beta: tuple[float, float] = (0.7, 0.4)) -> nn.Module:
    """Start every attention layer as a soft local filter (mimetic initialisation, see above); the
    architecture and everything trained afterwards stay the same."""
    generator = torch.Generator().manual_seed(seed)
    tokens, dim = model.pos_embedding.shape[1:]
    model.pos_embedding.zero_()
    model.pos_embedding[0, 1:] = sincos_position_codes(int(round((tokens - 1) ** 0.5)), dim)

    def factors(scale_random: float, scale_identity: float, rank: int):  # left @ right ≈ target
        target = scale_random * torch.randn(dim, dim, generator=generator) / dim ** 0.5 + scale_identity * torch.eye(dim)
        u, s, vh = torch.linalg.svd(target)
        return u[:, :rank] * s[:rank].sqrt(), (vh[:rank].T * s[:rank].sqrt()).T

    for attention in (m for m in model.modules() if isinstance(m, LinformerSelfAttention)):
        for h in range(attention.heads):
            rows = slice(h * attention.dim_head, (h + 1) * attention.dim_head)
            left, right = factors(alpha[0], beta[0], attention.dim_head)
            attention.to_q.weight[rows] = left.T
            attention.to_k.weight[rows] = right
        left, right = factors(alpha[1], -beta[1], dim)
        attention.to_out.weight.copy_(left)
        attention.to_v.weight.copy_(right)
        attention.to_out.bias.zero_()
        attention.proj_k.copy_(torch.eye(*attention.proj_k.shape))
        attention.proj_v.copy_(torch.eye(*attention.proj_v.shape))
    return model


# notebooks/03_model.ipynb, cell 17
@torch.no_grad()
def effective_attention(model: nn.Module, x: torch.Tensor, layer: int = 0) -> torch.Tensor:
    """(batch, heads, 50, 50): how much each token's output in ``layer`` draws on each token.
    Linformer attends over k = 64 mixtures of the tokens; multiplying its weights by ``proj_v`` turns
    weights on mixtures back into weights on tokens (exactly: the output is these weights times the values)."""
    tokens = model.to_patch_embedding(x)
    tokens = torch.cat([model.cls_token.expand(len(x), -1, -1), tokens], dim=1) + model.pos_embedding
    for attention_block, feed_forward in model.transformer.net.layers[:layer]:
        tokens = tokens + attention_block(tokens)
        tokens = tokens + feed_forward(tokens)
    block = model.transformer.net.layers[layer][0]  # pre-norm: the layer attends over block.norm(tokens)
    attention, h = block.fn, block.norm(tokens)
    split = lambda t: t.reshape(t.shape[0], t.shape[1], attention.heads, -1).transpose(1, 2)  # noqa: E731
    queries = split(attention.to_q(h))
    keys = split(torch.einsum("bnd,nk->bkd", attention.to_k(h), attention.proj_k))
    weights = (queries @ keys.transpose(-1, -2) * attention.dim_head ** -0.5).softmax(dim=-1)
    return weights @ attention.proj_v.T
