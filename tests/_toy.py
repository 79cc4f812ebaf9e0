"""Tiny in-memory datasets for fast tests."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset


class Squares(Dataset):
    """Bright squares (class 1) and dark bars (class 2) on grey; a border of ignore."""

    num_classes = 3
    class_names = ["grey", "square", "bar"]
    palette = [[128, 128, 128], [255, 255, 255], [0, 0, 0]]
    ignore_index = 255

    def __init__(self, n: int = 4, size: int = 48, seed: int = 0, poison_after: int | None = None):
        g = torch.Generator().manual_seed(seed)
        self.images, self.masks = [], []
        for _ in range(n):
            mask = torch.zeros(size, size, dtype=torch.long)
            y, x = torch.randint(4, size - 20, (2,), generator=g).tolist()
            mask[y : y + 14, x : x + 14] = 1
            c = int(torch.randint(2, size - 6, (1,), generator=g))
            mask[:, c : c + 4] = 2
            image = torch.stack([(mask == 1).float() - (mask == 2).float()] * 3) + 0.1 * torch.randn(3, size, size, generator=g)
            mask[:2] = 255
            self.images.append(image)
            self.masks.append(mask)
        self.ids = [f"sq{i}" for i in range(n)]
        self.poison_after = poison_after
        self.reads = 0

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        self.reads += 1
        image = self.images[i]
        if self.poison_after is not None and self.reads > self.poison_after:
            image = image * float("nan")
        return image, self.masks[i]

    def read_mask(self, i):
        """The stored mask, without counting a read (the library reads masks to weigh classes and check labels)."""
        return self.masks[i]
