"""Benchmark: how fast the course recipe trains here, and what each of the library's speed choices buys.

Every measurement alternates two sides in one process, round after round, and keeps each side's best round,
so that other work on a shared machine weighs on both alike: read the ratios; the absolute figures need a
quiet machine. The library's side is what ``refinenet-edu train`` runs; the other side undoes its choices:

- data: where a training sample's time goes before the step (shown, not compared): the JPEG decode alone, the
  training transforms without colour jitter, and with it (the recipe).
- step: ``train_step`` on batches made beforehand (the course recipe: bf16 autocast where the CPU has it,
  channels_last, batch 16). The library's AdamW is ``fused``; the other side updates tensor by tensor
  (``foreach``, PyTorch's default). With ``--compile``, a third side: the library's step on
  ``torch.compile(model)``, with its compile time from an empty compile cache (a fresh
  ``TORCHINDUCTOR_CACHE_DIR``, as on a student's first run).
- run: the course recipe through ``train()`` for ``--epochs`` epochs, timed per epoch with its validation (the
  first epoch, which warms up, left out): the library, the same with the ``foreach`` AdamW, and the library
  with one data-loading process (``num_workers=1``: it draws other augmentations, so its losses differ). The
  share of an epoch spent outside the step is 1 - (step time x images) / epoch time; of that, the data
  (the transforms' time x images) and one validation pass (timed alone, as ``train()`` runs it).
- peak: the CPU's best TFLOP/s in the step's precision (``tooling/bench.py``'s probe: a large matmul and a
  3x3 convolution, re-measured in every round) against the step's FLOPs per image
  (``torch.utils.flop_counter``: convolutions and matrix products, forward and backward).

- profile (``--profile``): torch.profiler's table of the library's step, the operators by their own time, and
  the convolutions' share of it.

    python benchmarks/train_speed.py [--epochs 2] [--rounds 3] [--compile] [--profile] [--json FILE]
    python benchmarks/train_speed.py --smoke    # a few seconds of each: does it run (the tests call it)

A benchmark, not a test: it prints figures and asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import torch
from torch.utils.data import DataLoader, Subset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tooling/ sits next to the package

from refinenet_edu.datasets import eval_transforms, load_dataset, train_transforms  # noqa: E402
from refinenet_edu.datasets.loading import eval_loader  # noqa: E402
from refinenet_edu.engine import loop  # noqa: E402
from refinenet_edu.engine.criterion import SegmentationLoss  # noqa: E402
from refinenet_edu.engine.provenance import provenance  # noqa: E402
from refinenet_edu.engine.recipes import RECIPES, make_optimizer  # noqa: E402
from refinenet_edu.engine.runtime import DTYPES, describe_device, resolve_precision  # noqa: E402
from refinenet_edu.files import atomic_write_json  # noqa: E402
from refinenet_edu.nn.model import build_refinenet  # noqa: E402
from tooling.bench import PeakProbe, Settings, count_step_flops, parse_model_spec  # noqa: E402

CFG = RECIPES["course"]
DEVICE = torch.device("cpu")


def optimizer(model, cfg, fused: bool = True):
    """The library's optimizer, or the same one updating tensor by tensor (``fused`` off in every group)."""
    opt = make_optimizer(model, cfg)
    for group in opt.param_groups:
        group["fused"] = group["fused"] and fused
    return opt


def alternate(sides: dict, rounds: int, probe: PeakProbe | None = None) -> dict:
    """Each side's best time over ``rounds`` rounds, the sides taking turns within a round."""
    best = {name: float("inf") for name in sides}
    for _ in range(rounds):
        for name, fn in sides.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
        if probe is not None:
            probe.run()
    return best


def data_ms(rounds: int, samples: int) -> dict:
    sets = {"JPEG decode only": load_dataset("synthscenes", "train"),
            "transforms without jitter": load_dataset("synthscenes", "train", train_transforms(
                CFG.crop_size, scale_range=CFG.scale_range, jitter=False)),
            "transforms (the recipe)": load_dataset("synthscenes", "train", train_transforms(
                CFG.crop_size, scale_range=CFG.scale_range))}
    sides = {name: (lambda ds=ds: [ds[i] for i in range(samples)]) for name, ds in sets.items()}
    return {name: s / samples * 1000 for name, s in alternate(sides, rounds).items()}


