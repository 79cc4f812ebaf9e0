"""Failures mid-run lose nothing and records never lie (issue 16, findings 5, 6 and 8; 7 for disks and Ctrl-C).

Same seed, same history; a resume records what it really used and refuses what
it cannot honour; no checkpoint is promised that was not written; inf or NaN
weights are never written; a failed ablate does not poison its folder; a full
or read-only disk and Ctrl-C end with one line (exit 2, 130) and leave no
temporary behind; the temporaries of a killed run are removed by the next run.
"""

from __future__ import annotations

import errno
import json
import os
import tempfile

import pytest
import torch

from _reliability import tiny_ablate, tiny_train
from _toy import Squares
from refinenet_edu.cli import main


def _temporaries(folder):
    return [p for p in folder.rglob("*") if p.name.endswith(".tmp") or ".partial-" in p.name]


def test_the_same_seed_gives_the_same_history(tiny_set, tmp_path):
    for name in ("a", "b"):
        assert main(tiny_train(tiny_set, tmp_path / name, "--seed", "0")) == 0
    a, b = (json.loads((tmp_path / n / "history.json").read_text()) for n in ("a", "b"))
    assert a[0]["loss"] == b[0]["loss"]
    assert a[0]["miou"] == b[0]["miou"]


def _set(argv, option, value):
    """``argv`` with ``option`` set to ``value`` (replaced, or appended)."""
    argv = list(argv)
    if option in argv:
        argv[argv.index(option) + 1] = str(value)
    else:
        argv += [option, str(value)]
    return argv


def test_resume_refuses_options_it_cannot_honour_and_records_what_it_used(tiny_set, tmp_path, capsys):
    out = tmp_path / "run"
    two_epochs = _set(tiny_train(tiny_set, out, "--lr", "0.002"), "--epochs", 2)
    assert main(_set(two_epochs, "--max-minutes", "0.0001")) == 0  # stops after epoch 1: the time budget
    assert len(json.loads((out / "history.json").read_text())) == 1
    before = (out / "last.pt").read_bytes()
    for option, value in (("--lr", "1e6"), ("--epochs", "5"), ("--batch-size", "2"), ("--seed", "3")):
        assert main(_set([*two_epochs, "--resume"], option, value)) == 2
        err = capsys.readouterr().err
        assert f"{option} " in err and "cannot honour" in err and "Traceback" not in err
        assert (out / "last.pt").read_bytes() == before
    assert main([*two_epochs, "--resume"]) == 0  # the run's own options: it continues at its own schedule
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["train_config"]["lr"] == 0.002 and prov["train_config"]["epochs"] == 2
    history = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]


def test_divergence_names_the_checkpoint_it_kept_or_says_none_was_written(tmp_path):
    from refinenet_edu.nn.config import make_config
    from refinenet_edu.nn.model import RefineNet
    from refinenet_edu.engine.loop import TrainingDiverged, train
    from refinenet_edu.engine.recipes import TrainConfig

    cfg = TrainConfig(epochs=2, batch_size=2, crop_size=32, device="cpu", precision="fp32", channels_last=False)
    config = make_config("course", num_classes=3, encoder_width=8, widths=(8, 8, 8, 16))
    with pytest.raises(TrainingDiverged) as info:  # NaN from the first batch on
        train(RefineNet(config), Squares(4, size=32, poison_after=0), None, cfg, out_dir=tmp_path / "a", progress=False)
    assert "No checkpoint was written" in str(info.value) and "kept" not in str(info.value)
    assert not (tmp_path / "a" / "last.pt").exists()
    with pytest.raises(TrainingDiverged) as info:  # NaN in the second epoch: epoch 1 is on disk
        train(RefineNet(config), Squares(4, size=32, poison_after=4), None, cfg, out_dir=tmp_path / "b", progress=False)
    assert f"last good checkpoint is kept: {tmp_path / 'b' / 'last.pt'} (epoch 1)" in str(info.value)
    assert torch.load(tmp_path / "b" / "last.pt", weights_only=True)["epoch"] == 0


def test_pretrain_that_diverges_writes_nothing(tiny_set, tmp_path, capsys):
    out = tmp_path / "encoder.pt"
    assert main(["pretrain", "--data", str(tiny_set), "--out", str(out), "--epochs", "1", "--batch-size", "4",
                 "--crop-size", "32", "--encoder-width", "8", "--device", "cpu", "--precision", "fp32",
                 "--lr", "1e6"]) == 2
    err = capsys.readouterr().err
    assert str(out) in err and ("inf or NaN" in err or "diverged" in err) and "Traceback" not in err
    assert sorted(os.listdir(tmp_path)) == []


