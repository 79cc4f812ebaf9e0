"""A small generated dataset shaped like PASCAL VOC 2012 (and SBD), for tests, benchmarks and a stored sample.

Real PASCAL VOC breaks code written for a set of equal squares: its images have many sizes (mostly about
500x375, some far smaller, odd sides common), 21 classes, and every object is outlined by a band of the
ignore label 255. :func:`make_voc_shaped` writes a few such images in the layout of the real archives (no
``meta.json``, as there), so that the whole real-data path runs on a CPU in seconds without a network::

    ROOT/VOCdevkit/VOC2012/{JPEGImages/<id>.jpg, SegmentationClass/<id>.png, ImageSets/Segmentation/*.txt}
    ROOT/benchmark_RELEASE/dataset/{img/<id>.jpg, cls/<id>.mat, train.txt, val.txt}   (``sbd=N``)

Each object is an ellipse or a box in its class's colour on a noisy background; sizes cycle through
``sizes`` (VOC's common ones at a fifth of their side, odd ones, one smaller than a 64-pixel crop). Every
image, mask and list is a pure function of the arguments (a ``.mat`` file's header also holds the time it
was written).

The repository stores one such set, ``data/voc-shaped-sample`` (the arguments :data:`SAMPLE`), which
notebook 10's dry run reads; ``python -m tooling.voc_shaped`` writes it again, and
``tests/tools/test_voc_shaped.py`` checks that the stored files are what this generator writes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from refinenet_edu.datasets.palette import IGNORE_INDEX, voc_palette, write_mask_png
from refinenet_edu.datasets.synthetic import encode_jpeg
from refinenet_edu.datasets.voc import VOC_CLASSES

__all__ = ["SAMPLE", "SAMPLE_FOLDER", "VOC_SHAPED_SIZES", "main", "make_voc_shaped", "render_voc_shaped",
           "write_sbd_mask"]

#: (height, width) of the generated images, cycled: VOC's common 375x500, 500x375,
#: 333x500 and 500x334 at a fifth of their side, odd sizes, and 41x57, smaller than a 64 crop.
VOC_SHAPED_SIZES: tuple[tuple[int, int], ...] = ((75, 100), (100, 75), (67, 100), (41, 57), (100, 67), (77, 93))

NUM_CLASSES = len(VOC_CLASSES)
JPEG_QUALITY = 90

#: the arguments of the stored sample: 4 VOC train and 2 VOC val images, and an SBD folder of 2 more
#: (plus the first VOC train and val image, as the real SBD shares images with VOC)
SAMPLE = {"train": 4, "val": 2, "sbd": 2, "seed": 0}
#: where the repository stores it
SAMPLE_FOLDER = Path(__file__).resolve().parents[1] / "data" / "voc-shaped-sample"


def _class_colour(label: int) -> np.ndarray:
    """A fixed RGB colour per class (the VOC palette, brightened so class 0 is not black)."""
    return np.asarray(voc_palette(NUM_CLASSES)[label], dtype=np.float64) * 0.7 + 40


def render_voc_shaped(seed: int, index: int, size: tuple[int, int], border: int = 2):
    """One image (uint8 [H, W, 3]) and its mask (uint8 [H, W]): 1-3 objects of random classes 1..20, each in
    a ``border``-pixel band of 255, as PASCAL VOC outlines its objects (5 px there)."""
    rng = np.random.default_rng([seed, index])
    h, w = size
    yy, xx = np.mgrid[:h, :w]
    image = _class_colour(0) + rng.normal(0, 18, (h, w, 3))
    mask = np.zeros((h, w), np.uint8)
    for _ in range(int(rng.integers(1, 4))):
        label = int(rng.integers(1, NUM_CLASSES))
        cy, cx = rng.uniform(0.2, 0.8) * h, rng.uniform(0.2, 0.8) * w
        ry, rx = rng.uniform(0.12, 0.35) * h, rng.uniform(0.12, 0.35) * w
        if rng.random() < 0.5:  # ellipse
            d = np.hypot((yy - cy) / ry, (xx - cx) / rx)
            inside, band = d <= 1.0, d <= 1.0 + border / min(ry, rx)
        else:  # box
            dy, dx = np.abs(yy - cy), np.abs(xx - cx)
            inside = (dy <= ry) & (dx <= rx)
            band = (dy <= ry + border) & (dx <= rx + border)
        mask[band] = IGNORE_INDEX
        mask[inside] = label
        image[inside] = _class_colour(label) + rng.normal(0, 12, (int(inside.sum()), 3))
    return image.clip(0, 255).astype(np.uint8), mask


def write_sbd_mask(mask: np.ndarray, path: Path) -> None:
    """Write a class mask as SBD does: a MATLAB file with the struct ``GTcls.Segmentation``, without 255
    borders (written as background: SBD's annotations are filled boundaries), compressed as MATLAB's own
    ``save`` writes by default. Needs scipy."""
    from scipy.io import savemat

    seg = np.where(mask == IGNORE_INDEX, 0, mask).astype(np.uint8)
    categories = np.unique(seg[seg > 0]).astype(np.uint8)
    savemat(path, {"GTcls": {"Segmentation": seg, "CategoriesPresent": categories}}, do_compression=True)


def make_voc_shaped(root: str | Path, *, train: int = 6, val: int = 4, sbd: int = 0, seed: int = 0,
                    sizes: tuple[tuple[int, int], ...] = VOC_SHAPED_SIZES) -> Path:
    """Write a VOC 2012-shaped set under ``root`` and return ``root``: ``train`` and ``val`` images (ids
    ``2007_000000`` ...; ``trainval`` lists both) and, with ``sbd``, an SBD folder with that many extra images
    plus the first VOC train and val images (the real SBD shares images with VOC, and the "augmented" training
    set must leave VOC val out). Files of the same names are overwritten; nothing else is touched.
    """
    root = Path(root)
    if train < 1 or val < 1:
        raise ValueError(f"train and val must be >= 1, got {train}, {val}")
    if not sizes or any(min(s) < 1 for s in sizes):
        raise ValueError(f"sizes must be a non-empty list of positive (height, width), got {sizes}")
    voc = root / "VOCdevkit" / "VOC2012"
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (voc / sub).mkdir(parents=True, exist_ok=True)
    palette = voc_palette(NUM_CLASSES)
    splits = {"train": [f"2007_{i:06d}" for i in range(train)],
              "val": [f"2007_{i:06d}" for i in range(train, train + val)]}
    samples = {}
    for i, sample_id in enumerate(splits["train"] + splits["val"]):
        image, mask = render_voc_shaped(seed, i, sizes[i % len(sizes)])
        samples[sample_id] = (image, mask)
        (voc / "JPEGImages" / f"{sample_id}.jpg").write_bytes(encode_jpeg(image, JPEG_QUALITY))
        write_mask_png(mask, voc / "SegmentationClass" / f"{sample_id}.png", palette)
    for split, ids in (*splits.items(), ("trainval", splits["train"] + splits["val"])):
        (voc / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(ids) + "\n")
    if sbd:
        folder = root / "benchmark_RELEASE" / "dataset"
        (folder / "img").mkdir(parents=True, exist_ok=True)
        (folder / "cls").mkdir(parents=True, exist_ok=True)
        extra = [f"2008_{i:06d}" for i in range(sbd)]
        for j, sample_id in enumerate(extra):
            samples[sample_id] = render_voc_shaped(seed + 1, j, sizes[(j + 1) % len(sizes)])
        shared = [splits["train"][0], splits["val"][0]]
        ids = shared + extra
        for sample_id in ids:
            image, mask = samples[sample_id]
            (folder / "img" / f"{sample_id}.jpg").write_bytes(encode_jpeg(image, JPEG_QUALITY))
            write_sbd_mask(mask, folder / "cls" / f"{sample_id}.mat")
        half = max(1, len(ids) // 2)
        (folder / "train.txt").write_text("\n".join(ids[:half]) + "\n")
        (folder / "val.txt").write_text("\n".join(ids[half:]) + "\n")
    return root


def main(argv: list[str] | None = None) -> int:
    """``python -m tooling.voc_shaped [FOLDER]``: write the stored sample (:data:`SAMPLE`) to ``FOLDER``, by default
    :data:`SAMPLE_FOLDER`. Its two dataset folders are replaced whole, but only when every file in them is one the
    sample has (a real VOC or SBD download there is refused, never deleted); other files (its README) stay."""
    import shutil
    import sys
    import tempfile

    argv = sys.argv[1:] if argv is None else list(argv)
    if len(argv) > 1:
        print("usage: python -m tooling.voc_shaped [FOLDER]", file=sys.stderr)
        return 2
    folder = Path(argv[0]) if argv else SAMPLE_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".voc-shaped-") as tmp:
        make_voc_shaped(tmp, **SAMPLE)
        for name in ("VOCdevkit", "benchmark_RELEASE"):
            ours = {p.relative_to(tmp) for p in Path(tmp, name).rglob("*")}
            foreign = sorted(p.relative_to(folder) for p in (folder / name).rglob("*") if p.relative_to(folder) not in ours)
            if foreign:
                print(f"python -m tooling.voc_shaped: error: {folder / foreign[0]}: not a file of the sample; "
                      f"{folder / name} was left as it is (move it away, or delete what is not the sample's)",
                      file=sys.stderr)
                return 2
        for name in ("VOCdevkit", "benchmark_RELEASE"):
            shutil.rmtree(folder / name, ignore_errors=True)
            Path(tmp, name).rename(folder / name)
    print(f"wrote {folder}: " + ", ".join(f"{k}={v}" for k, v in SAMPLE.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
