"""notebooks/vit_classes.py (notebook 06's ViT classes): our twelve ViT classes against
transformers' ViTModel.

The equivalence tests need `transformers` (a test-only dependency) and are skipped without it;
the shape, naming and error tests run everywhere."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "notebooks"))  # vit_classes.py sits beside notebook 06

import vit_classes  # noqa: E402
from vit_classes import (  # noqa: E402
    PatchEmbeddings, ViTClassifier, ViTConfig, ViTEmbeddings, ViTModel, ViTModelOutput,
    ViTPatchEmbeddings, hf_key_to_ours,
)

SMALL = dict(hidden_size=64, num_hidden_layers=3, num_attention_heads=4, intermediate_size=128,
             image_size=32, patch_size=8)
TOL = 1e-5


def _hf_pair(add_pooling_layer: bool = True):
    """A random small transformers.ViTModel in eval mode and ours with its weights."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    hf_config = transformers.ViTConfig(**SMALL)
    hf_config._attn_implementation = "eager"  # the only implementation that returns attention maps
    hf = transformers.ViTModel(hf_config, add_pooling_layer=add_pooling_layer).eval()
    ours = ViTModel(ViTConfig.from_hf(hf_config), add_pooling_layer=add_pooling_layer).eval()
    result = ours.load_state_dict(hf.state_dict(), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    return hf, ours


def test_equal_to_transformers_vitmodel():
    hf, ours = _hf_pair()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        ref = hf(x, output_attentions=True, output_hidden_states=True)
        out = ours(x, output_attentions=True, output_hidden_states=True)
        fast = ours(x)  # the fused-attention path, no maps kept
    assert out.last_hidden_state.shape == (3, 17, 64)
    torch.testing.assert_close(out.last_hidden_state, ref.last_hidden_state, atol=TOL, rtol=0)
    torch.testing.assert_close(out.pooler_output, ref.pooler_output, atol=TOL, rtol=0)
    torch.testing.assert_close(fast.last_hidden_state, ref.last_hidden_state, atol=TOL, rtol=0)
    torch.testing.assert_close(fast.pooler_output, ref.pooler_output, atol=TOL, rtol=0)
    assert len(out.attentions) == len(ref.attentions) == 3
    for mine, theirs in zip(out.attentions, ref.attentions):
        assert mine.shape == (3, 4, 17, 17)
        torch.testing.assert_close(mine, theirs, atol=TOL, rtol=0)
    assert len(out.hidden_states) == len(ref.hidden_states) == 4
    for mine, theirs in zip(out.hidden_states, ref.hidden_states):
        torch.testing.assert_close(mine, theirs, atol=TOL, rtol=0)


def test_without_pooler_and_from_hf():
    hf, _ = _hf_pair(add_pooling_layer=False)
    ours = ViTModel.from_hf(hf).eval()
    assert ours.pooler is None
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        out = ours(x)
        torch.testing.assert_close(out.last_hidden_state, hf(x).last_hidden_state, atol=TOL, rtol=0)
    assert out.pooler_output is None


def test_checkpoint_with_classic_names_round_trips_through_from_pretrained(tmp_path):
    """The path of a hub checkpoint such as google/vit-base-patch16-224-in21k, offline: weights
    saved under the classic names (ours), read by transformers' from_pretrained (which renames
    them in transformers 5), then back into ours: same outputs all the way."""
    transformers = pytest.importorskip("transformers")
    safetensors_torch = pytest.importorskip("safetensors.torch")
    torch.manual_seed(2)
    ours = ViTModel(ViTConfig(**SMALL)).eval()
    transformers.ViTConfig(**SMALL).save_pretrained(tmp_path)
    safetensors_torch.save_file({k: v.contiguous() for k, v in ours.state_dict().items()},
                                str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    hf = transformers.ViTModel.from_pretrained(tmp_path).eval()
    back = ViTModel.from_hf(hf).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = ours(x)
        torch.testing.assert_close(hf(x).last_hidden_state, expected.last_hidden_state, atol=TOL, rtol=0)
        torch.testing.assert_close(back(x).pooler_output, expected.pooler_output, atol=TOL, rtol=0)


def test_classifier_equal_to_vit_for_image_classification():
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(1)
    hf_config = transformers.ViTConfig(**SMALL, num_labels=2)
    hf = transformers.ViTForImageClassification(hf_config).eval()
    ours = ViTClassifier(ViTConfig.from_hf(hf_config), num_labels=2).eval()
    ours.load_state_dict(hf.state_dict(), strict=True)
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), hf(x).logits, atol=TOL, rtol=0)


def test_transformers_parameter_names_translate_one_to_one():
    """Every name of the installed transformers maps to one distinct name of ours, with the
    same shape: nothing silently dropped or doubled by the renaming."""
    hf, ours = _hf_pair()
    theirs = hf.state_dict()
    mine = ours.state_dict()
    translated = {hf_key_to_ours(k): v.shape for k, v in theirs.items()}
    assert len(translated) == len(theirs)
    assert translated == {k: v.shape for k, v in mine.items()}


