"""Validate a VOC-layout folder and report every problem at once (``refinenet-edu data --check DIR``).

:func:`check_voc_folder` uses the readers of :class:`~refinenet_edu.datasets.voc.VOCSegmentationFolder`, so
it finds exactly what the dataset class would raise on, but collects the problems instead of stopping.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from refinenet_edu.datasets.voc import DatasetError, load_pair, resolve_classes, sample_files, split_entries

__all__ = ["DataProblem", "check_voc_folder"]


@dataclass(frozen=True)
class DataProblem:
    """One problem: the file it concerns and what is wrong with it."""

    path: Path
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def check_voc_folder(root: str | Path, splits: tuple[str, ...] | list[str] = ("train", "val"),
                     num_classes: int | None = None) -> list[DataProblem]:
    """Every problem found in ``root`` for the given splits (empty list: all good): split file missing or
    empty; an image without its mask (or an id without an image); unreadable or truncated files; a mask of
    another size than its image; colour masks; labels that are neither a class nor the ignore index; ids that
    leave the folder (with their line), symlinks that point out of it; a split whose masks have no labelled
    pixel. Classes come from ``num_classes``, else ``meta.json``, else the 21 PASCAL VOC classes.
    """
    root = Path(root)
    if not root.is_dir():
        return [DataProblem(root, "dataset folder not found")]
    try:
        names, _, ignore_index = resolve_classes(root, num_classes)
    except (DatasetError, ValueError) as err:
        return [DataProblem(getattr(err, "path", root / "meta.json"), getattr(err, "reason", str(err)))]
    problems: list[DataProblem] = []
    checked: dict[str, bool | None] = {}  # id -> its mask has a labelled pixel (None: not read)
    for split in splits:
        found: list[DatasetError] = []
        try:
            entries = split_entries(root, split, problems=found)
        except DatasetError as err:
            problems.append(DataProblem(err.path, err.reason))
            continue
        problems += [DataProblem(err.path, err.reason) for err in found]  # ids that leave the folder, by line
        for line, sample_id in entries:
            if sample_id in checked:
                continue
            checked[sample_id] = None
            image, mask, found = sample_files(root, split, line, sample_id)
            problems += [DataProblem(err.path, err.reason) for err in found]
            if found:
                continue
            try:
                _, labels = load_pair(image, mask, len(names), ignore_index)
            except DatasetError as err:
                problems.append(DataProblem(err.path, err.reason))
            else:
                checked[sample_id] = bool((labels != ignore_index).any())
        read = [checked[sample_id] for _, sample_id in entries if checked.get(sample_id) is not None]
        if read and not any(read):
            problems.append(DataProblem(root / "ImageSets" / "Segmentation" / f"{split}.txt",
                                        f"split {split!r}: no labelled pixel in its {len(read)} readable masks (every "
                                        f"pixel is the ignore label {ignore_index}): nothing to train or score on"))
    return problems
