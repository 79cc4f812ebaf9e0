"""The GPU check of issue 15: the full network's training command at real size, on one CUDA GPU.

What it measures (device named), for the official preset (ResNet-101, 118,052,437 parameters)
trained by the library's own loop (``refinenet_edu.engine.loop.train``, what ``refinenet-edu train
--preset official`` runs) with the official recipe (SGD, frozen batch norm, random scale 0.7-1.3,
400x400 crops, flips) in bf16 on a generated VOC 2012 + SBD-shaped set at PASCAL VOC's real
image sizes (about 500x375; the real set cannot be downloaded on a machine without a network):

* training images/s of the loop (data loading, forward, loss, backward, SGD step), at the
  recipe's batch 1 and at batch 8, from the last of ``--epochs`` epochs (the first warms up);
* peak GPU memory of each run (``torch.cuda.max_memory_allocated``);
* the training step's FLOPs per 400x400 image (counted on the meta device, as ``refinenet-edu
  bench`` counts them; backward included, the optimizer's element-wise update not), the
  achieved TFLOP/s (FLOPs x images/s) and its share of the bf16 peak measured in the same run
  (``tooling.bench.PeakProbe``: the best of a square matmul and a 3x3 convolution); the
  performance issue's old target is at least 35%;
* validation images/s, single scale and multi-scale with flips (the official scales 0.4-1.2).

The encoder starts from a random ResNet-101 whose batch-norm statistics are measured on the
generated images (ImageNet weights would need a download; with frozen batch norm and untouched
statistics a random ResNet-101 diverges). That changes no timing.

Run once, from the repository root (about 3 minutes on an H200, most of it data generation and
warm-up)::

    PYTHONPATH=. python3 benchmarks/gpu_voc_official.py --json benchmarks/gpu-voc-official.json

then copy the printed table into docs/benchmarks.md with the date, the commit and the machine.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torchvision

#: PASCAL VOC 2012's common image sizes (height, width)
VOC_SIZES = ((375, 500), (500, 375), (333, 500), (500, 334), (281, 500), (500, 486), (366, 500), (375, 500))


def calibrated_encoder(path: Path, dataset, device, n: int = 16) -> Path:
    """A random ResNet-101 state dict with batch-norm statistics averaged over ``n`` images."""
    torch.manual_seed(0)
    resnet = torchvision.models.resnet101().to(device)
    for m in resnet.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None
    with torch.no_grad():
        resnet.train()
        for i in range(min(n, len(dataset))):
            resnet(dataset[i][0][None].to(device))
    torch.save({k: v.cpu() for k, v in resnet.state_dict().items()}, path)
    return path


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def make_data(work: Path, device, *, train_images: int, val_images: int, sizes=VOC_SIZES):
    """A VOC 2012 + SBD-shaped set in ``work`` and a calibrated random ResNet-101: (root, encoder weights)."""
    from refinenet_edu.datasets import eval_transforms, load_dataset
    from tooling.voc_shaped import make_voc_shaped

    extra = train_images // 3
    root = make_voc_shaped(work / "data", train=train_images - extra, val=val_images, sbd=extra, sizes=sizes)
    weights = calibrated_encoder(work / "resnet101.pt", load_dataset("voc2012-aug", "train", eval_transforms(),
                                                                    root=root), device)
    return root, weights


def train_official(root: Path, weights: Path, device, *, batch: int, crop: int, epochs: int, precision: str,
                   num_workers: int) -> dict:
    """Train the official network with the library's loop; figures of the last epoch and the peak GPU memory."""
    from refinenet_edu.datasets import load_dataset, train_transforms
    from refinenet_edu.engine.loop import train
    from refinenet_edu.engine.recipes import RECIPES
    from refinenet_edu.nn.model import build_refinenet

    recipe = RECIPES["official"]
    train_set = load_dataset("voc2012-aug", "train", root=root,
                             transforms=train_transforms(crop, scale_range=recipe.scale_range,
                                                         hflip=recipe.hflip, jitter=recipe.jitter))
    cfg = recipe.replace(epochs=epochs, batch_size=batch, crop_size=crop, device=str(device), precision=precision,
                         num_workers=num_workers, eval_every=epochs + 1)
    torch.manual_seed(0)
    model = build_refinenet("official", weights=str(weights))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    result = train(model, train_set, None, cfg, progress=False)
    last = result.history[-1]
    memory = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    del model
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return {"batch": batch, "crop": crop, "precision": result.precision, "images_per_second": last["images_per_second"],
            "epoch_seconds": last["seconds"], "steps_per_epoch": len(train_set) // batch,
            "peak_memory_gib": memory, "final_loss": last["loss"]}


