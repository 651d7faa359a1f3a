"""The CNN teacher used for distillation: its loss, its input size, and train-once-then-reuse."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from catsdogs.device import Device
from catsdogs.teacher import Teacher, TeacherConfig, distillation_loss, train_teacher
from catsdogs.training import TrainConfig

CPU = Device(torch.device("cpu"), "fp32")


def test_distillation_loss_is_cross_entropy_against_the_teachers_probabilities():
    student = torch.tensor([[2.0, -1.0], [0.5, 0.5]])
    teacher = torch.tensor([[0.0, 0.0], [1.0, 3.0]])
    p = teacher.softmax(dim=1)
    expected = -(p * student.log_softmax(dim=1)).sum(dim=1).mean()
    assert distillation_loss(student, teacher) == pytest.approx(expected.item())
    # a certain teacher is a hard label: the loss becomes the usual cross-entropy
    certain = torch.tensor([[50.0, -50.0], [-50.0, 50.0]])
    assert distillation_loss(student, certain) == pytest.approx(F.cross_entropy(student, torch.tensor([0, 1])).item())


def test_distillation_pulls_the_student_towards_the_teacher():
    student = torch.zeros(1, 2, requires_grad=True)
    distillation_loss(student, torch.tensor([[0.0, 2.0]])).backward()
    assert student.grad[0, 1] < 0 < student.grad[0, 0]  # gradient descent raises the teacher's class


def test_teacher_sees_the_student_crop_shrunk_to_its_own_size():
    teacher = Teacher(TeacherConfig(image_size=64)).eval()
    seen = []
    teacher.net[0].register_forward_hook(lambda module, inputs, output: seen.append(inputs[0].shape))
    x = CPU.input(torch.randint(0, 256, (3, 3, 224, 224), dtype=torch.uint8))
    with torch.no_grad():
        logits = teacher(x)
    assert logits.shape == (3, 2) and seen == [torch.Size([3, 3, 64, 64])]


def _loaders(n: int = 32, size: int = 64):
    """Bright photos are dogs, dark ones cats: a task a teacher learns in one epoch."""
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(n) % 2
    images = (torch.rand(n, 3, size, size, generator=generator) * 80 + labels.view(-1, 1, 1, 1) * 150).to(torch.uint8)
    data = TensorDataset(images, labels)
    return DataLoader(data, batch_size=8, shuffle=True), DataLoader(data, batch_size=16)


def test_teacher_is_trained_once_then_loaded(tmp_path, capsys):
    train_loader, val_loader = _loaders()
    config = TeacherConfig(image_size=32, epochs=2, width=4)
    first, history = train_teacher(train_loader, val_loader, run_dir=tmp_path, device=CPU, config=config)
    assert (tmp_path / "last.pt").exists() and [row["epoch"] for row in history] == [1, 2]
    assert all(np.isfinite(row["val_loss"]) and 0 <= row["val_acc"] <= 1 for row in history)
    capsys.readouterr()

    again, history_again = train_teacher(train_loader, val_loader, run_dir=tmp_path, device=CPU, config=config)
    assert "teacher already trained epoch 2 of 2" in capsys.readouterr().out and history_again == history
    for a, b in zip(first.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)

    _, retrained = train_teacher(train_loader, val_loader, run_dir=tmp_path, device=CPU,
                                 config=TeacherConfig(image_size=32, epochs=1, width=4))
    assert len(retrained) == 1  # another configuration trains a new teacher (the old run is kept aside)
    assert len(list(tmp_path.parent.glob(f"{tmp_path.name}.previous-*"))) == 1


def test_an_interrupted_teacher_resumes_after_its_last_finished_epoch(tmp_path, monkeypatch, capsys):
    import catsdogs.training as training

    train_loader, val_loader = _loaders()
    config = TeacherConfig(image_size=32, epochs=3, width=4)
    real_evaluate, calls = training.evaluate, []

    def crash_in_epoch_2(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt("the session died")
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(training, "evaluate", crash_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        train_teacher(train_loader, val_loader, run_dir=tmp_path, device=CPU, config=config)
    first_epoch = torch.load(tmp_path / "last.pt", weights_only=True)["history"]
    assert [row["epoch"] for row in first_epoch] == [1]
    monkeypatch.setattr(training, "evaluate", real_evaluate)
    capsys.readouterr()

    _, history = train_teacher(train_loader, val_loader, run_dir=tmp_path, device=CPU, config=config)
    assert "teacher resuming after epoch 1 of 3" in capsys.readouterr().out
    assert [row["epoch"] for row in history] == [1, 2, 3] and history[0] == first_epoch[0]


def test_the_teacher_trains_in_fp16_with_a_gradient_scaler(tmp_path):
    """What a T4 does: fp16 autocast, the loss scaled so small gradients survive."""
    train_loader, val_loader = _loaders()
    _, history = train_teacher(train_loader, val_loader, run_dir=tmp_path, device=Device(torch.device("cpu"), "fp16"),
                               config=TeacherConfig(image_size=32, epochs=1, width=4))
    assert np.isfinite(history[0]["loss"])
    assert torch.load(tmp_path / "last.pt", weights_only=True)["scaler"]["scale"] > 1  # the scaler was in use


def test_the_blog_recipe_has_no_teacher():
    assert TrainConfig.blog().distill == 0 and TrainConfig().distill > 0
