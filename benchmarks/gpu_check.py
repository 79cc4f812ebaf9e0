"""The course's GPU check: the course on one CUDA GPU, and whether it fits a 15 GiB one (a Tesla T4).

One script, from a fresh checkout, that writes one JSON and one Markdown table naming the device, the driver,
the torch version and the commit. Steps (``--only`` picks some; the files are rewritten after every step, so a
run cut short keeps what it measured):

* ``notebooks``: every course notebook executed in full mode (``tooling.notebooks.execute_notebook``,
  what ``./course execute --full --no-save`` runs), the seconds of each;
* ``course``: the course model trained to its target mIoU (``benchmarks/train_course.py``): seconds and epochs;
* ``official``: the official ResNet-101 network trained by the library's loop on a generated VOC-shaped set
  (``benchmarks/gpu_voc_official.py``) at batch 1 / crop 400 (the documented command) and batch 8 / crop 512,
  in the fastest setting the loop offers (``precision="auto"``: bf16 from compute capability 8.0 on,
  channels_last, TF32, eager): images/s, the share of the bf16 matmul peak measured in the same run
  (``tooling.bench.PeakProbe``; the training step's FLOPs counted as ``./course bench`` counts
  them), peak memory (``torch.cuda.max_memory_allocated``);
* ``t4``: the same two runs and the recipe's default batch 16 / crop 400, with float16 forced, as
  ``precision="auto"`` runs on a T4, and this process's GPU memory capped at 15 GiB
  (``torch.cuda.set_per_process_memory_fraction``): a run that does not fit is recorded as out of memory;
* ``ablate``: the wall time of the 24-run ablation grid of ``results/ablation`` (``refinenet-edu ablate``, the
  command in ``results/ablation/README.md``, 12 runs at a time).

Usage, from the repository root::

    pip install -e ".[dev]"                           # once, on the GPU machine
    PYTHONPATH=. python benchmarks/gpu_check.py --out benchmarks/gpu-check      # .json and .md
    PYTHONPATH=. python benchmarks/gpu_check.py --dry-run --out /tmp/check      # the script itself, on a CPU
    PYTHONPATH=. python benchmarks/gpu_check.py --estimate-memory               # the CPU estimates below

``--dry-run`` runs every step on the CPU at tiny sizes (one notebook in FAST mode, a few images, one epoch,
two ablation runs); its figures mean nothing. ``--estimate-memory`` prints, without a GPU, an estimate of
the peak training memory of every notebook's full mode and of the documented commands in float16 autocast
(what a T4 runs): see :func:`estimate_training_memory`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
STEPS = ("notebooks", "course", "official", "t4", "ablate")
#: the GPU memory this check assumes a Tesla T4 has for a training run
T4_GIB = 15.0
#: (batch, crop) of the official network's runs: the documented command's, and the GPU benchmark's
OFFICIAL_RUNS = ((1, 400), (8, 512))
#: the T4-like pass adds the recipe's default (``train --preset official`` without --batch-size)
T4_RUNS = (*OFFICIAL_RUNS, (16, 400))
#: the grid of results/ablation (results/ablation/README.md), 24 runs
ABLATION_GRID = ["--cascades", "single", "2-cascaded", "4-cascaded", "4-cascaded-2-scale", "--crp-blocks", "0", "2",
                 "4", "--output-rcus", "3", "--light-weight", "--seeds", "0", "1", "2", "--jobs", "12", "--threads",
                 "1", "--num-workers", "1"]


def _sibling(name: str):
    """A benchmark script next to this one, as a module (benchmarks/ is not a package)."""
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    return __import__(name)


# ---------------------------------------------------------------- the memory estimate (CPU, no GPU needed)
def estimate_training_memory(preset: str, *, batch: int, crop: int, num_classes: int, optimizer: str,
                             dtype: torch.dtype = torch.float16, **overrides) -> dict:
    """Estimated peak memory (bytes) of one training step of ``preset``, without running it.

    The model runs forward and the loss on fake tensors (``FakeTensorMode``: shapes and dtypes, no data, no
    arithmetic) on a fake CUDA device under ``torch.autocast(dtype)``, as the training loop runs it; a
    ``saved_tensors_hooks`` pack hook records every tensor autograd keeps for the backward pass (each storage
    once; the weights themselves excluded; autocast's float16 copies of them, told by their shapes, apart).
    The estimate is the sum of the float32 weights and buffers, their gradients (alive from the previous step
    until the next backward: the loop zeroes them after the forward), the optimizer's state (SGD momentum 1x,
    AdamW 2x the trained weights), the batch, the weight copies, the saved activations, and twice the largest
    saved activation for the gradients in flight at the start of the backward pass. Not counted: the CUDA
    context, cuDNN's workspaces, the optimizer step's temporaries and the caching allocator's fragmentation,
    so a GPU needs room above it.
    """
    from torch._subclasses.fake_tensor import FakeTensorMode

    from refinenet_edu.engine.criterion import SegmentationLoss
    from refinenet_edu.nn.model import build_refinenet

    device = "cuda" if torch.backends.cuda.is_built() else "cpu"  # only the autocast rules differ
    with mock.patch.object(torch.cuda, "is_available", lambda: True):  # autocast turns itself off without a GPU
        amp = torch.autocast(device, dtype=dtype)
    saved: dict[int, tuple[int, bool]] = {}  # storage -> (bytes, is autocast's copy of a weight)
    with FakeTensorMode(), torch.device(device):
        model = build_refinenet(preset, num_classes=num_classes, **overrides).train()  # layouts: same bytes
        weights = {p.untyped_storage()._cdata for p in model.parameters()}
        weight_shapes = {tuple(p.shape) for p in model.parameters()}

        def pack(t: torch.Tensor) -> torch.Tensor:
            storage = t.untyped_storage()
            if storage._cdata not in weights:
                saved[storage._cdata] = (storage.nbytes(), t.dim() > 1 and tuple(t.shape) in weight_shapes)
            return t

        images = torch.randn(batch, 3, crop, crop)
        targets = torch.randint(0, num_classes, (batch, crop, crop))
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), amp:
            loss = SegmentationLoss()(model(images), targets)
        trained = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
        activations = [n for n, copy in saved.values() if not copy]
        parts = {
            "weights": sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()]),
            "gradients": trained,
            "optimizer": trained * {"sgd": 1, "adam": 2}[optimizer],
            "batch": images.numel() * images.element_size() + targets.numel() * targets.element_size(),
            "weight_copies": sum(n for n, copy in saved.values() if copy),
            "saved_activations": sum(activations),
            "gradients_in_flight": 2 * max(activations),
        }
        del loss
    return {**parts, "total": sum(parts.values())}


def memory_workloads() -> list[tuple[str, dict]]:
    """What trains in every notebook's full mode, and the documented commands: (what, estimate arguments)."""
    course = dict(num_classes=7, optimizer="adam")
    official = dict(preset="official", num_classes=21, optimizer="sgd")
    return [
        ("notebook 07, section 2: timed training steps, course, batch 32 of 128x128",
         dict(preset="course", batch=32, crop=128, **course)),
        ("notebook 07, section 5: course recipe, batch 16, crop 128",
         dict(preset="course", batch=16, crop=128, **course)),
        ("notebook 09, train now: 4-cascaded-crp0, course recipe, batch 16, crop 128",
         dict(preset="course", batch=16, crop=128, crp_blocks=0, **course)),
        ("notebook 10, section 2 dry run: official ResNet-101, batch 1, crop 64, --no-freeze-bn",
         dict(batch=1, crop=64, freeze_bn=False, **official)),
        ("notebook 10, section 3: course, batch 4, crop 64", dict(preset="course", batch=4, crop=64, **course)),
        ("README / docs/training.md / notebook 10 RUN_VOC: `train --preset official --batch-size 1`, crop 400",
         dict(batch=1, crop=400, **official)),
        ("`train --preset official` without --batch-size: the recipe's batch 16, crop 400",
         dict(batch=16, crop=400, **official)),
        ("benchmarks/gpu_check.py official run: batch 8, crop 512", dict(batch=8, crop=512, **official)),
    ]


