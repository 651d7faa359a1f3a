"""``catsdogs.training``, the code of notebook 04's exported cells: the teacher and its loss, the
optimisers and their schedule, the training step, and fit's checkpoints and resuming."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

import catsdogs.training as training
from catsdogs.device import Device
from catsdogs.model import ModelConfig, build_model
from catsdogs.training import (Teacher, distillation_loss, fit, lr_factor, make_loss, make_optimizers,
                               make_schedulers, resume)

CPU = Device(torch.device("cpu"), "fp32")
MUON = dict(optimizer="muon", lr=1e-3, weight_decay=0.05, muon_lr=0.006, muon_weight_decay=0.008)


def test_distillation_loss_is_cross_entropy_against_the_teachers_probabilities():
    student = torch.tensor([[2.0, -1.0], [0.5, 0.5]])
    teacher = torch.tensor([[0.0, 0.0], [1.0, 3.0]])
    expected = -(teacher.softmax(dim=1) * student.log_softmax(dim=1)).sum(dim=1).mean()
    assert distillation_loss(student, teacher) == pytest.approx(expected.item())
    # a certain teacher is a hard label: the loss becomes the usual cross-entropy
    certain = torch.tensor([[50.0, -50.0], [-50.0, 50.0]])
    assert distillation_loss(student, certain) == pytest.approx(F.cross_entropy(student, torch.tensor([0, 1])).item())


def test_distillation_pulls_the_student_towards_the_teacher():
    student = torch.zeros(1, 2, requires_grad=True)
    distillation_loss(student, torch.tensor([[0.0, 2.0]])).backward()
    assert student.grad[0, 1] < 0 < student.grad[0, 0]  # gradient descent raises the teacher's class


def test_the_loss_mixes_label_and_teacher_by_distill():
    torch.manual_seed(0)
    teacher = Teacher(width=4, image_size=32).eval()
    x = CPU.input(torch.randint(0, 256, (4, 3, 64, 64), dtype=torch.uint8))
    logits, labels = torch.randn(4, 2), torch.tensor([0, 1, 1, 0])
    with torch.no_grad():
        answer = teacher(x)
    smoothed = F.cross_entropy(logits, labels, label_smoothing=0.1)
    for distill in (0.0, 0.5, 1.0):
        loss = make_loss(label_smoothing=0.1, teacher=teacher, distill=distill, device=CPU)(logits, labels, x)
        expected = (1 - distill) * smoothed + distill * distillation_loss(logits, answer)
        assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert make_loss()(logits, labels, x).item() == pytest.approx(F.cross_entropy(logits, labels).item())


def test_teacher_sees_the_student_crop_shrunk_to_its_own_size():
    teacher = Teacher(image_size=64).eval()
    seen = []
    teacher.net[0].register_forward_hook(lambda module, inputs, output: seen.append(inputs[0].shape))
    with torch.no_grad():
        logits = teacher(CPU.input(torch.randint(0, 256, (3, 3, 224, 224), dtype=torch.uint8)))
    assert logits.shape == (3, 2) and seen == [torch.Size([3, 3, 64, 64])]


def test_warmup_then_cosine_schedule_and_no_decay_on_norms():
    model = build_model(ModelConfig(depth=1))
    [optimizer] = make_optimizers(model, optimizer="adamw", lr=1.0, weight_decay=0.05)
    decayed = {id(p) for p in optimizer.param_groups[0]["params"]}
    for name, p in model.named_parameters():
        assert (id(p) in decayed) == (p.ndim >= 2 and "pos_embedding" not in name and "cls_token" not in name)
    [scheduler] = make_schedulers([optimizer], schedule="cosine", warmup_steps=20, total_steps=100)
    lrs = []
    for _ in range(100):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[0] == pytest.approx(0.05) and max(lrs) == pytest.approx(1.0) and lrs.index(max(lrs)) == 19
    assert all(a >= b for a, b in zip(lrs[19:], lrs[20:])) and lrs[-1] < 0.01
    assert lr_factor(50, schedule="constant", warmup_steps=20, total_steps=100) == 1.0
    with pytest.raises(ValueError, match="schedule must be"):
        lr_factor(0, schedule="linear", warmup_steps=0, total_steps=10)
    with pytest.raises(ValueError, match="optimizer must be"):
        make_optimizers(model, optimizer="sgd", lr=1.0, weight_decay=0.0)


def _step(model, optimizers, schedulers, images):
    model.zero_grad()
    model(images).square().sum().backward()
    for optimizer in optimizers:
        optimizer.step()
    for scheduler in schedulers:
        scheduler.step()


def test_muon_takes_the_transformer_matrices_and_adamw_the_rest():
    model = build_model(ModelConfig(depth=2))
    optimizers = make_optimizers(model, **MUON)
    muon_opt, adamw_opt = optimizers
    assert isinstance(muon_opt, torch.optim.Muon) and isinstance(adamw_opt, torch.optim.AdamW)
    muon = {id(p) for group in muon_opt.param_groups for p in group["params"]}
    adamw_decayed = {id(p) for p in adamw_opt.param_groups[0]["params"]}
    adamw_plain = {id(p) for p in adamw_opt.param_groups[1]["params"]}
    for name, p in model.named_parameters():
        in_block_matrix = p.ndim == 2 and name.startswith("transformer.")
        assert (id(p) in muon) == in_block_matrix, name
        assert (id(p) in adamw_decayed) == (not in_block_matrix and p.ndim >= 2 and "pos_embedding" not in name
                                            and "cls_token" not in name), name
        assert (id(p) in muon) + (id(p) in adamw_decayed) + (id(p) in adamw_plain) == 1, name
    assert "to_patch_embedding.2.weight" in dict(model.named_parameters()) and len(muon) == 2 * 8

    # the schedule drives both optimisers, each from its own base rate
    schedule = dict(schedule="cosine", warmup_steps=5, total_steps=10)
    schedulers = make_schedulers(optimizers, **schedule)
    assert muon_opt.param_groups[0]["lr"] == pytest.approx(MUON["muon_lr"] / 5)
    assert adamw_opt.param_groups[0]["lr"] == pytest.approx(MUON["lr"] / 5)
    images = torch.randn(2, 3, 224, 224)
    for _ in range(5):
        _step(model, optimizers, schedulers, images)
    assert muon_opt.param_groups[0]["lr"] == pytest.approx(MUON["muon_lr"])
    assert adamw_opt.param_groups[0]["lr"] == pytest.approx(MUON["lr"])

    # resuming from a saved state continues exactly where the run would have gone
    saved = io.BytesIO()
    torch.save({"optimizers": [o.state_dict() for o in optimizers], "schedulers": [s.state_dict() for s in schedulers]},
               saved)
    saved.seek(0)
    state = torch.load(saved, weights_only=True)
    resumed = build_model(ModelConfig(depth=2))
    resumed.load_state_dict(model.state_dict())
    resumed_optimizers = make_optimizers(resumed, **MUON)
    resumed_schedulers = make_schedulers(resumed_optimizers, **schedule)
    for thing, saved_state in zip([*resumed_optimizers, *resumed_schedulers], [*state["optimizers"], *state["schedulers"]]):
        thing.load_state_dict(saved_state)
    _step(model, optimizers, schedulers, images)
    _step(resumed, resumed_optimizers, resumed_schedulers, images)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), resumed.parameters()))
    assert resumed_optimizers[0].param_groups[0]["lr"] == muon_opt.param_groups[0]["lr"] < MUON["muon_lr"]


def _loaders(n: int = 32, size: int = 64):
    """Bright photos are dogs, dark ones cats: a task a small CNN learns in an epoch or two."""
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(n) % 2
    images = (torch.rand(n, 3, size, size, generator=generator) * 80 + labels.view(-1, 1, 1, 1) * 150).to(torch.uint8)
    data = TensorDataset(images, labels)
    return DataLoader(data, batch_size=8, shuffle=True), DataLoader(data, batch_size=16)


def _fit_teacher(run_dir, epochs: int, device: Device = CPU, width: int = 4):
    """Notebook 04's teacher cell, in small: the teacher and its recipe, trained (or loaded) with fit."""
    train_loader, val_loader = _loaders()
    torch.manual_seed(0)
    teacher = Teacher(width=width, image_size=32)
    optimizers = make_optimizers(teacher, optimizer="adamw", lr=2e-3, weight_decay=0.05)
    schedulers = make_schedulers(optimizers, schedule="cosine", warmup_steps=len(train_loader),
                                 total_steps=epochs * len(train_loader))
    history = fit(teacher, train_loader, val_loader, optimizers=optimizers, schedulers=schedulers,
                  scaler=device.grad_scaler(), device=device, loss_fn=make_loss(), epochs=epochs, run_dir=run_dir,
                  name="teacher ", identity=dict(teacher=dict(epochs=epochs, width=width)))
    return teacher, history


