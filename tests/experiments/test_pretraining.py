"""Encoder pretraining (``refinenet-edu pretrain``) and ablating from a pretrained encoder."""

from __future__ import annotations

import json

import pytest
import torch

from refinenet_edu.experiments.results import AblationResults
from refinenet_edu.experiments.runner import load_splits
from refinenet_edu.cli import main
from refinenet_edu.nn.config import make_config
from refinenet_edu.datasets.synthetic import generate_dataset
from refinenet_edu.nn.encoders import ResNetEncoder
from refinenet_edu.nn.model import RefineNet
from refinenet_edu.experiments.pretraining import PretrainConfig, class_map, pretrain_encoder, save_encoder
from refinenet_edu.engine.recipes import TrainConfig

CLASSES = ("background", "water", "pavement", "boat", "car", "wire", "dot")


@pytest.fixture(scope="module")
def other_scenes(tmp_path_factory):
    """SynthScenes drawn with another seed: the stand-in for a different pretraining set."""
    return generate_dataset(tmp_path_factory.mktemp("pre") / "scenes", seed=7, size=64, train_count=16, val_count=4)


def test_class_map_merges_boat_and_car_and_keeps_ignore():
    lut, names = class_map(CLASSES, [["boat", "car"]])
    assert names == ["background", "water", "pavement", "boat+car", "wire", "dot"]
    assert lut[:7].tolist() == [0, 1, 2, 3, 3, 4, 5] and lut[255] == 255
    lut, names = class_map(CLASSES, None)
    assert names == list(CLASSES) and lut[:7].tolist() == list(range(7))
    with pytest.raises(ValueError, match="'ship' is not a class"):
        class_map(CLASSES, [["boat", "ship"]])
    with pytest.raises(ValueError, match="at least two"):
        class_map(CLASSES, [["boat"]])
    with pytest.raises(ValueError, match="more than one group"):
        class_map(CLASSES, [["boat", "car"], ["car", "water"]])


def test_pretraining_trains_the_encoder_and_the_model_loads_it(other_scenes, tmp_path):
    train_set, _ = load_splits(str(other_scenes), TrainConfig(crop_size=64))
    lut, names = class_map(train_set.class_names, [["boat", "car"]])
    torch.manual_seed(0)
    encoder = ResNetEncoder("resnet18", width=8)
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    history = pretrain_encoder(encoder, train_set, num_classes=len(names), label_map=lut, log=None,
                               config=PretrainConfig(epochs=2, batch_size=8, device="cpu", precision="fp32"))
    assert [h["epoch"] for h in history] == [1, 2] and all(h["loss"] > 0 for h in history)
    changed = [k for k, v in encoder.state_dict().items() if k.endswith("weight") and not torch.equal(v, before[k])]
    assert "body.conv1.weight" in changed and "body.layer4.1.conv2.weight" in changed

    path = save_encoder(encoder, tmp_path / "enc.pt", {"classes": names})
    assert json.loads((tmp_path / "enc.pt.json").read_text())["classes"] == names
    state = torch.load(path, weights_only=True)
    assert "conv1.weight" in state and state["conv1.weight"].dtype == torch.float16
    model = RefineNet(make_config("course", num_classes=7, encoder_width=8), weights=str(path))
    assert torch.equal(model.encoder.body.conv1.weight, state["conv1.weight"].float())
    # a file for another encoder width is refused, naming the file
    with pytest.raises(ValueError, match="enc.pt: does not match"):
        RefineNet(make_config("course", num_classes=7, encoder_width=16), weights=str(path))
    with pytest.raises(ValueError, match="PretrainConfig.epochs=0"):
        PretrainConfig(epochs=0)


def test_pretrain_command_writes_weights_and_record(other_scenes, tmp_path, capsys):
    out = tmp_path / "enc.pt"
    argv = ["pretrain", "--data", str(other_scenes), "--out", str(out), "--merge", "boat", "car", "--epochs", "1",
            "--encoder-width", "8", "--batch-size", "8", "--crop-size", "64", "--device", "cpu"]
    assert main(argv) == 0
    info = json.loads((tmp_path / "enc.pt.json").read_text())
    assert info["classes"][3] == "boat+car" and info["merge"] == [["boat", "car"]]
    assert info["encoder_width"] == 8 and len(info["history"]) == 1 and info["data"]["sha256"]
    assert info["provenance"]["command"].startswith("refinenet-edu pretrain")
    capsys.readouterr()
    assert main(argv) == 2  # no silent overwrite
    assert "exists; pass --force" in capsys.readouterr().err


def test_ablate_from_a_pretrained_encoder_records_it_in_the_budget(other_scenes, tmp_path, capsys):
    torch.manual_seed(0)
    enc = tmp_path / "enc.pt"
    save_encoder(ResNetEncoder("resnet18", width=8), enc, {})
    tiny = ["--subset", "8", "--epochs", "1", "--crop-size", "64", "--batch-size", "8", "--encoder-width", "8",
            "--widths", "8", "8", "8", "8", "--device", "cpu", "--data", str(other_scenes), "--no-timing",
            "--save-predictions", "none"]
    out = tmp_path / "abl"
    argv = ["ablate", "--variants", "single-crp4", "--seeds", "0", "--out", str(out), *tiny,
            "--encoder-weights", str(enc), "--encoder-lr-ratio", "0.1"]
    assert main(argv) == 0
    budget = AblationResults.load(out).data["budget"]
    assert budget["encoder_weights"]["file"] == "enc.pt" and len(budget["encoder_weights"]["sha256"]) == 64
    assert budget["train"]["encoder_lr_ratio"] == 0.1
    # another encoder into the same results is another budget
    torch.manual_seed(1)
    save_encoder(ResNetEncoder("resnet18", width=8), enc, {})
    capsys.readouterr()
    assert main(argv) == 2
    assert "encoder_weights.sha256" in capsys.readouterr().err
    # a missing file or one for another encoder: a clear error before anything trains
    assert main([*argv[:-4], "--encoder-weights", str(tmp_path / "nope.pt")]) == 2
    assert "nope.pt: no such file" in capsys.readouterr().err
    assert main([*argv[:-4], "--encoder-weights", str(enc), "--encoder-width", "16"]) == 2
    assert "does not match" in capsys.readouterr().err


def test_train_now_can_start_from_the_pretrained_encoder(other_scenes, tmp_path, monkeypatch):
    """The dashboard's "train now" follows the same protocol when given the encoder and the lr ratio."""
    from refinenet_edu.engine import loop as training
    from refinenet_edu.viz.dashboard import default_trainer

    torch.manual_seed(3)
    encoder = ResNetEncoder("resnet18", width=32)  # the course preset's encoder
    path = save_encoder(encoder, tmp_path / "enc.pt", {})
    seen = {}

    def fake_train(model, train_set, val_set, cfg, **kwargs):
        seen["conv1"] = model.encoder.body.conv1.weight.detach().clone()
        seen["ratio"] = cfg.encoder_lr_ratio
        return training.TrainResult(history=[{"epoch": 1, "loss": 1.0}], device="cpu", precision="float32")

    monkeypatch.setattr(training, "train", fake_train)
    out = default_trainer("single-crp4", epochs=1, data=str(other_scenes), subset=8, crop_size=64, batch_size=8,
                          device="cpu", progress=False, encoder_weights=str(path), encoder_lr_ratio=0.1)
    assert seen["ratio"] == 0.1
    assert torch.equal(seen["conv1"], torch.load(path, weights_only=True)["conv1.weight"].float())
    assert out["predictions"].shape[0] == 2
