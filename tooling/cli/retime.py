"""``./course retime``: measure the inference times of a finished ablation results set on this machine
(:mod:`tooling.retime`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from refinenet_edu.cli.errors import positive_int
from refinenet_edu.cli.options import add_train_arguments
from tooling.retime import retime


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, metavar="DIR",
                        help="the results folder (refinenet-edu ablate's --out), e.g. results/ablation")
    add_train_arguments(parser, ("device", "precision"))
    parser.add_argument("--repeats", type=positive_int, default=30,
                        help="timed predictions per variant, the fastest counts (default 30)")


def run(args: argparse.Namespace) -> int:
    retime(args.out, device=args.device, precision=args.precision, repeats=args.repeats, argv=args._argv)
    return 0
