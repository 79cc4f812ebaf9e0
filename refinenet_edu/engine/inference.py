"""Prediction: the fast settings, the official multi-scale protocol, whole datasets.

Three settings make most of the difference, all safe for prediction (``docs/benchmarks.md`` has the measured effect
of each): ``torch.inference_mode()`` (no autograd bookkeeping); the ``channels_last`` memory layout (oneDNN and cuDNN
run their fastest convolutions on NHWC tensors and convert NCHW ones around every convolution); and lower precision
through ``torch.autocast`` (``precision="auto"``: :func:`~refinenet_edu.engine.runtime.resolve_precision`), which
changes the class scores by about 1e-2 and so moves the arg-max of a small fraction of pixels (the tests check > 99%
agreement with float32).

The official code's multi-scale test is slower, and not always more accurate (on SynthScenes it lowers mIoU:
notebook 08): :func:`predict_probabilities` averages the softmax over several scales (:data:`OFFICIAL_SCALES`) and
horizontal flips, and cuts images larger than a window into overlapping tiles (sliding-window inference).

Usage::

    labels = predict_labels(model, images)             # [N, H, W] class ids
    scores = predict_scores(model, images)             # [N, C, H, W] float32
    probs = predict_probabilities(model, images, scales=OFFICIAL_SCALES, flip=True)
    masks = predict_dataset(model, val_set)            # uint8 masks of every image

    with fast_inference(model) as run:                 # many batches
        for images in loader:
            scores = run(images)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from refinenet_edu.datasets.loading import eval_loader, image_groups
from refinenet_edu.engine.criterion import class_scores
from refinenet_edu.engine.runtime import autocast, model_device, resolve_precision
from refinenet_edu.nn.config import MIN_INPUT_SIZE  # smallest side the encoder accepts

__all__ = ["OFFICIAL_SCALES", "fast_inference", "predict_scores", "predict_labels", "predict_probabilities",
           "predict_dataset", "window_size"]

#: Test scales of the official RefineNet code's multi-scale evaluation
#: (probabilities averaged over them, optionally with horizontal flips). They
#: were added to its test scripts in 2018; the paper does not list them
#: (docs/paper.md, source ``official-mscale``).
OFFICIAL_SCALES: tuple[float, ...] = (0.4, 0.6, 0.8, 1.0, 1.2)


@contextmanager
def fast_inference(
    model: nn.Module, *, precision: str | torch.dtype = "auto", channels_last: bool = True
) -> Iterator[Callable[[torch.Tensor], torch.Tensor]]:
    """Run ``model`` for prediction with the fast settings; yields ``run(images) -> scores``.

    Inside the block the model is in ``eval()`` mode (dropout off) and every call runs under
    ``torch.inference_mode()`` and ``autocast``. ``run`` returns float32 scores ``[N, C, H, W]`` (of a dict output,
    as torchvision's segmentation models give, its ``"out"``). The previous train/eval mode is restored on exit.
    ``channels_last=True`` converts the model's 4-D weights to that layout *in place*: the same numbers in another
    order in memory, with which the model trains fine too.
    """
    device = model_device(model)
    dtype = resolve_precision(precision, device)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    if channels_last:
        model.to(memory_format=torch.channels_last)
    was_training = model.training
    model.eval()

    def run(images: torch.Tensor) -> torch.Tensor:
        images = images.to(device, non_blocking=True).contiguous(memory_format=memory_format)
        with torch.inference_mode(), autocast(device, dtype):
            scores = class_scores(model(images))
        return scores.float()

    try:
        yield run
    finally:
        model.train(was_training)


def predict_scores(
    model: nn.Module, images: torch.Tensor, *, precision: str | torch.dtype = "auto", channels_last: bool = True
) -> torch.Tensor:
    """Float32 class scores ``[N, C, H, W]`` of ``images`` ``[N, 3, H, W]`` (normalised floats), with
    the fast settings (see :func:`fast_inference` for what "fast" means and what it changes)."""
    with fast_inference(model, precision=precision, channels_last=channels_last) as run:
        return run(images)


def predict_labels(
    model: nn.Module, images: torch.Tensor, *, precision: str | torch.dtype = "auto", channels_last: bool = True
) -> torch.Tensor:
    """The class of every pixel, ``[N, H, W]`` int64: the arg-max of :func:`predict_scores`."""
    return predict_scores(model, images, precision=precision, channels_last=channels_last).argmax(1)


def window_size(v, name: str) -> tuple[int, int]:
    """``(h, w)`` from an int or a pair, checked positive (``name`` is the argument's, for the message)."""
    if isinstance(v, int):
        v = (v, v)
    h, w = (int(x) for x in v)
    if h < 1 or w < 1:
        raise ValueError(f"{name} must be positive, got {v}")
    return h, w


def _scores_at_input_size(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Model class scores at ``x``'s resolution, as float32 ``[N, C, h, w]``."""
    out = class_scores(model(x))
    if out.shape[-2:] != x.shape[-2:]:
        out = F.interpolate(out, size=x.shape[-2:], mode="bilinear", align_corners=False)
    return out.float()


def _tile_starts(length: int, tile: int, stride: int) -> list[int]:
    if length <= tile:
        return [0]
    n = math.ceil((length - tile) / stride) + 1
    return sorted({min(i * stride, length - tile) for i in range(n)})


def _sliding_window_scores(model, x, window: tuple[int, int], stride: tuple[int, int]) -> torch.Tensor:
    """Scores of overlapping ``window``-sized tiles ``stride`` apart, averaged where they overlap. The last tile of
    a row or column is shifted back to end at the image border (as in PSPNet's and mmsegmentation's evaluators), so
    that no tile sees padding."""
    n, _, h, w = x.shape
    th, tw = min(window[0], h), min(window[1], w)
    total = None
    count = torch.zeros(1, 1, h, w, device=x.device)
    for y in _tile_starts(h, th, stride[0]):
        for x0 in _tile_starts(w, tw, stride[1]):
            s = _scores_at_input_size(model, x[..., y : y + th, x0 : x0 + tw])
            if total is None:
                total = torch.zeros(n, s.shape[1], h, w, device=x.device)
            total[..., y : y + th, x0 : x0 + tw] += s
            count[..., y : y + th, x0 : x0 + tw] += 1
    return total / count


def predict_probabilities(
    model: nn.Module,
    image: torch.Tensor,
    *,
    scales: Sequence[float] = (1.0,),
    flip: bool = False,
    window=None,
    stride=None,
    min_size: int = MIN_INPUT_SIZE,
) -> torch.Tensor:
    """Class probabilities of ``image`` [N, 3, H, W], averaged over scales and flips.

    For each scale ``s`` the image is resized (bilinear, ``align_corners=False``)
    to ``round(s * H) x round(s * W)`` -- each side at least ``min_size``, the
    smallest input the encoder takes -- and run through the model; with
    ``flip`` also its horizontal mirror, whose scores are flipped back. When a
    scaled image is larger than ``window`` (an int or ``(h, w)``), it is
    evaluated in overlapping tiles ``stride`` apart (default: two thirds of
    the window) and the tile scores are averaged where they overlap. Each
    score map is upsampled to ``H x W`` and turned into probabilities with a
    softmax; the result is the mean of these probabilities over all
    scales/flips, float32 ``[N, C, H, W]`` (it sums to 1 over ``C``).

    Probabilities, not raw scores, are averaged: that is what the official
    multi-scale test does. Take ``.argmax(1)`` for the predicted mask.

    Call it under ``torch.inference_mode()`` with the model in ``eval()`` mode
    (:func:`evaluate` does both).
    """
    if image.dim() != 4 or image.shape[1] != 3:
        raise ValueError(f"image must be [N, 3, H, W], got {tuple(image.shape)}")
    if not scales:
        raise ValueError("scales must not be empty")
    if window is not None:
        window = window_size(window, "window")
        if min(window) < min_size:
            raise ValueError(f"window {window} is smaller than the model's minimum input {min_size}")
        if stride is None:
            stride = tuple(max(1, math.ceil(2 * s / 3)) for s in window)
        stride = window_size(stride, "stride")
        if stride[0] > window[0] or stride[1] > window[1]:
            raise ValueError(f"stride {stride} larger than window {window} would leave gaps")
    h, w = image.shape[-2:]
    probs = None
    n_views = 0
    for s in scales:
        if s <= 0:
            raise ValueError(f"scales must be positive, got {s}")
        size = (max(min_size, round(h * s)), max(min_size, round(w * s)))
        x = image if size == (h, w) else F.interpolate(image, size=size, mode="bilinear", align_corners=False)
        for flipped in (False, True) if flip else (False,):
            xi = x.flip(-1) if flipped else x
            if window is not None and (size[0] > window[0] or size[1] > window[1]):
                sc = _sliding_window_scores(model, xi, window, stride)
            else:
                sc = _scores_at_input_size(model, xi)
            if flipped:
                sc = sc.flip(-1)
            if sc.shape[-2:] != (h, w):
                sc = F.interpolate(sc, size=(h, w), mode="bilinear", align_corners=False)
            p = sc.softmax(1)
            probs = p if probs is None else probs.add_(p)
            n_views += 1
    return probs.div_(n_views)


def predict_dataset(model, dataset):
    """Arg-max predictions of ``model`` (where it is, in float32) on every image of ``dataset``: uint8
    ``[N, H, W]`` (numpy) when the images share one size, else a list of ``[H, W]`` arrays."""
    import numpy as np

    out = []
    with fast_inference(model, precision="fp32") as run:
        for images, masks in eval_loader(dataset, batch_size=16):
            for group, _ in image_groups(images, masks):
                out.extend(run(group).argmax(1).to(torch.uint8).cpu().numpy())
    if not out:
        return np.zeros((0, 0, 0), dtype=np.uint8)
    return np.stack(out) if len({m.shape for m in out}) == 1 else out

