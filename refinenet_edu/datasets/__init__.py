"""Data: the embedded SynthScenes set, VOC-layout loaders, transforms, checks.

- :mod:`.synthetic` draws SynthScenes (shipped in ``data/synthscenes``).
- :mod:`.voc` reads any PASCAL VOC-layout folder, VOC 2012, SBD and both together.
- :mod:`.download` fetches VOC 2012 and SBD (mirrors, checksums, resume).
- :mod:`.transforms` joint image/mask augmentation (``transforms.v2``).
- :mod:`.palette` colours classes; :mod:`.loading` batches images of mixed sizes.
- :mod:`.validation` checks a folder; :mod:`.info` says what a dataset is (:class:`DatasetInfo`).
"""

from typing import TYPE_CHECKING

from refinenet_edu._exports import lazy_exports

if TYPE_CHECKING:  # what editors and type checkers read; at run time each name loads on first use
    from refinenet_edu.datasets.validation import check_voc_folder
    from refinenet_edu.datasets.info import DatasetInfo, class_pixel_histogram
    from refinenet_edu.datasets.palette import IGNORE_COLOUR, IGNORE_INDEX, colorize, voc_palette
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
    )

_EXPORTS = {
    "check_voc_folder": "refinenet_edu.datasets.validation",
    "DatasetInfo": "refinenet_edu.datasets.info",
    "class_pixel_histogram": "refinenet_edu.datasets.info",
    "IGNORE_COLOUR": "refinenet_edu.datasets.palette",
    "IGNORE_INDEX": "refinenet_edu.datasets.palette",
    "colorize": "refinenet_edu.datasets.palette",
    "voc_palette": "refinenet_edu.datasets.palette",
    "CLASS_DESCRIPTIONS": "refinenet_edu.datasets.synthetic",
    "CLASS_NAMES": "refinenet_edu.datasets.synthetic",
    "PALETTE": "refinenet_edu.datasets.synthetic",
    "generate_dataset": "refinenet_edu.datasets.synthetic",
    "render_sample": "refinenet_edu.datasets.synthetic",
    "IMAGENET_MEAN": "refinenet_edu.datasets.transforms",
    "IMAGENET_STD": "refinenet_edu.datasets.transforms",
    "denormalize": "refinenet_edu.datasets.transforms",
    "eval_transforms": "refinenet_edu.datasets.transforms",
    "train_transforms": "refinenet_edu.datasets.transforms",
    "DATASET_NAMES": "refinenet_edu.datasets.voc",
    "VOC_CLASSES": "refinenet_edu.datasets.voc",
    "VOC_PALETTE": "refinenet_edu.datasets.voc",
    "DatasetError": "refinenet_edu.datasets.voc",
    "MissingDataError": "refinenet_edu.datasets.voc",
    "SBDSegmentation": "refinenet_edu.datasets.voc",
    "VOCAugSegmentation": "refinenet_edu.datasets.voc",
    "VOCSegmentationFolder": "refinenet_edu.datasets.voc",
    "load_dataset": "refinenet_edu.datasets.voc",
    "sbd": "refinenet_edu.datasets.voc",
    "voc2012": "refinenet_edu.datasets.voc",
    "voc2012_aug": "refinenet_edu.datasets.voc",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
