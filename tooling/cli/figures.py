"""``./course figures``: draw the diagrams the notebooks show into ``notebooks/figures/`` (:mod:`tooling.figures`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from tooling.figures import FIGURES, FIGURES_DIR, write_figures


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=FIGURES_DIR, metavar="DIR",
                        help="the folder for the PNG files (default: the checkout's notebooks/figures/)")


def run(args: argparse.Namespace) -> int:
    changed = write_figures(args.out)
    for path in changed:
        print(f"wrote {path}")
    print(f"{len(FIGURES)} figure(s) in {args.out}: {len(changed)} written, {len(FIGURES) - len(changed)} unchanged")
    return 0
