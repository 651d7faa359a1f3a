"""The Hugging Face ViT, class by class, in plain torch.

This file sits beside notebooks 06 (06_vit_classes_explained.ipynb) and 07, its only users, which import it
as `from vit_classes import ...` (the notebook's working directory is notebooks/, in Colab too); it
is not part of the catsdogs package.

Why rewrite it: `transformers.ViTModel` is the ViT most people meet first (and the one
`google/vit-base-patch16-224-in21k` ships for), but its code is spread over configuration,
output and pretrained-model machinery. Here are the same twelve classes, each a few lines, with
the same parameter names, so a checkpoint trained with `transformers` loads into them with
`load_state_dict(..., strict=True)` and gives the same numbers (see tests/test_vit_classes.py).

Shapes for the base config (224x224 RGB, patch 16, hidden 768, 12 heads):
pixels (B, 3, 224, 224) -> PatchEmbeddings (B, 196, 768) -> ViTEmbeddings (B, 197, 768)
-> ViTEncoder of 12 ViTLayers (B, 197, 768) -> layernorm -> ViTPooler (B, 768).

Names follow the classic layout that every ViT checkpoint on the hub and transformers 4.x use
(`encoder.layer.0.attention.attention.query.weight`). transformers 5 renamed them
(`layers.0.attention.q_proj.weight`); `ViTModel` translates those names when it loads, so a
state dict of either generation loads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

__all__ = [
    "ViTConfig", "PatchEmbeddings", "ViTPatchEmbeddings", "ViTEmbeddings", "ViTSelfAttention",
    "ViTSelfOutput", "ViTAttention", "ViTIntermediate", "ViTOutput", "ViTLayer", "ViTEncoder",
    "ViTModel", "ViTPooler", "ViTModelOutput", "ViTClassifier", "hf_key_to_ours",
    "attention_flops", "count_parameters",
]


def _pair(x: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    return (x, x) if isinstance(x, int) else (int(x[0]), int(x[1]))


# The MLP activations a ViT config can name. "gelu" (every ViT checkpoint's) is the exact erf GELU.
ACTIVATIONS = {"gelu": nn.GELU, "gelu_new": lambda: nn.GELU(approximate="tanh"), "relu": nn.ReLU}


def _activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"Unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}.")
    return ACTIVATIONS[name]()


@dataclass
class ViTConfig:
    """Every size of the model in one place, with the defaults of `transformers.ViTConfig`
    (ViT-Base/16 at 224 pixels), so that a config can be copied field by field from theirs."""

    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.0
    attention_probs_dropout_prob: float = 0.0
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    image_size: int | tuple[int, int] = 224
    patch_size: int | tuple[int, int] = 16
    num_channels: int = 3
    qkv_bias: bool = True

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size={self.hidden_size} must be divisible by num_attention_heads="
                f"{self.num_attention_heads}: each head gets hidden_size // heads features.")
        (h, w), (ph, pw) = _pair(self.image_size), _pair(self.patch_size)
        if h % ph or w % pw:
            raise ValueError(
                f"image_size={self.image_size} is not a multiple of patch_size={self.patch_size}; "
                "the patch grid must tile the image exactly.")
        _activation(self.hidden_act)  # fail early on a typo

    @property
    def grid(self) -> tuple[int, int]:
        """Patches per column and per row: (14, 14) for 224/16."""
        (h, w), (ph, pw) = _pair(self.image_size), _pair(self.patch_size)
        return h // ph, w // pw

    @property
    def num_patches(self) -> int:
        return self.grid[0] * self.grid[1]

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @classmethod
    def from_hf(cls, hf_config: Any) -> "ViTConfig":
        """Copy the fields we know from a `transformers.ViTConfig` (or anything with those
        attributes); the rest of theirs is training/hub bookkeeping."""
        return cls(**{f.name: getattr(hf_config, f.name) for f in fields(cls) if hasattr(hf_config, f.name)})


class PatchEmbeddings(nn.Module):
    """(B, C, H, W) pixels -> (B, N, D) patch vectors.

    Cutting the image into P x P squares and applying the same linear map to each flattened
    square is exactly a convolution with kernel = stride = P, so that is what it is."""

    def __init__(self, config: ViTConfig):
        super().__init__()
        self.image_size, self.patch_size = _pair(config.image_size), _pair(config.patch_size)
        self.num_channels, self.num_patches = config.num_channels, config.num_patches
        self.projection = nn.Conv2d(config.num_channels, config.hidden_size,
                                    kernel_size=self.patch_size, stride=self.patch_size)

    def check(self, pixel_values: Tensor) -> None:
        """Fail with a message a learner can act on instead of a shape error deep inside."""
        want_h, want_w = self.image_size
        if pixel_values.ndim != 4:
            raise ValueError(
                f"Expected a batch of images shaped (batch, {self.num_channels}, {want_h}, {want_w}), "
                f"got a tensor of shape {tuple(pixel_values.shape)}. For one image use x.unsqueeze(0).")
        _, c, h, w = pixel_values.shape
        if c != self.num_channels:
            raise ValueError(
                f"Image has {c} channels but the config expects num_channels={self.num_channels} "
                f"(shape {tuple(pixel_values.shape)}). Convert the image (e.g. PIL .convert('RGB')), "
                "make sure channels come first (B, C, H, W), or set num_channels in the ViTConfig.")
        if (h, w) != (want_h, want_w):
            raise ValueError(
                f"Image is {h}x{w} but the config expects {want_h}x{want_w} (image_size="
                f"{self.image_size[0] if want_h == want_w else self.image_size}). Resize or crop "
                f"it to {want_h}x{want_w}, or build the model with image_size=({h}, {w}).")

    def forward(self, pixel_values: Tensor) -> Tensor:
        self.check(pixel_values)
        return rearrange(self.projection(pixel_values), "b d gh gw -> b (gh gw) d")


ViTPatchEmbeddings = PatchEmbeddings  # the name transformers uses


class ViTEmbeddings(nn.Module):
    """(B, C, H, W) -> (B, 1 + N, D): patch vectors, a learned [CLS] token in front, plus a
    learned position vector per slot.

    Attention is blind to order, so without position embeddings the model could not tell a
    top-left patch from a bottom-right one. The [CLS] token owns no pixels: it is a scratch slot
    that gathers a summary of the image through attention, which the classifier then reads."""

    def __init__(self, config: ViTConfig):
        super().__init__()
        self.cls_token = nn.Parameter(torch.randn(1, 1, config.hidden_size))
        self.patch_embeddings = PatchEmbeddings(config)
        self.position_embeddings = nn.Parameter(torch.randn(1, config.num_patches + 1, config.hidden_size))
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, pixel_values: Tensor) -> Tensor:
        x = self.patch_embeddings(pixel_values)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        return self.dropout(x + self.position_embeddings)


class ViTSelfAttention(nn.Module):
    """(B, T, D) -> (B, T, D) and, on request, the attention probabilities (B, heads, T, T).

    Every token asks a question (query), advertises what it holds (key) and offers content
    (value). Token i takes softmax(q_i . k_j / sqrt(d)) over all j as weights and averages the
    values with them. Splitting D into heads lets several such look-ups run side by side. The
    T x T score matrix is what makes cost grow with the square of the number of patches."""

    def __init__(self, config: ViTConfig):
        super().__init__()
        d = config.hidden_size
        self.num_attention_heads, self.scale = config.num_attention_heads, config.head_dim ** -0.5
        self.query = nn.Linear(d, d, bias=config.qkv_bias)
        self.key = nn.Linear(d, d, bias=config.qkv_bias)
        self.value = nn.Linear(d, d, bias=config.qkv_bias)
        self.dropout = nn.Dropout(config.attention_probs_dropout_prob)

    def forward(self, x: Tensor, output_attentions: bool = False) -> tuple[Tensor, Tensor | None]:
        q, k, v = (rearrange(f(x), "b t (h d) -> b h t d", h=self.num_attention_heads)
                   for f in (self.query, self.key, self.value))
        if output_attentions:  # the written-out version: what the notebook draws
            probs = (q @ k.transpose(-2, -1) * self.scale).softmax(dim=-1)
            out = self.dropout(probs) @ v
        else:  # same maths in torch's fused kernel: faster, and never stores T x T
            probs = None
            out = F.scaled_dot_product_attention(
                q, k, v, dropout_p=self.dropout.p if self.training else 0.0, scale=self.scale)
        return rearrange(out, "b h t d -> b t (h d)"), probs


class ViTSelfOutput(nn.Module):
    """(B, T, D) -> (B, T, D): one linear map that mixes what the heads found back into a
    single D-vector per token. The residual add is left to ViTLayer (pre-norm design)."""

    def __init__(self, config: ViTConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.dense(x))


class ViTAttention(nn.Module):
    """ViTSelfAttention followed by ViTSelfOutput: the complete multi-head attention block,
    (B, T, D) -> (B, T, D) plus optional probabilities. Two classes only because the
    checkpoint names (`attention.attention.*`, `attention.output.*`) say so."""

    def __init__(self, config: ViTConfig):
        super().__init__()
        self.attention = ViTSelfAttention(config)
        self.output = ViTSelfOutput(config)

    def forward(self, x: Tensor, output_attentions: bool = False) -> tuple[Tensor, Tensor | None]:
        out, probs = self.attention(x, output_attentions)
        return self.output(out), probs


class ViTIntermediate(nn.Module):
    """(B, T, D) -> (B, T, 4D): the first half of the MLP. Attention only mixes tokens; this is
    where each token is transformed on its own, widened so the non-linearity has room."""

    def __init__(self, config: ViTConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)
        self.intermediate_act_fn = _activation(config.hidden_act)

    def forward(self, x: Tensor) -> Tensor:
        return self.intermediate_act_fn(self.dense(x))


class ViTOutput(nn.Module):
    """(B, T, 4D), (B, T, D) -> (B, T, D): the second half of the MLP, projected back to D and
    added to the residual stream it was given."""

    def __init__(self, config: ViTConfig):
        super().__init__()
        self.dense = nn.Linear(config.intermediate_size, config.hidden_size)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, x: Tensor, residual: Tensor) -> Tensor:
        return self.dropout(self.dense(x)) + residual


class ViTLayer(nn.Module):
    """One transformer block, (B, T, D) -> (B, T, D):
    x = x + Attention(LayerNorm(x)); x = x + MLP(LayerNorm(x)).

    Normalising *before* each sub-block (pre-norm) keeps the residual path an untouched sum,
    which is what lets deep stacks train without warm-up tricks."""

    def __init__(self, config: ViTConfig):
        super().__init__()
        self.attention = ViTAttention(config)
        self.intermediate = ViTIntermediate(config)
        self.output = ViTOutput(config)
        self.layernorm_before = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.layernorm_after = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, x: Tensor, output_attentions: bool = False) -> tuple[Tensor, Tensor | None]:
        attn, probs = self.attention(self.layernorm_before(x), output_attentions)
        x = attn + x
        return self.output(self.intermediate(self.layernorm_after(x)), x), probs


class ViTEncoder(nn.Module):
    """num_hidden_layers ViTLayers in a row, (B, T, D) -> (B, T, D). Optionally keeps every
    intermediate state (input + one per layer) and every layer's attention map, which is what
    probing needs."""

    def __init__(self, config: ViTConfig):
        super().__init__()
        self.layer = nn.ModuleList(ViTLayer(config) for _ in range(config.num_hidden_layers))

    def forward(self, x: Tensor, output_attentions: bool = False, output_hidden_states: bool = False
                ) -> tuple[Tensor, tuple[Tensor, ...] | None, tuple[Tensor, ...] | None]:
        states, maps = [x], []
        for layer in self.layer:
            x, probs = layer(x, output_attentions)
            states.append(x)
            maps.append(probs)
        return (x, tuple(states) if output_hidden_states else None,
                tuple(maps) if output_attentions else None)


class ViTPooler(nn.Module):
    """(B, T, D) -> (B, D): the final [CLS] vector through dense + tanh. A BERT heirloom: HF's
    own ViTForImageClassification skips it and reads the [CLS] token directly (as ViTClassifier
    does), but in21k checkpoints ship its weights, so it is here to load them."""

    def __init__(self, config: ViTConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.activation = nn.Tanh()

    def forward(self, x: Tensor) -> Tensor:
        return self.activation(self.dense(x[:, 0]))


class ViTModelOutput(NamedTuple):
    """What ViTModel returns. A NamedTuple, so `out.last_hidden_state`, `out[0]` and
    `last, pooled, *_ = out` all work, like the tuple form of transformers' output."""

    last_hidden_state: Tensor                      # (B, T, D), after the final LayerNorm
    pooler_output: Tensor | None = None            # (B, D), None without a pooler
    hidden_states: tuple[Tensor, ...] | None = None  # L+1 of (B, T, D): embeddings, then each layer
    attentions: tuple[Tensor, ...] | None = None     # L of (B, heads, T, T)


