"""``refinenet-edu train``: train a RefineNet.

With no options it trains the course preset on the embedded dataset (``synthscenes``) with the course recipe, on the
best device available, and writes checkpoints, ``history.json`` and ``provenance.json`` to ``runs/<preset>-<date>``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import sys
from pathlib import Path

from refinenet_edu.cli.errors import kept, positive_int
from refinenet_edu.cli.options import (
    add_data_arguments, add_model_arguments, add_train_arguments, config_from_args, load_split, subset, train_options,
)
from refinenet_edu.engine.metrics import float_or_none
from refinenet_edu.engine.provenance import provenance
from refinenet_edu.engine.recipes import RECIPES, TrainConfig, resume_conflicts


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser, preset="course")
    parser.add_argument("--weights", default=None, help="encoder ImageNet weights: DEFAULT, IMAGENET1K_V1, or a state-dict file")
    add_data_arguments(parser)
    t = parser.add_argument_group("training (defaults: the preset's recipe, refinenet_edu.engine.recipes.RECIPES)")
    add_train_arguments(t)
    t.add_argument("--freeze-bn", action=argparse.BooleanOptionalAction, help="freeze batch-norm statistics")
    t.add_argument("--subset", type=positive_int, help="use only the first N training and N/4 validation images (quick runs)")
    o = parser.add_argument_group("output")
    o.add_argument("--out", type=Path, help="output folder (default: runs/<preset>-<date>)")
    o.add_argument("--resume", action="store_true", help="continue the run in --out from its last.pt")
    o.add_argument("--export", type=Path, help="also write the best model as a small float16 checkpoint here, with provenance")
    o.add_argument("--evaluate", choices=("single", "multi-scale"),
                   help="afterwards, score best.pt on the val split as `refinenet-edu evaluate` does: single scale "
                        "(OUT/evaluation-val.json), or that and multi-scale with flips, the official scales 0.4-1.2 "
                        "(OUT/evaluation-val-multiscale.json)")
    o.add_argument("--quiet", action="store_true", help="no progress bars")


def _train_config(args, out: Path) -> TrainConfig:
    """The preset's recipe with the options given; on ``--resume``, the run's own config with the options a resume
    can honour (device, stopping, ...): the optimizer and the schedule continue from last.pt."""
    recipe = RECIPES.get(args.preset, TrainConfig())
    given = {f.name: getattr(args, f.name) for f in train_options()}
    if not args.resume:
        if (out / "last.pt").exists():
            raise ValueError(f"--out {out}: already holds a run (last.pt); pass --resume to continue it or choose another --out")
        return recipe.replace(**given)
    from refinenet_edu.engine.checkpoints import load_checkpoint

    if not (out / "last.pt").is_file():
        raise ValueError(f"--resume: {out} holds no last.pt to continue (start a new run without --resume)")
    saved = load_checkpoint(out / "last.pt").get("train_config") or {}
    cannot = [f"--{k.replace('_', '-')} {given[k]} (the run has {saved[k]})" for k in resume_conflicts(given, saved)]
    if cannot:
        raise ValueError(f"--resume {out}: cannot honour {', '.join(cannot)}: the optimizer and learning-rate "
                         "schedule continue from last.pt; drop these options, or start a new run in another --out")
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    return TrainConfig(**{**recipe.to_dict(), **{k: v for k, v in saved.items() if k in known}}).replace(**given)


def run(args: argparse.Namespace) -> int:
    from refinenet_edu.engine.locks import writing_file, writing_folder

    out = args.out or Path("runs") / f"{args.preset}-{datetime.datetime.now():%Y%m%d-%H%M%S}"
    existed = out.exists()
    with contextlib.ExitStack() as outputs:
        # one writer: a second train into this folder stops here (engine.locks); a file at --out is refused
        outputs.enter_context(writing_folder(out))
        if args.export:  # held from the start, so that a refusal comes before the training, not after it
            outputs.enter_context(writing_file(args.export, option="--export", companions=(".json",)))
        try:
            return _train(args, out)
        except BaseException:
            # a run refused or stopped before its first checkpoint leaves no empty folder of its own behind
            if not existed and out.is_dir() and not any(out.iterdir()):
                out.rmdir()
            raise


def _train(args: argparse.Namespace, out: Path) -> int:
    from refinenet_edu.engine.checkpoints import load_checkpoint, save_checkpoint, load_model
    from refinenet_edu.datasets.transforms import eval_transforms, train_transforms
    from refinenet_edu.nn.model import RefineNet
    from refinenet_edu.files import atomic_write_json
    from refinenet_edu.datasets.info import DatasetInfo
    from refinenet_edu.engine.loop import seed_everything, train

    cfg = _train_config(args, out)

    train_set = load_split(args, "train", train_transforms(cfg.crop_size, scale_range=cfg.scale_range, hflip=cfg.hflip, jitter=cfg.jitter))
    val_set = load_split(args, "val", eval_transforms())
    info = DatasetInfo.of(train_set)
    if args.num_classes is None:
        args.num_classes = info.num_classes
    config = config_from_args(args)
    if args.freeze_bn is not None:
        config = config.replace(freeze_bn=args.freeze_bn)
    if config.num_classes != info.num_classes:
        raise ValueError(f"--num-classes {config.num_classes} does not match the dataset's {info.num_classes} classes")
    if args.subset:
        train_set = subset(train_set, args.subset)
        val_set = subset(val_set, max(1, args.subset // 4))

    out.mkdir(parents=True, exist_ok=True)
    prov = provenance(args._argv)
    if config.freeze_bn and args.weights is None:
        print(f"note: the {config.preset} preset freezes batch norm, which keeps the encoder's statistics as "
              "loaded; a random encoder has none (mean 0, variance 1: no normalisation) and a deep one diverges. "
              "Pass --weights DEFAULT (ImageNet) or a state dict, or --no-freeze-bn", file=sys.stderr, flush=True)
    seed_everything(cfg.seed)  # before the model is built: its initial weights follow --seed
    model = RefineNet(config, weights=args.weights)
    print(f"training {config.preset} ({config.backbone}, {config.cascade}) on {info.name}: "
          f"{len(train_set)} train / {len(val_set)} val images -> {out}", flush=True)

    def saved(record: dict) -> None:  # what Ctrl-C keeps (cli_errors.kept)
        kept(f"{out / 'last.pt'} keeps epoch {record['epoch']} of {cfg.epochs}; "
             f"continue with `refinenet-edu train --resume --out {out}` (and the same data and model options)")

    kept(f"no epoch finished, nothing saved in {out}" if not args.resume else None)
    result = train(model, train_set, val_set, cfg, out_dir=out, resume=args.resume, progress=not args.quiet,
                   dataset_info=info, provenance=prov, on_epoch=saved)
    summary = {**prov, "device": result.device, "precision": result.precision,
               "wall_seconds": round(result.seconds, 1), "epochs_run": len(result.history),
               "best_miou": float_or_none(result.best_miou), "best_epoch": result.best_epoch,
               "final_miou": float_or_none(result.final_miou),
               "stopped_because": result.stopped_because, "train_config": cfg.to_dict(),
               "model_config": config.to_dict(), "dataset": info.name}
    atomic_write_json(out / "provenance.json", summary)
    print(f"done in {result.seconds:.0f} s: best val mIoU {result.best_miou:.4f} (epoch {result.best_epoch}); "
          f"{result.stopped_because}. Checkpoints in {out}")
    if args.evaluate:
        code = _evaluate_best(args, out)
        if code:
            return code
    if args.export:
        best = load_checkpoint(out / "best.pt")
        model = load_model(out / "best.pt", checkpoint=best)
        save_checkpoint(args.export, model, half=True, dataset=info.as_dict(), metrics=best.get("metrics", {}),
                        history=result.history, provenance=summary, train_config=cfg.to_dict())
        atomic_write_json(Path(str(args.export) + ".json"), {**summary, "checkpoint": str(args.export)})
        print(f"exported {args.export} ({Path(args.export).stat().st_size / 1e6:.1f} MB)")
    return 0


def _evaluate_best(args: argparse.Namespace, out: Path) -> int:
    """``refinenet-edu evaluate`` on ``out/best.pt``: single scale, then (``multi-scale``) with the official scales."""
    from refinenet_edu.cli import main

    command = ["evaluate", str(out / "best.pt"), "--data", str(args.data), "--split", "val", "--device", args.device]
    command += ["--data-root", str(args.data_root)] if args.data_root else []
    command += ["--subset", str(max(1, args.subset // 4))] if args.subset else []
    command += ["--quiet"] if args.quiet else []
    runs = [("single scale", [], "evaluation-val.json")]
    if args.evaluate == "multi-scale":
        runs.append(("multi-scale + flip", ["--multi-scale", "--flip"], "evaluation-val-multiscale.json"))
    for label, extra, name in runs:
        print(f"evaluating {out / 'best.pt'} on val, {label}:", flush=True)
        code = main([*command, *extra, "--out", str(out / name)])
        if code:
            return code
    return 0
