"""The two speed-ups of the training step compute exactly what they replace."""
import torch
from linformer.linformer import LinformerSelfAttention

from catsdogs.model import ScaledQueriesAttention, build_model, mimetic_init_
from catsdogs.muon import BatchedMuon


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


def test_batched_muon_takes_the_same_steps_as_torch_muon():
    torch.manual_seed(0)
    model = mimetic_init_(build_model())
    matrices = [p for n, p in model.named_parameters() if p.ndim == 2 and n.startswith("transformer.")]
    assert len({p.shape for p in matrices}) == 4  # four shapes: the batching has something to do
    plain = [p.detach().clone().requires_grad_() for p in matrices]
    batched = [p.detach().clone().requires_grad_() for p in matrices]
    reference = torch.optim.Muon(plain, lr=0.006, weight_decay=0.008)
    ours = BatchedMuon(batched, lr=0.006, weight_decay=0.008)
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
