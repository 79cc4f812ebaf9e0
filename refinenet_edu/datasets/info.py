"""What a segmentation dataset is, besides its images: :class:`DatasetInfo`, ids, pixel counts.

:meth:`DatasetInfo.of` reads a dataset's class names, palette and ignore label from its attributes, also
through ``torch.utils.data.Subset`` wrappers (and any wrapper with an ``info`` attribute). A checkpoint
records ``DatasetInfo.as_dict()``, so a model knows the classes it predicts and the colours to draw them in.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from refinenet_edu.datasets.palette import IGNORE_INDEX

__all__ = ["DatasetInfo", "base_dataset", "sample_ids", "class_pixel_histogram", "fingerprint",
           "require_labelled_pixels"]


def base_dataset(ds) -> tuple[Any, list[int] | None]:
    """The dataset under ``Subset`` wrappers and the index map from positions in ``ds`` to it (or None)."""
    from torch.utils.data import Subset

    indices = None
    while isinstance(ds, Subset):
        idx = list(ds.indices)
        indices = idx if indices is None else [idx[i] for i in indices]
        ds = ds.dataset
    return ds, indices


def sample_ids(ds) -> list | None:
    """The id of every sample of ``ds`` in order (through ``Subset`` wrappers), or None if it has none."""
    base, indices = base_dataset(ds)
    ids = getattr(base, "ids", None)
    if ids is None:
        return None
    ids = list(ids)
    return ids if indices is None else [ids[i] for i in indices]


def fingerprint(ds) -> str | None:
    """A short hash of which samples ``ds`` holds: their ids and the sizes of their files (``images``/``masks``
    lists of paths), None without ids. Cheap (no file is read): a checkpoint records it, and a resumed run
    refuses other data."""
    base, indices = base_dataset(ds)
    ids = sample_ids(ds)
    if ids is None:
        return None
    positions = indices if indices is not None else range(len(ids))
    rows = []
    for position, sample_id in zip(positions, ids):
        row = [str(sample_id)]
        for files in (getattr(base, "images", None), getattr(base, "masks", None)):
            try:
                row.append(os.path.getsize(files[position]))
            except (TypeError, IndexError, OSError):
                pass
        rows.append(row)
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class DatasetInfo:
    """Name, classes, palette and ignore label of a dataset."""

    name: str = ""
    class_names: tuple[str, ...] = ()
    palette: tuple[tuple[int, int, int], ...] = ()
    num_classes: int = 0
    ignore_index: int = IGNORE_INDEX

    @classmethod
    def of(cls, ds) -> "DatasetInfo":
        """The information of ``ds`` (a dataset, a ``Subset`` of one, or a wrapper with ``info``)."""
        base, _ = base_dataset(ds)
        info = getattr(base, "info", None)
        if isinstance(info, DatasetInfo):
            return info
        found = {key: getattr(base, key) for key in ("class_names", "palette", "num_classes", "ignore_index")
                 if hasattr(base, key)}
        return cls.from_dict({**found, "name": getattr(base, "name", "") or getattr(base, "root", "")})

    @classmethod
    def from_dict(cls, data: dict) -> "DatasetInfo":
        """The inverse of :meth:`as_dict` (a checkpoint's ``dataset`` entry); missing keys get defaults."""
        return cls(
            name=str(data.get("name", "")),
            class_names=tuple(data.get("class_names", ())),
            palette=tuple(tuple(int(c) for c in rgb) for rgb in data.get("palette", ())),
            num_classes=int(data.get("num_classes", 0) or len(data.get("class_names", ()))),
            ignore_index=int(data.get("ignore_index", IGNORE_INDEX)),
        )

    def as_dict(self) -> dict:
        """JSON-ready, as checkpoints and results files record it."""
        return {
            "name": self.name,
            "class_names": list(self.class_names),
            "palette": [list(c) for c in self.palette],
            "num_classes": self.num_classes,
            "ignore_index": self.ignore_index,
        }


def class_pixel_histogram(dataset, num_classes: int | None = None, ignore_index: int | None = None) -> dict:
    """Pixel counts per class over a whole dataset: a dict with ``class_names``, ``counts`` (int64, one per
    class), ``frequency`` (counts / labelled pixels), ``ignored`` (pixels with the ignore label) and ``total``.
    A dataset with ``read_mask`` (or a ``Subset`` of one) has its stored masks counted, without decoding images
    or applying transforms; any other, the masks that ``dataset[i]`` returns.
    """
    num_classes = num_classes if num_classes is not None else dataset.num_classes
    ignore_index = ignore_index if ignore_index is not None else getattr(dataset, "ignore_index", 255)
    counts = np.zeros(num_classes, np.int64)
    ignored = total = 0
    read = _mask_reader(dataset)
    for i in range(len(dataset)):
        mask = torch.as_tensor(read(i)).reshape(-1).long()
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


def _mask_reader(dataset):
    """``read(i)``: the stored mask of sample ``i`` (``read_mask``, also through a ``Subset``), else ``dataset[i][1]``
    with torch's random state put back afterwards (a random augmentation must not shift a seeded run)."""
    base, indices = base_dataset(dataset)
    if hasattr(base, "read_mask"):
        return base.read_mask if indices is None else lambda i: base.read_mask(indices[i])

    def read_sample_mask(i):
        with torch.random.fork_rng(devices=[]):
            return dataset[i][1]

    return read_sample_mask


def require_labelled_pixels(dataset, what: str | None = None) -> None:
    """Raise ``ValueError`` naming ``dataset`` (``what``, default: its folder) unless a mask has a pixel that
    is not the ignore label (all-"ignore" masks give a loss of 0 or nan); stops at the first labelled pixel."""
    info = DatasetInfo.of(dataset)
    read = _mask_reader(dataset)
    for i in range(len(dataset)):
        if bool((torch.as_tensor(read(i)) != info.ignore_index).any()):
            return
    if what is None:
        where = getattr(base_dataset(dataset)[0], "root", None) or info.name  # the folder, where there is one
        what = f"the training set {where}" if where else "the training set"
    raise ValueError(f"{what} ({len(dataset)} images): no labelled pixel, every mask pixel is the ignore label "
                     f"{info.ignore_index}: there is nothing to learn from; check its masks (refinenet-edu data --check)")