def test_a_finished_run_is_loaded_not_trained_again(tmp_path, capsys):
    first, history = _fit_teacher(tmp_path, epochs=2)
    assert (tmp_path / "last.pt").exists() and (tmp_path / "best.pt").exists()
    assert [row["epoch"] for row in history] == [1, 2]
    assert all(np.isfinite(row["val_loss"]) and 0 <= row["val_acc"] <= 1 for row in history)
    capsys.readouterr()
    again, history_again = _fit_teacher(tmp_path, epochs=2)
    assert "teacher already trained epoch 2 of 2" in capsys.readouterr().out and history_again == history
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), again.state_dict().values()))


def test_another_recipe_trains_afresh_and_keeps_the_earlier_run_aside(tmp_path, capsys):
    _fit_teacher(tmp_path / "run", epochs=2)
    _, retrained = _fit_teacher(tmp_path / "run", epochs=1)
    assert len(retrained) == 1 and "the recipe changed" in capsys.readouterr().out
    assert len(list(tmp_path.glob("run.previous-*/last.pt"))) == 1


def test_an_interrupted_run_resumes_after_its_last_finished_epoch(tmp_path, monkeypatch, capsys):
    real_evaluate, calls = training.evaluate, []

    def crash_in_epoch_2(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt("the session died")
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(training, "evaluate", crash_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        _fit_teacher(tmp_path, epochs=3)
    first_epoch = torch.load(tmp_path / "last.pt", weights_only=True)["history"]
    assert [row["epoch"] for row in first_epoch] == [1]
    monkeypatch.setattr(training, "evaluate", real_evaluate)
    capsys.readouterr()
    _, history = _fit_teacher(tmp_path, epochs=3)
    assert "teacher resuming after epoch 1 of 3" in capsys.readouterr().out
    assert [row["epoch"] for row in history] == [1, 2, 3] and history[0] == first_epoch[0]


def test_fp16_trains_with_a_gradient_scaler(tmp_path):
    """What a T4 does: fp16 autocast, the loss scaled so small gradients survive."""
    _, history = _fit_teacher(tmp_path, epochs=1, device=Device(torch.device("cpu"), "fp16"))
    assert np.isfinite(history[0]["loss"])
    assert torch.load(tmp_path / "last.pt", weights_only=True)["scaler"]["scale"] > 1  # the scaler was in use


def test_resume_brings_back_model_and_optimisers_as_fit_left_them(tmp_path):
    teacher, history = _fit_teacher(tmp_path, epochs=2)
    fresh = Teacher(width=4, image_size=32)
    optimizers = make_optimizers(fresh, optimizer="adamw", lr=2e-3, weight_decay=0.05)
    schedulers = make_schedulers(optimizers, schedule="cosine", warmup_steps=4, total_steps=8)
    assert resume(tmp_path / "last.pt", dict(teacher=dict(epochs=2, width=4)), model=fresh, optimizers=optimizers,
                  schedulers=schedulers, scaler=CPU.grad_scaler()) == history
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), teacher.state_dict().values()))
    assert optimizers[0].state_dict()["state"]  # AdamW's moments came back too


