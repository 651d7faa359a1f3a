"""The model: lucidrains' efficient ViT with a Linformer encoder, in the seed configuration."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from einops import rearrange
from linformer import Linformer
from linformer.linformer import LinformerSelfAttention
from torch import nn
from vit_pytorch.efficient import ViT


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

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    def to_dict(self) -> dict:
        return asdict(self)


class ScaledQueriesAttention(LinformerSelfAttention):
    """``linformer``'s attention with its 1/sqrt(d_head) scale applied to the queries (50 x 16 numbers
    per head) instead of to the scores (50 x 64). With d_head = 16 the scale is 1/4, a power of two,
    so every number is the same bit for bit; the training step is about 8% faster on a CPU, where
    multiplying the large score tensor (and its gradient) cost more than the attention's matmuls."""

    def forward(self, x: torch.Tensor, context: None = None, **kwargs) -> torch.Tensor:
        assert context is None, "the ViT's attention is self-attention"
        n, heads = x.shape[1], self.heads
        queries = self.to_q(x) * self.dim_head ** -0.5
        keys = torch.einsum("bnd,nk->bkd", self.to_k(x), self.proj_k[:n])  # 50 tokens → k = 64 mixtures
        values = torch.einsum("bnd,nk->bkd", self.to_v(x), self.proj_v[:n])
        queries, keys, values = (rearrange(t, "b n (h d) -> b h n d", h=heads) for t in (queries, keys, values))
        attention = (queries @ keys.transpose(-1, -2)).softmax(dim=-1)
        out = self.dropout(attention) @ values
        return self.to_out(rearrange(out, "b h n d -> b n (h d)"))


def build_model(config: ModelConfig = ModelConfig()) -> nn.Module:
    """``Linformer(dim=128, seq_len=49+1, depth=12, heads=8, k=64)`` inside ``ViT(dim=128,
    image_size=224, patch_size=32, num_classes=2, channels=3)``: +1 token for the class token.
    Each attention layer computes its scores with :class:`ScaledQueriesAttention` (the same numbers)."""
    efficient_transformer = Linformer(
        dim=config.dim,
        seq_len=config.num_patches + 1,
        depth=config.depth,
        heads=config.heads,
        k=config.k,
    )
    for module in efficient_transformer.modules():
        if type(module) is LinformerSelfAttention:
            module.__class__ = ScaledQueriesAttention  # same parameters and names: only forward differs
    return ViT(
        dim=config.dim,
        image_size=config.image_size,
        patch_size=config.patch_size,
        num_classes=config.num_classes,
        channels=config.channels,
        transformer=efficient_transformer,
    )


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


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
    """Start the seed model's attention where trained ViTs end up: looking at nearby patches.

    Mimetic initialisation (Trockman & Kolter, 2023) sets, in every layer and head, the query and
    key weights so that W_q^T W_k ≈ alpha·Z + beta·I (a token's query matches keys like itself), and
    the value and output weights so that W_out W_v ≈ alpha'·Z' − beta'·I, with Z, Z' random. With
    sine-cosine position codes, "like itself" means "close by", so each layer starts out as a soft
    local filter, the convolution-like bias a ViT otherwise has to learn from data. Linformer's
    projections ``proj_k`` and ``proj_v`` start as the identity on the 50 tokens (the 14 extra of
    k = 64 start empty), so the model begins as full attention. Only starting values change: the
    architecture, the parameter count and everything trained afterwards stay the same.
    """
    generator = torch.Generator().manual_seed(seed)
    tokens, dim = model.pos_embedding.shape[1:]
    grid = int(round((tokens - 1) ** 0.5))
    model.pos_embedding.zero_()
    model.pos_embedding[0, 1:] = sincos_position_codes(grid, dim)

    def factors(scale_random: float, scale_identity: float, rank: int):
        target = scale_random * torch.randn(dim, dim, generator=generator) / dim ** 0.5 + scale_identity * torch.eye(dim)
        u, s, vh = torch.linalg.svd(target)
        return u[:, :rank] * s[:rank].sqrt(), (vh[:rank].T * s[:rank].sqrt()).T  # left @ right ≈ target

    for attention_block, _ in model.transformer.net.layers:
        attention = attention_block.fn
        heads, head_dim = attention.heads, attention.dim_head
        for h in range(heads):
            rows = slice(h * head_dim, (h + 1) * head_dim)
            left, right = factors(alpha[0], beta[0], head_dim)
            attention.to_q.weight[rows] = left.T
            attention.to_k.weight[rows] = right
        left, right = factors(alpha[1], -beta[1], dim)
        attention.to_out.weight.copy_(left)
        attention.to_v.weight.copy_(right)
        attention.to_out.bias.zero_()
        identity = torch.eye(*attention.proj_k.shape)
        attention.proj_k.copy_(identity)
        attention.proj_v.copy_(identity)
    return model


@torch.no_grad()
def effective_attention(model: nn.Module, x: torch.Tensor, layer: int = 0) -> torch.Tensor:
    """(batch, heads, 50, 50): how much each token's output in ``layer`` draws on each token.

    Linformer attends over k = 64 mixtures of the tokens, not over the tokens; since the mixtures
    are ``proj_v``-weighted sums, multiplying the attention by ``proj_v`` turns weights on mixtures
    back into weights on tokens (exactly: the layer's output is these weights times the values).
    """
    tokens = model.to_patch_embedding(x)
    tokens = torch.cat([model.cls_token.expand(len(x), -1, -1), tokens], dim=1) + model.pos_embedding
    for attention_block, feed_forward in model.transformer.net.layers[:layer]:
        tokens = tokens + attention_block(tokens)
        tokens = tokens + feed_forward(tokens)
    block = model.transformer.net.layers[layer][0]
    attention, h = block.fn, block.norm(tokens)
    split = lambda t: t.reshape(t.shape[0], t.shape[1], attention.heads, -1).transpose(1, 2)  # noqa: E731
    queries = split(attention.to_q(h))
    keys = split(torch.einsum("bnd,nk->bkd", attention.to_k(h), attention.proj_k))
    weights = (queries @ keys.transpose(-1, -2) * attention.dim_head ** -0.5).softmax(dim=-1)
    return weights @ attention.proj_v.T
