"""What the RefineNet paper holds, by number: its figures, tables and sections.

Lin, Milan, Shen, Reid: *RefineNet: Multi-Path Refinement Networks for High-Resolution Semantic Segmentation*,
CVPR 2017 (arXiv 1611.06612); the numbers of the CVPR version, read from its page images. The course cites the
paper only by these numbers. A test reads every "Fig. N", "Fig. N(x)", "Table N" and "Sec. N.M" in the library,
the notebooks, the assignments and the docs, checks that the number exists here, and that the text around a
figure or table citation names what it shows (one of its ``words``), so that "the RCU (Fig. 2(b))" fails:
Fig. 2(b) shows dilated convolutions. ``docs/paper.md`` prints these tables (:func:`markdown`).
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["FIGURES", "SECTIONS", "TABLES", "Item", "markdown"]


class Item(NamedTuple):
    """One figure or table: what it shows, and words a citation's context must contain (one of them)."""

    shows: str
    words: tuple[str, ...]


FIGURES: dict[str, Item] = {
    "1": Item("example results: object parsing (left) and semantic segmentation (right)", ("result", "example", "parsing")),
    "2": Item("(a) ResNet, (b) dilated convolutions, (c) RefineNet", ("resnet", "dilat", "refinenet", "cascade")),
    "2(a)": Item("a ResNet for dense prediction", ("resnet",)),
    "2(b)": Item("dilated convolutions", ("dilat",)),
    "2(c)": Item("RefineNet: the overall 4-cascaded architecture, RefineNet-4 at 1/32 down to RefineNet-1 at 1/4",
                 ("cascade", "refinenet-4", "overall", "architecture", "network", "resnet", "path", "encoder")),
    "3": Item("the components of a RefineNet block", ("block", "component", "rcu", "fusion", "pooling", "crp")),
    "3(a)": Item("a RefineNet block: adaptive convolutions (2 RCUs per path), multi-resolution fusion, chained "
                 "residual pooling, output convolutions (1 RCU)", ("block", "adaptive")),
    "3(b)": Item("the Residual Conv Unit (RCU)", ("rcu", "residual conv unit")),
    "3(c)": Item("multi-resolution fusion", ("fusion",)),
    "3(d)": Item("chained residual pooling, drawn with 3 pool + conv blocks (the third after a dotted arrow)",
                 ("crp", "chained residual pooling", "pool")),
    "4": Item("predictions on Person-Parts", ("person",)),
    "5": Item("predictions on PASCAL VOC 2012", ("voc",)),
    "6": Item("predictions on Cityscapes", ("cityscapes",)),
    "7": Item("the cascade variants: (a) single RefineNet, (b) 2-cascaded, (c) 4-cascaded 2-scale",
              ("cascade", "variant", "single", "2-scale")),
    "7(a)": Item("single RefineNet", ("single",)),
    "7(b)": Item("2-cascaded RefineNet", ("2-cascade",)),
    "7(c)": Item("4-cascaded 2-scale RefineNet: the image at 1.2x and 0.6x into 2 independent ResNets, 7 paths",
                 ("2-scale", "two scales", "scale")),
}

TABLES: dict[str, Item] = {
    "1": Item("Person-Part: RefineNet-Res101 68.6 IoU (DeepLab-v2 64.9)", ("person",)),
    "2": Item("ablation on NYUDv2 and Person-Parts: chained residual pooling, multi-scale evaluation, ResNet-50/101/152",
              ("pool", "crp", "ablation", "nyud", "person")),
    "3": Item("NYUDv2, 40 classes: RefineNet-Res152 73.6 / 58.9 / 46.5", ("nyud",)),
    "4": Item("PASCAL VOC 2012 test: Res101 82.4, Res152 83.4", ("voc",)),
    "5": Item("Cityscapes test: Res101 73.6", ("cityscapes",)),
    "6": Item("PASCAL-Context, 60 classes: Res101 47.1, Res152 47.3", ("context",)),
    "7": Item("SUN-RGBD, 37 classes: Res152 80.6 / 58.5 / 45.9", ("sun",)),
    "8": Item("ADE20K val, 150 classes: Res101 40.2, Res152 40.7", ("ade",)),
    "9": Item("cascade variants on NYUDv2 (ResNet-50, single-scale test): single 40.3, 2-cascaded 40.9, "
              "4-cascaded 42.5, 4-cascaded 2-scale 43.1", ("cascade", "variant", "single", "nyud")),
}

SECTIONS: dict[str, str] = {
    "1": "Introduction",
    "1.1": "Related Work",
    "2": "Background",
    "3": "Proposed Method",
    "3.1": "Multi-Path Refinement",
    "3.2": "RefineNet (RCU, multi-resolution fusion, chained residual pooling, output convolutions)",
    "3.3": "Identity Mappings in RefineNet",
    "4": "Experiments",
    "4.1": "Object Parsing",
    "4.2": "Semantic Segmentation",
    "4.3": "Variants of cascaded RefineNet",
    "5": "Conclusion",
}


def markdown() -> str:
    """The three tables as Markdown (what ``docs/paper.md`` shows)."""
    lines = ["| Fig. | shows |", "| --- | --- |"]
    lines += [f"| {k} | {v.shows} |" for k, v in FIGURES.items()]
    lines += ["", "| Table | shows |", "| --- | --- |"]
    lines += [f"| {k} | {v.shows} |" for k, v in TABLES.items()]
    lines += ["", "| Sec. | title |", "| --- | --- |"]
    lines += [f"| {k} | {v} |" for k, v in SECTIONS.items()]
    return "\n".join(lines) + "\n"
