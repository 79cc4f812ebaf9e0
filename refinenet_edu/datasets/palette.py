"""Colours of the classes: palettes, the ignore colour, coloured masks and palette PNGs.

A palette gives class ``i`` the colour ``palette[i]``; the ignore label (255, PASCAL VOC's object outlines) is drawn
in VOC's cream colour :data:`IGNORE_COLOUR`. :func:`palette_lut` builds the one 256-entry lookup table that colouring
a mask (:func:`colorize`) and writing a palette PNG (:func:`write_mask_png`, ``save_predictions``) both use.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np

__all__ = ["IGNORE_INDEX", "IGNORE_COLOUR", "voc_palette", "palette_lut", "colorize", "write_mask_png"]

#: The label of pixels that are not scored (PASCAL VOC's convention).
IGNORE_INDEX = 255
#: Colour of the ignore label in PASCAL VOC's palette PNGs.
IGNORE_COLOUR = (224, 224, 192)


def voc_palette(n: int = 256) -> list[tuple[int, int, int]]:
    """The PASCAL VOC colour map (bit-interleaved; index 255 is (224, 224, 192))."""
    colours = []
    for i in range(n):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        colours.append((r, g, b))
    return colours


def palette_lut(palette: Sequence[Sequence[int]], ignore_index: int | None = IGNORE_INDEX) -> np.ndarray:
    """A 256-entry RGB lookup table ``[256, 3]`` uint8: ``palette`` first, :data:`IGNORE_COLOUR`
    at ``ignore_index`` (unless the palette covers it), black elsewhere."""
    if len(palette) > 256:
        raise ValueError(f"a palette PNG holds at most 256 colours, got {len(palette)}")
    lut = np.zeros((256, 3), dtype=np.uint8)
    lut[: len(palette)] = np.asarray(palette, dtype=np.uint8).reshape(-1, 3)
    if ignore_index is not None and len(palette) <= ignore_index < 256:
        lut[ignore_index] = IGNORE_COLOUR
    return lut


def colorize(mask, palette: Sequence[Sequence[int]], ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """RGB uint8 array [H, W, 3] of a label mask: class i gets ``palette[i]``, the ignore label VOC's cream
    colour, labels outside the palette black."""
    import torch

    labels = np.asarray(torch.as_tensor(mask).cpu()).astype(np.int64)
    return palette_lut(palette, ignore_index)[np.clip(labels, 0, 255)]


def write_mask_png(mask: np.ndarray, path: Path | BinaryIO, palette: Sequence[Sequence[int]],
                   ignore_index: int | None = IGNORE_INDEX) -> None:
    """Write a uint8 label mask (to a path or an open binary file) as a lossless palette PNG: pixel value = class id,
    the colours those of :func:`palette_lut`."""
    from PIL import Image

    img = Image.fromarray(np.asarray(mask, np.uint8), mode="P")
    img.putpalette(palette_lut(palette, ignore_index).reshape(-1).tolist())
    img.save(path, format="PNG")