def estimate_table(workloads=None) -> tuple[list[dict], str]:
    rows = []
    for what, kwargs in workloads or memory_workloads():
        est = estimate_training_memory(**kwargs)
        rows.append({"what": what, **{k: v / 2**30 for k, v in est.items()}, "fits_t4": est["total"] / 2**30 < T4_GIB})
    lines = ["| training step (float16 autocast, as on a T4) | weights + grads + optimizer | float16 weight copies "
             "| saved activations | estimated peak | under 15 GiB |", "|---|---|---|---|---|---|"]
    for r in rows:
        fixed = r["weights"] + r["gradients"] + r["optimizer"]
        lines.append(f"| {r['what']} | {fixed:.2f} GiB | {r['weight_copies']:.2f} GiB | {r['saved_activations']:.2f} GiB "
                     f"| {r['total']:.2f} GiB | {'yes' if r['fits_t4'] else '**no**'} |")
    return rows, "\n".join(lines)


# ---------------------------------------------------------------- the steps
def run_notebooks(names, *, fast: bool) -> list[dict]:
    from tooling.notebooks import execute_notebook, select_notebooks

    out = []
    for path in select_notebooks(names or None, ROOT / "notebooks"):
        started = time.perf_counter()
        try:
            _, seconds = execute_notebook(path, fast=fast, save=False)
            out.append({"notebook": path.name, "seconds": seconds, "ok": True})
        except Exception as err:  # a failing notebook is a result, not the end of the check
            out.append({"notebook": path.name, "seconds": time.perf_counter() - started, "ok": False,
                        "error": str(err).strip().splitlines()[-1][:300] if str(err).strip() else type(err).__name__})
        print(f"  {out[-1]['notebook']}: {out[-1]['seconds']:.0f} s {'ok' if out[-1]['ok'] else 'FAILED'}", flush=True)
    return out


