"""Evaluation: multi-scale / flip / sliding-window inference, dataset scores, saved predictions.

How RefineNet was measured (Lin et al. 2017; the official code's
test script): the network's class scores are turned into probabilities with
a softmax, and for multi-scale testing the image is resized to several
scales (:data:`OFFICIAL_SCALES`), optionally also flipped horizontally, and
the probabilities are averaged at the original resolution before taking the
arg-max. Images larger than the GPU can hold are cut into overlapping tiles
(sliding-window inference) whose scores are averaged where they overlap.

:func:`evaluate` runs a model over a dataset and returns an
:class:`EvaluationResult` with the metrics of :mod:`refinenet_edu.engine.metrics`
(confusion matrix, IoU, accuracies, boundary/trimap accuracy) and per-image
scores to find the best and worst cases. :func:`save_predictions` writes
predicted masks as palette PNGs and overlays.

Real datasets have images of many sizes (PASCAL VOC: mostly about 500x375,
some far smaller). :func:`eval_loader` batches them with
:func:`collate_images`, which stacks a batch only when its images share one
size and otherwise hands them over as lists; :func:`evaluate` then runs each
image at its own size. Nothing is padded, so a prediction never depends on
the batch size or on the other images of a batch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from refinenet_edu.config import MIN_INPUT_SIZE  # smallest side the encoder accepts
from refinenet_edu.engine.metrics import (
    BoundaryMetrics,
    ConfusionMatrix,
    SegmentationMetrics,
    _float_or_none,
    per_sample_confusion,
)

from refinenet_edu.datasets.info import colorize  # one colouring function for the whole library
from refinenet_edu.files import atomic_write

__all__ = [
    "OFFICIAL_SCALES",
    "collate_images",
    "eval_loader",
    "image_groups",
    "predict_logits",
    "evaluate",
    "EvaluationResult",
    "ImageScore",
    "save_predictions",
    "colorize",
]

#: Test scales of the official RefineNet code's multi-scale evaluation
#: (probabilities averaged over them, optionally with horizontal flips).
OFFICIAL_SCALES: tuple[float, ...] = (0.4, 0.6, 0.8, 1.0, 1.2)

#: Colour of the ignore label (255) in PASCAL VOC's palette PNGs.
VOID_COLOR = (224, 224, 192)


# --------------------------------------------------------------------------
# inference
# --------------------------------------------------------------------------


def _pair(v, name: str) -> tuple[int, int]:
    if isinstance(v, int):
        v = (v, v)
    h, w = (int(x) for x in v)
    if h < 1 or w < 1:
        raise ValueError(f"{name} must be positive, got {v}")
    return h, w


def _scores(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Model class scores at ``x``'s resolution, as float32 ``[N, C, h, w]``."""
    out = model(x)
    if isinstance(out, dict):  # torchvision segmentation models return {"out": ...}
        out = out["out"]
    if out.dim() != 4 or out.shape[0] != x.shape[0]:
        raise ValueError(f"model must return scores [N, C, H, W], got {tuple(out.shape)}")
    if out.shape[-2:] != x.shape[-2:]:
        out = F.interpolate(out, size=x.shape[-2:], mode="bilinear", align_corners=False)
    return out.float()


def _tile_starts(length: int, tile: int, stride: int) -> list[int]:
    if length <= tile:
        return [0]
    n = math.ceil((length - tile) / stride) + 1
    return sorted({min(i * stride, length - tile) for i in range(n)})


def _sliding_window_scores(model, x, window: tuple[int, int], stride: tuple[int, int]) -> torch.Tensor:
    """Scores of overlapping ``window``-sized tiles, averaged where they overlap.

    Tiles step by ``stride``; the last tile of a row/column is shifted back
    to end at the image border (as in PSPNet's and mmsegmentation's
    evaluators), so every tile lies inside the image and no tile sees padding.
    """
    n, _, h, w = x.shape
    th, tw = min(window[0], h), min(window[1], w)
    total = None
    count = torch.zeros(1, 1, h, w, device=x.device)
    for y in _tile_starts(h, th, stride[0]):
        for x0 in _tile_starts(w, tw, stride[1]):
            s = _scores(model, x[..., y : y + th, x0 : x0 + tw])
            if total is None:
                total = torch.zeros(n, s.shape[1], h, w, device=x.device)
            total[..., y : y + th, x0 : x0 + tw] += s
            count[..., y : y + th, x0 : x0 + tw] += 1
    return total / count


