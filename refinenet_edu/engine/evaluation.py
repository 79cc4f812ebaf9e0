"""Evaluation: a model's scores on a dataset, and its predictions saved as files.

How RefineNet was measured (Lin et al. 2017; the official code's test script): the class scores become
probabilities with a softmax, averaged over test scales and flips
(:func:`~refinenet_edu.engine.inference.predict_probabilities`), and the arg-max is compared with the labels.
:func:`evaluate` runs a model over a dataset that way and returns an :class:`EvaluationResult` with the metrics of
:mod:`refinenet_edu.engine.metrics` (confusion matrix, IoU, accuracies, boundary/trimap accuracy) and per-image
scores to find the best and worst cases. Images of different sizes are run one at a time
(:mod:`refinenet_edu.datasets.loading`), never padded. :func:`save_predictions` writes predicted masks as palette
PNGs and overlays.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from refinenet_edu.datasets.info import DatasetInfo, sample_ids
from refinenet_edu.datasets.loading import image_groups
from refinenet_edu.datasets.palette import palette_lut, write_mask_png
from refinenet_edu.datasets.transforms import to_uint8_image
from refinenet_edu.engine.inference import OFFICIAL_SCALES, predict_probabilities, window_size
from refinenet_edu.engine.metrics import (
    BoundaryMetrics, ConfusionMatrix, SegmentationMetrics, float_or_none, band_scores, confusion_matrix,
    iou_from_confusion,
)
from refinenet_edu.engine.runtime import autocast, dtype_name, model_device
from refinenet_edu.files import atomic_write

__all__ = ["OFFICIAL_SCALES", "evaluate", "EvaluationResult", "ImageScore", "save_predictions"]


@dataclass
class ImageScore:
    """Scores of one image. ``miou`` averages IoU over the classes present in the image's ground truth or
    prediction (NaN if every pixel is ignored)."""

    id: object
    miou: float
    pixel_accuracy: float
    num_pixels: int

    @classmethod
    def of(cls, id, cm: torch.Tensor) -> ImageScore:
        """The scores of the image ``id`` from its confusion matrix ``cm``."""
        tp, total = int(cm.diagonal().sum()), int(cm.sum())
        return cls(id, float(iou_from_confusion(cm).nanmean()), tp / total if total else math.nan, total)

    def as_dict(self) -> dict:
        return {"id": self.id if isinstance(self.id, (str, int)) else str(self.id), "miou": float_or_none(self.miou),
                "pixel_accuracy": float_or_none(self.pixel_accuracy), "num_pixels": self.num_pixels}


@dataclass
class EvaluationResult:
    """What :func:`evaluate` measured: overall metrics, boundary metrics per band width, per-image scores,
    settings and timing."""

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
            "boundary": band_scores(self.boundary),
            "per_image": [s.as_dict() for s in self.per_image],
            "num_images": self.num_images,
            "seconds": self.seconds,
            "images_per_second": float_or_none(self.images_per_second),
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
        rule = "-" * (width + 16)

        def row(label: str, *fractions: float) -> str:  # as percentages; "-" for NaN
            cells = ("-" if x is None or math.isnan(x) else f"{100 * x:.2f}" for x in fractions)
            return f"{label:<{width}}" + "".join(f"{cell:>8}" for cell in cells)

        lines = [f"{'class':<{width}}{'IoU %':>8}{'acc %':>8}", rule]
        lines += [row(name, iou, acc) for name, iou, acc in zip(names, m.iou, m.class_accuracy)]
        lines += [rule, row("mIoU", m.miou), row("pixel accuracy", m.pixel_accuracy),
                  row("mean class accuracy", m.mean_class_accuracy), row("frequency-weighted IoU", m.fw_iou)]
        if self.boundary:
            lines += [rule, f"{'boundary (trimap) band':<{width}}{'mIoU %':>8}{'acc %':>8}"]
            lines += [row(f"  within {k} px", b.miou, b.pixel_accuracy) for k, b in self.boundary.items()]
        views = f"scales {', '.join(f'{s:g}' for s in self.scales)}" + (" + flip" if self.flip else "")
        if self.window is not None:
            views += f", window {self.window[0]}x{self.window[1]}"
        lines += [rule, f"{self.num_images} images, {views}, {self.seconds:.1f} s "
                        f"({self.images_per_second:.2f} images/s on {self.device})"]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def _ids_in_order(loader) -> list | None:
    """Image ids in the order the loader yields them, when that order is known (the loader does not shuffle)."""
    from torch.utils.data import DistributedSampler, SequentialSampler

    ids, sampler = sample_ids(loader.dataset), loader.sampler
    unknown_order = not isinstance(sampler, (SequentialSampler, DistributedSampler)) or getattr(sampler, "shuffle", False)
    return None if ids is None or unknown_order else [ids[i] for i in sampler]


def evaluate(
    model: nn.Module,
    dataset_or_loader,
    *,
    num_classes: int,
    scales: Sequence[float] = (1.0,),
    flip: bool = False,
    window=None,
    bands: Sequence[int] = (1, 2, 4, 8, 16),
    device=None,
    amp_dtype: torch.dtype | None = None,
    progress: bool = True,
    keep_per_image: bool = True,
    class_names: Sequence[str] | None = None,
    on_prediction=None,
) -> EvaluationResult:
    """Score a segmentation model on a dataset (or a ``DataLoader``).

    The dataset yields ``(image [3, H, W], mask [H, W])``, its ``ignore_index`` (255 unless it says otherwise)
    marking the pixels not scored; a dataset is loaded one image at a time, so images may differ in size (a loader such as
    :func:`~refinenet_edu.datasets.loading.eval_loader` batches them: each runs at its own size). Each batch goes
    through :func:`~refinenet_edu.engine.inference.predict_probabilities` (``scales``, ``flip``, ``window``), in
    ``eval()`` mode (restored afterwards) under ``torch.inference_mode()``, and the arg-max is counted in a
    :class:`~refinenet_edu.engine.metrics.ConfusionMatrix` and a :class:`~refinenet_edu.engine.metrics.BoundaryMetrics`
    (``bands``; empty to skip).

    ``device``: where to run (the model is moved there; default: where it is). ``amp_dtype``: e.g. ``torch.bfloat16``
    to run the model under ``torch.autocast`` (probabilities are still averaged in float32).
    ``on_prediction(ids, images, predictions)`` is called after every batch with the image ids (or positions), the
    images and the predicted masks (int64 ``[N, H, W]``, on the CPU), e.g. to save them (:func:`save_predictions`).
    With a ``DistributedSampler``, every process evaluates its own shard and the confusion matrices are summed
    across processes (call it on every rank); per-image scores stay local to each process.
    """
    from torch.utils.data import DataLoader, DistributedSampler
    from tqdm.auto import tqdm

    loader = dataset_or_loader
    if not isinstance(loader, DataLoader):
        loader = DataLoader(loader, batch_size=1, shuffle=False)
    info = DatasetInfo.of(loader.dataset)
    if info.num_classes and info.num_classes != num_classes:
        raise ValueError(f"num_classes={num_classes} but the dataset has {info.num_classes} classes")
    ignore_index = info.ignore_index
    class_names = list(class_names or info.class_names) or None  # their number is checked with the metrics
    ids = _ids_in_order(loader)

    device = torch.device(device) if device is not None else model_device(model)
    model.to(device)
    cm = ConfusionMatrix(num_classes, ignore_index, device=device)
    bm = BoundaryMetrics(num_classes, bands, ignore_index) if bands else None
    per_image: list[ImageScore] = []
    seen = 0

    was_training = model.training
    model.eval()
    start = time.perf_counter()
    try:
        with torch.inference_mode():
            for batch in tqdm(loader, desc="evaluate", disable=not progress, leave=False):
                for images, masks in image_groups(batch[0], batch[1]):
                    images = images.to(device, non_blocking=True)
                    masks = masks.to(device, non_blocking=True)
                    with autocast(device, amp_dtype or torch.float32):
                        probs = predict_probabilities(model, images, scales=scales, flip=flip, window=window)
                    if probs.shape[1] != num_classes:
                        raise ValueError(f"the model predicts {probs.shape[1]} classes but num_classes={num_classes}")
                    pred = probs.argmax(1)
                    cm.update(pred, masks)
                    if bm is not None:
                        bm.update(pred, masks)
                    n = images.shape[0]
                    names = ids[seen:seen + n] if ids is not None else list(range(seen, seen + n))
                    if keep_per_image:
                        per_image += [ImageScore.of(name, confusion_matrix(p, t, num_classes, ignore_index))
                                      for name, p, t in zip(names, pred, masks)]
                    if on_prediction is not None:
                        on_prediction(names, images.cpu(), pred.cpu())
                    seen += n
        if isinstance(loader.sampler, DistributedSampler):
            cm.reduce()
            if bm is not None:
                bm.reduce()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    finally:
        model.train(was_training)
    seconds = time.perf_counter() - start

    return EvaluationResult(
        metrics=cm.compute(class_names), boundary=bm.compute(class_names) if bm is not None else {},
        per_image=per_image, class_names=class_names, num_images=seen, seconds=seconds, device=str(device),
        scales=tuple(float(s) for s in scales), flip=bool(flip),
        window=window_size(window, "window") if window is not None else None,
        settings={"amp_dtype": dtype_name(amp_dtype)} if amp_dtype is not None else {},
    )


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


def _overlay(image, mask: np.ndarray, lut: np.ndarray, alpha: float, ignore_index: int | None) -> np.ndarray:
    from torchvision.utils import draw_segmentation_masks

    img = to_uint8_image(image)
    if tuple(img.shape[-2:]) != mask.shape:
        raise ValueError(f"image size {tuple(img.shape[-2:])} does not match mask size {mask.shape}")
    labels = [int(v) for v in np.unique(mask) if v != ignore_index]
    if labels:
        m = torch.from_numpy(mask)
        masks = torch.stack([m == v for v in labels])
        img = draw_segmentation_masks(img, masks, alpha=alpha, colors=[tuple(int(c) for c in lut[v]) for v in labels])
    return img.permute(1, 2, 0).numpy()


def save_predictions(pred_masks: Iterable, ids: Sequence, out_dir, palette: Sequence[Sequence[int]],
                     images: Iterable | None = None, *, alpha: float = 0.5,
                     ignore_index: int | None = 255) -> list[Path]:
    """Write predicted masks as palette PNGs, and overlays when ``images`` are given.

    ``pred_masks``: ``[H, W]`` integer masks (tensors or arrays, or one ``[N, H, W]`` tensor); ``ids``: one name per
    mask. Each mask goes to ``out_dir/<id>.png`` as a mode "P" PNG whose pixel values are the class indices
    (lossless, reads back exactly with ``np.array(Image.open(p))``) and whose palette shows the classes' colours
    (PASCAL VOC's format). With ``images`` (normalised float ``[3, H, W]`` tensors as the datasets yield them, or
    uint8 images), ``out_dir/overlays/<id>.png`` shows the image blended with the coloured mask (``alpha``). Every
    file is written atomically (its folder made if need be). Returns the paths written.
    """
    from PIL import Image

    out_dir = Path(out_dir)
    root = out_dir.resolve()
    lut = palette_lut(palette, ignore_index)
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
        atomic_write(path, lambda f: write_mask_png(arr, f, palette, ignore_index))
        written.append(path)
        if image_list is not None:
            over = _overlay(image_list[i], arr, lut, alpha, ignore_index)
            opath = out_dir / "overlays" / f"{image_id}.png"
            atomic_write(opath, lambda f: Image.fromarray(over).save(f, format="PNG"))
            written.append(opath)
    return written