def main() -> int:
    from tooling.bench import PeakProbe, Settings, count_step_flops, parse_model_spec
    from refinenet_edu.datasets import eval_transforms, load_dataset
    from refinenet_edu.engine.runtime import describe_device
    from refinenet_edu.engine.evaluation import OFFICIAL_SCALES, evaluate
    from refinenet_edu.nn.model import build_refinenet

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train-images", type=int, default=96, help="VOC-shaped training images (default 96)")
    parser.add_argument("--val-images", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=3, help="epochs per run; the last one is reported")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8], help="batch sizes (the recipe: 1)")
    parser.add_argument("--num-workers", type=int, default=8)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--commit", help="the commit the copy was made from (a GPU machine may have no .git)")
    parser.add_argument("--cpu-dry-run", action="store_true",
                        help="check the script itself on a CPU: images at 1/8 of VOC's size, 64x64 crops, "
                             "12 images, 1 epoch (its figures mean nothing)")
    args = parser.parse_args()
    sizes, crop = VOC_SIZES, 400
    if args.cpu_dry_run:
        device = torch.device("cpu")
        sizes, crop = tuple((h // 8, w // 8) for h, w in VOC_SIZES), 64
        args.train_images, args.val_images, args.epochs, args.batches, args.num_workers = 12, 2, 1, [1, 4], 0
    elif not torch.cuda.is_available():
        print("gpu_voc_official: no CUDA GPU here; this check is for a machine with one "
              "(--cpu-dry-run checks the script on a CPU)", file=sys.stderr)
        return 2
    else:
        device = torch.device("cuda")
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    report = {"device": describe_device(device), "torch": torch.__version__, "torchvision": torchvision.__version__,
              "commit": args.commit or commit(), "date": time.strftime("%Y-%m-%d"), "precision": "bf16", "crop": crop,
              "dry_run": args.cpu_dry_run}
    print(f"{report['device']}, torch {torch.__version__}, commit {report['commit']}", flush=True)

    work = Path(tempfile.mkdtemp(prefix="gpu-voc-official-"))
    started = time.perf_counter()
    root, weights = make_data(work, device, train_images=args.train_images, val_images=args.val_images, sizes=sizes)
    val_set = load_dataset("voc2012-aug", "val", eval_transforms(), root=root)
    print(f"data: {args.train_images} train / {len(val_set)} val images at VOC sizes, "
          f"{time.perf_counter() - started:.0f} s", flush=True)

    probe = PeakProbe(device, "bf16")  # bf16 on a CPU without native support is slow: dry runs only
    probe.run(5)
    flops_per_image = count_step_flops(parse_model_spec("official"), "train",
                                       Settings(input_size=(crop, crop), batch=1))
    runs = []
    for batch in args.batches:
        runs.append(train_official(root, weights, device, batch=batch, crop=crop, epochs=args.epochs,
                                   precision="bf16", num_workers=args.num_workers))
        probe.run(3)  # the peak under the same conditions, after each run too
    peak = probe.result()
    for r in runs:
        r["achieved_tflops"] = flops_per_image * r["images_per_second"] / 1e12
        r["percent_of_bf16_peak"] = 100 * r["achieved_tflops"] / peak["peak_tflops"]

    torch.manual_seed(0)
    model = build_refinenet("official", weights=str(weights)).to(device)
    evals = {}
    for name, scales, flip in (("single scale", (1.0,), False), ("multi-scale + flip", OFFICIAL_SCALES, True)):
        ev = evaluate(model, val_set, num_classes=21, scales=scales, flip=flip, bands=(), device=device,
                      amp_dtype=torch.bfloat16, progress=False, keep_per_image=False)
        evals[name] = {"images_per_second": ev.images_per_second, "images": ev.num_images}
    report.update(flops_per_image=flops_per_image, peak=peak, train=runs, evaluate=evals,
                  seconds=time.perf_counter() - started, train_images=args.train_images, val_images=len(val_set))

    print(f"\nbf16 peak (PeakProbe, this run): {peak['peak_tflops']:.1f} TFLOP/s "
          f"(matmul {peak['matmul_tflops']:.0f}, conv {peak['conv_tflops']:.0f})")
    print(f"training step: {flops_per_image / 1e12:.3f} TFLOP per {crop}x{crop} image (forward + backward)")
    print(f"{'batch':>5} {'images/s':>9} {'TFLOP/s':>8} {'% peak':>7} {'peak mem GiB':>13}")
    for r in runs:
        print(f"{r['batch']:>5} {r['images_per_second']:>9.1f} {r['achieved_tflops']:>8.1f} "
              f"{r['percent_of_bf16_peak']:>6.1f}% {r['peak_memory_gib']:>13.1f}")
    for name, e in evals.items():
        print(f"validation, {name}: {e['images_per_second']:.1f} images/s ({e['images']} images, bf16)")
    print(f"total {report['seconds']:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