def predict_logits(
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

    Despite the name (kept for the library's API), the return value is
    probabilities, not raw scores: averaging softmax outputs is what the
    official multi-scale test does. Take ``.argmax(1)`` for the predicted mask.

    Call it under ``torch.inference_mode()`` with the model in ``eval()`` mode
    (:func:`evaluate` does both).
    """
    if image.dim() != 4 or image.shape[1] != 3:
        raise ValueError(f"image must be [N, 3, H, W], got {tuple(image.shape)}")
    if not scales:
        raise ValueError("scales must not be empty")
    if window is not None:
        window = _pair(window, "window")
        if min(window) < min_size:
            raise ValueError(f"window {window} is smaller than the model's minimum input {min_size}")
        if stride is None:
            stride = tuple(max(1, math.ceil(2 * s / 3)) for s in window)
        stride = _pair(stride, "stride")
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
                sc = _scores(model, xi)
            if flipped:
                sc = sc.flip(-1)
            if sc.shape[-2:] != (h, w):
                sc = F.interpolate(sc, size=(h, w), mode="bilinear", align_corners=False)
            p = sc.softmax(1)
            probs = p if probs is None else probs.add_(p)
            n_views += 1
    return probs.div_(n_views)


# --------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------


@dataclass
class ImageScore:
    """Scores of one image. ``miou`` averages IoU over the classes present in
    the image's ground truth or prediction (NaN if every pixel is ignored)."""

    id: object
    miou: float
    pixel_accuracy: float
    num_pixels: int

    def as_dict(self) -> dict:
        return {
            "id": self.id if isinstance(self.id, (str, int)) else str(self.id),
            "miou": _float_or_none(self.miou),
            "pixel_accuracy": _float_or_none(self.pixel_accuracy),
            "num_pixels": self.num_pixels,
        }


def _fmt_pct(x: float) -> str:
    return "-" if x is None or math.isnan(x) else f"{100 * x:.2f}"


@dataclass
class EvaluationResult:
    """What :func:`evaluate` measured: overall metrics, boundary metrics per
    band width, per-image scores, settings and timing."""

    metrics: SegmentationMetrics
    boundary: dict[int, SegmentationMetrics]
    per_image: list[ImageScore]
    class_names: list[str] | None
    num_images: int
    seconds: float
    device: str
    scales: tuple[float, ...] = (1.0,)
    flip: bool = False
    window: tuple[int, int] | None = None
    settings: dict = field(default_factory=dict)

    @property
    def miou(self) -> float:
        return self.metrics.miou

    @property
    def images_per_second(self) -> float:
        return self.num_images / self.seconds if self.seconds > 0 else math.nan

    def _ranked(self, reverse: bool) -> list[ImageScore]:
        scored = [s for s in self.per_image if not math.isnan(s.miou)]
        return sorted(scored, key=lambda s: s.miou, reverse=reverse)

    def best(self, n: int = 5) -> list[ImageScore]:
        """The ``n`` images with the highest per-image mIoU (all-ignore images skipped)."""
        return self._ranked(reverse=True)[:n]

    def worst(self, n: int = 5) -> list[ImageScore]:
        """The ``n`` images with the lowest per-image mIoU (all-ignore images skipped)."""
        return self._ranked(reverse=False)[:n]

    def as_dict(self) -> dict:
        """JSON-friendly (NaN -> ``None``; band widths as string keys)."""
        return {
            "metrics": self.metrics.as_dict(self.class_names),
            "boundary": {
                str(k): {
                    "miou": _float_or_none(m.miou),
                    "pixel_accuracy": _float_or_none(m.pixel_accuracy),
                    "num_pixels": m.num_pixels,
                }
                for k, m in self.boundary.items()
            },
            "per_image": [s.as_dict() for s in self.per_image],
            "num_images": self.num_images,
            "seconds": self.seconds,
            "images_per_second": _float_or_none(self.images_per_second),
            "device": self.device,
            "scales": list(self.scales),
            "flip": self.flip,
            "window": list(self.window) if self.window is not None else None,
            **({"settings": self.settings} if self.settings else {}),
        }

    def table(self) -> str:
        """A printable text table: per-class IoU, summary metrics, boundary mIoU."""
        m = self.metrics
        names = self.class_names or [f"class {i}" for i in range(m.num_classes)]
        width = max([len(n) for n in names] + [len("frequency-weighted IoU"), len("boundary (trimap) band")]) + 2
        lines = [f"{'class':<{width}}{'IoU %':>8}{'acc %':>8}", "-" * (width + 16)]
        for name, iou, acc in zip(names, m.iou, m.class_accuracy):
            lines.append(f"{name:<{width}}{_fmt_pct(iou):>8}{_fmt_pct(acc):>8}")
        lines.append("-" * (width + 16))
        for label, v in [
            ("mIoU", m.miou),
            ("pixel accuracy", m.pixel_accuracy),
            ("mean class accuracy", m.mean_class_accuracy),
            ("frequency-weighted IoU", m.fw_iou),
        ]:
            lines.append(f"{label:<{width}}{_fmt_pct(v):>8}")
        if self.boundary:
            lines.append("-" * (width + 16))
            lines.append(f"{'boundary (trimap) band':<{width}}{'mIoU %':>8}{'acc %':>8}")
            for k, b in self.boundary.items():
                label = f"  within {k} px"
                lines.append(f"{label:<{width}}{_fmt_pct(b.miou):>8}{_fmt_pct(b.pixel_accuracy):>8}")
        lines.append("-" * (width + 16))
        views = f"scales {', '.join(f'{s:g}' for s in self.scales)}" + (" + flip" if self.flip else "")
        if self.window is not None:
            views += f", window {self.window[0]}x{self.window[1]}"
        lines.append(
            f"{self.num_images} images, {views}, {self.seconds:.1f} s "
            f"({self.images_per_second:.2f} images/s on {self.device})"
        )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


# --------------------------------------------------------------------------
# evaluate a dataset
# --------------------------------------------------------------------------


def _base_dataset(ds):
    """Follow ``Subset`` wrappers down to the dataset that has the metadata,
    returning it and the index map from positions in ``ds`` to it (or None)."""
    from torch.utils.data import Subset

    indices = None
    while isinstance(ds, Subset):
        idx = list(ds.indices)
        indices = idx if indices is None else [idx[i] for i in indices]
        ds = ds.dataset
    return ds, indices


def _ids_in_order(loader) -> list | None:
    """Image ids in the order the loader yields them, when that order is known."""
    from torch.utils.data import DistributedSampler, SequentialSampler

    base, indices = _base_dataset(loader.dataset)
    ids = getattr(base, "ids", None)
    if ids is None:
        return None
    ids = list(ids)
    if indices is not None:
        ids = [ids[i] for i in indices]
    sampler = getattr(loader, "sampler", None)
    if isinstance(sampler, SequentialSampler):
        return ids
    if isinstance(sampler, DistributedSampler) and not sampler.shuffle:
        return [ids[i] for i in sampler]
    return None


def collate_images(batch):
    """Collate ``(image, mask, ...)`` samples that may differ in size.

    When every image of the batch has the same shape, the result is what
    PyTorch's default collate makes (stacked tensors). Otherwise it is one
    list per field (a list of images, a list of masks), which
    :func:`evaluate` and :func:`~refinenet_edu.ablation.predict_masks` run
    one image at a time. Images are never padded.
    """
    from torch.utils.data import default_collate

    if len({tuple(sample[0].shape) for sample in batch}) <= 1:
        return default_collate(batch)
    return [list(field) for field in zip(*batch)]


def eval_loader(dataset, batch_size: int = 1, *, sampler=None, num_workers: int = 0, **kwargs):
    """A ``DataLoader`` over ``dataset`` in order, for evaluation and prediction.

    Uses :func:`collate_images`, so images of different sizes are fine at any
    ``batch_size`` (same-size images are still batched, for speed).
    """
    from torch.utils.data import DataLoader

    return DataLoader(dataset, batch_size=batch_size, shuffle=False, sampler=sampler, num_workers=num_workers,
                      collate_fn=collate_images, **kwargs)


def image_groups(images, masks):
    """``(images [N,3,H,W], masks [N,H,W])`` pairs of one batch from :func:`collate_images`:
    the batch itself when it is stacked, else one pair per image (each with N = 1)."""
    if isinstance(images, torch.Tensor):
        return [(images, masks)]
    return [(image[None], mask[None]) for image, mask in zip(images, masks)]


def _model_device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    if p is None:
        p = next(model.buffers(), None)
    return p.device if p is not None else torch.device("cpu")


def evaluate(
    model: nn.Module,
    dataset_or_loader,
    *,
    num_classes: int,
    scales: Sequence[float] = (1.0,),
    flip: bool = False,
    window=None,
    stride=None,
    bands: Sequence[int] = (1, 2, 4, 8, 16),
    device=None,
    amp_dtype: torch.dtype | None = None,
    progress: bool = True,
    keep_per_image: bool = True,
    ignore_index: int | None = None,
    class_names: Sequence[str] | None = None,
    on_prediction=None,
) -> EvaluationResult:
    """Score a segmentation model on a dataset (or a ``DataLoader``).

    The dataset yields ``(image [3, H, W], mask [H, W])`` with ``ignore_index``
    (the dataset's, else 255) for pixels not scored; a dataset is wrapped in a
    ``DataLoader`` with batch size 1, so images may differ in size. Each batch
    goes through :func:`predict_logits` (``scales``, ``flip``, ``window``,
    ``stride``), the arg-max is compared with the mask, and the counts are
    accumulated in a :class:`~refinenet_edu.engine.metrics.ConfusionMatrix` and a
    :class:`~refinenet_edu.engine.metrics.BoundaryMetrics` (``bands``; empty to skip).

    ``device``: where to run (the model is moved there); default: where the
    model is. ``amp_dtype``: e.g. ``torch.bfloat16`` to run the model under
    ``torch.autocast`` (probabilities are still averaged in float32).
    The model is put in ``eval()`` mode (dropout off, batch-norm statistics
    frozen) and run under ``torch.inference_mode()``; its previous
    training/eval mode is restored afterwards.

    A loader may batch images of different sizes if it collates them with
    :func:`collate_images` (as :func:`eval_loader` does): each image is then
    run at its own size. ``on_prediction(ids, images, predictions)``, if
    given, is called after every batch (or image) with the image ids (or
    positions), the input images and the predicted masks (int64 ``[N, H, W]``,
    on the CPU), e.g. to save them (:func:`save_predictions`) in the same pass.

    When the loader uses a ``DistributedSampler``, every process is assumed to
    evaluate its own shard, and the confusion matrices are summed across
    processes (a collective: call it on every rank). Per-image scores stay
    local to each process.
    """
    from torch.utils.data import DataLoader, DistributedSampler
    from tqdm.auto import tqdm

    if isinstance(dataset_or_loader, DataLoader):
        loader = dataset_or_loader
    else:
        loader = DataLoader(dataset_or_loader, batch_size=1, shuffle=False)
    base, _ = _base_dataset(loader.dataset)
    ds_classes = getattr(base, "num_classes", None)
    if ds_classes is not None and ds_classes != num_classes:
        raise ValueError(f"num_classes={num_classes} but the dataset has {ds_classes} classes")
    if ignore_index is None:
        ignore_index = getattr(base, "ignore_index", 255)
    if class_names is None:
        class_names = getattr(base, "class_names", None)
    class_names = list(class_names) if class_names is not None else None
    if class_names is not None and len(class_names) != num_classes:
        raise ValueError(f"{len(class_names)} class names for num_classes={num_classes}")
    ids = _ids_in_order(loader)

    device = torch.device(device) if device is not None else _model_device(model)
    model.to(device)
    autocast = torch.autocast(device.type, dtype=amp_dtype) if amp_dtype is not None else nullcontext()
    cm = ConfusionMatrix(num_classes, ignore_index, device=device)
    bm = BoundaryMetrics(num_classes, bands, ignore_index) if bands else None
    per_image: list[ImageScore] = []
    seen = 0

    was_training = model.training
    model.eval()
    start = time.perf_counter()
    try:
        with torch.inference_mode():
            total = len(loader) if hasattr(loader, "__len__") else None
            for batch in tqdm(loader, total=total, desc="evaluate", disable=not progress, leave=False):
                for images, masks in image_groups(batch[0], batch[1]):
                    images = images.to(device, non_blocking=True)
                    masks = masks.to(device, non_blocking=True)
                    with autocast:
                        probs = predict_logits(model, images, scales=scales, flip=flip, window=window, stride=stride)
                    if probs.shape[1] != num_classes:
                        raise ValueError(
                            f"the model predicts {probs.shape[1]} classes but num_classes={num_classes}"
                        )
                    pred = probs.argmax(1)
                    per = per_sample_confusion(pred, masks, num_classes, ignore_index)
                    cm.matrix += per.sum(0)
                    if bm is not None:
                        bm.update(pred, masks)
                    if keep_per_image:
                        per_image.extend(_image_scores(per, ids, seen))
                    if on_prediction is not None:
                        n = images.shape[0]
                        names = ids[seen:seen + n] if ids is not None else list(range(seen, seen + n))
                        on_prediction(names, images.cpu(), pred.cpu())
                    seen += images.shape[0]
        if isinstance(getattr(loader, "sampler", None), DistributedSampler):
            cm.reduce()
            if bm is not None:
                bm.reduce()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    finally:
        model.train(was_training)
    seconds = time.perf_counter() - start

    return EvaluationResult(
        metrics=cm.compute(class_names),
        boundary=bm.compute(class_names) if bm is not None else {},
        per_image=per_image,
        class_names=class_names,
        num_images=seen,
        seconds=seconds,
        device=str(device),
        scales=tuple(float(s) for s in scales),
        flip=bool(flip),
        window=_pair(window, "window") if window is not None else None,
        settings={"amp_dtype": str(amp_dtype).replace("torch.", "")} if amp_dtype is not None else {},
    )


def _image_scores(per: torch.Tensor, ids: list | None, offset: int) -> list[ImageScore]:
    c = per.double()
    tp = c.diagonal(dim1=1, dim2=2)
    union = c.sum(2) + c.sum(1) - tp
    iou = torch.where(union > 0, tp / union, torch.full_like(tp, math.nan))
    miou = iou.nanmean(1)  # NaN when the image has no scored pixel
    total = c.sum((1, 2))
    acc = torch.where(total > 0, tp.sum(1) / total, torch.full_like(total, math.nan))
    out = []
    for i, (m, a, t) in enumerate(zip(miou.tolist(), acc.tolist(), total.tolist())):
        j = offset + i
        image_id = ids[j] if ids is not None and j < len(ids) else j
        out.append(ImageScore(id=image_id, miou=m, pixel_accuracy=a, num_pixels=int(t)))
    return out


# --------------------------------------------------------------------------
# colour and files
# --------------------------------------------------------------------------


def _palette_lut(palette: Sequence[Sequence[int]], ignore_index: int | None = 255) -> np.ndarray:
    """A 256-entry RGB lookup table: ``palette`` first, the VOC void colour at
    ``ignore_index`` (unless the palette covers it), black elsewhere."""
    if len(palette) > 256:
        raise ValueError(f"a palette PNG holds at most 256 colours, got {len(palette)}")
    lut = np.zeros((256, 3), dtype=np.uint8)
    if len(palette):
        lut[: len(palette)] = np.asarray(palette, dtype=np.uint8).reshape(-1, 3)
    if ignore_index is not None and len(palette) <= ignore_index < 256:
        lut[ignore_index] = VOID_COLOR
    return lut


def _mask_array(mask) -> np.ndarray:
    if isinstance(mask, torch.Tensor):
        mask = mask.detach().cpu().numpy()
    arr = np.asarray(mask)
    if arr.ndim != 2:
        raise ValueError(f"a mask must be [H, W], got shape {arr.shape}")
    if arr.dtype.kind not in "iu":
        raise TypeError(f"a mask must hold integer labels, got dtype {arr.dtype}")
    if arr.size and (arr.min() < 0 or arr.max() > 255):
        raise ValueError(f"mask labels must be in [0, 255] for a palette PNG, got {arr.min()}..{arr.max()}")
    return arr.astype(np.uint8)


def _image_uint8(image) -> torch.Tensor:
    """An image as uint8 ``[3, H, W]``: a normalised float tensor is
    de-normalised (ImageNet statistics); uint8 tensors/arrays and PIL images
    are taken as they are."""
    from PIL import Image

    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB"))
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3:
            raise ValueError("a numpy image must be uint8 [H, W, 3] or [3, H, W]")
        image = torch.from_numpy(np.ascontiguousarray(image))
        if image.shape[-1] == 3 and image.shape[0] != 3:
            image = image.permute(2, 0, 1)
    image = image.detach().cpu()
    if image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"an image must be [3, H, W], got {tuple(image.shape)}")
    if image.dtype == torch.uint8:
        return image
    try:
        from refinenet_edu.datasets.transforms import denormalize
    except ImportError as exc:  # datasets not available: ask for a displayable image
        raise ValueError(
            "cannot de-normalise a float image (refinenet_edu.datasets.transforms.denormalize "
            "is not available); pass uint8 images instead"
        ) from exc
    image = denormalize(image.float())
    if image.dtype != torch.uint8:
        image = (image.clamp(0, 1) * 255).round().to(torch.uint8)
    return image


def _overlay(image, mask: np.ndarray, lut: np.ndarray, alpha: float, ignore_index: int | None) -> np.ndarray:
    from torchvision.utils import draw_segmentation_masks

    img = _image_uint8(image)
    if tuple(img.shape[-2:]) != mask.shape:
        raise ValueError(f"image size {tuple(img.shape[-2:])} does not match mask size {mask.shape}")
    labels = [int(v) for v in np.unique(mask) if v != ignore_index]
    if labels:
        m = torch.from_numpy(mask)
        masks = torch.stack([m == v for v in labels])
        img = draw_segmentation_masks(img, masks, alpha=alpha, colors=[tuple(int(c) for c in lut[v]) for v in labels])
    return img.permute(1, 2, 0).numpy()


def save_predictions(
    pred_masks: Iterable,
    ids: Sequence,
    out_dir,
    palette: Sequence[Sequence[int]],
    images: Iterable | None = None,
    *,
    alpha: float = 0.5,
    ignore_index: int | None = 255,
) -> list[Path]:
    """Write predicted masks as palette PNGs, and overlays when ``images`` are given.

    ``pred_masks``: ``[H, W]`` integer masks (tensors or arrays, or one
    ``[N, H, W]`` tensor); ``ids``: one name per mask. Each mask goes to
    ``out_dir/<id>.png`` as a mode "P" PNG whose pixel values are the class
    indices (lossless, reads back exactly with ``np.array(Image.open(p))``)
    and whose palette shows the classes' colours (PASCAL VOC's format). With
    ``images`` (normalised float ``[3, H, W]`` tensors as the datasets yield
    them, or uint8 images), ``out_dir/overlays/<id>.png`` shows the image
    blended with the coloured mask (``alpha``). Every file is written
    atomically. Returns the paths written.
    """
    from PIL import Image

    out_dir = Path(out_dir)
    root = out_dir.resolve()
    lut = _palette_lut(palette, ignore_index)
    flat_palette = lut.reshape(-1).tolist()
    masks = list(pred_masks)
    ids = list(ids)
    if len(masks) != len(ids):
        raise ValueError(f"{len(masks)} masks but {len(ids)} ids")
    image_list = list(images) if images is not None else None
    if image_list is not None and len(image_list) != len(masks):
        raise ValueError(f"{len(masks)} masks but {len(image_list)} images")
    written: list[Path] = []
    for i, (mask, image_id) in enumerate(zip(masks, ids)):
        arr = _mask_array(mask)
        path = out_dir / f"{image_id}.png"
        if root not in path.resolve().parents:
            raise ValueError(f"id {image_id!r} would write outside {out_dir}")
        path.parent.mkdir(parents=True, exist_ok=True)
        h, w = arr.shape
        png = Image.frombytes("P", (w, h), np.ascontiguousarray(arr).tobytes())
        png.putpalette(flat_palette)
        atomic_write(path, lambda f: png.save(f, format="PNG"))
        written.append(path)
        if image_list is not None:
            over = _overlay(image_list[i], arr, lut, alpha, ignore_index)
            opath = out_dir / "overlays" / f"{image_id}.png"
            opath.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(opath, lambda f: Image.fromarray(over).save(f, format="PNG"))
            written.append(opath)
    return written
