"""Joint transforms keep image and mask aligned and never blend labels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import tv_tensors

from refinenet_edu.datasets import IMAGENET_MEAN, IMAGENET_STD, denormalize, eval_transforms, train_transforms

LABELS = np.array([0, 3, 5, 6])  # not contiguous: a blended label would show up as a new value
LEVELS = np.array([40, 90, 140, 190])  # image value that encodes each label
BLOCK = 8


def position_coded_pair(h=56, w=64):
    """Mask of 8x8 blocks whose label depends on the column, image encoding that label.

    A horizontal flip changes every block's label, a shift of a few pixels
    changes the labels near every block edge: misalignment cannot hide.
    """
    by, bx = np.mgrid[0:h, 0:w] // BLOCK
    code = (by + 2 * bx) % 4
    mask = LABELS[code]
    image = np.stack([LEVELS[code], np.full((h, w), 128), (by * 16) % 256], 0).astype(np.uint8)
    return tv_tensors.Image(torch.from_numpy(image)), tv_tensors.Mask(torch.from_numpy(mask).long())


def decode(image: torch.Tensor) -> np.ndarray:
    """Label encoded by each pixel of a transformed (mean 0, std 1) image."""
    level = image[0].numpy() * 255
    return LABELS[np.abs(level[..., None] - LEVELS).argmin(-1)]


def interior(mask: np.ndarray) -> np.ndarray:
    """Pixels whose 3x3 neighbourhood carries one label (away from block edges)."""
    m = np.pad(mask, 1, mode="edge")
    same = np.ones(mask.shape, bool)
    for dy in range(3):
        for dx in range(3):
            same &= m[dy : dy + mask.shape[0], dx : dx + mask.shape[1]] == mask
    return same


@pytest.mark.parametrize("seed", range(8))
def test_random_scale_crop_flip_keep_alignment(seed):
    torch.manual_seed(seed)
    image, mask = position_coded_pair()
    t = train_transforms(72, scale_range=(0.6, 1.8), jitter=False, mean=(0, 0, 0), std=(1, 1, 1))
    out_image, out_mask = t(image, mask)
    assert out_image.dtype == torch.float32 and tuple(out_image.shape) == (3, 72, 72)
    assert out_mask.dtype == torch.int64 and tuple(out_mask.shape) == (72, 72)
    m = out_mask.numpy()
    # Nearest only: no label that was not there before.
    assert set(np.unique(m)) <= set(LABELS.tolist()) | {255}
    # Padding: ignore label in the mask, exactly 0 in the image.
    padded = m == 255
    assert torch.all(out_image[:, torch.from_numpy(padded)] == 0)
    assert (out_image[0][torch.from_numpy(~padded)] > 0).all()
    # Alignment: away from block edges, the image encodes the mask's label.
    keep = interior(m) & ~padded
    assert keep.sum() > 200
    assert (decode(out_image)[keep] == m[keep]).mean() > 0.99


def test_a_misaligned_flip_would_be_caught():
    image, mask = position_coded_pair()
    flipped = image.flip(-1).float() / 255
    keep = interior(mask.numpy())
    assert (decode(flipped)[keep] == mask.numpy()[keep]).mean() < 0.1


def test_eval_transforms_normalise_and_keep_the_mask():
    image, mask = position_coded_pair()
    out_image, out_mask = eval_transforms()(image, mask)
    assert out_image.dtype == torch.float32 and out_mask.dtype == torch.int64
    assert torch.equal(out_mask, mask)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    torch.testing.assert_close(out_image, (image.float() / 255 - mean) / std)
    torch.testing.assert_close(denormalize(out_image), image.float() / 255)
    torch.testing.assert_close(denormalize(out_image[None]), image.float()[None] / 255)


def test_jitter_touches_only_the_image_and_pil_inputs_work():
    torch.manual_seed(0)
    image, mask = position_coded_pair()
    pil_image = Image.fromarray(image.permute(1, 2, 0).numpy())
    pil_mask = Image.fromarray(mask.numpy().astype(np.uint8), mode="L")
    t = train_transforms(64, scale_range=None, hflip=False)
    out_image, out_mask = t(pil_image, pil_mask)
    assert isinstance(out_mask, tv_tensors.Mask)
    out = out_mask.numpy()
    kept = np.flatnonzero((out != 255).all(1))  # 56 rows of the original, 8 of padding
    assert len(kept) == 56 and kept[-1] - kept[0] == 55
    np.testing.assert_array_equal(out[kept], mask.numpy())


def test_bad_scale_range():
    with pytest.raises(ValueError, match="scale_range"):
        train_transforms(32, scale_range=(1.5, 0.5))
