"""Datasets in PASCAL VOC layout: the embedded set, VOC 2012, SBD, VOC 2012 + SBD, your own.

A VOC-layout folder holds::

    JPEGImages/<id>.jpg          (or .jpeg / .png)
    SegmentationClass/<id>.png   palette PNG or single-channel index PNG
    ImageSets/Segmentation/<split>.txt   one id per line
    meta.json                    optional: class_names, palette, ignore_index

Label 255 means "ignore" (PASCAL VOC marks object outlines with it). :class:`VOCSegmentationFolder` reads any such
folder and returns ``(tv_tensors.Image uint8 [3,H,W], tv_tensors.Mask int64 [H,W])`` pairs. Bad files raise
:class:`DatasetError` (a ``ValueError``) whose message starts with the offending file's path; missing files raise
:class:`MissingDataError`, which is also a ``FileNotFoundError``.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Callable

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import tv_tensors

from refinenet_edu.datasets.palette import voc_palette
from refinenet_edu.files import not_a_file
from refinenet_edu.resources import downloads_root, resource

__all__ = ["DATASET_NAMES", "DatasetError", "MissingDataError", "SBDSegmentation", "VOCAugSegmentation",
           "VOCSegmentationFolder", "VOC_CLASSES", "VOC_PALETTE", "load_dataset", "load_mask", "sbd",
           "voc2012", "voc2012_aug"]

VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car",
    "cat", "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person",
    "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
#: names :func:`load_dataset` understands (anything else must be a folder)
DATASET_NAMES = ("synthscenes", "voc2012", "sbd", "voc2012-aug")


class DatasetError(ValueError):
    """A file of a dataset is unusable; ``path`` names it, ``reason`` says why."""

    def __init__(self, path: str | Path, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class MissingDataError(DatasetError, FileNotFoundError):
    """A file or folder a dataset needs does not exist."""


#: colours of the 21 PASCAL VOC classes
VOC_PALETTE = tuple(voc_palette(len(VOC_CLASSES)))


# Reading and validating single files (shared with validation.check_voc_folder)


def _leaves_folder(sample_id: str) -> bool:
    """Whether an id names a path outside ``JPEGImages/`` (``..``, an absolute path, a drive)."""
    posix = PurePosixPath(sample_id.replace("\\", "/"))
    return posix.is_absolute() or ".." in posix.parts or bool(PureWindowsPath(sample_id).drive)


def split_entries(root: Path, split: str, problems: list | None = None) -> list[tuple[int, str]]:
    """``(line number, id)`` for each id listed in ``ImageSets/Segmentation/<split>.txt`` (first word per line).
    An id that leaves the folder (``../x``, ``/abs/x``) is a :class:`DatasetError` naming its line, or, with
    ``problems`` (a list), appended there and skipped."""
    split_file = Path(root) / "ImageSets" / "Segmentation" / f"{split}.txt"
    if not split_file.is_file():
        folder = split_file.parent
        found = sorted(p.stem for p in folder.glob("*.txt") if p.is_file()) if folder.is_dir() else []
        raise MissingDataError(split_file, f"split file for {split!r}: " + not_a_file(
            split_file, missing=f"not found (splits present: {found or 'none'})"))
    try:
        lines = split_file.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise DatasetError(split_file, f"cannot read split file ({err})") from None
    entries = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        sample_id = line.split()[0]
        if _leaves_folder(sample_id):
            err = DatasetError(split_file, f"line {number}: id {sample_id!r} points outside the dataset folder "
                                           "(ids name files inside JPEGImages/ and SegmentationClass/: no '..', "
                                           "no absolute path)")
            if problems is None:
                raise err
            problems.append(err)
            continue
        entries.append((number, sample_id))
    if not entries and not (problems and any(e.path == split_file for e in problems)):
        raise DatasetError(split_file, f"split {split!r} is empty (no ids listed)")
    return entries


def sample_files(root: Path, split: str, line: int, sample_id: str) -> tuple[Path, Path, list[DatasetError]]:
    """The image (``JPEGImages/<id>`` with the first extension that exists) and mask of ``sample_id``, and what
    is wrong with them: missing, or resolving (through a symlink) outside ``root``, which is never read."""
    images = [root / "JPEGImages" / f"{sample_id}{ext}" for ext in IMAGE_EXTENSIONS]
    image = next((path for path in images if path.is_file()), None)
    mask = root / "SegmentationClass" / f"{sample_id}.png"
    problems = []
    if image is None:
        problems.append(MissingDataError(images[0], f"image for id {sample_id!r} of split {split!r} not found "
                                                    f"(tried {', '.join(IMAGE_EXTENSIONS)})"))
    if not mask.is_file():
        problems.append(MissingDataError(mask, "mask for " + (f"image {image.name}" if image else f"id {sample_id!r}")
                                         + " not found"))
    for path in (image, mask) if not problems else ():
        target = Path(os.path.realpath(path))
        if not target.is_relative_to(Path(os.path.realpath(root))):
            problems.append(DatasetError(path, f"is a symlink to {target}, outside the dataset folder {root} (listed "
                                         f"on line {line} of ImageSets/Segmentation/{split}.txt); copy the file into "
                                         "the folder"))
    return image, mask, problems


def _open_fully(path: Path) -> Image.Image:
    """Open and decode a whole image file, so truncation shows up here."""
    try:
        with Image.open(path) as img:
            img.load()  # decodes the pixels; they stay valid after the file closes
            return img
    except FileNotFoundError:
        raise MissingDataError(path, "file not found") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise DatasetError(path, f"unreadable or truncated image file ({err})") from None


def load_mask(path: str | Path, num_classes: int, ignore_index: int = 255) -> np.ndarray:
    """Label array [H, W] (uint8) of a palette or single-channel index PNG; a :class:`DatasetError` for colour
    masks and for labels that are neither a class (``0 .. num_classes-1``) nor ``ignore_index``."""
    img = _open_fully(path)
    if img.mode not in ("P", "L", "I", "I;16", "I;16B", "I;16L"):
        raise DatasetError(path, f"mask has mode {img.mode!r}: save masks as palette PNGs or single-channel "
                                 "index PNGs (pixel value = class id), not colour images")
    labels = np.asarray(img).astype(np.int64)
    values = np.unique(labels)
    bad = values[((values < 0) | (values >= num_classes)) & (values != ignore_index)]  # 32-bit masks can be < 0
    if bad.size:
        raise DatasetError(path, f"label values {bad.tolist()[:10]} are neither a class (0..{num_classes - 1}) "
                                 f"nor {ignore_index} (ignore)")
    return labels.astype(np.uint8, copy=False)  # every value is now < 256


def load_pair(image_path: Path, mask_path: Path, num_classes: int, ignore_index: int = 255):
    """Image [H,W,3] uint8 (RGB, from any mode Pillow can convert) and mask [H,W], checked to have the same size."""
    image = np.array(_open_fully(image_path).convert("RGB"))  # a writable copy
    mask = load_mask(mask_path, num_classes, ignore_index)
    if mask.shape != image.shape[:2]:
        raise DatasetError(mask_path, f"mask size {mask.shape[1]}x{mask.shape[0]} differs from its image "
                                      f"{image_path.name} ({image.shape[1]}x{image.shape[0]}, width x height)")
    return image, mask


def read_meta(root: Path) -> dict:
    """Contents of ``meta.json`` (empty dict when there is none)."""
    path = Path(root) / "meta.json"
    if not path.is_file():
        return {}
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise DatasetError(path, f"cannot parse meta.json ({err})") from None
    if not isinstance(meta, dict):
        raise DatasetError(path, "meta.json must hold a JSON object")
    return meta


def resolve_classes(root: Path, num_classes=None, class_names=None, palette=None):
    """Class names, palette and ignore index: arguments, then meta.json, then VOC's."""
    meta = read_meta(root)
    if class_names is not None:
        names = tuple(class_names)
    elif "class_names" in meta:
        names = tuple(meta["class_names"])
    elif num_classes is not None and num_classes != len(VOC_CLASSES):
        names = tuple(f"class_{i}" for i in range(num_classes))
    else:
        names = VOC_CLASSES
    if num_classes is not None and num_classes != len(names):
        raise ValueError(f"num_classes={num_classes} but {len(names)} class names: {names}")
    if palette is None:
        palette = meta.get("palette") or voc_palette(len(names))
    palette = [tuple(int(c) for c in rgb) for rgb in palette]
    if len(palette) < len(names):
        raise ValueError(f"palette has {len(palette)} colours for {len(names)} classes")
    return names, palette[: len(names)], int(meta.get("ignore_index", 255))


