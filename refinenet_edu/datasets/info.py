"""Describe a segmentation dataset: pixel counts per class, sample grids.

Works with any dataset whose items are ``(image, mask)`` and that has
``class_names`` and ``palette`` (all datasets of this package do).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

__all__ = ["class_pixel_histogram", "colorize", "show_samples"]

IGNORE_COLOUR = (224, 224, 192)  # as in PASCAL VOC


def class_pixel_histogram(dataset, num_classes: int | None = None, ignore_index: int | None = None) -> dict:
    """Pixel counts per class over a whole dataset.

    Returns a dict with ``class_names``, ``counts`` (int64 array, one entry
    per class), ``frequency`` (counts / labelled pixels), ``ignored`` (pixels
    with the ignore label) and ``total`` (all pixels). When the dataset offers
    ``read_mask`` (as :class:`~refinenet_edu.datasets.VOCSegmentationFolder`
    does) the stored masks are counted, without decoding images or applying
    transforms; otherwise the masks that ``dataset[i]`` returns.
    """
    num_classes = num_classes if num_classes is not None else dataset.num_classes
    ignore_index = ignore_index if ignore_index is not None else getattr(dataset, "ignore_index", 255)
    counts = np.zeros(num_classes, np.int64)
    ignored = total = 0
    read = getattr(dataset, "read_mask", None)
    for i in range(len(dataset)):
        mask = read(i) if read is not None else dataset[i][1]
        mask = torch.as_tensor(mask).reshape(-1).long()
        total += mask.numel()
        ignored += int((mask == ignore_index).sum())
        valid = mask[(mask >= 0) & (mask < num_classes)]
        counts += torch.bincount(valid, minlength=num_classes).numpy()
    labelled = max(int(counts.sum()), 1)
    return {
        "class_names": list(getattr(dataset, "class_names", [str(i) for i in range(num_classes)])),
        "counts": counts,
        "frequency": counts / labelled,
        "ignored": ignored,
        "total": total,
    }


def colorize(mask, palette: Sequence[Sequence[int]], ignore_index: int = 255) -> np.ndarray:
    """RGB uint8 array [H, W, 3] of a label mask: class i gets ``palette[i]``.

    The ignore label gets VOC's cream colour; labels outside the palette, black.
    """
    labels = np.asarray(torch.as_tensor(mask).cpu()).astype(np.int64)
    table = np.zeros((max(256, ignore_index + 1, len(palette)), 3), np.uint8)
    table[: len(palette)] = np.asarray(palette, np.uint8).reshape(-1, 3)
    table[ignore_index] = IGNORE_COLOUR
    return table[np.clip(labels, 0, len(table) - 1)]


def _to_uint8_image(image) -> np.ndarray:
    """[H, W, 3] uint8 from a uint8 tensor, or a normalised float tensor."""
    image = torch.as_tensor(image).detach().cpu()
    if image.is_floating_point():
        from refinenet_edu.datasets.transforms import denormalize

        image = (denormalize(image) * 255).round().to(torch.uint8)
    return image.permute(1, 2, 0).numpy()


def show_samples(
    dataset,
    n: int = 6,
    *,
    indices: Sequence[int] | None = None,
    alpha: float = 0.6,
    legend: bool = True,
    figsize_per_sample: float = 2.2,
):
    """A matplotlib figure: each sample's image above its mask overlaid in colour.

    Takes the first ``n`` samples unless ``indices`` is given. Float images
    are assumed normalised with ImageNet statistics and are denormalised.
    Returns the figure (call ``plt.close(fig)`` when done outside notebooks).
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    indices = list(indices) if indices is not None else list(range(min(n, len(dataset))))
    ignore_index = getattr(dataset, "ignore_index", 255)
    fig, axes = plt.subplots(
        2, len(indices), figsize=(figsize_per_sample * len(indices), figsize_per_sample * 2 + 0.6), squeeze=False
    )
    for col, index in enumerate(indices):
        image, mask = dataset[index]
        rgb = _to_uint8_image(image)
        colours = colorize(mask, dataset.palette, ignore_index)
        overlay = (rgb * (1 - alpha) + colours * alpha).round().astype(np.uint8)
        axes[0, col].imshow(rgb)
        axes[1, col].imshow(overlay)
        title = dataset.ids[index] if hasattr(dataset, "ids") else f"#{index}"
        axes[0, col].set_title(str(title), fontsize=8)
        for ax in axes[:, col]:
            ax.set_axis_off()
    if legend:
        handles = [Patch(color=np.asarray(c) / 255, label=name) for name, c in zip(dataset.class_names, dataset.palette)]
        fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 7), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.08 if legend else 0, 1, 1))
    return fig
