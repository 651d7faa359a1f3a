"""``catsdogs.speed``: the batched Muon computes what ``torch.optim.Muon`` computes, bit for bit, or
(its iterations in fp32 where bf16 is emulated) more precisely."""
import torch

import catsdogs.speed
from catsdogs.model import build_model, mimetic_init_
from catsdogs.speed import BatchedMuon, newton_schulz


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
        monkeypatch.setattr(catsdogs.speed, "native_bf16", lambda device, native=native: native)
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


SHAPES = [torch.Size(s) for s in ((128, 512), (512, 128), (64, 64), (3, 7), (96, 96, 2))]
ADJUSTMENTS = (None, "original", "match_rms_adamw", "something else")  # the rules of every torch from 2.11


def test_the_learning_rate_adjustment_without_torchs_private_function_is_torchs(monkeypatch):
    """torch.optim._muon._adjust_lr is private: without it, the same formula written out gives the same numbers."""
    torchs = {(fn, shape): catsdogs.speed.adjusted_lr(0.006, fn, shape) for fn in ADJUSTMENTS for shape in SHAPES}
    assert torchs[(None, SHAPES[1])] == 0.006 * 2 and torchs[("match_rms_adamw", SHAPES[0])] == 0.006 * 0.2 * 512 ** 0.5
    monkeypatch.delattr(torch.optim._muon, "_adjust_lr")
    assert {key: catsdogs.speed.adjusted_lr(0.006, *key) for key in torchs} == torchs


def test_batched_muon_steps_the_same_without_torchs_private_function(monkeypatch):
    matrices = _seed_matrices()
    with_torchs, _ = _three_steps(BatchedMuon, matrices, dtype=torch.float32, adjust_lr_fn="match_rms_adamw")
    monkeypatch.setattr(catsdogs.speed, "_torch_muon", None)  # a torch without torch.optim._muon at all
    written_out, _ = _three_steps(BatchedMuon, matrices, dtype=torch.float32, adjust_lr_fn="match_rms_adamw")
    assert all(torch.equal(a, b) for a, b in zip(with_torchs, written_out))
