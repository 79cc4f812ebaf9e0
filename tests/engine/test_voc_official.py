"""The full network on real-shaped data, end to end on a CPU: the official preset (ResNet-101,
118,052,437 parameters) trained with the official recipe on a generated VOC 2012 + SBD-shaped set
(mixed sizes, 21 classes, 255 borders), then evaluated, by one command.
Nothing is downloaded: the encoder starts from a local state dict, a random ResNet-101 whose
batch-norm statistics were measured on random images. (The recipe freezes batch norm; with
untouched statistics, mean 0 and variance 1, a random ResNet-101 is not normalised at all and its
activations overflow within two steps. ImageNet weights come with real statistics.)"""

from __future__ import annotations

import json
import os
import time

import pytest
import torch
import torchvision

from refinenet_edu.engine.checkpoints import load_checkpoint
from refinenet_edu.cli import main
from refinenet_edu.datasets import eval_transforms, load_dataset
from refinenet_edu.engine.evaluation import OFFICIAL_SCALES
from refinenet_edu.engine.recipes import RECIPES, lr_lambda
from tooling.voc_shaped import make_voc_shaped


#: what makes the library's official recipe the official code's (its defaults: batch 16, poly, jitter)
OFFICIAL_CODE = ["--batch-size", "1", "--schedule", "step", "--no-jitter"]


def test_the_official_codes_recipe():
    r = RECIPES["official"]
    assert (r.optimizer, r.momentum, r.weight_decay, r.lr, r.encoder_lr_ratio) == ("sgd", 0.9, 5e-4, 5e-4, 0.1)
    assert (r.crop_size, r.scale_range, r.hflip) == (400, (0.7, 1.3), True)
    code = r.replace(batch_size=1, schedule="step", jitter=False)
    factor = lr_lambda(code, 1000)
    assert factor(0) == 1.0 and factor(749) == 1.0  # 5e-4 for the decoder, 5e-5 for the encoder ...
    assert code.lr * factor(750) == pytest.approx(5e-5) and code.lr * factor(999) == pytest.approx(5e-5)  # ... then 5e-5


def calibrated_resnet101(path, images):
    """A random ResNet-101 state dict with batch-norm statistics measured on ``images``
    (as ImageNet weights carry statistics measured on ImageNet)."""
    torch.manual_seed(0)
    resnet = torchvision.models.resnet101()
    for m in resnet.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None  # running statistics: the average over every image seen
    with torch.no_grad():
        resnet.train()
        for image, _ in images:
            resnet(image[None])
    torch.save(resnet.state_dict(), path)
    return path, resnet.state_dict()


#: "multi-scale" runs 10 more ResNet-101 passes (5 scales x flip) of the val image: a minute on a busy 2-core
#: CPU, so CI runs "single" here; tests/engine/test_mixed_sizes.py runs the multi-scale branch of the same command
#: with the course preset. Set REFINENET_EDU_SMOKE_MULTISCALE=1 to run it with the official network.
EVALUATE = "multi-scale" if os.environ.get("REFINENET_EDU_SMOKE_MULTISCALE") else "single"


def test_train_the_official_network_and_evaluate_it(tmp_path, capsys):
    pytest.importorskip("scipy")
    # VOC train 2 + 1 SBD-only image of three sizes; 1 val image, small and odd-sized, so that a CPU
    # runs the 10 multi-scale views of ResNet-101 quickly (tests/engine/test_mixed_sizes.py has many val sizes)
    root = make_voc_shaped(tmp_path / "data", train=2, val=1, sbd=1, sizes=((45, 61), (61, 39), (37, 53)))
    weights, encoder = calibrated_resnet101(tmp_path / "resnet101.pt",
                                            load_dataset("voc2012-aug", "train", eval_transforms(), root=root))
    out = tmp_path / "run"
    started = time.perf_counter()
    code = main(["train", "--preset", "official", "--backbone", "resnet101", "--weights", str(weights),
                 *OFFICIAL_CODE, "--data", "voc2012-aug", "--data-root", str(root), "--epochs", "1", "--crop-size", "48",
                 "--device", "cpu", "--precision", "fp32", "--evaluate", EVALUATE, "--out", str(out), "--quiet"])
    seconds = time.perf_counter() - started
    captured = capsys.readouterr()
    assert code == 0, captured.err
    with capsys.disabled():
        print(f"\n[official R101: 3 steps at batch 1, 1 val image, --evaluate {EVALUATE}: {seconds:.0f} s]")
    assert "on voc2012-aug: 3 train / 1 val images" in captured.out

    prov = json.loads((out / "provenance.json").read_text())
    train = prov["train_config"]
    assert (train["batch_size"], train["schedule"], train["crop_size"], train["jitter"]) == (1, "step", 48, False)
    assert prov["model_config"]["freeze_bn"] and prov["model_config"]["backbone"] == "resnet101"
    history = json.loads((out / "history.json").read_text())
    assert len(history) == 1 and history[0]["miou"] is not None
    assert history[0]["lr"] == pytest.approx(5e-5)  # 3 steps: the last quarter at the lower rate

    best = load_checkpoint(out / "best.pt")
    assert sum(v.numel() for k, v in best["model"].items() if "running" not in k and "num_batches" not in k) \
        == 118_052_437
    # frozen batch norm: the encoder's statistics are still those of the weights it started from
    for key in ("bn1.running_mean", "layer4.2.bn3.running_var"):
        assert torch.equal(best["model"][f"encoder.body.{key}"], encoder[key])
    assert not torch.equal(best["model"]["encoder.body.conv1.weight"], encoder["conv1.weight"])  # it trained

    single = json.loads((out / "evaluation-val.json").read_text())
    assert single["num_images"] == 1 and single["scales"] == [1.0] and not single["flip"]
    assert single["dataset"]["name"] == "VOC2012" and len(single["metrics"]["iou"]) == 21
    if EVALUATE == "multi-scale":
        multi = json.loads((out / "evaluation-val-multiscale.json").read_text())
        assert multi["num_images"] == 1 and multi["scales"] == list(OFFICIAL_SCALES) and multi["flip"]
