"""Validate a VOC-layout folder and report every problem at once (``refinenet-edu data --check DIR``).

:func:`check_voc_folder` uses the readers of :class:`~refinenet_edu.datasets.voc.VOCSegmentationFolder`, so
it finds exactly what the dataset class would raise on, but collects the errors instead of stopping.
"""

from __future__ import annotations

from pathlib import Path

from refinenet_edu.datasets.voc import DatasetError, MissingDataError, load_pair, resolve_classes, sample_files, split_entries

__all__ = ["check_voc_folder"]


def check_voc_folder(root: str | Path, splits: tuple[str, ...] | list[str] = ("train", "val"),
                     num_classes: int | None = None) -> list[DatasetError]:
    """Every problem found in ``root`` for the given splits (empty list: all good), each a :class:`DatasetError`
    (``path``: the file, ``reason``: what is wrong): split file missing or empty; an image without its mask
    (or an id without an image); unreadable or truncated files; a mask of another size than its image; colour
    masks; labels that are neither a class nor the ignore index; ids that leave the folder (with their line),
    symlinks that point out of it; a split whose masks have no labelled pixel. Classes come from
    ``num_classes``, else ``meta.json``, else the 21 PASCAL VOC classes.
    """
    root = Path(root)
    if not root.is_dir():
        return [MissingDataError(root, "dataset folder not found")]
    try:
        names, _, ignore_index = resolve_classes(root, num_classes)
    except DatasetError as err:
        return [err]
    except ValueError as err:  # class names and palette that do not fit
        return [DatasetError(root / "meta.json", str(err))]
    problems: list[DatasetError] = []
    checked: dict[str, bool | None] = {}  # id -> its mask has a labelled pixel (None: not read)
    for split in splits:
        try:
            entries = split_entries(root, split, problems=problems)  # ids that leave the folder, by line
        except DatasetError as err:
            problems.append(err)
            continue
        for line, sample_id in entries:
            if sample_id in checked:
                continue
            checked[sample_id] = None
            image, mask, found = sample_files(root, split, line, sample_id)
            problems += found
            if found:
                continue
            try:
                _, labels = load_pair(image, mask, len(names), ignore_index)
            except DatasetError as err:
                problems.append(err)
            else:
                checked[sample_id] = bool((labels != ignore_index).any())
        read = [checked[sample_id] for _, sample_id in entries if checked.get(sample_id) is not None]
        if read and not any(read):
            problems.append(DatasetError(root / "ImageSets" / "Segmentation" / f"{split}.txt",
                                         f"split {split!r}: no labelled pixel in its {len(read)} readable masks "
                                         f"(every pixel is the ignore label {ignore_index}): nothing to train or "
                                         "score on"))
    return problems