def _to_tv(image: np.ndarray, mask: np.ndarray) -> tuple[tv_tensors.Image, tv_tensors.Mask]:
    img = tv_tensors.Image(torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).contiguous())
    return img, tv_tensors.Mask(torch.from_numpy(mask.astype(np.int64)))


class VOCSegmentationFolder(Dataset):
    """Any folder in PASCAL VOC layout, as (image, mask) pairs.

    ``root`` holds ``JPEGImages``, ``SegmentationClass`` and ``ImageSets/Segmentation`` (for VOC 2012:
    ``VOCdevkit/VOC2012``); ``split`` names a file in ``ImageSets/Segmentation``; ``transforms(image, mask)``
    returns the pair transformed (e.g. :func:`~refinenet_edu.datasets.transforms.train_transforms`).
    ``num_classes``, ``class_names``, ``palette`` override ``meta.json``; without either, the 21 PASCAL VOC
    classes and colours are assumed. ``name`` comes from ``meta.json``, else the folder's name.

    A missing split file, an empty split or an image without its mask raise at construction; a bad size, bad
    label or unreadable file when the sample is read. Every error message starts with the file's path.
    """

    def __init__(self, root: str | Path, split: str = "train", transforms: Callable | None = None, *,
                 num_classes: int | None = None, class_names: list[str] | None = None, palette: list | None = None):
        self.root = Path(root)
        self.split = split
        self.transforms = transforms
        if not self.root.is_dir():
            raise MissingDataError(self.root, "dataset folder not found")
        self.class_names, self.palette, self.ignore_index = resolve_classes(self.root, num_classes, class_names,
                                                                            palette)
        self.name = str(read_meta(self.root).get("name") or self.root.name)
        self.num_classes = len(self.class_names)
        entries = split_entries(self.root, split)
        self.ids = [sample_id for _, sample_id in entries]
        self.images, self.masks = [], []
        for line, sample_id in entries:
            image, mask, problems = sample_files(self.root, split, line, sample_id)
            if problems:
                raise problems[0]
            self.images.append(image)
            self.masks.append(mask)

    def __len__(self) -> int:
        return len(self.ids)

    def read_mask(self, index: int) -> tv_tensors.Mask:
        """The untransformed mask of sample ``index`` (no image decoding)."""
        mask = load_mask(self.masks[index], self.num_classes, self.ignore_index)
        return tv_tensors.Mask(torch.from_numpy(mask.astype(np.int64)))

    def __getitem__(self, index: int):
        image, mask = load_pair(self.images[index], self.masks[index], self.num_classes, self.ignore_index)
        image, mask = _to_tv(image, mask)
        if self.transforms is not None:
            image, mask = self.transforms(image, mask)
        return image, mask

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(root={str(self.root)!r}, split={self.split!r}, "
                f"{len(self)} images, {self.num_classes} classes)")


