"""The loss every trainer of the library minimises: per-pixel cross-entropy.

Scores are compared with the labels in float32 (also under ``torch.autocast``: a softmax over bf16/fp16 scores
loses the small probabilities), pixels with the ignore label (255, PASCAL VOC's object outlines and the crop
padding) count for nothing, and scores smaller than the labels are upsampled first (bilinear), as FCN-32s does with
its 1/32 scores (Long et al., CVPR 2015). RefineNet itself returns scores at the input size (paper Sec. 3: the
classifier's 1/4 scores are upsampled inside the network), so for it the upsampling is a no-op.

RefineNet trains with plain cross-entropy. For classes that cover few pixels (SynthScenes' wires and dots,
``data/README.md``), ``loss=`` offers two common remedies, :data:`LOSSES`: class-weighted cross-entropy with
median-frequency weights (Eigen & Fergus, ICCV 2015: ``w_c = median(f) / f_c`` over the classes present, so a class
ten times rarer than the median counts ten times as much), and the focal loss (Lin et al., ICCV 2017:
``-(1 - p_t)^gamma log p_t``, which shrinks the loss of pixels already classified confidently, mostly the large
classes). Neither is part of the paper's recipe.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["LOSSES", "SegmentationLoss", "class_scores", "median_frequency_weights"]

#: The losses :class:`SegmentationLoss` (and ``refinenet-edu train --loss``) offers.
LOSSES = ("cross-entropy", "weighted-cross-entropy", "focal")


def class_scores(output) -> torch.Tensor:
    """The class scores of a model's output: the tensor, or ``output["out"]`` (torchvision's segmentation models)."""
    return output["out"] if isinstance(output, dict) else output


def median_frequency_weights(frequency) -> torch.Tensor:
    """Median-frequency class weights (Eigen & Fergus, ICCV 2015): ``median(f) / f_c``.

    ``frequency``: each class's share of the labelled pixels (e.g.
    :func:`refinenet_edu.datasets.info.class_pixel_histogram`'s ``"frequency"``). The median is over the classes
    present; a class absent from the data (frequency 0) gets weight 1, since it never occurs as a label.
    """
    f = torch.as_tensor(frequency, dtype=torch.float64)
    if f.ndim != 1 or not bool(torch.isfinite(f).all()) or bool((f < 0).any()) or not bool((f > 0).any()):
        raise ValueError(f"class frequencies: expected one non-negative share per class, some > 0; got {f.tolist()}")
    present = f > 0
    weights = torch.ones_like(f)
    weights[present] = f[present].quantile(0.5) / f[present]  # the middle value (mean of the two for an even count)
    return weights.float()


class SegmentationLoss(nn.Module):
    """Cross-entropy (or a variant, :data:`LOSSES`) of class scores ``[N, C, h, w]`` against labels ``[N, H, W]``.

    ``ignore_index``: the label that is not scored. ``label_map``: a 256-entry lookup table applied to the labels
    first (e.g. classes merged for pretraining, :func:`refinenet_edu.experiments.pretraining.class_map`). ``loss``:
    ``"cross-entropy"`` (the paper's), ``"weighted-cross-entropy"`` (``class_weights`` required, e.g.
    :func:`median_frequency_weights`; the mean is weighted as in ``F.cross_entropy(weight=...)``) or ``"focal"``
    (``focal_gamma``; gamma 0 is cross-entropy).
    """

    def __init__(self, ignore_index: int = 255, label_map: torch.Tensor | None = None, *,
                 loss: str = "cross-entropy", class_weights=None, focal_gamma: float = 2.0):
        super().__init__()
        if loss not in LOSSES:
            raise ValueError(f"loss={loss!r}: expected one of {', '.join(LOSSES)}")
        if (loss == "weighted-cross-entropy") != (class_weights is not None):
            raise ValueError("class_weights: give them for loss='weighted-cross-entropy', and only then")
        if not (math.isfinite(focal_gamma) and focal_gamma >= 0):
            raise ValueError(f"focal_gamma={focal_gamma!r}: expected a finite number >= 0")
        self.ignore_index = ignore_index
        self.loss = loss
        self.focal_gamma = float(focal_gamma)
        self.register_buffer("label_map", label_map, persistent=False)  # moves with .to(device)
        weights = None if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float32)
        self.register_buffer("class_weights", weights, persistent=False)

    def forward(self, output, targets: torch.Tensor) -> torch.Tensor:
        scores = class_scores(output).float()
        if scores.shape[-2:] != targets.shape[-2:]:
            scores = F.interpolate(scores, size=targets.shape[-2:], mode="bilinear", align_corners=False)
        if self.label_map is not None:
            targets = self.label_map[targets]
        if self.loss != "focal":
            return F.cross_entropy(scores, targets, weight=self.class_weights, ignore_index=self.ignore_index)
        valid = targets != self.ignore_index
        log_p = F.log_softmax(scores, dim=1).gather(1, targets.where(valid, 0).unsqueeze(1)).squeeze(1)
        pixel_loss = -((1 - log_p.exp()) ** self.focal_gamma) * log_p
        return pixel_loss[valid].sum() / valid.sum().clamp(min=1)
