"""``refinenet-edu evaluate``: score a checkpoint on a dataset split.

Prints the table (per-class IoU, mIoU, pixel and mean class accuracy, frequency-weighted IoU, boundary mIoU per trimap
band) and writes it as JSON. ``--multi-scale`` averages softmax scores over the official code's scales, ``--flip`` adds
the mirrored image. ``--from-port FILE`` scores the public PyTorch port's converted weights instead of a checkpoint (the
full network's real number on VOC 2012 val: the port reports 80.5 mIoU, single scale).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from refinenet_edu.cli.errors import positive_float, positive_int
from refinenet_edu.cli.options import add_data_arguments, load_split, require_checkpoint, subset
from refinenet_edu.engine.provenance import provenance


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", type=Path, nargs="?", help="a checkpoint written by refinenet-edu train")
    parser.add_argument("--from-port", type=Path, metavar="FILE",
                        help="instead of a checkpoint: the refinenet-pytorch port's weights (rf101_voc), loaded "
                             "into the official preset (refinenet_edu.nn.port_weights); data default: voc2012")
    add_data_arguments(parser, default=None)
    parser.add_argument("--split", default="val")
    parser.add_argument("--multi-scale", action="store_true", help="average over the official scales (0.4 .. 1.2)")
    parser.add_argument("--scales", type=positive_float, nargs="+", help="explicit test scales (overrides --multi-scale)")
    parser.add_argument("--flip", action="store_true", help="also average the horizontally flipped image")
    parser.add_argument("--window", type=positive_int, help="sliding-window inference for images larger than this")
    parser.add_argument("--bands", type=positive_int, nargs="*", default=[1, 2, 4, 8, 16], help="trimap band widths (pixels)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"), default="fp32")
    parser.add_argument("--subset", type=positive_int, help="only the first N images")
    parser.add_argument("--out", type=Path, help="JSON results (default: <checkpoint folder>/evaluation-<split>.json)")
    parser.add_argument("--save-predictions", type=Path, metavar="DIR",
                        help="also write each image's predicted mask (palette PNG) and overlay here")
    parser.add_argument("--quiet", action="store_true")


def run(args: argparse.Namespace) -> int:
    import contextlib

    from refinenet_edu.engine.locks import writing_file, writing_folder
    from refinenet_edu.files import not_a_file

    if (args.checkpoint is None) == (args.from_port is None):
        raise ValueError("give a checkpoint or --from-port FILE (one of them)")
    if args.checkpoint is not None:
        require_checkpoint(args.checkpoint)
    elif not args.from_port.is_file():
        raise ValueError(f"--from-port {args.from_port}: {not_a_file(args.from_port)}")
    out = args.out or (args.checkpoint.parent / f"evaluation-{args.split}.json" if args.checkpoint is not None
                       else args.from_port.parent / f"{args.from_port.name}.evaluation-{args.split}.json")
    with contextlib.ExitStack() as stack:  # one writer per output (engine.locks)
        stack.enter_context(writing_file(out))
        if args.save_predictions:
            stack.enter_context(writing_folder(args.save_predictions, option="--save-predictions",
                                               subfolders=("overlays",)))
        return _evaluate(args, out)


def _evaluate(args: argparse.Namespace, out: Path) -> int:
    import torch

    from refinenet_edu.engine.checkpoints import load_checkpoint, load_model
    from refinenet_edu.datasets.transforms import eval_transforms
    from refinenet_edu.engine.runtime import resolve_device, resolve_precision
    from refinenet_edu.engine.evaluation import OFFICIAL_SCALES, evaluate, save_predictions
    from refinenet_edu.files import atomic_write_json
    from refinenet_edu.datasets.info import DatasetInfo

    source = args.from_port or args.checkpoint
    ckpt = {"dataset": {"name": "voc2012"}} if args.from_port is not None else load_checkpoint(source)
    if args.data is None:
        args.data = (ckpt.get("dataset") or {}).get("name") or "synthscenes"
    ds = load_split(args, args.split, eval_transforms())
    if args.subset:
        ds = subset(ds, args.subset)
    info = DatasetInfo.of(ds)
    device = resolve_device(args.device)
    dtype = resolve_precision(args.precision, device)
    if args.from_port is not None:
        from refinenet_edu.nn.port_weights import load_port_weights

        model = load_port_weights(args.from_port, device=device)
        if model.config.num_classes != info.num_classes:
            raise ValueError(f"--from-port {args.from_port}: {model.config.num_classes} classes, "
                             f"the dataset has {info.num_classes}")
    else:
        model = load_model(args.checkpoint, device=device, num_classes=info.num_classes, checkpoint=ckpt)
    scales = tuple(args.scales) if args.scales else (OFFICIAL_SCALES if args.multi_scale else (1.0,))

    def save(ids, images, predictions):  # in the same pass as the scores, each image at its own size
        save_predictions(predictions, ids, args.save_predictions, info.palette, images=images)

    result = evaluate(model, ds, num_classes=info.num_classes, scales=scales, flip=args.flip, window=args.window,
                      bands=tuple(args.bands), device=device, amp_dtype=None if dtype == torch.float32 else dtype,
                      progress=not args.quiet, class_names=list(info.class_names),
                      on_prediction=save if args.save_predictions else None)
    print(result.table())
    data = {"checkpoint": str(source), "dataset": info.as_dict(), "split": args.split, "scales": list(scales),
            "flip": args.flip, "provenance": provenance(args._argv), **result.as_dict()}
    atomic_write_json(out, data)
    print(f"wrote {out}")
    if args.save_predictions:
        print(f"wrote {result.num_images} predictions (masks and overlays) to {args.save_predictions}")
    return 0