def voc2012(root: str | Path, split: str = "train", download: bool = False,
            transforms: Callable | None = None) -> VOCSegmentationFolder:
    """PASCAL VOC 2012 segmentation (splits ``train``, ``val``, ``trainval``) from ``root``, the folder holding
    ``VOCdevkit/VOC2012`` (or that folder itself). ``download=True`` (off by default) first fetches the 2 GB
    archive when it is not there (:func:`refinenet_edu.datasets.download.download_dataset`)."""
    root = Path(root).expanduser()
    voc_dir = root if (root / "ImageSets" / "Segmentation").is_dir() else root / "VOCdevkit" / "VOC2012"
    if not (voc_dir / "ImageSets" / "Segmentation" / f"{split}.txt").is_file():
        if not download:
            raise MissingDataError(voc_dir, f"PASCAL VOC 2012 ({split!r} split) not found. Download it (about 2 GB) "
                                   f"with `refinenet-edu data --download voc2012 --root {root}` (or voc2012(..., "
                                   "download=True)), or extract VOCtrainval_11-May-2012.tar so that VOCdevkit/VOC2012 "
                                   "lies in that folder")
        from refinenet_edu.datasets.download import download_dataset

        voc_dir = download_dataset("voc2012", root)
    return VOCSegmentationFolder(voc_dir, split, transforms, class_names=VOC_CLASSES, palette=VOC_PALETTE)


