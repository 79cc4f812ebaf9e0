"""Batches of images that may differ in size, for evaluation and prediction.

Real datasets have images of many sizes (PASCAL VOC: mostly about 500x375,
some far smaller). :func:`eval_loader` batches them with
:func:`collate_images`, which stacks a batch only when its images share one
size and otherwise hands them over as lists; :func:`image_groups` turns such
a batch into the groups a model can run. Nothing is padded, so a prediction
never depends on the batch size or on the other images of a batch.
"""

from __future__ import annotations

import torch

__all__ = ["collate_images", "eval_loader", "image_groups"]


def collate_images(batch):
    """Collate ``(image, mask, ...)`` samples that may differ in size.

    When every image of the batch has the same shape, the result is what
    PyTorch's default collate makes (stacked tensors). Otherwise it is one
    list per field (a list of images, a list of masks), which
    :func:`~refinenet_edu.engine.evaluation.evaluate` and
    :func:`~refinenet_edu.engine.inference.predict_dataset` run
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

