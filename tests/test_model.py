"""``catsdogs.model``, the code of notebook 03's exported cells: the seed model, mimetic
initialisation and the effective attention drawn from it."""
from __future__ import annotations

import pytest
import torch

from catsdogs.model import ModelConfig, build_model, count_parameters, effective_attention, mimetic_init_


def test_seed_model_has_the_blog_parameter_count_and_output_shape():
    model = build_model()
    assert count_parameters(model) == 2_858_242
    assert model(torch.zeros(2, 3, 224, 224)).shape == (2, 2)
    assert count_parameters(build_model(ModelConfig(depth=6))) < 2_000_000  # the configuration reaches the model


def test_mimetic_init_keeps_the_architecture_and_makes_attention_local():
    model = build_model()
    before = {name: p.shape for name, p in model.named_parameters()}
    mimetic_init_(model)
    assert {name: p.shape for name, p in model.named_parameters()} == before
    assert count_parameters(model) == 2_858_242
    attention = model.transformer.net.layers[0][0].fn
    assert torch.equal(attention.proj_k[:, :50], torch.eye(50)) and not attention.proj_k[:, 50:].any()
    # Position codes alone: each patch's query should score highest the key of itself or of one of its
    # eight neighbours on the 7x7 grid, and near patches above far ones.
    grid = torch.stack(torch.meshgrid(torch.arange(7), torch.arange(7), indexing="ij"), -1).reshape(49, 2).float()
    distance = torch.cdist(grid, grid)

    def scores_of(m):
        block = m.transformer.net.layers[0][0].fn
        codes = m.pos_embedding[0, 1:]
        with torch.no_grad():
            return block.to_q(codes) @ block.to_k(codes).T

    def share_looking_next_door(scores):
        return (distance[torch.arange(49), scores.argmax(dim=1)] <= 1.5).float().mean()

    scores = scores_of(model)
    assert share_looking_next_door(scores) > 0.85
    assert scores[(distance > 0) & (distance <= 1)].mean() > scores[distance >= 4].mean()
    # The libraries' own initialisation has no such structure: random position vectors.
    torch.manual_seed(0)
    assert share_looking_next_door(scores_of(build_model())) < 0.5


@pytest.mark.parametrize("init", ["default", "mimetic"])
def test_effective_attention_reproduces_the_layer_output(init):
    torch.manual_seed(0)
    model = build_model().eval()
    if init == "mimetic":
        mimetic_init_(model)
    x = torch.randn(2, 3, 224, 224)
    layer = 2
    weights = effective_attention(model, x, layer)
    assert weights.shape == (2, 8, 50, 50)
    with torch.no_grad():  # the layer's input, the long way round
        tokens = torch.cat([model.cls_token.expand(2, -1, -1), model.to_patch_embedding(x)], dim=1) + model.pos_embedding
        for attention_block, feed_forward in model.transformer.net.layers[:layer]:
            tokens = tokens + attention_block(tokens)
            tokens = tokens + feed_forward(tokens)
        block = model.transformer.net.layers[layer][0]
        values = block.fn.to_v(block.norm(tokens)).reshape(2, 50, 8, 16).transpose(1, 2)
        rebuilt = block.fn.to_out((weights @ values).transpose(1, 2).reshape(2, 50, 128))
        torch.testing.assert_close(rebuilt, block(tokens), atol=1e-5, rtol=1e-5)
