"""``./course bench``: speed, FLOP/s and memory of presets and torchvision peers (:mod:`tooling.bench`)."""

from __future__ import annotations

import argparse
import json
import sys

from refinenet_edu.engine.runtime import DTYPES
from refinenet_edu.engine.runtime import cpu_threads
from refinenet_edu.files import atomic_write_text
from tooling.bench import GRIDS, MEMORY_FORMATS, MODES, SMOKE, STATISTICS, Settings, format_table, run_bench


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from refinenet_edu.cli.errors import non_negative_int, positive_int

    parser.add_argument("--models", nargs="+", default=None, metavar="MODEL",
                        help="presets and peers, NAME[@BACKBONE][:KEY=VALUE,...] (default: official fcn deeplabv3)")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=None, help="forward and/or train (default: both)")
    parser.add_argument("--dtypes", nargs="+", choices=list(DTYPES), default=None,
                        help="precisions (default: fp32 and what the device runs natively)")
    parser.add_argument("--memory-formats", nargs="+", choices=list(MEMORY_FORMATS), default=None,
                        help="tensor layouts (default: both)")
    parser.add_argument("--compile", choices=("off", "on", "both"), default="off",
                        help="torch.compile the model (in a child process, time-boxed; default off)")
    parser.add_argument("--compile-timeout", type=float, default=300.0, metavar="S",
                        help="seconds allowed per compiled case (default 300)")
    parser.add_argument("--grid", choices=GRIDS, default="full",
                        help="full: every dtype in every layout; lean: fp32 contiguous + every dtype in channels_last")
    parser.add_argument("--devices", nargs="+", default=None, help="cpu and/or cuda (default: cuda if present, else cpu)")
    parser.add_argument("--input-size", type=positive_int, nargs=2, default=None, metavar=("H", "W"), help="default 512 512")
    parser.add_argument("--batch", type=positive_int, default=1, help="images per step (default 1)")
    parser.add_argument("--num-classes", type=positive_int, default=21)
    parser.add_argument("--iterations", type=positive_int, default=None, help="timed steps per case (default 3)")
    parser.add_argument("--warmup", type=non_negative_int, default=None, help="untimed steps per case first (default 1)")
    parser.add_argument("--statistic", choices=list(STATISTICS), default="median",
                        help="time per step: median (default) or min (the best estimate on a machine shared with other work)")
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="CPU threads for torch (torch.set_num_threads; default: torch's, see the table's header)")
    parser.add_argument("--no-probe", action="store_true", help="skip the peak probe (no %% of peak)")
    parser.add_argument("--smoke", action="store_true",
                        help="a < 1 minute check: course preset and FCN at 64x64, 1 iteration (what CI runs)")
    parser.add_argument("--json", metavar="PATH", help="also write the result as JSON to PATH ('-' = stdout only JSON)")
    parser.add_argument("--quiet", action="store_true", help="no progress messages")


def run(args: argparse.Namespace) -> int:
    smoke = SMOKE if args.smoke else {}
    models = args.models or smoke.get("models") or ["official", "fcn", "deeplabv3"]
    settings = Settings(
        input_size=tuple(args.input_size or smoke.get("input_size") or (512, 512)),
        batch=args.batch,
        iterations=args.iterations or smoke.get("iterations") or 3,
        warmup=args.warmup if args.warmup is not None else smoke.get("warmup", 1),
        num_classes=args.num_classes,
        compile_timeout=args.compile_timeout,
        probe=not args.no_probe,
        statistic=args.statistic,
    )
    log = (lambda m: None) if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads {args.threads}: must be >= 1")
    with cpu_threads(args.threads):  # for this command only; compiled cases' child processes use as many
        result = run_bench(
            models,
            modes=args.modes or list(MODES),
            dtypes=args.dtypes,
            memory_formats=args.memory_formats or list(MEMORY_FORMATS),
            compile=args.compile,
            grid=args.grid,
            devices=args.devices,
            settings=settings,
            log=log,
        )
    text = json.dumps(result, indent=2)
    if args.json == "-":
        print(text)
        return 0
    print(format_table(result))
    if args.json:
        path = atomic_write_text(args.json, text + "\n")
        log(f"wrote {path}")
    return 0
