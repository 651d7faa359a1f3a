"""The speed-ups of the training step compute what they replace: bit for bit, or (Muon's iterations in
fp32 where bf16 is emulated) more precisely."""
import numpy as np
import pytest
import torch
from linformer.linformer import LinformerSelfAttention
from torch.utils.data import DataLoader, TensorDataset

import catsdogs.muon
from catsdogs.device import Device
from catsdogs.model import ScaledQueriesAttention, build_model, mimetic_init_
from catsdogs.muon import BatchedMuon, newton_schulz
from catsdogs.predict import evaluate, evaluate_options
from catsdogs.training import TrainConfig, make_optimizers, make_schedulers, train_epoch


def test_scaled_queries_attention_equals_linformers_bit_for_bit():
    torch.manual_seed(0)
    reference = LinformerSelfAttention(dim=128, seq_len=50, k=64, heads=8)
    ours = LinformerSelfAttention(dim=128, seq_len=50, k=64, heads=8)
    ours.load_state_dict(reference.state_dict())
    ours.__class__ = ScaledQueriesAttention
    x = torch.randn(3, 50, 128, requires_grad=True)
    y = x.detach().clone().requires_grad_()
    out_ref, out_ours = reference(x), ours(y)
    assert torch.equal(out_ref, out_ours)
    out_ref.square().sum().backward()
    out_ours.square().sum().backward()
    assert torch.equal(x.grad, y.grad)
    assert all(torch.equal(a.grad, b.grad) for a, b in zip(reference.parameters(), ours.parameters()))


def test_the_seed_model_uses_it_with_the_libraries_parameter_names():
    model = build_model()
    attention = [m for m in model.modules() if isinstance(m, LinformerSelfAttention)]
    assert len(attention) == 12 and all(type(m) is ScaledQueriesAttention for m in attention)
    assert "transformer.net.layers.0.0.fn.proj_k" in model.state_dict()


def _seed_matrices():
    torch.manual_seed(0)
    model = mimetic_init_(build_model())
    return [p for n, p in model.named_parameters() if p.ndim == 2 and n.startswith("transformer.")]


def _three_steps(optimizer_class, matrices, **options):
    """The matrices after three Muon steps on the same seeded random gradients."""
    params = [p.detach().clone().requires_grad_() for p in matrices]
    optimizer = optimizer_class(params, lr=0.006, weight_decay=0.008, **options)
    generator = torch.Generator().manual_seed(1)
    for _ in range(3):
        for p in params:
            p.grad = torch.randn(p.shape, generator=generator)
        optimizer.step()
    return params, optimizer


def test_batched_muon_takes_the_same_steps_as_torch_muon():
    torch.manual_seed(0)
    model = mimetic_init_(build_model())
    matrices = [p for n, p in model.named_parameters() if p.ndim == 2 and n.startswith("transformer.")]
    assert len({p.shape for p in matrices}) == 4  # four shapes: the batching has something to do
    plain = [p.detach().clone().requires_grad_() for p in matrices]
    batched = [p.detach().clone().requires_grad_() for p in matrices]
    reference = torch.optim.Muon(plain, lr=0.006, weight_decay=0.008)
    ours = BatchedMuon(batched, lr=0.006, weight_decay=0.008, dtype=torch.bfloat16)  # torch's precision
    for _ in range(3):
        for a, b in zip(plain, batched):
            a.grad = torch.randn_like(a)
            b.grad = a.grad.clone()
        reference.step()
        ours.step()
    assert all(torch.equal(a, b) for a, b in zip(plain, batched))
    assert any(not torch.equal(a, m) for a, m in zip(plain, matrices))  # they did move
    state_ref, state_ours = reference.state_dict(), ours.state_dict()
    assert state_ref["param_groups"] == state_ours["param_groups"]
    assert all(torch.equal(state_ref["state"][i]["momentum_buffer"], state_ours["state"][i]["momentum_buffer"])
               for i in state_ref["state"])


