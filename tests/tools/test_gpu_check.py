"""benchmarks/gpu_check.py, the GPU check of issue 25: its dry run works end to end on a CPU (so the script
cannot rot between the rare runs on a GPU), and its memory estimate behaves as memory does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

from gpu_check import estimate_training_memory  # noqa: E402


def test_the_memory_estimate_grows_with_the_batch_and_shrinks_in_float16():
    kw = dict(preset="course", crop=96, num_classes=7, optimizer="adam")
    one, two, four = (estimate_training_memory(batch=b, **kw) for b in (1, 2, 4))
    full = estimate_training_memory(batch=2, dtype=torch.float32, **kw)
    assert two["weights"] == one["weights"] > 0 and two["optimizer"] == 2 * two["gradients"]  # AdamW: 2 moments
    assert two["weight_copies"] == one["weight_copies"] > 0  # autocast's float16 copies of the conv weights
    assert full["weight_copies"] == 0  # float32 uses the weights themselves
    # activations grow linearly with the batch
    assert four["saved_activations"] == pytest.approx(2 * two["saved_activations"], rel=0.02)
    assert two["saved_activations"] == pytest.approx(2 * one["saved_activations"], rel=0.02)
    assert full["saved_activations"] > 1.5 * two["saved_activations"]  # float16 keeps 2 bytes where float32 keeps 4
    assert two["total"] == sum(v for k, v in two.items() if k != "total")
    sgd = estimate_training_memory(batch=2, **{**kw, "optimizer": "sgd"})
    assert sgd["optimizer"] == sgd["gradients"]  # SGD: one momentum buffer


@pytest.mark.slow
def test_the_gpu_check_dry_run_runs_every_step_on_a_cpu(tmp_path):
    out = tmp_path / "check"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--dry-run", "--out", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["dry_run"] and report["steps"] == ["notebooks", "course", "official", "t4", "ablate"]
    assert [nb["ok"] for nb in report["notebooks"]] == [True]
    assert report["course"]["epochs_run"] == 1
    for key in ("official", "t4"):
        assert all(r["images_per_second"] > 0 for r in report[key]["runs"]), report[key]
    assert report["t4"]["memory_cap_gib"] == 15.0
    assert report["ablate"]["exit_code"] == 0 and report["ablate"]["runs"] == 2
    table = out.with_suffix(".md").read_text()
    env_info = report["environment"]
    assert "DRY RUN" in table and env_info["torch"] in table and env_info["commit"] in table
    assert table.count("| official ResNet-101") == 2 and "ablation grid, 2 runs" in table