class SBDSegmentation(Dataset):
    """The Semantic Boundaries Dataset (Hariharan et al. 2011) as class masks: ``torchvision.datasets.SBDataset``
    returning the same pairs as :class:`VOCSegmentationFolder`. Its 11,355 images carry the 21 VOC classes
    (``train`` 8,498, ``val`` 2,857) and share images with VOC 2012. ``root``: the folder with ``img/`` and
    ``cls/`` (or a subfolder ``sbd/``), or one holding ``benchmark_RELEASE/dataset``; ``download=True`` fetches
    ``benchmark.tgz`` into it first. Reading the ``.mat`` masks needs scipy.
    """

    name = "sbd"
    class_names, palette, num_classes, ignore_index = VOC_CLASSES, list(VOC_PALETTE), len(VOC_CLASSES), 255

    def __init__(self, root: str | Path, split: str = "train", download: bool = False, transforms=None):
        from torchvision.datasets import SBDataset

        self.split, self.transforms = split, transforms
        if importlib.util.find_spec("scipy") is None:
            raise ModuleNotFoundError("SBD masks are MATLAB .mat files; reading them needs scipy (pip install scipy)")
        given = Path(root).expanduser()
        self.root = next((f for f in (given, given / "sbd") if (f / "cls").is_dir()),
                         given / "benchmark_RELEASE" / "dataset")
        needed = ("img", "cls", f"{split}.txt")
        if download and not all((self.root / p).exists() for p in needed):
            from refinenet_edu.datasets.download import download_dataset

            self.root = download_dataset("sbd", given)
        missing = [p for p in needed if not (self.root / p).exists()]
        if missing:
            raise MissingDataError(self.root / missing[0], f"SBD ({split!r} split) not found. Download it (about "
                                   f"1.4 GB) with `refinenet-edu data --download sbd --root {given}` (or sbd(..., "
                                   "download=True)), or extract benchmark.tgz there (benchmark_RELEASE/dataset holds "
                                   "img/ and cls/)")
        self._sbd = SBDataset(str(self.root), image_set=split, mode="segmentation", download=False)
        self.ids = [Path(p).stem for p in self._sbd.images]

    def __len__(self) -> int:
        return len(self._sbd)

    def __getitem__(self, index: int):
        image, target = self._sbd[index]
        image, mask = _to_tv(np.array(image.convert("RGB")), np.array(target))
        return (image, mask) if self.transforms is None else self.transforms(image, mask)


#: the Semantic Boundaries Dataset, ``sbd(root, split, download=False, transforms=None)``
sbd = SBDSegmentation