def run_course(device: torch.device, *, dry: bool) -> dict:
    from refinenet_edu.cli.options import subset
    from refinenet_edu.datasets import eval_transforms, load_dataset, train_transforms
    from refinenet_edu.engine.recipes import RECIPES

    train_course = _sibling("train_course")
    cfg = RECIPES["course"].replace(device=str(device), target_miou=train_course.COURSE_TARGET_MIOU, max_minutes=10.0,
                                    num_workers=0 if dry else 4)
    if dry:
        cfg = cfg.replace(epochs=1, crop_size=64, batch_size=8)
    train_set = load_dataset("synthscenes", "train", train_transforms(cfg.crop_size, scale_range=cfg.scale_range))
    val_set = load_dataset("synthscenes", "val", eval_transforms())
    if dry:
        train_set, val_set = subset(train_set, 16), subset(val_set, 4)
    record = train_course.train_to_target(cfg, train_set, val_set)
    record.pop("history")
    return record


def run_official(device: torch.device, data: tuple[Path, Path], runs, *, precision: str, dry: bool,
                 memory_gib: float | None = None) -> dict:
    """The official network's runs in ``precision`` on ``data`` (root, encoder weights: ``make_data``);
    with ``memory_gib`` this process may use only that much GPU memory."""
    from tooling.bench import PeakProbe, Settings, count_step_flops, parse_model_spec

    voc = _sibling("gpu_voc_official")
    runs = ((2, 64),) if dry else runs
    probe = PeakProbe(device, "bf16")
    probe.run(3)
    if memory_gib is not None and device.type == "cuda":
        total = torch.cuda.get_device_properties(device).total_memory / 2**30
        torch.cuda.set_per_process_memory_fraction(min(1.0, memory_gib / total), device)
    out = []
    try:
        for batch, crop in runs:
            flops = count_step_flops(parse_model_spec("official"), "train", Settings(input_size=(crop, crop), batch=1))
            try:
                r = voc.train_official(*data, device, batch=batch, crop=crop, epochs=1 if dry else 2,
                                       precision=precision, num_workers=0 if dry else 8)
            except Exception as err:  # out of memory under the cap is the answer to "does it fit?"
                r = {"batch": batch, "crop": crop, "error": str(err).strip().splitlines()[0][:300]}
                if device.type == "cuda":
                    torch.cuda.empty_cache()
            else:
                r["tflops"] = flops * r["images_per_second"] / 1e12
            out.append(r)
            probe.run(3)
            print(f"  official {precision} batch {batch} crop {crop}: "
                  f"{r.get('images_per_second', float('nan')):.1f} images/s, "
                  f"{r.get('peak_memory_gib', float('nan')):.1f} GiB {r.get('error', '')}", flush=True)
    finally:
        if memory_gib is not None and device.type == "cuda":
            torch.cuda.set_per_process_memory_fraction(1.0, device)
    peak = probe.result()
    for r in out:
        if "tflops" in r:
            r["percent_of_bf16_matmul_peak"] = 100 * r["tflops"] / peak["matmul_tflops"]
    return {"precision": precision, "memory_cap_gib": memory_gib, "bf16_peak": peak, "runs": out}


