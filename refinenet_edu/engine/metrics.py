"""Segmentation metrics: confusion matrix, IoU, accuracies and boundary (trimap) accuracy.

Everything here is computed from one object, the **confusion matrix** ``cm`` of shape ``[C, C]``: ``cm[i, j]``
counts the pixels whose ground truth is class ``i`` (rows) and whose prediction is class ``j`` (columns). Pixels
labelled ``ignore_index`` (255 in PASCAL VOC: object borders and "void") are never counted. Because a confusion
matrix is a sum of counts, it can be accumulated batch by batch (of any sizes) and summed across processes, and the
metrics computed at the end are exactly those of one pass over all pixels.

With ``TP_c = cm[c, c]``, ``G_c = sum_j cm[c, j]`` (pixels of class ``c`` in the ground truth), ``P_c = sum_i
cm[i, c]`` (pixels predicted as ``c``) and ``N = sum(cm)``:

* IoU (PASCAL VOC's "intersection over union", also Jaccard index)::

      IoU_c = TP_c / (TP_c + FP_c + FN_c) = TP_c / (G_c + P_c - TP_c)

  NaN for a class absent from both the ground truth and the prediction (it is neither right nor wrong, so it takes
  no part in the mean).
* mIoU = mean of IoU_c over the classes whose IoU is not NaN -- the headline number of RefineNet's result tables
  (Lin et al. 2017).
* pixel accuracy = ``sum_c TP_c / N``.
* class accuracy ``TP_c / G_c`` (recall of class c, NaN if ``G_c = 0``); mean class accuracy is its mean over the
  classes that occur.
* frequency-weighted IoU (Long et al., FCN, 2015)::

      fwIoU = sum_c (G_c / N) * IoU_c

Boundary accuracy ("trimap", Kohli et al. 2009; used by DeepLab, Chen et al. 2015/2017, to show how well object
borders are recovered): the same metrics restricted to a band of pixels near label boundaries, for several band
widths -- see :func:`boundary_band` and :class:`BoundaryMetrics`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["ConfusionMatrix", "SegmentationMetrics", "BoundaryMetrics", "band_scores", "boundary_band",
           "confusion_matrix", "float_or_none", "iou_from_confusion", "miou_from_confusion"]


def _describe_values(values: torch.Tensor, limit: int = 10) -> str:
    uniq = torch.unique(values).tolist()
    shown = ", ".join(str(v) for v in uniq[:limit])
    return shown + (f", ... ({len(uniq)} distinct)" if len(uniq) > limit else "")


def confusion_matrix(pred, target, num_classes: int, ignore_index: int | None = 255) -> torch.Tensor:
    """Confusion matrix of one prediction/ground-truth pair (or batch).

    ``pred`` and ``target`` are integer tensors (or arrays) of the same, any, shape. Returns an int64
    ``[num_classes, num_classes]`` tensor on ``pred``'s device, rows = ground truth, columns = prediction; pixels
    whose target is ``ignore_index`` are skipped. Computed with one ``torch.bincount`` of ``target * C + pred``.
    Raises ``TypeError`` for labels that are not integers and ``ValueError`` for a shape mismatch or a label outside
    ``[0, C)`` on a scored pixel.
    """
    pred, target = torch.as_tensor(pred), torch.as_tensor(target)
    for name, t in (("pred", pred), ("target", target)):
        if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
            raise TypeError(f"{name} must hold integer class labels, got dtype {t.dtype}")
    if pred.shape != target.shape:
        raise ValueError(f"pred and target must have the same shape, got pred {tuple(pred.shape)} "
                         f"and target {tuple(target.shape)}")
    pred, target = pred.long(), target.long().to(pred.device)
    if ignore_index is not None:
        keep = target != ignore_index
        pred, target = pred[keep], target[keep]
    for name, labels in (("target", target), ("pred", pred)):
        bad = labels[(labels < 0) | (labels >= num_classes)]
        if len(bad):
            raise ValueError(f"{name} has labels outside [0, {num_classes - 1}] on pixels that are not ignored "
                             f"(ignore index {ignore_index}): {_describe_values(bad)}")
    index = target.reshape(-1) * num_classes + pred.reshape(-1)
    return torch.bincount(index, minlength=num_classes**2).reshape(num_classes, num_classes)


def iou_from_confusion(cm) -> torch.Tensor:
    """Per-class IoU ``TP / (TP + FP + FN)`` from a ``[C, C]`` confusion matrix: float64 ``[C]``, NaN for classes
    absent from both ground truth (row sum 0) and prediction (column sum 0)."""
    cm = torch.as_tensor(cm).double()
    tp = cm.diagonal()
    union = cm.sum(1) + cm.sum(0) - tp
    iou = tp / union
    return torch.where(union > 0, iou, torch.full_like(iou, math.nan))


def miou_from_confusion(cm) -> float:
    """Mean IoU over the classes that are not NaN (see :func:`iou_from_confusion`); NaN when no pixel was counted."""
    return _nanmean(iou_from_confusion(cm))


def _nanmean(x: torch.Tensor) -> float:
    keep = ~torch.isnan(x)
    return float(x[keep].mean()) if bool(keep.any()) else math.nan


def float_or_none(x: float | None) -> float | None:
    """JSON has no NaN: map it (and a missing value) to ``None`` (``null``)."""
    return None if x is None or math.isnan(x) else float(x)


@dataclass
class SegmentationMetrics:
    """Metrics derived from one confusion matrix (see the module docstring for formulas). ``iou`` and
    ``class_accuracy`` are per-class lists with NaN where a class does not take part; the scalar fields are NaN when
    no pixel was counted."""

    confusion: torch.Tensor  # int64 [C, C], rows = ground truth, cols = prediction (on CPU)
    iou: list[float]
    miou: float
    pixel_accuracy: float
    class_accuracy: list[float]
    mean_class_accuracy: float
    fw_iou: float
    num_pixels: int
    class_names: list[str] | None = None

    @classmethod
    def from_confusion(cls, cm, class_names: Sequence[str] | None = None) -> SegmentationMetrics:
        cm = torch.as_tensor(cm).detach().to("cpu", torch.int64)
        if cm.dim() != 2 or cm.shape[0] != cm.shape[1]:
            raise ValueError(f"confusion matrix must be square [C, C], got {tuple(cm.shape)}")
        if class_names is not None and len(class_names) != cm.shape[0]:
            raise ValueError(f"{len(class_names)} class names for {cm.shape[0]} classes")
        c = cm.double()
        tp = c.diagonal()
        gt = c.sum(1)
        total = float(c.sum())
        iou = iou_from_confusion(c)
        class_acc = torch.where(gt > 0, tp / gt, torch.full_like(tp, math.nan))
        if total > 0:
            pixel_acc = float(tp.sum()) / total
            fw = float(((gt / total) * torch.nan_to_num(iou, nan=0.0)).sum())
        else:
            pixel_acc = fw = math.nan
        return cls(
            confusion=cm,
            iou=iou.tolist(),
            miou=_nanmean(iou),
            pixel_accuracy=pixel_acc,
            class_accuracy=class_acc.tolist(),
            mean_class_accuracy=_nanmean(class_acc),
            fw_iou=fw,
            num_pixels=int(total),
            class_names=list(class_names) if class_names is not None else None,
        )

    @property
    def num_classes(self) -> int:
        return len(self.iou)

    def as_dict(self, class_names: Sequence[str] | None = None) -> dict:
        """JSON-friendly dict (NaN -> ``None``). Per-class values are keyed by class name when names are given (here
        or at construction), else listed."""
        names = list(class_names) if class_names is not None else self.class_names
        if names is not None and len(names) != self.num_classes:
            raise ValueError(f"{len(names)} class names for {self.num_classes} classes")
        iou = [float_or_none(v) for v in self.iou]
        acc = [float_or_none(v) for v in self.class_accuracy]
        out = {"miou": float_or_none(self.miou), "pixel_accuracy": float_or_none(self.pixel_accuracy),
               "mean_class_accuracy": float_or_none(self.mean_class_accuracy), "fw_iou": float_or_none(self.fw_iou),
               "num_pixels": self.num_pixels, "iou": dict(zip(names, iou)) if names is not None else iou,
               "class_accuracy": dict(zip(names, acc)) if names is not None else acc}
        if names is not None:
            out["class_names"] = list(names)
        out["confusion"] = self.confusion.tolist()
        return out


class ConfusionMatrix:
    """Accumulates a ``[C, C]`` confusion matrix over batches (rows = ground truth), on the device of the
    first update: ``ConfusionMatrix(3).update(pred, mask).reduce().compute().miou``."""

    def __init__(self, num_classes: int, ignore_index: int | None = 255, device=None):
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)

    def update(self, pred, target) -> ConfusionMatrix:
        """Add the pixels of one batch (any matching shapes, e.g. ``[N, H, W]``): :func:`confusion_matrix`."""
        cm = confusion_matrix(pred, target, self.num_classes, self.ignore_index)
        if self.matrix.device != cm.device:
            self.matrix = self.matrix.to(cm.device)
        self.matrix += cm
        return self

    def reduce(self) -> ConfusionMatrix:
        """Sum the matrix over all ``torch.distributed`` processes, in place (a collective: every process calls
        it, with the matrix on a device its backend supports); a no-op without a process group."""
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(self.matrix, op=dist.ReduceOp.SUM)
        return self

    def compute(self, class_names: Sequence[str] | None = None) -> SegmentationMetrics:
        return SegmentationMetrics.from_confusion(self.matrix, class_names)


def boundary_band(target, k: int, ignore_index: int | None = 255) -> torch.Tensor:
    """Pixels within ``k`` pixels of a label boundary (the "trimap" band), a bool tensor shaped like ``target``
    (integer labels ``[H, W]`` or ``[N, H, W]``).

    A pixel ``p`` is in the band when some pixel of the ``(2k+1) x (2k+1)`` square around it (clipped at the image
    border, which is no boundary) carries a different label: both sides of every boundary, a band about ``2k`` pixels
    wide, as in the trimap experiments of Kohli et al. (2009) and DeepLab (Chen et al. 2015). Computed as
    ``max_pool(label) != min_pool(label)`` over that square, with separable max-pools, on any device. The ignore label
    counts as a label when finding boundaries (PASCAL VOC draws a void band along every object outline, so the
    pixels next to it are the object borders), but ignored pixels are never in the band.
    """
    if k < 0:
        raise ValueError(f"band width k must be >= 0, got {k}")
    target = torch.as_tensor(target)
    if target.dim() not in (2, 3):
        raise ValueError(f"target must be [H, W] or [N, H, W], got {tuple(target.shape)}")
    labels = target if target.dim() == 3 else target[None]
    x = labels[:, None].float()  # labels up to 2**24 are exact in float32
    size = 2 * k + 1

    def pool_max(t):
        t = F.max_pool2d(t, (1, size), stride=1, padding=(0, k))
        return F.max_pool2d(t, (size, 1), stride=1, padding=(k, 0))

    band = (pool_max(x) != -pool_max(-x))[:, 0]
    if ignore_index is not None:
        band &= labels != ignore_index
    return band if target.dim() == 3 else band[0]


class BoundaryMetrics:
    """Segmentation metrics restricted to bands around label boundaries (trimap).

    Keeps one :class:`ConfusionMatrix` per band width ``k`` (see :func:`boundary_band`); pixels outside the band are
    treated as ignored. Plotting mIoU (or pixel accuracy) against ``k`` shows how much of a model's error sits on
    object borders -- the thing RefineNet's high-resolution refinement is meant to fix.
    """

    def __init__(self, num_classes: int, bands: Sequence[int] = (1, 2, 4, 8, 16), ignore_index: int = 255):
        bands = tuple(int(b) for b in bands)
        if any(b < 1 for b in bands):
            raise ValueError(f"band widths must be >= 1, got {bands}")
        if ignore_index is None:
            raise ValueError("BoundaryMetrics needs an ignore_index to mark pixels outside a band")
        self.ignore_index = ignore_index
        self.matrices = {k: ConfusionMatrix(num_classes, ignore_index) for k in bands}

    def update(self, pred, target) -> BoundaryMetrics:
        """Add the pixels of one batch that lie in each band (the others count as ignored)."""
        target = torch.as_tensor(target)
        flat = target.reshape(-1, *target.shape[-2:])
        for k, cm in self.matrices.items():
            band = boundary_band(flat, k, self.ignore_index).reshape(target.shape)
            cm.update(pred, torch.where(band, target, torch.full_like(target, self.ignore_index)))
        return self

    def reduce(self) -> BoundaryMetrics:
        """Sum every band's matrix over DDP processes (see :meth:`ConfusionMatrix.reduce`)."""
        for cm in self.matrices.values():
            cm.reduce()
        return self

    def compute(self, class_names: Sequence[str] | None = None) -> dict[int, SegmentationMetrics]:
        """``{k: SegmentationMetrics}`` for every band width ``k``."""
        return {k: cm.compute(class_names) for k, cm in self.matrices.items()}


def band_scores(boundary: dict[int, SegmentationMetrics]) -> dict:
    """``{"k": {"miou", "pixel_accuracy", "num_pixels"}}`` of the metrics per band width (JSON: NaN -> None)."""
    return {str(k): {"miou": float_or_none(m.miou), "pixel_accuracy": float_or_none(m.pixel_accuracy),
                     "num_pixels": m.num_pixels} for k, m in boundary.items()}
