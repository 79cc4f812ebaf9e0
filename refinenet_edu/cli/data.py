"""``refinenet-edu data``: generate SynthScenes, check a VOC-layout folder, download VOC 2012 / SBD.

    refinenet-edu data --out DIR [--seed 0] [--size 128] [--count 750] [--force]
    refinenet-edu data --check DIR [--splits train val] [--num-classes N]
    refinenet-edu data --download voc2012 --root DIR       (and --download sbd)
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

DEFAULT_COUNT = 750


def add_arguments(parser: argparse.ArgumentParser) -> None:
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--out", type=Path, metavar="DIR", help="generate the SynthScenes dataset into DIR")
    action.add_argument("--check", type=Path, metavar="DIR", help="validate a VOC-layout folder, report every problem")
    action.add_argument("--download", choices=("voc2012", "sbd"), metavar="NAME",
                        help="download, check (MD5) and extract voc2012 (PASCAL VOC 2012 trainval, about 2 GB) or sbd "
                             "(about 1.4 GB) into --root; mirrors are tried in order and an interrupted download resumes")
    gen = parser.add_argument_group("generation (--out)")
    gen.add_argument("--seed", type=int, default=0, help="random seed (default 0, the shipped set)")
    gen.add_argument("--size", type=int, default=128, help="image side in pixels, >= 32 (default 128)")
    gen.add_argument("--count", type=int, default=DEFAULT_COUNT,
                     help=f"number of images, a fifth of them val (default {DEFAULT_COUNT})")
    gen.add_argument("--force", action="store_true", help="replace DIR if it exists")
    dl = parser.add_argument_group("downloading (--download)")
    dl.add_argument("--root", type=Path, metavar="DIR",
                    help="where the data goes: DIR/VOCdevkit/VOC2012 and DIR/benchmark_RELEASE/dataset; "
                         "pass the same DIR as --data-root to train and evaluate")
    dl.add_argument("--quiet", action="store_true", help="no progress bars")
    chk = parser.add_argument_group("checking (--check)")
    chk.add_argument("--splits", nargs="+", default=["train", "val"], help="splits to check (default: train val)")
    chk.add_argument("--num-classes", type=int, default=None, help="number of classes (default: meta.json, else 21)")


def run(args: argparse.Namespace) -> int:
    if args.out is not None:
        return _generate(args)
    if args.download is not None:
        return _download(args)
    return _check(args)


def _download(args) -> int:
    from refinenet_edu.datasets.download import download_dataset

    if args.root is None:
        raise ValueError("--download needs --root DIR: the folder the dataset goes to")
    folder = download_dataset(args.download, args.root, progress=not args.quiet)
    also = " (with voc2012 there too: --data voc2012-aug, VOC 2012 train + SBD)" if args.download == "sbd" else ""
    print(f"{args.download}: ready in {folder}; read it with --data {args.download} --data-root {args.root}{also}")
    return 0


def _generate(args) -> int:
    from refinenet_edu.datasets.synthetic import generate_dataset
    from refinenet_edu.engine.locks import output_lock
    from refinenet_edu.files import remove_stale_temporaries

    if args.count < 2:
        raise ValueError(f"--count must be at least 2 (one train and one val image), got {args.count}")
    val = max(1, round(args.count / 5))  # a fifth (at least 1) is val
    train = args.count - val
    if args.size < 32:
        raise ValueError(f"--size must be at least 32, got {args.size}")
    if args.out.is_symlink():  # --force would replace the link by a folder and leave the old data in its target
        state = "a dangling link" if not args.out.exists() else "a symbolic link"
        raise ValueError(f"--out {args.out}: is {state} (to {os.readlink(args.out)}); a link is refused, with or "
                         "without --force: pass the folder itself or a new one")
    if args.out.exists() and not args.out.is_dir():
        raise ValueError(f"--out {args.out}: is a file; a folder was expected (nothing is replaced, even with --force)")
    if args.out.exists() and not args.force:
        raise ValueError(f"{args.out} already exists; pass --force to replace it")
    with output_lock(args.out):  # one writer (engine.locks); then what a killed run left beside it goes
        remove_stale_temporaries(args.out.parent, only=(), also=(f".{args.out.name}.partial-*", f".{args.out.name}.old-*"))
        start = time.perf_counter()  # a refused replacement is a FileExistsError with its own message
        out = generate_dataset(args.out, seed=args.seed, size=args.size, train_count=train, val_count=val,
                               overwrite=args.force)
    seconds = time.perf_counter() - start
    print(f"wrote {train} train + {val} val images ({args.size}x{args.size}, seed {args.seed}) to {out} in {seconds:.1f} s")
    return 0


def _check(args) -> int:
    from refinenet_edu.datasets.validation import check_voc_folder

    problems = check_voc_folder(args.check, splits=tuple(args.splits), num_classes=args.num_classes)
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} problem(s) found in {args.check}")
        return 1
    print(f"{args.check}: OK (splits: {', '.join(args.splits)})")
    return 0