def run_ablation(device: torch.device, work: Path, *, dry: bool) -> dict:
    from refinenet_edu.cli import main

    if dry:
        grid = ["--variants", "4-cascaded-crp4", "4-cascaded-crp4-lw", "--seeds", "0", "--epochs", "1", "--subset", "8",
                "--crop-size", "64", "--batch-size", "4", "--threads", "1"]
    else:
        grid = ABLATION_GRID
    argv = ["ablate", *grid, "--device", device.type, "--save-predictions", "none", "--no-timing",
            "--out", str(work / "ablation")]
    started = time.perf_counter()
    code = main(argv)
    seconds = time.perf_counter() - started
    results = json.loads((work / "ablation" / "results.json").read_text())
    runs = results.get("runs", [])
    return {"command": "refinenet-edu " + " ".join(argv[:-1]) + " OUT", "exit_code": code, "wall_seconds": seconds,
            "runs": len(runs)}


# ---------------------------------------------------------------- the report
def environment(device: torch.device, commit: str | None) -> dict:
    voc = _sibling("gpu_voc_official")
    from refinenet_edu.engine.runtime import describe_device

    driver = None
    if device.type == "cuda":
        try:
            driver = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                    capture_output=True, text=True, check=True).stdout.strip().splitlines()[0]
        except (OSError, subprocess.CalledProcessError, IndexError):
            driver = None
    info = {"device": describe_device(device), "driver": driver, "torch": torch.__version__,
            "cuda": torch.version.cuda, "commit": commit or voc.commit(), "date": time.strftime("%Y-%m-%d %H:%M"),
            "host": platform.node(), "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(compute_capability=f"{props.major}.{props.minor}", memory_gib=props.total_memory / 2**30)
    return info


def markdown(report: dict) -> str:
    e = report["environment"]
    lines = [f"# GPU check{' (DRY RUN on a CPU: the figures mean nothing)' if report['dry_run'] else ''}", "",
             f"{e['device']}, driver {e['driver']}, torch {e['torch']} (CUDA {e['cuda']}), commit {e['commit']}, "
             f"{e['date']}, load average {e['load_average']}", "", "| step | figure |", "|---|---|"]
    for nb in report.get("notebooks", []):
        lines.append(f"| notebook {nb['notebook']} ({report['notebook_mode']} mode) | {nb['seconds']:.0f} s"
                     f"{'' if nb['ok'] else ', FAILED: ' + nb['error']} |")
    if "course" in report:
        c = report["course"]
        reached = (f"val mIoU >= {c['target_miou']} after {c['seconds_to_target']:.0f} s, epoch {c['epochs_to_target']}"
                   if c["reached_target"] else f"target {c['target_miou']} not reached: best {c['best_miou']:.3f}")
        lines.append(f"| course model to its target ({c['precision']}) | {reached} |")
    for key in ("official", "t4"):
        if key not in report:
            continue
        o = report[key]
        cap = f", memory capped at {o['memory_cap_gib']:g} GiB" if o["memory_cap_gib"] else ""
        for r in o["runs"]:
            what = f"official ResNet-101, {o['precision']}{cap}, batch {r['batch']}, crop {r['crop']}"
            if "error" in r:
                lines.append(f"| {what} | {r['error']} |")
            else:
                lines.append(f"| {what} | {r['images_per_second']:.1f} images/s, {r['tflops']:.1f} TFLOP/s = "
                             f"{r['percent_of_bf16_matmul_peak']:.0f}% of the bf16 matmul peak "
                             f"({o['bf16_peak']['matmul_tflops']:.0f} TFLOP/s), peak memory "
                             f"{r['peak_memory_gib']:.2f} GiB |")
    if "ablate" in report:
        a = report["ablate"]
        lines.append(f"| ablation grid, {a['runs']} runs (`{a['command']}`) | {a['wall_seconds']:.0f} s wall time |")
    lines.append(f"| the whole check | {report['seconds']:.0f} s |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/gpu-check"),
                        help="writes OUT.json and OUT.md (default benchmarks/gpu-check)")
    parser.add_argument("--only", nargs="+", choices=STEPS, help="run only these steps (default: all)")
    parser.add_argument("--notebooks", nargs="*", help="notebooks to execute (default: all; the dry run: 00)")
    parser.add_argument("--commit", help="the commit the copy was made from (a copy may have no .git)")
    parser.add_argument("--dry-run", action="store_true", help="every step on the CPU at tiny sizes (about a minute)")
    parser.add_argument("--estimate-memory", action="store_true",
                        help="print the CPU estimate of every training step's peak memory in float16 and exit")
    args = parser.parse_args(argv)
    if args.estimate_memory:
        _, table = estimate_table()
        print(table)
        return 0
    if args.dry_run:
        device = torch.device("cpu")
    elif torch.cuda.is_available():
        device = torch.device("cuda")
    else:
        print("gpu_check: no CUDA GPU here (--dry-run checks the script on a CPU)", file=sys.stderr)
        return 2
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True
    steps = args.only or STEPS
    report = {"schema": "refinenet-edu-gpu-check/1", "dry_run": args.dry_run, "environment": environment(device, args.commit),
              "notebook_mode": "FAST" if args.dry_run else "full", "steps": list(steps)}
    print(f"{report['environment']['device']}, torch {torch.__version__}, commit {report['environment']['commit']}",
          flush=True)
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    args.out.parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:
        report["seconds"] = time.perf_counter() - started
        args.out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
        args.out.with_suffix(".md").write_text(markdown(report))

    data = None
    for step in steps:
        print(f"{step} ...", flush=True)
        t0 = time.perf_counter()
        if step == "notebooks":
            names = args.notebooks if args.notebooks is not None else (["00"] if args.dry_run else None)
            report["notebooks"] = run_notebooks(names, fast=args.dry_run)
        elif step == "course":
            report["course"] = run_course(device, dry=args.dry_run)
        elif step in ("official", "t4"):
            if data is None:
                voc = _sibling("gpu_voc_official")
                sizes = tuple((h // 8, w // 8) for h, w in voc.VOC_SIZES) if args.dry_run else voc.VOC_SIZES
                data = voc.make_data(work, device, train_images=4 if args.dry_run else 64, val_images=1, sizes=sizes)
            if step == "official":
                report["official"] = run_official(device, data, OFFICIAL_RUNS, precision="auto", dry=args.dry_run)
            else:  # float16, as a T4 runs it (the dry run's CPU refuses float16: float32 there)
                report["t4"] = run_official(device, data, T4_RUNS, precision="fp16" if device.type == "cuda" else "fp32",
                                            dry=args.dry_run, memory_gib=T4_GIB)
        else:
            report["ablate"] = run_ablation(device, work, dry=args.dry_run)
        print(f"{step}: {time.perf_counter() - t0:.0f} s", flush=True)
        save()
    print(markdown(report))
    print(f"wrote {args.out.with_suffix('.json')} and {args.out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
