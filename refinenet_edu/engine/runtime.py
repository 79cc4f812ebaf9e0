"""Choosing the device and the numeric precision, and running within them.

``resolve_device("auto")`` picks CUDA, then Apple's MPS, then the CPU. ``resolve_precision("auto", device)`` picks
bfloat16 where the hardware runs it natively (:func:`bf16_native`), float16 on older CUDA GPUs, else float32 (MPS
included): emulated bf16 is *slower*. Forcing ``"bf16"`` on an older GPU works, with a warning. float16 is for CUDA
GPUs only, where training needs a gradient scaler (:func:`grad_scaler`; bfloat16 does not: it has float32's exponent
range); on a CPU it is refused with a ``ValueError`` that names the precisions that work.

:func:`cpu_threads` runs a block with another number of CPU threads and restores the caller's afterwards: the
library never changes the process it runs in for longer than the call.
"""

from __future__ import annotations

import contextlib
import functools
import sys
import warnings
from collections.abc import Iterator

import torch

__all__ = ["PRECISIONS", "DTYPES", "resolve_device", "cpu_supports_bf16", "bf16_native", "resolve_precision",
           "dtype_name", "autocast", "grad_scaler", "cpu_threads", "model_device", "describe_device",
           "loader_start_method"]

#: Precision names the command line and the configs accept.
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
#: precision name -> the dtype convolutions run in
DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` -> cuda, then mps, then cpu; otherwise the named device (checked)."""
    if isinstance(name, torch.device):
        return name
    if name in (None, "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ValueError(f"device={name!r}: expected 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={name!r}: CUDA is not available on this machine (use 'auto' or 'cpu')")
    if device.type == "mps" and not _mps_available():
        raise ValueError(f"device={name!r}: MPS is not available on this machine (use 'auto' or 'cpu')")
    return device


def _mps_available() -> bool:
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


@functools.lru_cache(maxsize=None)
def cpu_supports_bf16() -> bool:
    """True on CPUs with native bfloat16 matrix instructions (AVX-512 BF16 or AMX), as PyTorch's own CPU probes
    say. (oneDNN's ``_is_mkldnn_bf16_supported`` is not asked: it is also true on AVX-512 CPUs that only
    emulate bf16, where it is slower than float32.)"""
    return torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported()


def bf16_native(device: torch.device | str) -> bool:
    """True where ``device`` runs bfloat16 in hardware: a CUDA GPU of compute capability 8.0 or later (Ampere,
    Ada, Hopper, ...; ROCm GPUs too), a CPU with AVX-512 BF16 or AMX (:func:`cpu_supports_bf16`). False on older
    GPUs (a Tesla T4 is 7.5), where PyTorch emulates bfloat16 and ``torch.cuda.is_bf16_supported()`` still says
    True, and on MPS.
    """
    device = torch.device(device)
    if device.type == "cuda":
        return bool(torch.version.hip) or torch.cuda.get_device_capability(device)[0] >= 8
    return device.type == "cpu" and cpu_supports_bf16()


def resolve_precision(precision: str | torch.dtype, device: torch.device | str) -> torch.dtype:
    """The compute dtype for ``precision`` on ``device`` (``ValueError`` if impossible).

    ``"auto"``: bfloat16 where :func:`bf16_native`, else float16 on a CUDA
    GPU (train it with :func:`grad_scaler`), else float32 (MPS included).
    ``"fp32"`` / ``"bf16"`` / ``"fp16"`` or a ``torch.dtype`` are taken as
    given, except float16 on a CPU (refused); bfloat16 on a CUDA GPU without
    native bf16 warns that it is emulated and slower.
    """
    device = torch.device(device)
    if isinstance(precision, torch.dtype):
        if precision not in DTYPES.values():
            raise ValueError(f"precision={precision}: expected one of {list(DTYPES.values())}")
        dtype = precision
    elif precision == "auto":
        if bf16_native(device):
            return torch.bfloat16
        return torch.float16 if device.type == "cuda" else torch.float32
    elif precision in DTYPES:
        dtype = DTYPES[precision]
    else:
        raise ValueError(f"precision={precision!r}: expected one of {list(PRECISIONS)}")
    if dtype == torch.float16 and device.type == "cpu":
        raise ValueError("precision='fp16': float16 is for CUDA GPUs; on a CPU use 'bf16' or 'fp32'")
    if dtype == torch.bfloat16 and device.type == "cuda" and not bf16_native(device):
        major, minor = torch.cuda.get_device_capability(device)
        warnings.warn(f"precision='bf16' on {torch.cuda.get_device_name(device)} (compute capability "
                      f"{major}.{minor}): bfloat16 is emulated on GPUs before compute capability 8.0 and slower "
                      "than float16; use precision 'fp16' or 'auto'", stacklevel=2)
    return dtype


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.bfloat16`` -> ``"bfloat16"`` (as results files record it)."""
    return str(dtype).replace("torch.", "")


def autocast(device: torch.device | str, dtype: torch.dtype):
    """``torch.autocast`` for ``dtype`` on ``device``, or a no-op context for float32."""
    device = torch.device(device)
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(device: torch.device | str, dtype: torch.dtype) -> torch.amp.GradScaler:
    """A gradient scaler, enabled for float16 only (small gradients would underflow to 0). Disabled, it passes the
    loss and the optimizer step through unchanged, so every training loop can use one unconditionally."""
    return torch.amp.GradScaler(torch.device(device).type, enabled=dtype == torch.float16)


@contextlib.contextmanager
def cpu_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` CPU threads (``None``: as it is), then restore the caller's number."""
    if n is None:
        yield
        return
    if n < 1:
        raise ValueError(f"threads={n}: must be >= 1")
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def model_device(model: torch.nn.Module) -> torch.device:
    """Where ``model`` lives: the device of its first parameter (or buffer); the CPU for an empty model."""
    p = next(model.parameters(), None)
    if p is None:
        p = next(model.buffers(), None)
    return p.device if p is not None else torch.device("cpu")


def describe_device(device: torch.device) -> str:
    """A human-readable name: the GPU's model, or the CPU and its thread count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple MPS"
    import platform

    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def loader_start_method(num_workers: int) -> str | None:
    """How a ``DataLoader`` starts its worker processes: ``"fork"`` on Linux, else the platform's default.

    Pass it as ``DataLoader(multiprocessing_context=...)``: it chooses for that loader only and leaves the
    process-wide start method alone. Forking is what a plain run on Linux does; a process started by "spawn" (an
    ``ablate --jobs`` worker) would otherwise start its loader workers the same slow way, a fresh Python importing
    torch, every epoch.
    """
    if num_workers > 0 and sys.platform.startswith("linux"):
        return "fork"
    return None
