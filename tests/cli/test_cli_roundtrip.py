"""Command-line round trip on a small generated set: train -> evaluate -> predict."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from refinenet_edu.cli import main
from refinenet_edu.datasets import generate_dataset


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    return generate_dataset(tmp_path_factory.mktemp("data") / "mini", seed=3, size=64, train_count=8, val_count=4)


def test_train_evaluate_predict(small_set, tmp_path, capsys):
    run = tmp_path / "run"
    export = tmp_path / "shipped.pt"
    rc = main(["train", "--data", str(small_set), "--epochs", "2", "--batch-size", "4", "--crop-size", "64",
               "--encoder-width", "8", "--widths", "8", "8", "8", "16", "--device", "cpu", "--precision", "fp32",
               "--out", str(run), "--export", str(export), "--quiet"])
    assert rc == 0
    for name in ("best.pt", "last.pt", "history.json", "provenance.json"):
        assert (run / name).is_file(), name
    prov = json.loads((run / "provenance.json").read_text())
    assert prov["command"].startswith("refinenet-edu train") or "train" in prov["command"]
    assert prov["epochs_run"] == 2 and prov["device"].startswith("CPU")
    shipped = json.loads((tmp_path / "shipped.pt.json").read_text())
    assert shipped["wall_seconds"] > 0 and "best_miou" in shipped

    # Training again into the same folder without --resume is refused, nothing overwritten.
    before = (run / "last.pt").read_bytes()
    assert main(["train", "--data", str(small_set), "--out", str(run), "--epochs", "1", "--quiet"]) == 2
    assert "pass --resume" in capsys.readouterr().err
    assert (run / "last.pt").read_bytes() == before

    out_json = tmp_path / "eval.json"
    assert main(["evaluate", str(export), "--data", str(small_set), "--flip", "--out", str(out_json),
                 "--save-predictions", str(tmp_path / "preds"), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "mIoU" in printed
    result = json.loads(out_json.read_text())
    assert 0.0 <= result["metrics"]["miou"] <= 1.0
    assert result["flip"] is True
    pred = Image.open(tmp_path / "preds" / "val_00000.png")
    assert pred.mode == "P" and pred.size == (64, 64)

    images = sorted((small_set / "JPEGImages").glob("val_*.jpg"))[:2]
    assert main(["predict", str(export), *map(str, images), "--out", str(tmp_path / "pred2")]) == 0
    for image in images:
        mask = np.array(Image.open(tmp_path / "pred2" / f"{image.stem}.png"))
        assert mask.shape == (64, 64) and mask.max() < 7
        assert (tmp_path / "pred2" / "overlays" / f"{image.stem}.png").is_file()


def test_bad_input_on_the_command_line(small_set, tmp_path, capsys):
    assert main(["train", "--data", "imagenet-seg", "--quiet"]) == 2
    assert "imagenet-seg" in capsys.readouterr().err
    foreign = tmp_path / "foreign.pt"
    import torch

    torch.save({"weights": torch.zeros(2)}, foreign)
    assert main(["evaluate", str(foreign), "--data", str(small_set)]) == 2
    assert "not a refinenet-edu checkpoint" in capsys.readouterr().err
    assert main(["predict", str(foreign), str(tmp_path / "nope.jpg")]) == 2
    err = capsys.readouterr().err
    assert "not a refinenet-edu checkpoint" in err or "nope.jpg" in err
