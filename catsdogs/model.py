"""The model: lucidrains' efficient ViT with a Linformer encoder, in the seed configuration."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from linformer import Linformer
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


def build_model(config: ModelConfig = ModelConfig()) -> nn.Module:
    """``Linformer(dim=128, seq_len=49+1, depth=12, heads=8, k=64)`` inside ``ViT(dim=128,
    image_size=224, patch_size=32, num_classes=2, channels=3)``: +1 token for the class token."""
    efficient_transformer = Linformer(
        dim=config.dim,
        seq_len=config.num_patches + 1,
        depth=config.depth,
        heads=config.heads,
        k=config.k,
    )
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