# transformers >= 5 name -> classic (checkpoint) name. Order matters: specific before general.
_HF5_RENAMES = [
    (r"layers\.(\d+)\.attention\.q_proj\.", r"encoder.layer.\1.attention.attention.query."),
    (r"layers\.(\d+)\.attention\.k_proj\.", r"encoder.layer.\1.attention.attention.key."),
    (r"layers\.(\d+)\.attention\.v_proj\.", r"encoder.layer.\1.attention.attention.value."),
    (r"layers\.(\d+)\.attention\.o_proj\.", r"encoder.layer.\1.attention.output.dense."),
    (r"layers\.(\d+)\.mlp\.fc1\.", r"encoder.layer.\1.intermediate.dense."),
    (r"layers\.(\d+)\.mlp\.fc2\.", r"encoder.layer.\1.output.dense."),
    (r"layers\.(\d+)\.", r"encoder.layer.\1."),
]


def hf_key_to_ours(key: str) -> str:
    """Translate one transformers-5 parameter name (relative to ViTModel) to ours; classic
    names come back unchanged."""
    for pattern, repl in _HF5_RENAMES:
        new, n = re.subn("^" + pattern, repl, key)
        if n:
            return new
    return key


def _init_weights(module: nn.Module, std: float) -> None:
    """transformers' scheme: small truncated-normal weights, zero biases, identity LayerNorms."""
    if isinstance(module, (nn.Linear, nn.Conv2d)):
        nn.init.trunc_normal_(module.weight, std=std)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
    elif isinstance(module, ViTEmbeddings):
        nn.init.trunc_normal_(module.position_embeddings, std=std)
        nn.init.trunc_normal_(module.cls_token, std=std)


