"""Fast inference: the settings that make a trained RefineNet predict quickly.

Three things make most of the difference, and all three are safe for
prediction (``docs/benchmarks.md`` has the measured effect of each):

* ``torch.inference_mode()`` - no autograd bookkeeping at all (a little
  faster and lighter than ``torch.no_grad()``).
* ``channels_last`` memory layout - oneDNN (CPU) and cuDNN (GPU) run their
  fastest convolutions on NHWC tensors; with the default NCHW layout they
  convert the activations around every convolution.
* Lower precision through ``torch.autocast`` - convolutions run in bfloat16
  (CPUs with native bf16 instructions - AVX512-BF16 or AMX - and GPUs that
  support it) or float16 (older GPUs), while reductions and the outputs that
  need it stay in float32. The class scores change by about 1e-2, which
  moves the arg-max of a small fraction of pixels (the tests check > 99%
  agreement with float32).

``precision="auto"`` picks bfloat16 only where the hardware runs it natively;
elsewhere it stays in float32, because emulated bf16 is *slower* than fp32.

Usage::

    labels = predict(model, images)                    # [N, H, W] class ids
    scores = predict(model, images, labels=False)      # [N, C, H, W] float32

    with fast_inference(model) as run:                 # many batches
        for images in loader:
            scores = run(images)
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext

import torch
from torch import nn

__all__ = ["PRECISIONS", "cpu_supports_bf16", "resolve_precision", "autocast", "fast_inference", "predict"]

#: precision name -> dtype of the convolutions
PRECISIONS: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@functools.lru_cache(maxsize=None)
def cpu_supports_bf16() -> bool:
    """Whether this CPU runs bfloat16 convolutions natively (AVX512-BF16 or AMX).

    Asks oneDNN (what PyTorch will use); falls back to the CPU flags that
    Linux reports.
    """
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        pass
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: str | torch.dtype, device: torch.device | str) -> torch.dtype:
    """The compute dtype for ``precision`` on ``device``.

    ``"auto"``: bfloat16 on a CUDA GPU that supports it (float16 on older
    ones) and on a CPU with native bf16, float32 elsewhere (MPS included).
    ``"fp32"`` / ``"bf16"`` / ``"fp16"`` or a ``torch.dtype`` are taken as given.
    """
    if isinstance(precision, torch.dtype):
        if precision not in PRECISIONS.values():
            raise ValueError(f"precision={precision}: expected one of {list(PRECISIONS.values())}")
        return precision
    if precision in PRECISIONS:
        return PRECISIONS[precision]
    if precision != "auto":
        raise ValueError(f"precision={precision!r}: expected 'auto' or one of {list(PRECISIONS)}")
    device = torch.device(device)
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and cpu_supports_bf16():
        return torch.bfloat16
    return torch.float32


def autocast(device: torch.device | str, dtype: torch.dtype):
    """``torch.autocast`` for ``dtype``, or a no-op context for float32."""
    device = torch.device(device)
    if dtype == torch.float32:
        return nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def _model_device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


@contextmanager
def fast_inference(
    model: nn.Module, *, precision: str | torch.dtype = "auto", channels_last: bool = True
) -> Iterator[Callable[[torch.Tensor], torch.Tensor]]:
    """Run ``model`` for prediction with the fast settings; yields ``run(images) -> scores``.

    Inside the block the model is in ``eval()`` mode (dropout off - running
    a prediction with dropout on is a classic port bug) and every call runs
    under ``torch.inference_mode()`` and ``autocast``. ``run`` returns float32
    scores ``[N, C, H, W]`` (a dict output, as torchvision's segmentation
    models give, is reduced to its ``"out"``). The previous train/eval mode is
    restored on exit.

    ``channels_last=True`` converts the model's 4-D weights to the
    channels_last layout *in place*: the numbers are the same, only their
    order in memory changes, and the model trains fine in either layout.
    """
    device = _model_device(model)
    dtype = resolve_precision(precision, device)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    if channels_last:
        model.to(memory_format=torch.channels_last)
    was_training = model.training
    model.eval()

    def run(images: torch.Tensor) -> torch.Tensor:
        images = images.to(device, non_blocking=True).contiguous(memory_format=memory_format)
        with torch.inference_mode(), autocast(device, dtype):
            scores = model(images)
        if isinstance(scores, dict):
            scores = scores["out"]
        return scores.float()

    try:
        yield run
    finally:
        model.train(was_training)


def predict(
    model: nn.Module,
    images: torch.Tensor,
    *,
    precision: str | torch.dtype = "auto",
    channels_last: bool = True,
    labels: bool = True,
) -> torch.Tensor:
    """Predict ``images`` ``[N, 3, H, W]`` (normalised floats) with the fast settings.

    Returns the class of every pixel, ``[N, H, W]`` int64, or with
    ``labels=False`` the float32 class scores ``[N, C, H, W]``. See
    :func:`fast_inference` for what "fast" means and what it changes.
    """
    with fast_inference(model, precision=precision, channels_last=channels_last) as run:
        scores = run(images)
    return scores.argmax(1) if labels else scores
