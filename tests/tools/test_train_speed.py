"""benchmarks/train_speed.py, the course recipe's speed benchmark: its smoke run measures every side end to end
(so the script cannot rot between the runs behind docs/benchmarks.md), and the optimizer it compares against is
the library's own with only the update's implementation changed."""

from __future__ import annotations

import copy
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from refinenet_edu.engine.recipes import RECIPES, make_optimizer
from refinenet_edu.nn.model import build_refinenet

ROOT = Path(__file__).resolve().parents[2]


def test_the_fused_and_the_foreach_optimizer_make_the_same_update():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from train_speed import optimizer

    cfg = RECIPES["course"]
    torch.manual_seed(0)
    fused_model = build_refinenet("course", num_classes=7).eval()  # eval: no dropout draws, the same forward
    foreach_model = copy.deepcopy(fused_model)
    fused, foreach = make_optimizer(fused_model, cfg), optimizer(foreach_model, cfg, fused=False)
    assert [g["fused"] for g in fused.param_groups] == [True, True]
    assert [g["fused"] for g in foreach.param_groups] == [False, False]
    x, y = torch.randn(2, 3, 64, 64), torch.randint(0, 7, (2, 64, 64))
    for _ in range(3):
        for model, opt in ((fused_model, fused), (foreach_model, foreach)):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    for a, b in zip(fused_model.parameters(), foreach_model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_the_smoke_run_measures_every_side(tmp_path):
    out = tmp_path / "speed.json"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "train_speed.py"), "--smoke", "--json", str(out)],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    record = json.loads(out.read_text())
    figures = [*record["data_ms_per_image"].values(), *record["step_ms_per_image"].values(),
               *record["epoch_seconds"].values(), record["validation_seconds"], record["peak_tflops"],
               record["step_flops_per_image"]]
    assert len(figures) == 3 + 2 + 3 + 3 and all(math.isfinite(f) and f > 0 for f in figures)
    assert set(record["speedup"]) == {"step", "epoch"}
    assert record["provenance"]["commit"]
    assert f"of the {record['precision']} peak" in run.stdout and "outside the step" in run.stdout
