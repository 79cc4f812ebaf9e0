"""Pilot only: (1) pretrain the narrow encoder once with an FCN-32s head (1x1 conv on the 1/32 features,
upsampled x32), the same for every variant; (2) train variants from that encoder with the official
recipe's encoder lr ratio 0.1; (3) score them like `ablate` does. Usage: DATA OUT VARIANT [VARIANT ...]

Every step is the library's: refinenet_edu.experiments.pretraining.pretrain_encoder (which
`refinenet-edu pretrain` runs) and refinenet_edu.experiments.runner.train_variant (which `refinenet-edu ablate` runs).
The runs recorded in d-pretrained-encoder.json were made by this script's first form (commit d67706f: its
own loops, the same budget); its random draws differ from the library's, so a rerun gives other numbers.
"""
import json
import os
import sys
import time
from pathlib import Path

import torch

from refinenet_edu.experiments.runner import budget_for, load_splits, train_variant
from refinenet_edu.nn.encoders import ResNetEncoder
from refinenet_edu.engine.runtime import cpu_threads
from refinenet_edu.experiments.pretraining import PretrainConfig, pretrain_encoder, save_encoder

data, out = sys.argv[1], Path(sys.argv[2])
variants = sys.argv[3:]
out.mkdir(parents=True, exist_ok=True)
over = {"encoder_width": 16, "widths": (16, 16, 24, 32)}
cfg = budget_for("course", crop_size=256, device="cpu")
SEED = int(os.environ.get("SEED", "0"))
with cpu_threads(int(os.environ.get("THREADS", "2"))):
    train_set, val_set = load_splits(data, cfg, None)
    enc_path = out / "encoder.pt"
    if not enc_path.exists():
        torch.manual_seed(100)
        encoder = ResNetEncoder("resnet18", width=over["encoder_width"])
        epochs = int(os.environ.get("PRE_EPOCHS", "10"))  # the recorded pilot used 10
        history = pretrain_encoder(encoder, train_set, num_classes=7, config=PretrainConfig(
            epochs=epochs, lr=2e-3, batch_size=16, seed=100, device="cpu", precision="bf16", num_workers=1))
        save_encoder(encoder, enc_path, {"pilot": "D", "history": history})
    res_path = out / "results.json"
    results = json.loads(res_path.read_text()) if res_path.exists() else []
    for v in variants:
        tcfg = cfg.replace(encoder_lr_ratio=0.1, eval_every=int(os.environ.get("EVAL_EVERY", "1")))
        t0 = time.time()
        record, _, _ = train_variant(v, SEED, train_config=tcfg, model_overrides=over, datasets=(train_set, val_set),
                                     progress=True, encoder_weights=enc_path)
        rec = {"variant": v, "seed": SEED, "miou": record["miou"], "iou": record["iou"],
               "boundary_miou_2": record["boundary_miou"]["2"], "train_seconds": time.time() - t0}
        print(v, json.dumps(rec), flush=True)
        results.append(rec)
        res_path.write_text(json.dumps(results, indent=1))
