"""``refinenet-edu summary``: parameter count, per-block table and FLOPs of a model (:mod:`refinenet_edu.nn.cost`)."""

from __future__ import annotations

import argparse
import json

from refinenet_edu.cli.options import add_model_arguments, config_from_args
from refinenet_edu.nn.cost import summarize


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    parser.add_argument("--input-size", type=int, nargs=2, default=(512, 512), metavar=("H", "W"), help="input size for shapes and FLOPs (default 512 512)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    h, w = args.input_size
    from refinenet_edu.nn.config import MIN_INPUT_SIZE

    if h < MIN_INPUT_SIZE or w < MIN_INPUT_SIZE:
        raise ValueError(f"--input-size {h} {w}: height and width must be at least {MIN_INPUT_SIZE}")
    s = summarize(config, (h, w))
    print(json.dumps(s.as_dict(), indent=2) if args.json else s.table())
    return 0