def step_ms(batches, dtype, rounds: int, compile: bool, probe: PeakProbe) -> tuple[dict, float | None]:
    def side(fused: bool, compiled: bool):
        torch.manual_seed(0)
        model = build_refinenet("course", num_classes=7).to(memory_format=torch.channels_last)
        opt, net = optimizer(model, CFG, fused), (torch.compile(model) if compiled else model)
        criterion = SegmentationLoss(255)

        def run():
            for images, masks in batches:
                loop.train_step(net, images, masks, opt, criterion=criterion, dtype=dtype)
        return run

    sides = {"library (fused AdamW)": side(True, False), "foreach AdamW": side(False, False)}
    compile_s = None
    if compile:
        sides["library + torch.compile"] = side(True, True)
        start = time.perf_counter()
        sides["library + torch.compile"]()  # compiles forward and backward
        compile_s = time.perf_counter() - start
    for run in sides.values():
        run()  # oneDNN picks its kernels on the first call of each shape
    images = sum(len(b[0]) for b in batches)
    return {name: s / images * 1000 for name, s in alternate(sides, rounds, probe).items()}, compile_s


RUN_SIDES = {"library": (True, 0), "foreach AdamW": (False, 0), "library, num_workers=1": (True, 1)}


def profile_step(batches, dtype) -> float:
    """Print the step's operators by their own CPU time; return the convolutions' share (forward and backward)."""
    from torch.profiler import ProfilerActivity, profile

    torch.manual_seed(0)
    model = build_refinenet("course", num_classes=7).to(memory_format=torch.channels_last)
    opt, criterion = optimizer(model, CFG), SegmentationLoss(255)
    for images, masks in batches[:2]:
        loop.train_step(model, images, masks, opt, criterion=criterion, dtype=dtype)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for images, masks in batches:
            loop.train_step(model, images, masks, opt, criterion=criterion, dtype=dtype)
    events = prof.key_averages()
    print(events.table(sort_by="self_cpu_time_total", row_limit=15))
    total = sum(e.self_cpu_time_total for e in events)
    conv = sum(e.self_cpu_time_total for e in events if e.key in ("aten::mkldnn_convolution",
                                                                   "aten::convolution_backward"))
    return conv / total


