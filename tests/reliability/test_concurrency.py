"""Two commands on one output never lose each other's work (issue 16, finding 1).

Every writing command holds the lock of its output (refinenet_edu.engine.locks);
a second one stops at once with a one-line message naming the holder, and the
lock of a killed process is taken over. ``ablate`` runs may share a results
folder: each write re-reads results.json under the lock and merges.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from _reliability import popen, tiny_ablate, tiny_train
from refinenet_edu.cli import main
from refinenet_edu.engine.locks import LockHeld, lock_path, output_lock

HOLD = (
    "import sys, time\n"
    "from refinenet_edu.engine.locks import output_lock\n"
    "with output_lock(sys.argv[1], command='refinenet-edu train --out x'):\n"
    "    print('locked', flush=True)\n"
    "    time.sleep(60)\n"
)


@pytest.fixture
def holder(tmp_path):
    """A separate process that holds the lock of tmp_path/'out' until killed."""
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    yield out, proc
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def test_a_held_lock_is_refused_naming_its_holder(holder):
    out, proc = holder
    with pytest.raises(LockHeld) as info:
        with output_lock(out):
            pass
    message = str(info.value)
    assert f"pid {proc.pid}" in message and "refinenet-edu train --out x" in message and str(out) in message


def test_the_lock_of_a_killed_process_is_taken_over(holder):
    out, proc = holder
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert lock_path(out).is_file()  # kill -9 left the file behind, naming the dead process
    assert json.loads(lock_path(out).read_text())["pid"] == proc.pid
    with output_lock(out):
        assert json.loads(lock_path(out).read_text())["pid"] == os.getpid()
    assert not lock_path(out).exists()  # released: removed


def test_a_lock_file_naming_a_dead_process_is_taken_over(tmp_path):
    out = tmp_path / "out"
    lock_path(out).write_text(json.dumps({"pid": 2**22 + 12345, "host": "here", "command": "old"}))
    with output_lock(out):
        pass


@pytest.mark.parametrize("command", ["train", "predict", "evaluate", "data", "pretrain", "ablate-save"])
def test_every_writing_command_refuses_an_output_another_one_writes(command, tiny_set, tiny_checkpoint, tmp_path,
                                                                    capsys, monkeypatch):
    out = tmp_path / "out"
    image = next((tiny_set / "JPEGImages").glob("val_*.jpg"))
    argv = {
        "train": tiny_train(tiny_set, out),
        "predict": ["predict", str(tiny_checkpoint), str(image), "--out", str(out)],
        "evaluate": ["evaluate", str(tiny_checkpoint), "--data", str(tiny_set), "--out", str(out), "--quiet"],
        "data": ["data", "--out", str(out), "--count", "4", "--size", "32"],
        "pretrain": ["pretrain", "--data", str(tiny_set), "--out", str(out), "--epochs", "1", "--batch-size", "4",
                     "--crop-size", "32", "--encoder-width", "8", "--device", "cpu"],
        "ablate-save": tiny_ablate(tiny_set, out),
    }[command]
    if command == "ablate-save":  # ablate waits for the lock around each write of results.json, then gives up
        monkeypatch.setattr("refinenet_edu.experiments.results.RESULTS_LOCK_WAIT", 0.2)
    with output_lock(out, command="refinenet-edu other"):
        assert main(argv) == 2
    err = capsys.readouterr().err
    assert "another refinenet-edu command is writing it" in err and "refinenet-edu other" in err
    assert "Traceback" not in err
    assert not out.exists() or command == "ablate-save" and not (out / "results.json").exists()


def test_two_trains_into_one_folder_the_second_is_refused(tiny_set, tmp_path, capsys):
    out = tmp_path / "run"
    first = popen(*tiny_train(tiny_set, out, "--epochs", "3"))
    deadline = time.monotonic() + 60
    while not lock_path(out).exists():
        assert first.poll() is None and time.monotonic() < deadline, first.communicate()
        time.sleep(0.02)
    assert main(tiny_train(tiny_set, out, "--seed", "1", "--epochs", "3")) == 2  # the second, while the first runs
    err2 = capsys.readouterr().err
    _, err1 = first.communicate(timeout=120)
    assert first.returncode == 0, err1
    assert "another refinenet-edu command is writing it" in err2 and f"pid {first.pid}" in err2, err2
    # one run's files only: best.pt, last.pt and history.json agree
    import torch

    last = torch.load(out / "last.pt", weights_only=True)
    history = json.loads((out / "history.json").read_text())
    assert [h["loss"] for h in last["history"]] == [h["loss"] for h in history] and len(history) == 3
    assert last["train_config"]["seed"] == 0


def test_two_ablates_into_one_folder_keep_both_runs(tiny_set, tmp_path):
    out = tmp_path / "grid"
    procs = [popen(*tiny_ablate(tiny_set, out, "--seeds", str(seed))) for seed in (0, 1)]
    errs = [p.communicate(timeout=180)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errs
    runs = json.loads((out / "results.json").read_text())["runs"]
    assert sorted((r["variant"], r["seed"]) for r in runs) == [("4-cascaded-crp4", 0), ("4-cascaded-crp4", 1)]
    invocations = json.loads((out / "results.json").read_text())["provenance"]["invocations"]
    assert len(invocations) == 2


def test_ablate_merges_what_another_ablate_wrote_while_it_trained(tiny_set, tmp_path, monkeypatch):
    """Deterministic: while seed 0 trains, a second invocation finishes seed 1 into the same folder."""
    import refinenet_edu.experiments.runner as ablation

    out = tmp_path / "grid"
    real = ablation._run_spec
    calls = []

    def run_spec(spec):
        calls.append(spec.seed)
        if spec.seed == 0:
            assert main(tiny_ablate(tiny_set, out, "--seeds", "1")) == 0  # the "other" ablate, start to end
        return real(spec)

    monkeypatch.setattr(ablation, "_run_spec", run_spec)
    assert main(tiny_ablate(tiny_set, out, "--seeds", "0")) == 0
    runs = json.loads((out / "results.json").read_text())["runs"]
    assert sorted(r["seed"] for r in runs) == [0, 1]
    assert calls == [0, 1]


def test_train_export_is_locked_from_the_start(tiny_set, tmp_path, capsys):
    """``train --export FILE``: a FILE another command writes is refused before training, not after it."""
    export = tmp_path / "model.pt"
    run = tmp_path / "run"
    with output_lock(export, command="refinenet-edu other"):
        assert main([*tiny_train(tiny_set, run), "--export", str(export)]) == 2
    err = capsys.readouterr().err
    assert "another refinenet-edu command is writing it" in err and str(export) in err and "Traceback" not in err
    assert not export.exists() and not (run / "last.pt").exists()

    (tmp_path / "afolder").mkdir()
    assert main([*tiny_train(tiny_set, run), "--export", str(tmp_path / "afolder")]) == 2
    err = capsys.readouterr().err
    assert "--export" in err and "is a folder" in err and not (run / "last.pt").exists()

    assert main([*tiny_train(tiny_set, run), "--export", str(export)]) == 0
    assert export.is_file() and (tmp_path / "model.pt.json").is_file()