class VOCAugSegmentation(Dataset):
    """PASCAL VOC 2012 + SBD, the "augmented" training set (10,582 images with the real data): the VOC 2012
    ``train`` images (VOC's masks, with 255 borders), then every SBD image (``train`` and ``val``) that is not a
    VOC 2012 ``train`` or ``val`` image (SBD's masks, without 255 borders). VOC 2012 ``val`` stays out: it is
    the validation set. ``root`` holds ``VOCdevkit/VOC2012`` and SBD.
    """

    name, split = "voc2012-aug", "train"
    class_names, palette, num_classes, ignore_index = VOC_CLASSES, list(VOC_PALETTE), len(VOC_CLASSES), 255

    def __init__(self, root: str | Path, transforms: Callable | None = None, *, download: bool = False):
        root = Path(root).expanduser()
        self.voc = voc2012(root, "train", download=download)
        voc_val = {sample_id for _, sample_id in split_entries(self.voc.root, "val")}
        sbd_sets = [SBDSegmentation(root, split, download=download) for split in ("train", "val")]
        seen = set(self.voc.ids) | voc_val
        self._items: list[tuple[Dataset, int]] = [(self.voc, i) for i in range(len(self.voc))]
        for ds in sbd_sets:
            for i, sample_id in enumerate(ds.ids):
                if sample_id not in seen:
                    seen.add(sample_id)
                    self._items.append((ds, i))
        self.ids = [ds.ids[i] for ds, i in self._items]
        self.transforms, self.root = transforms, self.voc.root

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index: int):
        ds, i = self._items[index]
        image, mask = ds[i]  # both readers are built without transforms
        return (image, mask) if self.transforms is None else self.transforms(image, mask)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(root={str(self.root)!r}, {len(self)} images: VOC 2012 train + SBD - VOC 2012 val)"


def voc2012_aug(root: str | Path, split: str = "train", download: bool = False, transforms: Callable | None = None):
    """``train``: :class:`VOCAugSegmentation` (VOC 2012 train + SBD, without VOC 2012 val); ``val``: VOC 2012 val."""
    if split == "train":
        return VOCAugSegmentation(root, transforms, download=download)
    if split == "val":
        return voc2012(root, "val", download=download, transforms=transforms)
    raise ValueError(f"voc2012-aug has the splits 'train' (VOC 2012 train + SBD) and 'val' (VOC 2012 val), not {split!r}")


def load_dataset(name_or_path: str | Path, split: str = "train", transforms: Callable | None = None, *,
                 root: str | Path | None = None, download: bool = False) -> Dataset:
    """A dataset by name (``"synthscenes"``, ``"voc2012"``, ``"sbd"``, ``"voc2012-aug"``) or folder path.

    ``"synthscenes"`` is the embedded set (or ``root``). The others look in ``root`` (default:
    :func:`refinenet_edu.resources.downloads_root`), where ``refinenet-edu data --download NAME --root ROOT``
    puts them. Anything else must be a folder in VOC layout.
    """
    name = str(name_or_path)
    if root is not None:
        root = Path(root).expanduser()
    if name == "synthscenes":
        folder = root if root is not None else resource("data", "synthscenes")
        if not folder.is_dir():
            raise MissingDataError(folder, "the embedded SynthScenes set is not there; generate it with "
                                           "`refinenet-edu data --out DIR` and pass DIR as the dataset path")
        return VOCSegmentationFolder(folder, split, transforms)
    readers = {"voc2012": voc2012, "sbd": sbd, "voc2012-aug": voc2012_aug}
    if name in readers:
        return readers[name](root if root is not None else downloads_root(), split, download, transforms)
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return VOCSegmentationFolder(path, split, transforms)
    if isinstance(name_or_path, Path) or any(sep in name for sep in ("/", "\\")) or name.startswith("."):
        raise MissingDataError(path, "dataset folder not found")
    raise ValueError(f"unknown dataset {name!r}: use one of {', '.join(DATASET_NAMES)}, or a folder in VOC layout")
