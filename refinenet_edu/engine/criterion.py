"""The loss every trainer of the library minimises: per-pixel cross-entropy.

Scores are compared with the labels in float32 (also under ``torch.autocast``:
a softmax over bf16/fp16 scores loses the small probabilities), pixels with
the ignore label (255, PASCAL VOC's object outlines and the crop padding)
count for nothing, and scores smaller than the labels are upsampled first
(bilinear), as FCN-32s does with its 1/32 scores (Long et al., CVPR 2015).
RefineNet itself returns scores at the input size (paper Sec. 3: the
classifier's 1/4 scores are upsampled inside the network), so for it the
upsampling is a no-op.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["SegmentationLoss", "class_scores"]


def class_scores(output) -> torch.Tensor:
    """The class scores of a model's output: the tensor, or ``output["out"]`` (torchvision's segmentation models)."""
    return output["out"] if isinstance(output, dict) else output


class SegmentationLoss(nn.Module):
    """Cross-entropy of class scores ``[N, C, h, w]`` against labels ``[N, H, W]``.

    ``ignore_index``: the label that is not scored. ``label_map``: a
    256-entry lookup table applied to the labels first (e.g. classes merged
    for pretraining, :func:`refinenet_edu.experiments.pretraining.class_map`).
    """

    def __init__(self, ignore_index: int = 255, label_map: torch.Tensor | None = None):
        super().__init__()
        self.ignore_index = ignore_index
        self.register_buffer("label_map", label_map, persistent=False)  # moves with .to(device)

    def forward(self, output, targets: torch.Tensor) -> torch.Tensor:
        scores = class_scores(output).float()
        if scores.shape[-2:] != targets.shape[-2:]:
            scores = F.interpolate(scores, size=targets.shape[-2:], mode="bilinear", align_corners=False)
        if self.label_map is not None:
            targets = self.label_map[targets]
        return F.cross_entropy(scores, targets, ignore_index=self.ignore_index)
