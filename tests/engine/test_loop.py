"""The training loop: it learns, resumes exactly, and fails clearly."""

from __future__ import annotations

import json
import math

import pytest
import torch

from refinenet_edu import build_refinenet
from refinenet_edu.engine.checkpoints import load_checkpoint, load_model, save_checkpoint
from refinenet_edu.engine.loop import TrainingDiverged, TrainingInterrupted, train
from refinenet_edu.engine.recipes import TrainConfig

from _toy import Squares

TINY = dict(encoder_width=8, widths=(8, 8, 8, 16), crp_blocks=2, encoder_dropout=0.0, classifier_dropout=0.0)


def _cfg(**kw):
    base = dict(epochs=2, batch_size=2, optimizer="adam", lr=3e-3, encoder_lr_ratio=1.0, crop_size=48,
                precision="fp32", device="cpu", seed=0)
    base.update(kw)
    return TrainConfig(**base)


def test_overfits_a_tiny_batch():
    torch.manual_seed(0)
    data = Squares(n=2)
    model = build_refinenet("course", num_classes=3, **TINY)
    result = train(model, data, data, _cfg(epochs=60, batch_size=2, lr=5e-3), progress=False)
    losses = [h["loss"] for h in result.history]
    assert losses[-1] < 0.25 * losses[0]
    assert result.final_miou > 0.9


def _model():
    torch.manual_seed(0)
    return build_refinenet("course", num_classes=3, **TINY)


def test_resume_continues_exactly(tmp_path):
    data = Squares(n=4)
    straight = train(_model(), data, data, _cfg(epochs=3), out_dir=tmp_path / "straight", progress=False)
    # Interrupted after epoch 1 (a time budget of 0 stops after the first epoch) ...
    partial = tmp_path / "partial"
    first = train(_model(), data, data, _cfg(epochs=3, max_minutes=0.0), out_dir=partial, progress=False)
    assert len(first.history) == 1
    # ... then resumed in a fresh model, with the global RNG somewhere else.
    model = build_refinenet("course", num_classes=3, **TINY)
    torch.manual_seed(123)
    resumed = train(model, data, data, _cfg(epochs=3), out_dir=partial, resume=True, progress=False)
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in straight.history]
    assert [h["miou"] for h in resumed.history] == [h["miou"] for h in straight.history]
    history = json.loads((partial / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3]


def test_checkpoint_rebuilds_its_model(tmp_path):
    data = Squares(n=2)
    model = build_refinenet("course", num_classes=3, **TINY)
    train(model, data, data, _cfg(epochs=1), out_dir=tmp_path, progress=False)
    rebuilt = load_model(tmp_path / "best.pt")
    assert not rebuilt.training
    x = torch.randn(1, 3, 48, 48)
    model.eval()
    torch.testing.assert_close(rebuilt(x), model(x))
    half = save_checkpoint(tmp_path / "half.pt", model, half=True)
    assert half.stat().st_size < (tmp_path / "best.pt").stat().st_size * 0.7
    torch.testing.assert_close(load_model(half)(x), model(x), atol=0.05, rtol=0.05)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    data = Squares(n=4, poison_after=4)  # epoch 1 trains cleanly; epoch 2 reads poisoned images
    model = build_refinenet("course", num_classes=3, **TINY)
    with pytest.raises(TrainingDiverged, match=r"loss became nan in epoch 2.*last good checkpoint is kept"):
        train(model, data, None, _cfg(epochs=3), out_dir=tmp_path, progress=False)
    ckpt = load_checkpoint(tmp_path / "last.pt")
    assert ckpt["epoch"] == 0
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())


def test_a_nan_loss_in_float32_does_not_advise_float32(tmp_path):
    data = Squares(n=4, poison_after=4)
    with pytest.raises(TrainingDiverged) as stopped:
        train(_model(), data, None, _cfg(epochs=3), out_dir=tmp_path, progress=False)
    assert str(stopped.value).endswith("Lower the learning rate (now lr=0.003).")


def test_ctrl_c_stops_with_one_line_that_says_how_to_go_on(tmp_path):
    data = Squares(n=4)

    def press_ctrl_c(record):
        if record["epoch"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(TrainingInterrupted) as stopped:
        train(_model(), data, data, _cfg(epochs=3), out_dir=tmp_path, progress=False, on_epoch=press_ctrl_c)
    assert isinstance(stopped.value, KeyboardInterrupt)  # scripts and commands stop as before
    assert str(stopped.value) == (f"training interrupted in epoch 3; {tmp_path / 'last.pt'} holds epoch 2: "
                                  "train(..., resume=True) goes on from there")
    assert stopped.value._render_traceback_() == [f"KeyboardInterrupt: {stopped.value}"]  # what IPython prints
    resumed = train(_model(), data, data, _cfg(epochs=3), out_dir=tmp_path, resume=True, progress=False)
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3]