def validation_seconds(dtype, rounds: int, images: int | None) -> float:
    """One validation pass as ``train()`` runs it after an epoch (batches of 16, mIoU only), best of ``rounds``."""
    val_set = load_dataset("synthscenes", "val", eval_transforms())
    if images is not None:
        val_set = Subset(val_set, range(images // 4))
    model = build_refinenet("course", num_classes=7).to(memory_format=torch.channels_last)
    val_loader = eval_loader(val_set, batch_size=CFG.batch_size)

    def run():
        loop.evaluate(model, val_loader, num_classes=7, bands=(), amp_dtype=dtype, progress=False,
                      keep_per_image=False)
    run()  # warm-up
    return alternate({"validation": run}, rounds)["validation"]


def run_seconds(epochs: int, rounds: int, images: int | None) -> dict:
    """Seconds per epoch (validation included) of ``train()``, the first epoch (it warms up) left out; ``images``:
    train on the first ones only (and validate on a quarter as many)."""
    train_set = load_dataset("synthscenes", "train", train_transforms(CFG.crop_size, scale_range=CFG.scale_range))
    val_set = load_dataset("synthscenes", "val", eval_transforms())
    if images is not None:
        train_set, val_set = Subset(train_set, range(images)), Subset(val_set, range(images // 4))
    best = {name: float("inf") for name in RUN_SIDES}
    for _ in range(rounds):
        for name, (fused, workers) in RUN_SIDES.items():
            with mock.patch.object(loop, "make_optimizer", lambda m, c, fused=fused: optimizer(m, c, fused)):
                torch.manual_seed(0)
                result = loop.train(build_refinenet("course", num_classes=7), train_set, val_set,
                                    CFG.replace(epochs=epochs, num_workers=workers), progress=False)
            timed = result.history[1:] or result.history
            best[name] = min(best[name], sum(h["seconds"] for h in timed) / len(timed))
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=2, help="epochs per training run (default 2; the first is not timed)")
    p.add_argument("--rounds", type=int, default=3, help="rounds of each comparison (default 3)")
    p.add_argument("--samples", type=int, default=100, help="training samples per round of the data comparison")
    p.add_argument("--compile", action="store_true", help="also time the step under torch.compile (minutes)")
    p.add_argument("--profile", action="store_true", help="print the step's profile and its convolutions' share")
    p.add_argument("--smoke", action="store_true", help="one round of each on a few images (for the tests)")
    p.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "train_speed-cpu.json")
    args = p.parse_args()

    if args.smoke:
        args.epochs, args.rounds, args.samples = 1, 1, 4
    if args.compile:  # time the compilation a first run pays, not a cached one
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="train_speed-inductor-")
    dtype = resolve_precision(CFG.precision, DEVICE)
    precision = next(name for name, d in DTYPES.items() if d == dtype)
    load_before = os.getloadavg()
    probe = PeakProbe(DEVICE, precision, min_seconds=0.005 if args.smoke else 0.05)
    probe.run()
    loader = DataLoader(load_dataset("synthscenes", "train", train_transforms(CFG.crop_size,
                        scale_range=CFG.scale_range)), batch_size=CFG.batch_size, shuffle=True, drop_last=True)
    batches = [(x.contiguous(memory_format=torch.channels_last), y) for _, (x, y) in zip(range(1 if args.smoke else 6), loader)]

    data = data_ms(args.rounds, args.samples)
    step, compile_s = step_ms(batches, dtype, args.rounds, args.compile, probe)
    epoch = run_seconds(args.epochs, args.rounds, 32 if args.smoke else None)
    validation = validation_seconds(dtype, args.rounds, 32 if args.smoke else None)
    conv_share = profile_step(batches, dtype) if args.profile else None
    peak = probe.result()["peak_tflops"]
    # convolution and matrix-product FLOPs of one training step (forward and backward), the bench's own count
    flops = count_step_flops(parse_model_spec("course"), "train", Settings(input_size=(CFG.crop_size,) * 2, num_classes=7))
    images = (32 if args.smoke else len(load_dataset("synthscenes", "train"))) // CFG.batch_size * CFG.batch_size

    print(f"device: {describe_device(DEVICE)}, {precision}; load average {load_before[0]:.1f} before, "
          f"{os.getloadavg()[0]:.1f} after; commit {provenance()['commit']}")
    print(f"{precision} peak {peak:.3f} TFLOP/s; one training step {flops / 1e9:.2f} GFLOP per image (128x128)")
    print("data, ms per training image:")
    for name, ms in data.items():
        print(f"  {name:28s} {ms:7.2f}")
    print("step, ms per image (batch 16):")
    for name, ms in step.items():
        print(f"  {name:28s} {ms:7.2f}  ({flops / (ms / 1000) / 1e12 / peak:.0%} of the {precision} peak)")
    if conv_share is not None:
        conv_ms = conv_share * step["library (fused AdamW)"]
        print(f"  convolutions (forward and backward): {conv_share:.0%} of the step's operator time, so they "
              f"alone run at {flops / (conv_ms / 1000) / 1e12 / peak:.0%} of the {precision} peak")
    if compile_s is not None:
        print(f"  (torch.compile's first step, from an empty compile cache: {compile_s:.0f} s)")
    print(f"course recipe, s per epoch ({images} training images, validation included):")
    for name, s in epoch.items():
        step_s = step["foreach AdamW" if name == "foreach AdamW" else "library (fused AdamW)"] / 1000 * images
        print(f"  {name:28s} {s:7.2f}  ({1 - step_s / s:.0%} outside the step; "
              f"{flops * images / s / 1e12 / peak:.0%} of the {precision} peak; 30 epochs ~ {30 * s:.0f} s)")
    library = epoch["library"]
    print(f"  of the library's epoch: data {data['transforms (the recipe)'] * images / 1000 / library:.0%} "
          f"({images} x {data['transforms (the recipe)']:.2f} ms), validation {validation / library:.0%} "
          f"({validation:.2f} s per pass)")
    ratios = {"step": step["foreach AdamW"] / step["library (fused AdamW)"],
              "epoch": epoch["foreach AdamW"] / epoch["library"]}
    print("speed-up of the fused AdamW over the foreach one: " + ", ".join(f"{k} {v:.2f}x" for k, v in ratios.items()))
    atomic_write_json(args.json, {
        "benchmark": "train_speed", "device": describe_device(DEVICE), "precision": precision,
        "load_average": [load_before[0], os.getloadavg()[0]], "peak_tflops": peak, "step_flops_per_image": flops,
        "data_ms_per_image": data, "step_ms_per_image": step, "compile_seconds": compile_s, "convolution_share": conv_share,
        "epoch_seconds": epoch, "validation_seconds": validation, "speedup": ratios, "provenance": provenance()})
    print(f"wrote {args.json}")
    if args.compile:
        shutil.rmtree(os.environ["TORCHINDUCTOR_CACHE_DIR"], ignore_errors=True)


if __name__ == "__main__":
    main()