def test_non_finite_weights_are_never_written(tmp_path):
    from refinenet_edu.engine.checkpoints import NonFiniteWeights, save_checkpoint
    from refinenet_edu.nn.config import make_config
    from refinenet_edu.nn.model import RefineNet

    model = RefineNet(make_config("course", num_classes=3, encoder_width=8, widths=(8, 8, 8, 16)))
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] = 1e6  # fine in float32, inf in float16
    save_checkpoint(tmp_path / "full.pt", model)
    with pytest.raises(NonFiniteWeights, match="half.pt"):
        save_checkpoint(tmp_path / "half.pt", model, half=True)
    assert sorted(os.listdir(tmp_path)) == ["full.pt"]


def test_a_failed_ablate_does_not_poison_its_folder(tiny_set, tmp_path, capsys):
    out = tmp_path / "grid"
    argv = tiny_ablate(tiny_set, out)
    argv[argv.index("--batch-size") + 1] = "1"  # batch 1 at 1/32 of a 32 px crop: batch norm fails in the first step
    assert main(argv) == 2
    assert json.loads((out / "results.json").read_text())["runs"] == []
    capsys.readouterr()
    assert main(tiny_ablate(tiny_set, out)) == 0, capsys.readouterr().err  # the correct budget is not refused
    assert len(json.loads((out / "results.json").read_text())["runs"]) == 1


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
def test_a_full_or_read_only_disk_is_one_line_and_leaves_no_temporary(code, tiny_set, tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    real = torch.save

    def save(obj, f, *args, **kwargs):  # the disk fills up (or turns read-only) while last.pt is written
        if isinstance(obj, dict) and "optimizer" in obj:  # last.pt (best.pt has no optimizer state)
            raise OSError(code, os.strerror(code))
        return real(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    assert main(tiny_train(tiny_set, out)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert str(out / "last.pt") in err and ("disk is full" in err if code == errno.ENOSPC else "read-only" in err)
    assert _temporaries(out) == []


def test_an_unwritable_output_folder_is_one_line(tiny_checkpoint, tiny_set, tmp_path, capsys, monkeypatch):
    image = next((tiny_set / "JPEGImages").glob("val_*.jpg"))
    real = tempfile.mkstemp

    def mkstemp(*args, dir=None, **kwargs):
        if dir is not None and str(dir).startswith(str(tmp_path / "masks")):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(dir))
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    assert main(["predict", str(tiny_checkpoint), str(image), "--out", str(tmp_path / "masks")]) == 2
    err = capsys.readouterr().err
    assert "permission denied" in err and str(tmp_path / "masks") in err and "Traceback" not in err


def test_ctrl_c_exits_130_and_says_what_was_kept(tiny_set, tmp_path, capsys, monkeypatch):
    from refinenet_edu.datasets.voc import VOCSegmentationFolder

    out = tmp_path / "run"
    real = VOCSegmentationFolder.__getitem__
    reads = []

    def getitem(self, index):
        reads.append(index)
        if len(reads) > 5 and self.split == "train":  # in the second epoch (4 images, then 1 val)
            raise KeyboardInterrupt
        return real(self, index)

    monkeypatch.setattr(VOCSegmentationFolder, "__getitem__", getitem)
    argv = tiny_train(tiny_set, out)
    argv[argv.index("--epochs") + 1] = "3"
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "keeps epoch 1 of 3" in err and "--resume" in err and "Traceback" not in err
    monkeypatch.setattr(VOCSegmentationFolder, "__getitem__", real)
    assert main([*argv, "--resume"]) == 0
    assert len(json.loads((out / "history.json").read_text())) == 3


def test_the_temporaries_of_a_killed_run_are_removed_by_the_next(tiny_set, tiny_checkpoint, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    stale = [run / ".last.pt.k3x_9q2a.tmp", run / ".history.json.abcdefgh.tmp"]
    for p in stale:
        p.write_bytes(b"\0" * 1000)
    mine = run / ".notes.tmp"  # not one of ours: kept
    mine.write_text("mine")
    assert main(tiny_train(tiny_set, run)) == 0
    assert not any(p.exists() for p in stale) and mine.exists()

    data = tmp_path / "set"
    partial = tmp_path / ".set.partial-x1y2z3ab"
    (partial / "JPEGImages").mkdir(parents=True)
    assert main(["data", "--out", str(data), "--count", "4", "--size", "32"]) == 0
    assert not partial.exists()

    masks = tmp_path / "masks"
    (masks / "overlays").mkdir(parents=True)
    leftovers = [masks / ".val_00000.png.q1w2e3r4.tmp", masks / "overlays" / ".val_00000.png.q1w2e3r4.tmp"]
    for p in leftovers:
        p.write_bytes(b"x")
    image = next((tiny_set / "JPEGImages").glob("val_*.jpg"))
    assert main(["predict", str(tiny_checkpoint), str(image), "--out", str(masks)]) == 0
    assert not any(p.exists() for p in leftovers)
