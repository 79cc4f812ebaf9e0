"""Benchmark: how fast the course preset trains on the embedded dataset.

Prints (and writes as JSON):

1. training throughput (images/s) of the course preset at the dataset's
   resolution, fp32 and the fast precision (bf16 on CPUs/GPUs that support it)
   measured side by side in the same process, so a shared, noisy machine
   affects both alike;
2. the wall time the course recipe needs to reach the target validation mIoU
   (the time includes the per-epoch validation), and the mIoU reached.

Usage::

    python benchmarks/train_course.py                      # auto device
    python benchmarks/train_course.py --device cpu --target-miou 0.70 --max-minutes 10

This is a benchmark, not a test: it prints figures and asserts nothing.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from refinenet_edu.files import atomic_write_json
from refinenet_edu.engine.provenance import provenance
from refinenet_edu.datasets import eval_transforms, load_dataset, train_transforms
from refinenet_edu.datasets.info import DatasetInfo
from refinenet_edu.engine.criterion import SegmentationLoss
from refinenet_edu.engine.loop import train, train_step
from refinenet_edu.engine.recipes import RECIPES
from refinenet_edu.engine.runtime import describe_device, dtype_name, grad_scaler, resolve_device, resolve_precision
from refinenet_edu.nn.model import build_refinenet

COURSE_TARGET_MIOU = 0.60


def throughput(model, loader, device, dtype, steps: int, warmup: int = 2) -> float:
    """Training images per second over ``steps`` steps after ``warmup`` (the library's train_step)."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    criterion, scaler = SegmentationLoss(), grad_scaler(device, dtype)
    model.train()
    it = iter(loader)
    seen, start = 0, None
    for i in range(warmup + steps):
        if i == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start, seen = time.perf_counter(), 0
        try:
            images, masks = next(it)
        except StopIteration:
            it = iter(loader)
            images, masks = next(it)
        images = images.to(device).contiguous(memory_format=torch.channels_last)
        masks = masks.to(device)
        train_step(model, images, masks, opt, criterion=criterion, dtype=dtype, scaler=scaler, check_finite=False)
        seen += images.shape[0]
    if device.type == "cuda":
        torch.cuda.synchronize()
    return seen / (time.perf_counter() - start)


def train_to_target(cfg, train_set, val_set) -> dict:
    """Train the course preset with ``cfg`` until ``cfg.target_miou`` (or its epochs or minutes run out)."""
    torch.manual_seed(cfg.seed)
    model = build_refinenet("course", num_classes=DatasetInfo.of(train_set).num_classes)
    result = train(model, train_set, val_set, cfg, progress=False)
    reached = next((h for h in result.history if h["miou"] is not None and h["miou"] >= cfg.target_miou), None)
    return {
        "target_miou": cfg.target_miou,
        "reached_target": reached is not None,
        "seconds_to_target": reached["elapsed"] if reached else None,
        "epochs_to_target": reached["epoch"] if reached else None,
        "best_miou": result.best_miou,
        "epochs_run": len(result.history),
        "wall_seconds": result.seconds,
        "precision": result.precision,
        "history": result.history,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="synthscenes")
    p.add_argument("--device", default="auto")
    p.add_argument("--target-miou", type=float, default=COURSE_TARGET_MIOU)
    p.add_argument("--max-minutes", type=float, default=10.0)
    p.add_argument("--epochs", type=int, help="epochs of the run to target (default: the course recipe's)")
    p.add_argument("--num-workers", type=int, default=0, help="data-loading processes (e.g. 8 on a GPU machine)")
    p.add_argument("--steps", type=int, default=10, help="steps per precision in the throughput comparison")
    p.add_argument("--out", type=Path, help="JSON file (default: benchmarks/results/train_course-<device>.json)")
    args = p.parse_args()

    device = resolve_device(args.device)
    cfg = RECIPES["course"].replace(device=str(device), target_miou=args.target_miou, max_minutes=args.max_minutes,
                                    epochs=args.epochs, num_workers=args.num_workers)
    train_set = load_dataset(args.data, "train", train_transforms(cfg.crop_size, scale_range=cfg.scale_range))
    val_set = load_dataset(args.data, "val", eval_transforms())
    loader = DataLoader(train_set, batch_size=cfg.batch_size, shuffle=True, drop_last=True,
                        num_workers=args.num_workers)

    fast = resolve_precision("auto", device)
    rates = {}
    for dtype in dict.fromkeys([torch.float32, fast]):
        torch.manual_seed(0)
        model = build_refinenet("course", num_classes=train_set.num_classes).to(device).to(memory_format=torch.channels_last)
        rates[dtype_name(dtype)] = throughput(model, loader, device, dtype, args.steps)
    print(f"device: {describe_device(device)}")
    for name, r in rates.items():
        print(f"  training throughput {name:>9}: {r:7.1f} images/s (batch {cfg.batch_size}, crop {cfg.crop_size})")
    if len(rates) == 2:
        a, b = rates.values()
        print(f"  speed-up of {list(rates)[1]} over float32: {b / a:.2f}x")

    record = {"benchmark": "train_course", "device": describe_device(device), "throughput_images_per_second": rates,
              **train_to_target(cfg, train_set, val_set), "provenance": provenance()}
    reached = record["reached_target"]
    if reached:
        print(f"  reached val mIoU >= {args.target_miou} after {record['seconds_to_target']:.0f} s "
              f"({record['epochs_to_target']} epochs, {record['precision']})")
    else:
        print(f"  did NOT reach {args.target_miou} within {args.max_minutes} min: best {record['best_miou']:.3f} "
              f"after {record['wall_seconds']:.0f} s ({record['epochs_run']} epochs)")
    out = args.out or Path(__file__).parent / "results" / f"train_course-{device.type}.json"
    atomic_write_json(out, record)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
