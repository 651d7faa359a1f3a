"""``catsdogs.device``: the model's input, and the precision each kind of hardware trains in."""
from __future__ import annotations

import pytest
import torch

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
