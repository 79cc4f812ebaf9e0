"""The training loss and its remedies for rare classes (engine.criterion, ``train --loss``)."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from refinenet_edu.engine.criterion import LOSSES, SegmentationLoss, median_frequency_weights
from refinenet_edu.engine.loop import make_criterion
from refinenet_edu.engine.recipes import TrainConfig


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    """A 10-image SynthScenes folder (8 train, 2 val) of 48 px images."""
    from refinenet_edu.datasets import generate_dataset

    return generate_dataset(tmp_path_factory.mktemp("data") / "tiny", seed=5, size=48, train_count=8, val_count=2)


@pytest.fixture(scope="module")
def small_set_folder(tiny_set):
    from refinenet_edu.datasets.voc import VOCSegmentationFolder

    return VOCSegmentationFolder(tiny_set, "train")


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    scores = torch.randn(2, 4, 5, 6, generator=g)
    labels = torch.randint(0, 4, (2, 5, 6), generator=g)
    labels[0, 0, :3] = 255
    return scores, labels


def test_the_default_is_the_papers_cross_entropy(batch):
    scores, labels = batch
    assert torch.equal(SegmentationLoss()(scores, labels), F.cross_entropy(scores, labels, ignore_index=255))


def test_median_frequency_weights():
    w = median_frequency_weights([0.5, 0.3, 0.15, 0.05, 0.0])
    # the median of the four present classes is (0.3 + 0.15) / 2 = 0.225; the absent class keeps weight 1
    assert torch.allclose(w, torch.tensor([0.45, 0.75, 1.5, 4.5, 1.0]))
    for bad in ([0.0, 0.0], [0.5, -0.1], [[0.5]], [math.nan, 0.5]):
        with pytest.raises(ValueError, match="class frequencies"):
            median_frequency_weights(bad)


def test_weighted_cross_entropy_weighs_each_pixel_by_its_class(batch):
    scores, labels = batch
    w = torch.tensor([0.5, 1.0, 2.0, 4.0])
    got = SegmentationLoss(loss="weighted-cross-entropy", class_weights=w)(scores, labels)
    valid = labels != 255
    per_pixel = F.cross_entropy(scores, labels, ignore_index=255, reduction="none")[valid]
    wp = w[labels[valid]]
    assert torch.allclose(got, (wp * per_pixel).sum() / wp.sum())


def test_focal_loss_by_hand(batch):
    scores, labels = batch
    assert torch.allclose(SegmentationLoss(loss="focal", focal_gamma=0.0)(scores, labels),
                          F.cross_entropy(scores, labels, ignore_index=255))
    # two pixels of two classes: p_t = 0.9 (easy) and 0.3 (hard); gamma 2 keeps 1% and 49% of their CE
    p = torch.tensor([[0.9, 0.7], [0.1, 0.3]]).log().view(1, 2, 1, 2)
    t = torch.tensor([[[0, 1]]])
    expected = -(0.1 ** 2 * math.log(0.9) + 0.7 ** 2 * math.log(0.3)) / 2
    assert SegmentationLoss(loss="focal")(p, t).item() == pytest.approx(expected, rel=1e-5)
    t_ignored = torch.tensor([[[0, 255]]])
    assert SegmentationLoss(loss="focal")(p, t_ignored).item() == pytest.approx(-(0.1 ** 2) * math.log(0.9), rel=1e-5)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="loss='dice'"):
        SegmentationLoss(loss="dice")
    with pytest.raises(ValueError, match="class_weights"):
        SegmentationLoss(loss="weighted-cross-entropy")
    with pytest.raises(ValueError, match="focal_gamma"):
        SegmentationLoss(loss="focal", focal_gamma=-1)
    with pytest.raises(ValueError, match="loss='dice'"):
        TrainConfig(loss="dice")
    assert set(LOSSES) == {"cross-entropy", "weighted-cross-entropy", "focal"}


def test_make_criterion_weighs_by_the_training_sets_own_pixels(small_set_folder):
    from torch.utils.data import Subset

    from refinenet_edu.datasets.info import class_pixel_histogram

    crit = make_criterion(TrainConfig(loss="weighted-cross-entropy"), small_set_folder, small_set_folder.num_classes)
    f = torch.as_tensor(class_pixel_histogram(small_set_folder)["frequency"])
    assert torch.allclose(crit.class_weights, median_frequency_weights(f))
    rare = int(f[f > 0].argmin())
    assert crit.class_weights[rare] == crit.class_weights.max() > 1
    half = Subset(small_set_folder, range(len(small_set_folder) // 2))  # a Subset weighs by its own masks
    f_half = torch.as_tensor(class_pixel_histogram(half, small_set_folder.num_classes)["frequency"])
    assert torch.allclose(make_criterion(TrainConfig(loss="weighted-cross-entropy"), half,
                                         small_set_folder.num_classes).class_weights,
                          median_frequency_weights(f_half))
    assert make_criterion(TrainConfig(), small_set_folder, 7).class_weights is None


def test_train_loss_option_is_recorded_and_kept_on_resume(tiny_set, tmp_path, capsys):
    import sys

    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parents[1] / "reliability"))
    from _reliability import tiny_train

    from refinenet_edu.cli import main

    out = tmp_path / "run"
    argv = [a for a in tiny_train(tiny_set, out) if a != "--quiet"]
    assert main([*argv, "--loss", "weighted-cross-entropy"]) == 0
    assert "class weights (median frequency over the training set): background" in capsys.readouterr().out
    recorded = json.loads((out / "provenance.json").read_text())["train_config"]
    assert recorded["loss"] == "weighted-cross-entropy"
    argv[argv.index("--epochs") + 1] = "2"
    assert main([*argv, "--resume", "--loss", "focal"]) == 2
    assert "--loss focal (the run has weighted-cross-entropy)" in capsys.readouterr().err