def test_sigterm_in_the_command_line_is_not_rewritten(tmp_path):
    from refinenet_edu.cli.errors import Terminated

    def terminate(record):
        raise Terminated()

    with pytest.raises(Terminated):
        train(_model(), Squares(n=4), None, _cfg(epochs=2), progress=False, on_epoch=terminate)


def test_out_of_memory_says_what_to_lower(monkeypatch):
    data = Squares(n=2)
    model = build_refinenet("course", num_classes=3, **TINY)

    def oom(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(model, "forward", oom)
    with pytest.raises(RuntimeError, match=r"out of memory.*lower --batch-size \(e.g. 1\)"):
        train(model, data, None, _cfg(epochs=1), progress=False)


def test_class_count_mismatch_is_refused(tmp_path):
    with pytest.raises(ValueError, match="predicts 5 classes but the training set has 3"):
        train(build_refinenet("course", num_classes=5, **TINY), Squares(), None, _cfg(), progress=False)
    model = build_refinenet("course", num_classes=3, **TINY)
    save_checkpoint(tmp_path / "m.pt", model)
    with pytest.raises(ValueError, match="predicts 3 classes but the dataset has 21"):
        load_model(tmp_path / "m.pt", num_classes=21)


def test_corrupt_and_foreign_checkpoints_are_refused(tmp_path):
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x80\x02garbage")
    with pytest.raises(ValueError, match="corrupt.pt: refused, not a PyTorch checkpoint: it is a pickle"):
        load_checkpoint(corrupt)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}}, foreign)
    with pytest.raises(ValueError, match="foreign.pt: not a refinenet-edu checkpoint"):
        load_checkpoint(foreign)
    model = build_refinenet("course", num_classes=3, **TINY)
    good = save_checkpoint(tmp_path / "good.pt", model)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ValueError, match="truncated.pt: refused, a truncated or damaged zip archive"):
        load_checkpoint(truncated)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_checkpoint(tmp_path / "missing.pt")


def test_bad_training_options():
    with pytest.raises(ValueError, match="optimizer='rmsprop'"):
        TrainConfig(optimizer="rmsprop")
    with pytest.raises(ValueError, match="batch_size=0"):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="precision='fp16'.*CUDA"):
        train(build_refinenet("course", num_classes=3, **TINY), Squares(), None, _cfg(precision="fp16"), progress=False)
    with pytest.raises(ValueError, match="device='cuda'"):
        if torch.cuda.is_available():
            raise ValueError("device='cuda' (skipped: CUDA present)")
        train(build_refinenet("course", num_classes=3, **TINY), Squares(), None, _cfg(device="cuda"), progress=False)


def test_bf16_autocast_trains_on_cpu():
    data = Squares(n=2)
    result = train(build_refinenet("course", num_classes=3, **TINY), data, data, _cfg(epochs=2, precision="bf16"),
                   progress=False)
    assert result.precision == "bfloat16"
    assert all(math.isfinite(h["loss"]) for h in result.history)


def test_poly_schedule_ends_at_zero_when_the_last_partial_batch_is_dropped(tmp_path):
    data = Squares(n=5)  # batch 2: 2 steps per epoch, one image dropped
    result = train(_model(), data, None, _cfg(epochs=2, warmup_epochs=0.5), out_dir=tmp_path, progress=False)
    ckpt = load_checkpoint(tmp_path / "last.pt")
    assert ckpt["scheduler"]["last_epoch"] == 4  # 2 epochs x 2 real steps
    assert result.history[-1]["lr"] == pytest.approx(0.0, abs=1e-12)


def test_checkpoints_from_python_record_the_dataset(tmp_path):
    train(_model(), Squares(n=2), None, _cfg(epochs=1), out_dir=tmp_path, progress=False)
    info = load_checkpoint(tmp_path / "last.pt")["dataset"]
    assert info["class_names"] == ["grey", "square", "bar"] and info["num_classes"] == 3
    assert info["palette"][1] == [255, 255, 255]


def test_on_epoch_sees_each_saved_epoch(tmp_path):
    data = Squares(n=2)
    seen = []

    def on_epoch(record):
        seen.append(record)
        # called once the epoch is saved: its checkpoint and history are on disk already
        assert json.loads((tmp_path / "history.json").read_text())[-1]["epoch"] == record["epoch"]

    result = train(_model(), data, data, _cfg(epochs=3), out_dir=tmp_path, progress=False, on_epoch=on_epoch)
    assert [r["epoch"] for r in seen] == [1, 2, 3]
    assert seen == result.history


def test_a_notebook_shows_the_interruption_as_one_line(tmp_path, capsys):
    interactive = pytest.importorskip("IPython.core.interactiveshell").InteractiveShell
    code = ("from refinenet_edu.engine.loop import TrainingInterrupted\n"
            "raise TrainingInterrupted('training interrupted in epoch 3; nothing was saved')")
    try:
        interactive.instance().run_cell(code)
    finally:
        interactive.clear_instance()  # no IPython left behind for the tests that follow (ipywidgets asks for one)
    shown = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert shown == ["KeyboardInterrupt: training interrupted in epoch 3; nothing was saved"]
