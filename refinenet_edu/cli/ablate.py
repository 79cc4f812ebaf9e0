"""``refinenet-edu ablate``: train a grid of variants over seeds and compare them (:mod:`refinenet_edu.experiments.runner`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from refinenet_edu.cli.errors import kept, non_negative_int, positive_int
from refinenet_edu.cli.options import add_train_arguments
from refinenet_edu.experiments.results import AblationResults
from refinenet_edu.experiments.runner import budget_for, run_grid
from refinenet_edu.experiments.variants import make_grid, parse_variant
from refinenet_edu.nn.config import CASCADES, PRESETS, make_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    v = parser.add_argument_group("variants (default: every cascade at CRP 4, and CRP 0 / 2 / 4 on the 4-cascade)")
    v.add_argument("--variants", nargs="+", metavar="NAME",
                   help="variants by name, e.g. 4-cascaded-crp4 single-crp4 4-cascaded-crp0 4-cascaded-crp4-rcu3 "
                        "4-cascaded-crp4-lw (replaces the grid options)")
    v.add_argument("--cascades", nargs="+", choices=list(CASCADES), help="cascades to compare (paper Fig. 2(c) and Fig. 7)")
    v.add_argument("--crp-blocks", nargs="+", type=int, metavar="N", help="chained residual pooling blocks, e.g. 0 2 4")
    v.add_argument("--output-rcus", nargs="+", type=int, metavar="N", help="output RCUs per block, e.g. 1 3")
    v.add_argument("--light-weight", action="store_true", help="add the light-weight decoder (1x1 convs, no RCUs)")
    v.add_argument("--grid", choices=("oat", "full"), default="oat",
                   help="oat: change one factor at a time from the preset (default); full: all combinations")
    v.add_argument("--preset", default="course", choices=list(PRESETS), help="the model the variants start from")
    v.add_argument("--encoder-width", type=int, choices=(8, 16, 32, 64), help="override the preset's encoder width")
    v.add_argument("--widths", type=int, nargs=4, metavar=("W4", "W8", "W16", "W32"), help="override the decoder widths")
    t = parser.add_argument_group("budget (the same for every run; defaults: the preset's recipe)")
    t.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="seeds (default: 0 1 2)")
    add_train_arguments(t, ("epochs", "batch_size", "crop_size", "lr", "encoder_lr_ratio", "loss"))
    t.add_argument("--encoder-weights", type=Path, metavar="FILE",
                   help="start every run's encoder from this state dict (refinenet-edu pretrain makes one)")
    t.add_argument("--eval-every", type=positive_int, default=5, help="validation mIoU every N epochs during training (default 5)")
    t.add_argument("--subset", type=positive_int, help="only the first N training and N/4 validation images (quick tries, tests)")
    t.add_argument("--data", default="synthscenes", help="dataset name or VOC-layout folder (default: synthscenes)")
    r = parser.add_argument_group("running")
    add_train_arguments(r, ("device", "precision"))
    r.add_argument("--num-workers", type=non_negative_int, help="data-loading processes per run")
    r.add_argument("--jobs", type=positive_int, default=1, help="runs trained at once in worker processes (GPU: 4-8)")
    r.add_argument("--threads", type=positive_int, help="CPU threads per run (torch.set_num_threads)")
    r.add_argument("--out", type=Path, default=Path("results/ablation"), help="results folder (default results/ablation)")
    r.add_argument("--save-predictions", choices=("none", "seed0", "all"), default="seed0",
                   help="save the predicted validation masks of these runs (default: the first seed)")
    r.add_argument("--save-checkpoints", choices=("none", "seed0", "all"), default="none",
                   help="save float16 checkpoints of these runs (about 8 MB each for the course preset)")
    r.add_argument("--no-timing", action="store_true", help="do not measure inference time")
    r.add_argument("--list", action="store_true", help="print the planned runs and which are done, then exit")
    r.add_argument("--progress", action="store_true",
                   help="progress bars with --jobs 1; with more jobs, one line per epoch of each run")


def run(args: argparse.Namespace) -> int:
    variants = ([parse_variant(n) for n in args.variants] if args.variants else
                make_grid(args.cascades, args.crp_blocks, args.output_rcus, args.light_weight, grid=args.grid))
    overrides: dict[str, Any] = {}
    if args.encoder_width is not None:
        overrides["encoder_width"] = args.encoder_width
    if args.widths:
        overrides["widths"] = tuple(args.widths)
    for v in variants:  # the model options are checked now, before anything trains
        make_config(args.preset, **{**overrides, **v.overrides()})
    cfg = budget_for(args.preset, epochs=args.epochs, batch_size=args.batch_size, crop_size=args.crop_size, lr=args.lr,
                     eval_every=args.eval_every, num_workers=args.num_workers, encoder_lr_ratio=args.encoder_lr_ratio,
                     loss=args.loss)
    if args.list:
        done = AblationResults.load(args.out).done() if (args.out / "results.json").is_file() else set()
        for v in variants:
            marks = " ".join(f"{s}{'*' if (v.name, s) in done else ''}" for s in args.seeds)
            print(f"{v.name:<32} {v.label:<40} seeds {marks}")
        print(f"({cfg.epochs} epochs, batch {cfg.batch_size}, crop {cfg.crop_size}, loss {cfg.loss}; "
              f"* = done in {args.out})")
        return 0
    kept(f"{args.out / 'results.json'} keeps every run that finished; the same command trains the rest")
    run_grid(variants, args.seeds, args.out, preset=args.preset, data=args.data, train_config=cfg,
             model_overrides=overrides, subset=args.subset, jobs=args.jobs, threads=args.threads,
             save_predictions=args.save_predictions, save_checkpoints=args.save_checkpoints, device=args.device,
             precision=args.precision, time_inference_runs=not args.no_timing, argv=args._argv,
             progress=args.progress, encoder_weights=args.encoder_weights)
    return 0
