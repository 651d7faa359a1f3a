"""``catsdogs.device``: the model's input, the device PyTorch picks (CUDA, MPS, XPU or the CPU), the
precision each kind of hardware trains in, and the DataLoader settings that fit it."""
from __future__ import annotations

import pytest
import torch

import catsdogs.device
from catsdogs.device import Device, native_bf16, pick_precision


def test_model_input_is_imagenet_normalised_in_fp32_and_bf16():
    photos = torch.randint(0, 256, (3, 3, 32, 48), dtype=torch.uint8)
    mean, std = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    expected = (photos.float() / 255 - mean) / std
    for precision, tolerance in (("fp32", 1e-5), ("bf16", 0.04)):  # bf16 keeps 8 significant bits: 2**-6 at |x| ~ 2
        x = Device(torch.device("cpu"), precision).input(photos)
        assert x.shape == photos.shape and x.is_contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(x.float(), expected, atol=tolerance, rtol=0)


def test_precision_choice():
    cpu = torch.device("cpu")
    assert pick_precision(cpu, "fp32") == "fp32"
    assert pick_precision(cpu) in ("bf16", "fp32")
    with pytest.raises(ValueError):
        pick_precision(cpu, "int4")


class _FakeGPU:
    """What ``torch.cuda.get_device_properties`` reports, for the two GPUs a learner usually meets."""

    def __init__(self, name: str, major: int, minor: int):
        self.name, self.major, self.minor = name, major, minor


@pytest.mark.parametrize("gpu, expected", [(_FakeGPU("Tesla T4", 7, 5), "fp16"), (_FakeGPU("Tesla V100-SXM2-16GB", 7, 0), "fp16"),
                                           (_FakeGPU("NVIDIA A100-SXM4-40GB", 8, 0), "bf16"), (_FakeGPU("NVIDIA L4", 8, 9), "bf16")])
def test_gpu_precision_follows_the_compute_capability(monkeypatch, gpu, expected):
    """A T4 answers True to is_bf16_supported() through emulation; it must still train in fp16."""
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device=None: gpu)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert pick_precision(torch.device("cuda")) == expected
    assert pick_precision(torch.device("cuda"), "fp32") == "fp32"
    assert native_bf16(torch.device("cuda")) == (expected == "bf16")  # Muon's iterations: fp32 on a T4


def test_cpu_precision_follows_the_cpus_bf16_units(monkeypatch):
    """An AVX2 CPU (most laptops, Colab's CPU machines) emulates bf16: it trains in fp32."""
    for avx512_bf16, amx, expected in ((False, False, "fp32"), (True, False, "bf16"), (False, True, "bf16")):
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda value=avx512_bf16: value)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda value=amx: value)
        assert pick_precision(torch.device("cpu")) == expected
        assert native_bf16(torch.device("cpu")) == (expected == "bf16")


def test_cpu_precision_without_torchs_private_probes_reads_the_cpu_flags(monkeypatch, tmp_path):
    """torch.cpu._is_avx512_bf16_supported and _is_amx_tile_supported are private: without them, /proc/cpuinfo."""
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported")
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported")
    for flags, expected in (("fpu sse2 avx2 fma", "fp32"), ("fpu avx2 avx512f avx512_bf16", "bf16"),
                            ("fpu avx2 amx_bf16 amx_tile", "bf16")):
        cpuinfo = tmp_path / f"cpuinfo-{expected}-{len(flags)}"
        cpuinfo.write_text(f"processor\t: 0\nmodel name\t: a CPU\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: {flags}\n")
        monkeypatch.setattr(catsdogs.device, "CPUINFO", str(cpuinfo))
        assert pick_precision(torch.device("cpu")) == expected, flags
    monkeypatch.setattr(catsdogs.device, "CPUINFO", str(tmp_path / "no-such-file"))  # not Linux: no flags, fp32
    assert pick_precision(torch.device("cpu")) == "fp32"


def test_the_cpu_flags_agree_with_torch_where_both_answer():
    if not catsdogs.device._cpu_flags(catsdogs.device.CPUINFO):
        pytest.skip("no /proc/cpuinfo flags on this machine")
    flags = catsdogs.device._cpu_flags(catsdogs.device.CPUINFO)
    assert ("avx512_bf16" in flags) == torch.cpu._is_avx512_bf16_supported()
    assert ("amx_tile" in flags) == torch.cpu._is_amx_tile_supported()


class _FakeAccelerator:
    """``torch.accelerator`` on a machine with one accelerator of type ``kind`` (or none)."""

    def __init__(self, kind: str | None):
        self.kind = kind

    def is_available(self) -> bool:
        return self.kind is not None

    def current_accelerator(self, check_available: bool = False):
        return torch.device(self.kind) if self.kind else None


def _fake_gpu(monkeypatch, major: int, minor: int):
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device=None: _FakeGPU("a GPU", major, minor))


@pytest.mark.parametrize("kind, capability, precision, pin", [
    ("cuda", (7, 5), "fp16", True), ("cuda", (8, 0), "bf16", True), ("mps", None, "fp16", False),
    ("xpu", None, "bf16", False), (None, None, None, False)])
def test_pick_takes_pytorchs_accelerator_in_its_native_precision(monkeypatch, kind, capability, precision, pin):
    """torch.accelerator decides the device (CUDA, Apple's MPS, Intel's XPU), each in the precision it does
    natively; batches are pinned for CUDA only; workers augment beside any accelerator."""
    monkeypatch.setattr(torch, "accelerator", _FakeAccelerator(kind))
    if capability:
        _fake_gpu(monkeypatch, *capability)
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # GradScaler asks
    if kind == "xpu" and hasattr(torch, "xpu"):
        monkeypatch.setattr(torch.xpu, "is_bf16_supported", lambda *args, **kwargs: True, raising=False)
    device = Device.pick()
    assert device.type == (kind or "cpu")
    assert device.precision == (precision or pick_precision(torch.device("cpu")))
    assert device.pin_memory is pin and device.pin_memory == (device.type == "cuda")
    assert (device.loader_workers() > 0) == (kind is not None)
    assert device.grad_scaler().is_enabled() == (device.precision == "fp16")
    assert Device.pick("fp32").precision == "fp32"


def test_an_xpu_without_bf16_trains_in_fp16(monkeypatch):
    if not hasattr(torch, "xpu"):
        pytest.skip("this torch has no torch.xpu")
    monkeypatch.setattr(torch.xpu, "is_bf16_supported", lambda *args, **kwargs: False, raising=False)
    assert pick_precision(torch.device("xpu")) == "fp16"


def test_pick_on_this_machine_follows_torch_accelerator():
    found = torch.accelerator.current_accelerator() if torch.accelerator.is_available() else None
    assert Device.pick().type == (found.type if found else "cpu")
