"""Training with DistributedDataParallel, launched by torchrun: 2 CPU processes (gloo)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent


def test_two_process_ddp_training(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parents[1]), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(HERE / "_ddp_train.py"), str(tmp_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    r0 = json.loads((tmp_path / "rank0.json").read_text())
    r1 = json.loads((tmp_path / "rank1.json").read_text())
    assert r0["world"] == r1["world"] == 2
    # DDP keeps the replicas identical; the loss and mIoU are reduced across processes.
    assert abs(r0["checksum"] - r1["checksum"]) < 1e-6 * max(1.0, abs(r0["checksum"]))
    assert [h["loss"] for h in r0["history"]] == [h["loss"] for h in r1["history"]]
    assert [h["miou"] for h in r0["history"]] == [h["miou"] for h in r1["history"]]
    assert r0["reduced_diagonal"] == r1["reduced_diagonal"] == [10, 10, 0]
    # Only rank 0 writes checkpoints and history.
    assert (tmp_path / "last.pt").is_file() and (tmp_path / "history.json").is_file()
