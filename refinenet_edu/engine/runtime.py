"""Choosing the device and the numeric precision.

``resolve_device("auto")`` picks CUDA, then Apple's MPS, then the CPU.
``resolve_precision("auto", device)`` picks bfloat16 where the hardware runs it
fast (CUDA GPUs from Ampere on; CPUs with AVX-512 BF16 or AMX), else float32.
float16 is offered on CUDA, where it needs a gradient scaler (bfloat16 does not:
it has float32's exponent range).
"""

from __future__ import annotations

import contextlib

import torch

__all__ = ["PRECISIONS", "resolve_device", "resolve_precision", "cpu_supports_bf16", "autocast", "describe_device"]

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` -> cuda, then mps, then cpu; otherwise the named device (checked)."""
    if isinstance(name, torch.device):
        return name
    if name in (None, "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ValueError(f"device={name!r}: expected 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={name!r}: CUDA is not available on this machine (use 'auto' or 'cpu')")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"device={name!r}: MPS is not available on this machine (use 'auto' or 'cpu')")
    return device


def cpu_supports_bf16() -> bool:
    """True on CPUs with native bfloat16 matrix instructions (AVX-512 BF16 or AMX)."""
    for probe in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"):
        fn = getattr(torch.cpu, probe, None)
        if fn is not None:
            try:
                if fn():
                    return True
            except Exception:  # pragma: no cover - defensive
                pass
    return False


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    """The compute dtype for ``precision`` on ``device`` (``ValueError`` if impossible)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r}: expected one of {list(PRECISIONS)}")
    if precision == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if device.type == "cpu" and cpu_supports_bf16():
            return torch.bfloat16
        return torch.float32
    dtype = _DTYPES[precision]
    if dtype == torch.float16 and device.type == "cpu":
        raise ValueError("precision='fp16': float16 training is for CUDA; on a CPU use 'bf16' or 'fp32'")
    return dtype


def autocast(device: torch.device, dtype: torch.dtype):
    """Mixed-precision context for ``dtype`` (a no-op for float32)."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def describe_device(device: torch.device) -> str:
    """A human-readable name: the GPU's model, or the CPU and its thread count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple MPS"
    import platform

    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
