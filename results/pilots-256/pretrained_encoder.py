"""Pilot only: (1) pretrain the narrow encoder once with an FCN-32s head (1x1 conv on the 1/32 features,
upsampled x32), the same for every variant; (2) train variants from that encoder with the official
recipe's encoder lr ratio 0.1; (3) score them like `ablate` does. Usage: DATA OUT VARIANT [VARIANT ...]"""
import json
import os
import sys
import time
from pathlib import Path
import torch, torch.nn as nn, torch.nn.functional as F
from torch.utils.data import DataLoader
from refinenet_edu.ablation import load_splits, budget_for, parse_variant, _model_config, BANDS
from refinenet_edu.model import RefineNet
from refinenet_edu.engine.evaluation import evaluate
from refinenet_edu.engine.loop import train

torch.set_num_threads(int(os.environ.get("THREADS", "2")))
data, out = sys.argv[1], Path(sys.argv[2]); variants = sys.argv[3:]
out.mkdir(parents=True, exist_ok=True)
over = {"encoder_width": 16, "widths": (16, 16, 24, 32)}
cfg = budget_for("course", crop_size=256, device="cpu")
train_set, val_set = load_splits(data, cfg, None)
enc_path = out / "encoder.pt"
if not enc_path.exists():
    torch.manual_seed(100)
    m = RefineNet(_model_config(parse_variant("4-cascaded-crp4"), "course", 7, over))
    enc = m.encoder
    with torch.no_grad():
        c32 = enc(torch.zeros(1, 3, 64, 64))[-1].shape[1]
    head = nn.Conv2d(c32, 7, 1)
    params = list(enc.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=2e-3, weight_decay=1e-4)
    epochs = int(os.environ.get("PRE_EPOCHS", "10"))  # the recorded pilot used 10
    loader = DataLoader(train_set, batch_size=16, shuffle=True, drop_last=True, num_workers=1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: (1 - s / (epochs * len(loader))) ** 0.9)
    enc.train(); t0 = time.time()
    for e in range(epochs):
        tot = 0
        for x, y in loader:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                logits = head(enc(x)[-1])
            logits = F.interpolate(logits.float(), size=y.shape[-2:], mode="bilinear", align_corners=False)
            loss = F.cross_entropy(logits, y, ignore_index=255)
            opt.zero_grad(); loss.backward(); opt.step(); sched.step(); tot += loss.item()
        print(f"pretrain epoch {e+1}/{epochs} loss {tot/len(loader):.4f} ({time.time()-t0:.0f} s)", flush=True)
    torch.save(enc.state_dict(), enc_path)
state = torch.load(enc_path, weights_only=True)
res_path = out / "results.json"
results = json.loads(res_path.read_text()) if res_path.exists() else []
SEED = int(os.environ.get("SEED", "0"))
for v in variants:
    torch.manual_seed(SEED)
    model = RefineNet(_model_config(parse_variant(v), "course", 7, over))
    model.encoder.load_state_dict(state)
    tcfg = cfg.replace(seed=SEED, encoder_lr_ratio=0.1, eval_every=int(os.environ.get("EVAL_EVERY", "1")))
    t0 = time.time()
    r = train(model, train_set, val_set, tcfg, progress=True)
    ev = evaluate(model, DataLoader(val_set, batch_size=16), num_classes=7, bands=BANDS, progress=False, keep_per_image=False)
    rec = {"variant": v, "seed": SEED, "miou": ev.metrics.miou, "iou": dict(zip(train_set.class_names, map(float, ev.metrics.iou))),
           "boundary_miou_2": ev.boundary[2].miou, "train_seconds": time.time() - t0}
    print(v, json.dumps(rec), flush=True)
    results.append(rec)
    res_path.write_text(json.dumps(results, indent=1))
