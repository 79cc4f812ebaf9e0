"""Data: the embedded SynthScenes set, VOC-layout loaders, transforms, checks.

- :mod:`.synthetic` draws SynthScenes (shipped in ``data/synthscenes``).
- :mod:`.voc` reads any PASCAL VOC-layout folder, VOC 2012, SBD and both together.
- :mod:`.download` fetches VOC 2012 and SBD (mirrors, checksums, resume).
- :mod:`.transforms` joint image/mask augmentation (``transforms.v2``).
- :mod:`.palette` colours classes; :mod:`.loading` batches images of mixed sizes.
- :mod:`.validation` checks a folder; :mod:`.info` says what a dataset is (:class:`DatasetInfo`).
"""

from typing import TYPE_CHECKING

from refinenet_edu._exports import exports_of, lazy_exports

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

_EXPORTS = exports_of(__file__)  # name -> module: the TYPE_CHECKING block above, read at run time
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