# ---------------------------------------------------------------------------------------------
# What notebook 04 teaches plainly, and the one-pass versions the loop runs
# ---------------------------------------------------------------------------------------------
def test_device_input_computes_the_taught_normalisation():
    """The loop's ``device.input`` (one pass, channels-last, the forward pass's precision) is
    notebook 04's ``normalise``: (pixel / 255 - mean) / std."""
    images = torch.randint(0, 256, (3, 3, 32, 48), dtype=torch.uint8)
    assert torch.allclose(CPU.input(images), training.normalise(images), atol=1e-5)
    bf16 = Device(torch.device("cpu"), "bf16").input(images)
    assert bf16.dtype == torch.bfloat16 and torch.allclose(bf16.float(), training.normalise(images), atol=0.05)
    from catsdogs.device import IMAGENET_MEAN, IMAGENET_STD
    assert (IMAGENET_MEAN, IMAGENET_STD) == (training.IMAGENET_MEAN, training.IMAGENET_STD)


@pytest.mark.parametrize("shape", [(4, 64, 96), (3, 96, 64), (2, 32, 32)])
def test_batched_muon_iterates_the_taught_newton_schulz(shape):
    """BatchedMuon's stacked iteration (catsdogs.speed) is notebook 04's newton_schulz, matrix by matrix."""
    from catsdogs.speed import newton_schulz as batched

    grads = torch.randn(shape, dtype=torch.float64)
    taught = torch.stack([training.newton_schulz(g) for g in grads])
    stacked = batched(grads, (3.4445, -4.7750, 2.0315), 5, 1e-7, torch.float64)
    assert torch.allclose(stacked, taught, atol=1e-10)