class ViTModel(nn.Module):
    """Pixels (B, C, H, W) -> ViTModelOutput: embeddings, encoder, a final LayerNorm (pre-norm
    blocks leave the stream un-normalised, so one last norm is needed), and the optional pooler.

    `load_state_dict` takes a `transformers.ViTModel` state dict of either naming generation."""

    def __init__(self, config: ViTConfig, add_pooling_layer: bool = True):
        super().__init__()
        self.config = config
        self.embeddings = ViTEmbeddings(config)
        self.encoder = ViTEncoder(config)
        self.layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.pooler = ViTPooler(config) if add_pooling_layer else None
        self.apply(lambda m: _init_weights(m, config.initializer_range))
        self.register_load_state_dict_pre_hook(self._rename_hf5_keys)

    @staticmethod
    def _rename_hf5_keys(module, state_dict, prefix, *_) -> None:
        for key in [k for k in state_dict if k.startswith(prefix)]:
            new = prefix + hf_key_to_ours(key[len(prefix):])
            if new != key:
                state_dict[new] = state_dict.pop(key)

    @classmethod
    def from_hf(cls, hf_model: nn.Module) -> "ViTModel":
        """Build ours with the same config and weights as a `transformers.ViTModel`, e.g. a pretrained
        one for fine-tuning: `ViTModel.from_hf(transformers.ViTModel.from_pretrained(
        "google/vit-base-patch16-224-in21k"))` (that checkpoint expects pixels scaled to [-1, 1])."""
        model = cls(ViTConfig.from_hf(hf_model.config), add_pooling_layer=hf_model.pooler is not None)
        model.load_state_dict(hf_model.state_dict(), strict=True)
        return model

    def forward(self, pixel_values: Tensor, output_attentions: bool = False,
                output_hidden_states: bool = False) -> ViTModelOutput:
        pixel_values = pixel_values.to(self.embeddings.patch_embeddings.projection.weight.dtype)
        x = self.embeddings(pixel_values)
        x, states, maps = self.encoder(x, output_attentions, output_hidden_states)
        x = self.layernorm(x)
        return ViTModelOutput(x, self.pooler(x) if self.pooler is not None else None, states, maps)


