"""Joint image/mask transforms, built from ``torchvision.transforms.v2``.

v2 transforms look at the *type* of each input: a ``tv_tensors.Mask`` is resized with nearest-neighbour
interpolation only, is left alone by colour jitter and normalisation, and is padded with its own fill value,
so one pipeline moves image and mask together and labels are never blended. The training recipe follows the
official RefineNet / Light-Weight RefineNet code: random scale (0.7-1.3 in RefineNet), random crop padded
with the ignore label 255, horizontal flip, normalisation with ImageNet statistics. Outputs: image float32
[3, H, W], mask int64 [H, W] (both still tv_tensors).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "RandomScale", "SegmentationTransforms", "denormalize", "to_uint8_image",
           "eval_transforms", "train_transforms"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class RandomScale(v2.Transform):
    """Resize image and mask by one random factor from ``scale_range``: images bilinearly (antialiased), masks
    (by v2's dispatch on ``tv_tensors.Mask``) with nearest-neighbour interpolation."""

    def __init__(self, scale_range: tuple[float, float] = (0.7, 1.3)):
        super().__init__()
        lo, hi = scale_range
        if not 0 < lo <= hi:
            raise ValueError(f"scale_range must satisfy 0 < low <= high, got {scale_range}")
        self.scale_range = (float(lo), float(hi))

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        height, width = next(F.get_size(x) for x in flat_inputs if isinstance(x, (torch.Tensor, Image.Image)))
        scale = float(torch.empty(()).uniform_(*self.scale_range))
        return {"size": [max(1, round(height * scale)), max(1, round(width * scale))]}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        return F.resize(inpt, size=params["size"], interpolation=v2.InterpolationMode.BILINEAR, antialias=True)


def _as_image(image) -> tv_tensors.Image:
    if isinstance(image, tv_tensors.Image):
        return image
    if isinstance(image, Image.Image):
        return tv_tensors.Image(F.pil_to_tensor(image.convert("RGB")))
    if isinstance(image, np.ndarray):  # H, W, 3
        return tv_tensors.Image(torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1))
    return tv_tensors.Image(image)


def _as_mask(mask) -> tv_tensors.Mask:
    if isinstance(mask, Image.Image):
        mask = np.asarray(mask)
    if isinstance(mask, np.ndarray):
        mask = torch.from_numpy(mask.astype(np.int64))
    mask = torch.as_tensor(mask)
    if mask.ndim == 3 and mask.shape[0] == 1:
        mask = mask[0]
    return tv_tensors.Mask(mask.long())


class SegmentationTransforms:
    """A v2 pipeline applied to an ``(image, mask)`` pair, first wrapped as ``tv_tensors.Image`` /
    ``tv_tensors.Mask`` (from tensors, numpy arrays or PIL images), so that a mask is never interpolated."""

    def __init__(self, *transforms):
        self.pipeline = v2.Compose(list(transforms))

    def __call__(self, image, mask):
        return self.pipeline(_as_image(image), _as_mask(mask))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.pipeline})"


def _to_float_normalized(mean, std) -> list:
    return [
        v2.ToDtype({tv_tensors.Image: torch.float32, tv_tensors.Mask: torch.int64, "others": None}, scale=True),
        v2.Normalize(mean=list(mean), std=list(std)),
    ]


def train_transforms(crop_size: int | Sequence[int], *, scale_range: tuple[float, float] | None = (0.7, 1.3),
                     hflip: bool = True, jitter: bool = True, mean: Sequence[float] = IMAGENET_MEAN,
                     std: Sequence[float] = IMAGENET_STD, ignore_index: int = 255) -> SegmentationTransforms:
    """Random scale, flip, photometric jitter, normalise, random crop.

    The crop comes last, on the normalised image, so padding (when the scaled image is smaller than
    ``crop_size``) is 0 in the normalised image (the mean colour, as in Light-Weight RefineNet) and
    ``ignore_index`` in the mask: padded pixels add nothing to the loss.
    """
    steps: list = []
    if scale_range is not None:
        steps.append(RandomScale(scale_range))
    if hflip:
        steps.append(v2.RandomHorizontalFlip(p=0.5))
    if jitter:
        steps.append(v2.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.03))
    steps += _to_float_normalized(mean, std)
    fill = {tv_tensors.Image: 0.0, tv_tensors.Mask: ignore_index}
    steps.append(v2.RandomCrop(crop_size, pad_if_needed=True, fill=fill))
    return SegmentationTransforms(*steps)


def eval_transforms(*, mean: Sequence[float] = IMAGENET_MEAN,
                    std: Sequence[float] = IMAGENET_STD) -> SegmentationTransforms:
    """To float in [0, 1], then normalise; the mask is untouched (int64)."""
    return SegmentationTransforms(*_to_float_normalized(mean, std))


def denormalize(image: torch.Tensor, mean: Sequence[float] = IMAGENET_MEAN,
                std: Sequence[float] = IMAGENET_STD) -> torch.Tensor:
    """Undo the normalisation: float in [0, 1], for [3, H, W] or [N, 3, H, W]."""
    image = torch.as_tensor(image).float()
    mean_t = torch.tensor(mean, dtype=image.dtype, device=image.device).view(-1, 1, 1)
    std_t = torch.tensor(std, dtype=image.dtype, device=image.device).view(-1, 1, 1)
    return (image * std_t + mean_t).clamp(0.0, 1.0)


def to_uint8_image(image) -> torch.Tensor:
    """An image as uint8 ``[3, H, W]``, to show or save: a float tensor is taken as normalised with ImageNet
    statistics (what the transforms above yield); uint8 tensors, numpy arrays (``[H, W, 3]`` or ``[3, H, W]``)
    and PIL images as they are."""
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB"))
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3:
            raise ValueError("a numpy image must be uint8 [H, W, 3] or [3, H, W]")
        image = torch.from_numpy(np.ascontiguousarray(image))
        if image.shape[-1] == 3 and image.shape[0] != 3:
            image = image.permute(2, 0, 1)
    image = torch.as_tensor(image).detach().cpu()
    if image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"an image must be [3, H, W], got {tuple(image.shape)}")
    if image.dtype == torch.uint8:
        return image
    return (denormalize(image.float()) * 255).round().to(torch.uint8)
