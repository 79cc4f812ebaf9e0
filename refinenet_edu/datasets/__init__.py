"""Data: the embedded SynthScenes set, VOC-layout loaders, transforms, checks.

- :mod:`.synthetic` draws SynthScenes (shipped in ``data/synthscenes``).
- :mod:`.voc` reads any PASCAL VOC-layout folder, VOC 2012, SBD and both together.
- :mod:`.download` fetches VOC 2012 and SBD (mirrors, checksums, resume).
- :mod:`.voc_shaped` writes a small VOC-shaped set for tests and dry runs.
- :mod:`.transforms` joint image/mask augmentation (``transforms.v2``).
- :mod:`.checks` validates a folder; :mod:`.describe` summarises one.
"""

from refinenet_edu.datasets.validation import DataProblem, check_voc_folder
from refinenet_edu.datasets.info import class_pixel_histogram, colorize, show_samples
from refinenet_edu.datasets.synthetic import (
    CLASS_DESCRIPTIONS,
    CLASS_NAMES,
    PALETTE,
    generate_dataset,
    render_sample,
)
from refinenet_edu.datasets.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    denormalize,
    eval_transforms,
    train_transforms,
)
from refinenet_edu.datasets.voc import (
    DATASET_NAMES,
    VOC_CLASSES,
    VOC_PALETTE,
    DatasetError,
    MissingDataError,
    SBDSegmentation,
    VOCAugSegmentation,
    VOCSegmentationFolder,
    load_dataset,
    sbd,
    voc2012,
    voc2012_aug,
    voc_palette,
)

__all__ = [
    "CLASS_DESCRIPTIONS",
    "CLASS_NAMES",
    "DATASET_NAMES",
    "DataProblem",
    "DatasetError",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "MissingDataError",
    "PALETTE",
    "SBDSegmentation",
    "VOCAugSegmentation",
    "VOCSegmentationFolder",
    "VOC_CLASSES",
    "VOC_PALETTE",
    "check_voc_folder",
    "class_pixel_histogram",
    "colorize",
    "denormalize",
    "eval_transforms",
    "generate_dataset",
    "load_dataset",
    "render_sample",
    "sbd",
    "show_samples",
    "train_transforms",
    "voc2012",
    "voc2012_aug",
    "voc_palette",
]