class ViTClassifier(nn.Module):
    """ViTModel without pooler + a linear head on the final [CLS] vector: (B, C, H, W) ->
    (B, num_labels) logits. Same layout and names (`vit.*`, `classifier.*`) as transformers'
    ViTForImageClassification, so its state dict loads here too."""

    def __init__(self, config: ViTConfig, num_labels: int = 2):
        super().__init__()
        self.config, self.num_labels = config, num_labels
        self.vit = ViTModel(config, add_pooling_layer=False)
        self.classifier = nn.Linear(config.hidden_size, num_labels)
        _init_weights(self.classifier, config.initializer_range)

    def forward(self, pixel_values: Tensor) -> Tensor:
        return self.classifier(self.vit(pixel_values).last_hidden_state[:, 0])


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def attention_flops(tokens: int, dim: int, *, heads: int = 1, k: int | None = None) -> int:
    """Multiply-adds of one self-attention layer for one image, counted by hand: the four
    D x D projections plus QK^T and (probs)V. With Linformer's k, keys and values are first
    projected from T rows to k rows (2 * k * T * D more), and the T x T products become T x k."""
    proj = 4 * tokens * dim * dim
    if k is None:
        return proj + 2 * tokens * tokens * dim
    return proj + 2 * k * tokens * dim + 2 * tokens * k * dim