def test_parameter_names_are_the_checkpoint_names():
    names = set(ViTModel(ViTConfig(**SMALL)).state_dict())
    for name in ["embeddings.cls_token", "embeddings.position_embeddings",
                 "embeddings.patch_embeddings.projection.weight",
                 "encoder.layer.0.attention.attention.query.weight",
                 "encoder.layer.0.attention.attention.key.bias",
                 "encoder.layer.0.attention.attention.value.weight",
                 "encoder.layer.0.attention.output.dense.weight",
                 "encoder.layer.0.intermediate.dense.weight", "encoder.layer.0.output.dense.weight",
                 "encoder.layer.0.layernorm_before.weight", "encoder.layer.2.layernorm_after.bias",
                 "layernorm.weight", "pooler.dense.weight"]:
        assert name in names, name
    assert len(names) == 4 + 16 * 3 + 2 + 2
    assert hf_key_to_ours("layers.7.attention.q_proj.weight") == "encoder.layer.7.attention.attention.query.weight"
    assert hf_key_to_ours("layers.7.mlp.fc2.bias") == "encoder.layer.7.output.dense.bias"
    assert hf_key_to_ours("encoder.layer.7.output.dense.bias") == "encoder.layer.7.output.dense.bias"


def test_base_config_shapes_on_one_layer():
    """224/16 base config: 196 patches, 197 tokens of 768 (one layer keeps it fast)."""
    config = ViTConfig(num_hidden_layers=1)
    assert (config.hidden_size, config.num_attention_heads, config.grid) == (768, 12, (14, 14))
    model = ViTModel(config).eval()
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        patches = model.embeddings.patch_embeddings(x)
        tokens = model.embeddings(x)
        out = model(x, output_attentions=True, output_hidden_states=True)
    assert patches.shape == (1, 196, 768)
    assert tokens.shape == (1, 197, 768)
    assert out.last_hidden_state.shape == (1, 197, 768)
    assert out.pooler_output.shape == (1, 768)
    assert [a.shape for a in out.attentions] == [(1, 12, 197, 197)]
    assert [h.shape for h in out.hidden_states] == [(1, 197, 768)] * 2
    torch.testing.assert_close(out.attentions[0].sum(-1), torch.ones(1, 12, 197))


def test_output_indexes_and_unpacks_like_a_tuple():
    model = ViTModel(ViTConfig(**SMALL)).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 32, 32))
    assert isinstance(out, ViTModelOutput)
    last, pooled, *rest = out
    assert out[0] is out.last_hidden_state is last and out[1] is out.pooler_output is pooled
    assert rest == [None, None]  # maps and states only when asked for


def test_wrong_image_size_says_what_was_expected():
    model = ViTModel(ViTConfig(**SMALL))
    with pytest.raises(ValueError, match=r"Image is 64x64 but the config expects 32x32.*Resize"):
        model(torch.randn(1, 3, 64, 64))


def test_wrong_channels_and_missing_batch_dimension():
    model = ViTModel(ViTConfig(**SMALL))
    with pytest.raises(ValueError, match=r"1 channels but the config expects num_channels=3"):
        model(torch.randn(1, 1, 32, 32))
    with pytest.raises(ValueError, match=r"unsqueeze\(0\)"):
        model(torch.randn(3, 32, 32))
    with pytest.raises(ValueError, match="divisible by num_attention_heads"):
        ViTConfig(hidden_size=60, num_attention_heads=8)
    with pytest.raises(ValueError, match="multiple of patch_size"):
        ViTConfig(image_size=30, patch_size=8)
    with pytest.raises(ValueError, match="Unknown activation 'gelu_fast'"):
        ViTConfig(hidden_act="gelu_fast")


def test_hf_alias_and_embeddings_prepend_cls():
    assert ViTPatchEmbeddings is PatchEmbeddings
    emb = ViTEmbeddings(ViTConfig(**SMALL))
    x = torch.randn(2, 3, 32, 32)
    out = emb(x)
    expected_cls = emb.cls_token[0, 0] + emb.position_embeddings[0, 0]
    torch.testing.assert_close(out[:, 0], expected_cls.expand(2, -1))


def test_classifier_learns_a_small_batch():
    """Gradients reach every parameter and a few Adam steps fit 8 random images."""
    torch.manual_seed(0)
    model = ViTClassifier(ViTConfig(**SMALL), num_labels=2)
    x, y = torch.randn(8, 3, 32, 32), torch.tensor([0, 1] * 4)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(40):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(p.grad is not None for p in model.parameters())
    assert losses[-1] < 0.1 < losses[0]


def test_classes_sit_beside_notebooks_06_and_07():
    """Notebooks 06 and 07 import them as `from vit_classes import ...` from their own folder."""
    here = Path(vit_classes.__file__).resolve().parent
    assert here == Path(__file__).resolve().parent.parent / "notebooks"
    assert (here / "06_vit_classes_explained.ipynb").exists()
    assert (here / "07_attention_and_linformer.ipynb").exists()