def test_batched_muon_iterates_in_bf16_only_where_the_hardware_has_it(monkeypatch):
    """Emulated bf16 made Muon 2.6 s of a 4.2 s step on an AVX2 CPU: without native bf16 it runs in fp32."""
    matrices = _seed_matrices()
    forced = {dtype: _three_steps(BatchedMuon, matrices, dtype=dtype)[0] for dtype in (torch.bfloat16, torch.float32)}
    assert any(not torch.equal(a, b) for a, b in zip(forced[torch.bfloat16], forced[torch.float32]))
    for native, dtype in ((True, torch.bfloat16), (False, torch.float32)):
        monkeypatch.setattr(catsdogs.muon, "native_bf16", lambda device, native=native: native)
        chosen, _ = _three_steps(BatchedMuon, matrices)
        assert all(torch.equal(a, b) for a, b in zip(chosen, forced[dtype]))


def test_newton_schulz_in_fp32_is_closer_to_exact_than_in_bf16():
    """The fp32 iterations are no approximation of torch's bf16 ones: they are nearer the float64 result."""
    torch.manual_seed(0)
    grads = torch.randn(6, 128, 512)
    coefficients = torch.optim.Muon([torch.zeros(2, 2, requires_grad=True)]).defaults["ns_coefficients"]
    exact = newton_schulz(grads.double(), coefficients, 5, 1e-7, torch.float64)
    error = {dtype: (newton_schulz(grads, coefficients, 5, 1e-7, dtype).double() - exact).abs().max().item()
             for dtype in (torch.bfloat16, torch.float32)}
    assert error[torch.float32] < 1e-4 < error[torch.bfloat16]


class _WholeBatches(Device):
    batch_limit = 0  # the model takes every batch at once, as on a GPU


def test_training_in_pieces_takes_the_whole_batchs_step():
    """A CPU in fp32 trains a batch of 128 as two pieces of 64 (faster there): the same step, to rounding."""
    torch.manual_seed(0)
    images, labels = torch.randint(0, 256, (128, 3, 224, 224), dtype=torch.uint8), torch.randint(0, 2, (128,))
    loader = DataLoader(TensorDataset(images, labels), batch_size=128)
    pieces = Device(torch.device("cpu"), "fp32")
    assert pieces.batch_limit == 64 and _WholeBatches(torch.device("cpu"), "fp32").batch_limit == 0
    config = TrainConfig(optimizer="adamw", epochs=1, warmup_epochs=0.0)
    results = []
    for device in (pieces, _WholeBatches(torch.device("cpu"), "fp32")):
        torch.manual_seed(1)
        model = mimetic_init_(build_model())
        optimizers = make_optimizers(model, config)
        row = train_epoch(model, loader, optimizers=optimizers, schedulers=make_schedulers(optimizers, config, 1),
                          scaler=device.grad_scaler(), device=device,
                          loss_fn=lambda logits, y, x: torch.nn.functional.cross_entropy(logits, y))
        results.append((row, [p.grad.clone() for p in model.parameters()]))  # the step's gradient stays in .grad
    (row_a, grads_a), (row_b, grads_b) = results
    assert row_a["loss"] == pytest.approx(row_b["loss"], rel=1e-5) and row_a["acc"] == row_b["acc"]
    for a, b in zip(grads_a, grads_b):
        torch.testing.assert_close(a, b, atol=1e-7, rtol=1e-3)
    assert sum(g.abs().sum() for g in grads_a) > 0


def test_evaluate_options_scores_every_option_as_evaluate_does():
    """Notebook 05's comparison takes two forward passes a photo and crop instead of three: same scores."""
    torch.manual_seed(0)
    model = mimetic_init_(build_model())
    photos = TensorDataset(torch.randint(0, 256, (20, 3, 224, 224), dtype=torch.uint8), torch.randint(0, 2, (20,)))
    loader, device = DataLoader(photos, batch_size=8), Device(torch.device("cpu"), "fp32")
    options = evaluate_options(model, loader, device, crops=[1.0, 0.82])
    both = (1.0, 0.82)  # multi-crop TTA: the mean over the crops
    assert list(options) == [(False, 1.0), (False, 0.82), (False, both), (True, 1.0), (True, 0.82), (True, both)]
    for (flip_tta, crop), got in options.items():
        expected = evaluate(model, loader, device, flip_tta=flip_tta, crop=crop)
        np.testing.assert_allclose(got.probs, expected.probs, rtol=0, atol=1e-12)
        assert got.labels.tolist() == expected.labels.tolist() and got.log_loss == pytest.approx(expected.log_loss)
    assert not np.allclose(options[(False, 1.0)].probs, options[(True, 1.0)].probs)  # the mirror image counts
