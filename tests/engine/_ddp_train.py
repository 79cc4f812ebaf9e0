"""Run under torchrun by tests/engine/test_distributed.py: 2 CPU processes, gloo."""

import json
import os
import sys

import torch
import torch.distributed as dist

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/, for _toy
from _toy import Squares  # noqa: E402

from refinenet_edu import build_refinenet  # noqa: E402
from refinenet_edu.engine.metrics import ConfusionMatrix  # noqa: E402
from refinenet_edu.engine.loop import train  # noqa: E402
from refinenet_edu.engine.recipes import TrainConfig  # noqa: E402

out = sys.argv[1]
torch.manual_seed(0)
model = build_refinenet("course", num_classes=3, encoder_width=8, widths=(8, 8, 8, 16), crp_blocks=2)
data = Squares(n=8)
cfg = TrainConfig(epochs=2, batch_size=2, optimizer="adam", lr=3e-3, encoder_lr_ratio=1.0, crop_size=48,
                  precision="fp32", device="cpu")
result = train(model, data, data, cfg, out_dir=out, progress=False)
rank = dist.get_rank()
# The same validation confusion matrix, reduced across both processes.
cm = ConfusionMatrix(3)
cm.update(torch.full((10,), rank), torch.full((10,), rank))
cm.reduce()
checksum = float(sum(p.detach().double().sum() for p in model.parameters()))
with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
    json.dump({"world": dist.get_world_size(), "history": result.history, "checksum": checksum,
               "reduced_diagonal": cm.matrix.diag().tolist()}, f)
dist.destroy_process_group()
