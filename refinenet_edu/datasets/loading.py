"""Batches of images that may differ in size (PASCAL VOC: mostly about 500x375, some far smaller), for
evaluation and prediction. Nothing is padded, so a prediction never depends on the batch size or on the
other images of a batch.
"""

from __future__ import annotations

import torch

__all__ = ["collate_images", "eval_loader", "image_groups"]


def collate_images(batch):
    """Collate ``(image, mask, ...)`` samples: stacked tensors (PyTorch's default collate) when every image
    has the same shape, else one list per field, which ``evaluate`` and ``predict_dataset`` run one image at a
    time. Images are never padded."""
    from torch.utils.data import default_collate

    if len({tuple(sample[0].shape) for sample in batch}) <= 1:
        return default_collate(batch)
    return [list(field) for field in zip(*batch)]


def eval_loader(dataset, batch_size: int = 1, **kwargs):
    """A ``DataLoader`` over ``dataset`` in order, for evaluation and prediction, with :func:`collate_images`
    (images of different sizes are fine at any ``batch_size``); ``kwargs`` go to the ``DataLoader``."""
    from torch.utils.data import DataLoader

    return DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate_images, **kwargs)


def image_groups(images, masks):
    """``(images [N,3,H,W], masks [N,H,W])`` pairs of one batch from :func:`collate_images`:
    the batch itself when it is stacked, else one pair per image (each with N = 1)."""
    if isinstance(images, torch.Tensor):
        return [(images, masks)]
    return [(image[None], mask[None]) for image, mask in zip(images, masks)]

