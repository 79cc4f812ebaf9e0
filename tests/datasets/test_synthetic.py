"""SynthScenes: determinism, layout, what each class is built to test, shipped copy."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from refinenet_edu.cli import main as cli_main
from refinenet_edu.datasets import synthetic
from refinenet_edu.datasets.synthetic import CLASS_NAMES, generate_dataset, render_sample
from refinenet_edu.datasets.voc import VOCSegmentationFolder

SHIPPED = Path(__file__).resolve().parents[2] / "data" / "synthscenes"
WATER, PAVEMENT, BOAT, CAR, WIRE, DOT = (CLASS_NAMES.index(n) for n in ("water", "pavement", "boat", "car", "wire", "dot"))


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_byte_identical_files(tmp_path):
    a = generate_dataset(tmp_path / "a", seed=3, size=64, train_count=5, val_count=3)
    b = generate_dataset(tmp_path / "b", seed=3, size=64, train_count=5, val_count=3)
    files_a, files_b = _files(a), _files(b)
    assert len(files_a) == 2 * 8 + 3  # images, masks, two split files, meta.json
    assert files_a == files_b
    c = generate_dataset(tmp_path / "c", seed=4, size=64, train_count=5, val_count=3)
    assert _files(c)["SegmentationClass/train_00000.png"] != files_a["SegmentationClass/train_00000.png"]


def test_a_sample_does_not_depend_on_how_many_are_generated(tmp_path):
    small = _files(generate_dataset(tmp_path / "small", seed=1, size=48, train_count=2, val_count=1))
    big = _files(generate_dataset(tmp_path / "big", seed=1, size=48, train_count=4, val_count=2))
    for name in ("JPEGImages/train_00001.jpg", "SegmentationClass/train_00001.png", "SegmentationClass/val_00000.png"):
        assert small[name] == big[name]


def test_layout_meta_and_masks(tmp_path):
    root = generate_dataset(tmp_path / "s", seed=0, size=64, train_count=3, val_count=2)
    meta = json.loads((root / "meta.json").read_text())
    assert meta["class_names"] == list(CLASS_NAMES)
    assert meta["palette"] == [list(c) for c in synthetic.PALETTE]
    assert (meta["ignore_index"], meta["seed"], meta["image_size"]) == (255, 0, [64, 64])
    assert (root / "ImageSets/Segmentation/val.txt").read_text().split() == ["val_00000", "val_00001"]
    with Image.open(root / "SegmentationClass/train_00000.png") as mask:
        assert mask.mode == "P"  # palette PNG, lossless
        assert tuple(mask.getpalette()[3:6]) == synthetic.PALETTE[1]
    ds = VOCSegmentationFolder(root, "train")
    assert ds.class_names == CLASS_NAMES and ds.num_classes == len(CLASS_NAMES)
    image, mask = ds[0]
    assert tuple(image.shape) == (3, 64, 64) and tuple(mask.shape) == (64, 64)


def test_generation_is_atomic(tmp_path, monkeypatch):
    calls = []

    def failing_render(*args, **kwargs):
        calls.append(args)
        if len(calls) == 3:
            raise RuntimeError("interrupted")
        return render_sample(*args, **kwargs)

    monkeypatch.setattr(synthetic, "render_sample", failing_render)
    with pytest.raises(RuntimeError, match="interrupted"):
        generate_dataset(tmp_path / "out", size=48, train_count=4, val_count=1)
    assert list(tmp_path.iterdir()) == []  # neither the folder nor a temporary one is left


def test_existing_folder_is_replaced_only_when_asked(tmp_path):
    out = generate_dataset(tmp_path / "out", seed=0, size=48, train_count=2, val_count=1)
    with pytest.raises(FileExistsError):
        generate_dataset(out, seed=1, size=48, train_count=2, val_count=1)
    generate_dataset(out, seed=1, size=48, train_count=3, val_count=1, overwrite=True)
    assert json.loads((out / "meta.json").read_text())["seed"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_bad_arguments():
    with pytest.raises(ValueError, match="at least 32"):
        render_sample(0, "train", 0, size=16)
    with pytest.raises(ValueError, match="split"):
        render_sample(0, "test", 0)


def _majority_pool(mask: np.ndarray, factor: int) -> np.ndarray:
    """Per factor x factor block, the most frequent label (what 1/factor keeps)."""
    h, w = mask.shape
    blocks = mask.reshape(h // factor, factor, w // factor, factor).transpose(0, 2, 1, 3).reshape(-1, factor * factor)
    counts = np.stack([(blocks == c).sum(1) for c in range(len(CLASS_NAMES))], 1)
    return counts.argmax(1)


def test_classes_are_built_as_documented():
    samples = [render_sample(0, "train", i) for i in range(40)]
    masks = np.stack([s.mask for s in samples])
    assert set(np.unique(masks)) == set(range(len(CLASS_NAMES)))
    for s in samples:
        # Thin structures: gone from a 1/32 label map, so they need the fine paths.
        assert not np.isin(_majority_pool(s.mask, 32), [WIRE, DOT]).any()
        # Context pair: boats only touch water (or what lies on top), cars only pavement: a boat never
        # touches pavement, a car never water (4-neighbourhood).
        for label, other in ((BOAT, PAVEMENT), (CAR, WATER)):
            obj = s.mask == label
            grown = obj.copy()
            grown[1:] |= obj[:-1]
            grown[:-1] |= obj[1:]
            grown[:, 1:] |= obj[:, :-1]
            grown[:, :-1] |= obj[:, 1:]
            assert not (grown & (s.mask == other)).any()
    # Colour alone does not name a class: labelling each pixel with the class
    # of the nearest mean colour is barely better than chance (1/7).
    rgb = np.concatenate([s.image.reshape(-1, 3) for s in samples]).astype(np.float64)
    labels = masks.reshape(-1)
    means = np.stack([rgb[labels == c].mean(0) for c in range(len(CLASS_NAMES))])
    nearest = ((rgb[:, None, :] - means[None]) ** 2).sum(-1).argmin(1)
    recall = [(nearest[labels == c] == c).mean() for c in range(len(CLASS_NAMES))]
    assert np.mean(recall) < 0.35


@pytest.mark.skipif(not SHIPPED.is_dir(), reason="data/synthscenes not in this checkout")
def test_shipped_data_matches_the_generator():
    meta = json.loads((SHIPPED / "meta.json").read_text())
    assert meta["generator_version"] == synthetic.GENERATOR_VERSION
    size = meta["image_size"][0]
    errors = []
    for split, count in meta["counts"].items():
        ids = (SHIPPED / "ImageSets/Segmentation" / f"{split}.txt").read_text().split()
        assert ids == [f"{split}_{i:05d}" for i in range(count)]
        for i, sample_id in enumerate(ids):
            sample = render_sample(meta["seed"], split, i, size)
            with Image.open(SHIPPED / "SegmentationClass" / f"{sample_id}.png") as mask:
                np.testing.assert_array_equal(np.asarray(mask), sample.mask, err_msg=sample_id)
            # JPEG: compare decoded pixels with the same encoding of the fresh
            # render (a different libjpeg build may round a little differently).
            shipped = _decode(SHIPPED / "JPEGImages" / f"{sample_id}.jpg")
            fresh = _decode(io.BytesIO(synthetic.encode_jpeg(sample.image, meta["jpeg_quality"])))
            errors.append(np.abs(shipped - fresh).mean())
            assert np.abs(shipped - sample.image).mean() < 8, sample_id  # and close to the raw render
    assert max(errors) < 0.5


def _decode(file) -> np.ndarray:
    with Image.open(file) as image:
        return np.asarray(image.convert("RGB"), np.int16)


@pytest.mark.skipif(not SHIPPED.is_dir(), reason="data/synthscenes not in this checkout")
def test_shipped_data_passes_the_check(capsys):
    assert cli_main(["data", "--check", str(SHIPPED)]) == 0
    assert "OK" in capsys.readouterr().out


def test_data_command_generates(tmp_path, capsys):
    out = tmp_path / "gen"
    assert cli_main(["data", "--out", str(out), "--count", "5", "--size", "48", "--seed", "2"]) == 0
    assert len((out / "ImageSets/Segmentation/train.txt").read_text().split()) == 4
    assert len((out / "ImageSets/Segmentation/val.txt").read_text().split()) == 1
    assert cli_main(["data", "--out", str(out), "--count", "5", "--size", "48"]) == 2  # exists, no --force
    assert "--force" in capsys.readouterr().err
    assert cli_main(["data", "--out", str(tmp_path / "x"), "--count", "1"]) == 2
    assert cli_main(["data", "--out", str(tmp_path / "y"), "--size", "16"]) == 2
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
