"""precision="auto" by what the GPU really runs: a faked Tesla T4 (7.5), A100 (8.0), H100 (9.0) and Apple MPS.

PyTorch's ``torch.cuda.is_bf16_supported()`` says True on a T4 (it counts emulation); the fakes below answer
as PyTorch does on each GPU, so a choice made by asking it alone picks bfloat16 on the T4 and fails here.
"""

from __future__ import annotations

import warnings

import pytest
import torch

from refinenet_edu.engine.runtime import grad_scaler, resolve_device, resolve_precision
from tooling.bench import default_dtypes

GPUS = {"Tesla T4": (7, 5), "NVIDIA A100-SXM4-40GB": (8, 0), "NVIDIA H100 80GB HBM3": (9, 0)}


@pytest.fixture
def fake_gpu(monkeypatch):
    """Make this machine look like it has the named CUDA GPU (nothing runs on it)."""

    def install(name: str) -> torch.device:
        major, minor = GPUS[name]
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (major, minor))
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
        # as PyTorch answers: True from 8.0 on, and on older GPUs too unless emulation is excluded
        monkeypatch.setattr(torch.cuda, "is_bf16_supported",
                            lambda including_emulation=True: major >= 8 or including_emulation)
        monkeypatch.setattr(torch.version, "hip", None)
        return resolve_device("auto")

    return install


@pytest.mark.parametrize("name, dtype", [("Tesla T4", torch.float16), ("NVIDIA A100-SXM4-40GB", torch.bfloat16),
                                         ("NVIDIA H100 80GB HBM3", torch.bfloat16)])
def test_auto_picks_what_the_gpu_runs_natively_and_scales_only_float16(fake_gpu, name, dtype):
    device = fake_gpu(name)
    assert device.type == "cuda"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "auto" never warns
        chosen = resolve_precision("auto", device)
    assert chosen == dtype
    assert grad_scaler(device, chosen).is_enabled() == (dtype == torch.float16)
    # the bench's default precisions: bf16 only where it is native
    assert ("bf16" in default_dtypes(device)) == (dtype == torch.bfloat16)


def test_forced_bf16_on_a_t4_warns_that_it_is_emulated(fake_gpu):
    device = fake_gpu("Tesla T4")
    with pytest.warns(UserWarning, match=r"Tesla T4 \(compute capability 7\.5\).*emulated.*'fp16' or 'auto'"):
        assert resolve_precision("bf16", device) == torch.bfloat16
    with pytest.warns(UserWarning, match="emulated"):
        resolve_precision(torch.bfloat16, device)
    assert not grad_scaler(device, torch.bfloat16).is_enabled()


def test_forced_precisions_on_an_a100_do_not_warn(fake_gpu):
    device = fake_gpu("NVIDIA A100-SXM4-40GB")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_precision("bf16", device) == torch.bfloat16
        assert resolve_precision("fp16", device) == torch.float16
    assert grad_scaler(device, torch.float16).is_enabled()


def test_mps_stays_in_float32(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    device = resolve_device("auto")
    assert device.type == "mps"
    assert resolve_precision("auto", device) == torch.float32


def test_cpu_as_before():
    from refinenet_edu.engine.runtime import cpu_supports_bf16

    expected = torch.bfloat16 if cpu_supports_bf16() else torch.float32
    assert resolve_precision("auto", "cpu") == expected
    assert not grad_scaler("cpu", expected).is_enabled()
    with pytest.raises(ValueError, match="precision='fp16'.*CUDA"):
        resolve_precision("fp16", "cpu")
