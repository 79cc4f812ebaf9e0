"""VOC-layout loading: round trip, class info, named datasets, every bad-data case."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import tv_tensors

from refinenet_edu.cli import main as cli_main
from refinenet_edu.datasets import (
    VOC_CLASSES,
    DatasetError,
    MissingDataError,
    VOCSegmentationFolder,
    check_voc_folder,
    class_pixel_histogram,
    colorize,
    load_dataset,
    sbd,
    voc2012,
    voc_palette,
)
from refinenet_edu.datasets.palette import write_mask_png
from refinenet_edu.datasets.synthetic import PALETTE as SYNTHSCENES_PALETTE
from refinenet_edu.viz.plots import show_samples

CLASSES = ["background", "square", "stripe"]
PALETTE = [[0, 0, 0], [200, 30, 30], [30, 200, 30]]


def make_folder(root: Path, n_train=3, n_val=2, size=(40, 32), meta=True, mask_mode="P") -> dict:
    """A small VOC-layout folder with PNG images (lossless, for exact comparison)."""
    rng = np.random.default_rng(0)
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    (root / "JPEGImages").mkdir()
    (root / "SegmentationClass").mkdir()
    written = {}
    for split, n in (("train", n_train), ("val", n_val)):
        ids = [f"{split}{i}" for i in range(n)]
        for sample_id in ids:
            h, w = size
            image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            mask = rng.integers(0, len(CLASSES), (h, w)).astype(np.uint8)
            mask[0, :] = 255  # an ignore row, as VOC has around objects
            Image.fromarray(image).save(root / "JPEGImages" / f"{sample_id}.png")
            if mask_mode == "P":
                write_mask_png(mask, root / "SegmentationClass" / f"{sample_id}.png", palette=PALETTE)
            else:
                Image.fromarray(mask, mode="L").save(root / "SegmentationClass" / f"{sample_id}.png")
            written[sample_id] = (image, mask)
        (root / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(ids) + "\n")
    if meta:
        meta_data = {"class_names": CLASSES, "palette": PALETTE, "ignore_index": 255}
        (root / "meta.json").write_text(json.dumps(meta_data))
    return written


@pytest.mark.parametrize("mask_mode", ["P", "L"])
def test_round_trip(tmp_path, mask_mode):
    written = make_folder(tmp_path, mask_mode=mask_mode)
    ds = VOCSegmentationFolder(tmp_path, "train")
    assert ds.ids == ["train0", "train1", "train2"] and len(ds) == 3
    assert ds.class_names == tuple(CLASSES) and ds.num_classes == 3 and ds.ignore_index == 255
    assert ds.palette == [tuple(c) for c in PALETTE]
    assert (ds.root, ds.split, ds.name) == (tmp_path, "train", tmp_path.name)
    for i, sample_id in enumerate(ds.ids):
        image, mask = ds[i]
        assert isinstance(image, tv_tensors.Image) and image.dtype == torch.uint8
        assert isinstance(mask, tv_tensors.Mask) and mask.dtype == torch.int64
        np.testing.assert_array_equal(image.permute(1, 2, 0).numpy(), written[sample_id][0])
        np.testing.assert_array_equal(mask.numpy(), written[sample_id][1])
    assert check_voc_folder(tmp_path) == []


def test_class_info_without_meta(tmp_path):
    make_folder(tmp_path, meta=False)
    ds = VOCSegmentationFolder(tmp_path, "val")
    assert ds.class_names == VOC_CLASSES and ds.num_classes == 21
    assert ds.palette[:3] == [(0, 0, 0), (128, 0, 0), (0, 128, 0)]  # PASCAL VOC colours
    assert voc_palette()[255] == (224, 224, 192)
    ds = VOCSegmentationFolder(tmp_path, "val", num_classes=3)
    assert ds.class_names == ("class_0", "class_1", "class_2")
    ds = VOCSegmentationFolder(tmp_path, "val", class_names=["a", "b", "c"])
    assert ds.num_classes == 3
    with pytest.raises(ValueError, match="num_classes"):
        VOCSegmentationFolder(tmp_path, "val", num_classes=4, class_names=["a", "b", "c"])


def test_transforms_are_applied_jointly(tmp_path):
    make_folder(tmp_path)
    seen = []

    def transforms(image, mask):
        seen.append((type(image), type(mask)))
        return image.flip(-1), mask.flip(-1)

    plain = VOCSegmentationFolder(tmp_path, "train")
    flipped = VOCSegmentationFolder(tmp_path, "train", transforms)
    assert torch.equal(flipped[1][1], plain[1][1].flip(-1))
    assert seen == [(tv_tensors.Image, tv_tensors.Mask)]


def test_load_dataset(tmp_path):
    make_folder(tmp_path / "mine")
    assert len(load_dataset(tmp_path / "mine", "val")) == 2
    assert len(load_dataset(str(tmp_path / "mine"), "train")) == 3
    with pytest.raises(ValueError, match="synthscenes, voc2012, sbd"):
        load_dataset("imagenet")
    with pytest.raises(MissingDataError):
        load_dataset(tmp_path / "nowhere")
    with pytest.raises(MissingDataError, match="refinenet-edu data --out"):
        load_dataset("synthscenes", root=tmp_path / "nowhere")


def test_load_shipped_synthscenes():
    shipped = Path(__file__).resolve().parents[2] / "data" / "synthscenes"
    if not shipped.is_dir():
        pytest.skip("data/synthscenes not in this checkout")
    ds = load_dataset("synthscenes", "val")
    assert ds.root == shipped and ds.num_classes == 7 and len(ds) > 0 and ds.name == "synthscenes"


def test_real_datasets_say_how_to_download(tmp_path):
    with pytest.raises(MissingDataError, match="download=True") as err:
        voc2012(tmp_path, "train")
    assert isinstance(err.value, FileNotFoundError) and "VOC2012" in str(err.value)
    with pytest.raises((MissingDataError, ModuleNotFoundError), match="download=True|scipy"):
        sbd(tmp_path, "train")
    with pytest.raises(MissingDataError, match="download=True"):
        load_dataset("voc2012", "val", root=tmp_path)


def test_voc2012_reads_an_extracted_folder(tmp_path):
    voc = tmp_path / "VOCdevkit" / "VOC2012"
    make_folder(voc, meta=False)
    ds = voc2012(tmp_path, "train")
    assert ds.class_names == VOC_CLASSES and len(ds) == 3 and ds[0][1].shape == (40, 32)


# ---------------------------------------------------------------- bad data


def _drop_split(root):
    (root / "ImageSets/Segmentation/val.txt").unlink()
    return "val.txt"


def _empty_split(root):
    (root / "ImageSets/Segmentation/val.txt").write_text("\n")
    return "val.txt"


def _drop_mask(root):
    (root / "SegmentationClass/val1.png").unlink()
    return "val1.png"


def _drop_image(root):
    (root / "JPEGImages/val0.png").unlink()
    return "val0.jpg"


def _resize_mask(root):
    write_mask_png(np.zeros((10, 12), np.uint8), root / "SegmentationClass/val1.png", SYNTHSCENES_PALETTE)
    return "val1.png"


def _bad_label(root):
    mask = np.zeros((40, 32), np.uint8)
    mask[5, 5] = 7  # 3 classes: 7 is neither a class nor 255
    write_mask_png(mask, root / "SegmentationClass/val0.png", SYNTHSCENES_PALETTE)
    return "val0.png"


def _negative_label(root):
    mask = np.zeros((40, 32), np.int32)
    mask[5, 5] = -1  # a 32-bit index mask ("I"): -1 must not wrap to 255 (ignore)
    Image.fromarray(mask, mode="I").save(root / "SegmentationClass/val0.png", format="TIFF")  # PNG has no "I"
    return "val0.png"


def _colour_mask(root):
    Image.new("RGB", (32, 40), (200, 30, 30)).save(root / "SegmentationClass/val0.png")
    return "val0.png"


def _truncate_image(root):
    path = root / "JPEGImages/val1.png"
    path.write_bytes(path.read_bytes()[:300])
    return "val1.png"


def _truncate_jpeg(root):
    (root / "JPEGImages/val1.png").unlink()
    Image.fromarray(np.full((40, 32, 3), 90, np.uint8)).save(root / "JPEGImages/val1.jpg", quality=90)
    path = root / "JPEGImages/val1.jpg"
    path.write_bytes(path.read_bytes()[:200])
    return "val1.jpg"


def _truncate_mask(root):
    path = root / "SegmentationClass/val0.png"
    path.write_bytes(path.read_bytes()[:60])
    return "val0.png"


def _garbage_image(root):
    (root / "JPEGImages/val0.png").write_bytes(b"this is not an image at all")
    return "val0.png"


# (case, raised when: "init" at construction, "item" when the sample is read)
BAD_CASES = [
    (_drop_split, "init"),
    (_empty_split, "init"),
    (_drop_mask, "init"),
    (_drop_image, "init"),
    (_resize_mask, "item"),
    (_bad_label, "item"),
    (_negative_label, "item"),
    (_colour_mask, "item"),
    (_truncate_image, "item"),
    (_truncate_jpeg, "item"),
    (_truncate_mask, "item"),
    (_garbage_image, "item"),
]


@pytest.mark.parametrize("breaker, when", BAD_CASES, ids=[c[0].__name__.strip("_") for c in BAD_CASES])
def test_bad_data_is_named(tmp_path, capsys, breaker, when):
    make_folder(tmp_path)
    bad_name = breaker(tmp_path)

    # The dataset class: a clear error whose message names the file.
    if when == "init":
        with pytest.raises(DatasetError) as err:
            VOCSegmentationFolder(tmp_path, "val")
    else:
        ds = VOCSegmentationFolder(tmp_path, "val")
        with pytest.raises(DatasetError) as err:
            for i in range(len(ds)):
                ds[i]
    assert isinstance(err.value, ValueError)
    assert err.value.path.name == bad_name and bad_name in str(err.value)
    if "drop" in breaker.__name__:
        assert isinstance(err.value, FileNotFoundError)

    # The checker: this one problem, on this file; train is still fine.
    problems = check_voc_folder(tmp_path)
    assert [p.path.name for p in problems] == [bad_name]
    assert check_voc_folder(tmp_path, splits=["train"]) == []

    # The command: names the file, exits non-zero.
    assert cli_main(["data", "--check", str(tmp_path)]) == 1
    assert bad_name in capsys.readouterr().out


def test_every_problem_is_reported_at_once(tmp_path, capsys):
    make_folder(tmp_path, n_train=3, n_val=2)
    _drop_mask(tmp_path)
    _bad_label(tmp_path)
    (tmp_path / "JPEGImages/train2.png").write_bytes(b"")
    problems = check_voc_folder(tmp_path, splits=("train", "val", "test"))
    names = sorted(p.path.name for p in problems)
    assert names == ["test.txt", "train2.png", "val0.png", "val1.png"]
    assert all(str(p).startswith(str(p.path)) for p in problems)
    assert cli_main(["data", "--check", str(tmp_path), "--splits", "train", "val", "test"]) == 1
    out = capsys.readouterr().out
    assert "4 problem(s)" in out
    assert check_voc_folder(tmp_path / "missing")[0].reason == "dataset folder not found"


def test_num_classes_for_check(tmp_path):
    make_folder(tmp_path, meta=False)  # labels 0..2 are fine for VOC's 21 classes
    assert check_voc_folder(tmp_path) == []
    assert len(check_voc_folder(tmp_path, num_classes=2)) == 5  # label 2 is now out of range
    assert cli_main(["data", "--check", str(tmp_path), "--num-classes", "2"]) == 1


# ---------------------------------------------------------------- describe


def test_histogram_colorize_and_samples(tmp_path):
    written = make_folder(tmp_path)
    ds = VOCSegmentationFolder(tmp_path, "train")
    hist = class_pixel_histogram(ds)
    masks = np.stack([written[i][1] for i in ds.ids])
    assert hist["counts"].tolist() == [int((masks == c).sum()) for c in range(3)]
    assert hist["ignored"] == int((masks == 255).sum()) and hist["total"] == masks.size
    assert hist["class_names"] == CLASSES and abs(hist["frequency"].sum() - 1) < 1e-9

    rgb = colorize(ds[0][1], ds.palette)
    assert rgb.shape == (40, 32, 3) and rgb.dtype == np.uint8
    assert tuple(rgb[0, 0]) == (224, 224, 192)  # ignore row
    label = int(ds[0][1][5, 5])
    assert tuple(rgb[5, 5]) == tuple(PALETTE[label])

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = show_samples(ds, n=2)
    assert len(fig.axes) == 4
    plt.close(fig)