def test_newton_schulz_pushes_the_singular_values_towards_one():
    torch.manual_seed(0)
    g = torch.randn(64, 32) @ torch.diag(torch.logspace(0, -2, 32))  # singular values from 1 to 0.01
    after = torch.linalg.svdvals(training.newton_schulz(g))
    assert after.min() > 0.5 and after.max() < 1.3
    assert torch.linalg.svdvals(g).max() / torch.linalg.svdvals(g).min() > 50


def test_the_taught_augmentation_crops_and_flips_uint8_photos():
    torch.manual_seed(0)
    photo = torch.arange(3 * 50 * 60, dtype=torch.int64).reshape(3, 50, 60).remainder(256).to(torch.uint8)
    views = [training.train_transform(size=32, scale=(0.35, 1.0))(photo) for _ in range(8)]
    assert all(v.shape == (3, 32, 32) and v.dtype == torch.uint8 for v in views)
    assert len({v.numpy().tobytes() for v in views}) == 8  # a new picture every time


def test_the_plan_fits_the_epochs_into_the_minutes_and_says_when_none_fit():
    assert training.plan_epochs(45, vit_epoch_s=70, teacher_epoch_s=35, teacher_epochs=8) == (45 * 60 - 8 * 35) // 70
    assert training.plan_epochs(10, vit_epoch_s=60) == 10
    with pytest.raises(ValueError, match="more minutes, fewer teacher_epochs, or set minutes = 0"):
        training.plan_epochs(5, vit_epoch_s=70, teacher_epoch_s=35, teacher_epochs=8)


def test_timing_an_epoch_leaves_the_model_as_it_was():
    torch.manual_seed(0)
    model = build_model(ModelConfig(image_size=32, patch_size=16, depth=1))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    data = TensorDataset(torch.randint(0, 256, (24, 3, 32, 32), dtype=torch.uint8), torch.randint(0, 2, (24,)))
    seconds = training.seconds_per_epoch(model, DataLoader(data, batch_size=4), DataLoader(data, batch_size=8),
                                         device=CPU, loss_fn=make_loss(), optimizer="muon", batches=2)
    assert seconds > 0
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_evaluate_scores_p_dog_on_whole_photos_in_eval_mode():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 2), torch.nn.Dropout(0.9))
    data = TensorDataset(torch.randint(0, 256, (10, 3, 4, 4), dtype=torch.uint8), torch.tensor([0, 1] * 5))
    first = training.evaluate(model, DataLoader(data, batch_size=3), CPU)
    second = training.evaluate(model, DataLoader(data, batch_size=10), CPU)
    assert not model.training and np.allclose(first.probs, second.probs)  # dropout off: the same answers
    expected = model(CPU.input(data.tensors[0])).softmax(dim=1)[:, 1].detach().double().numpy()
    assert np.allclose(first.probs, expected) and list(first.labels) == [0, 1] * 5
