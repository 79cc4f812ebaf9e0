"""What the train / evaluate / predict commands share: provenance and data options."""

from __future__ import annotations

import datetime
import platform
import shlex
import subprocess
import sys
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[2]


def git_commit() -> str | None:
    """The checkout's commit (with "-dirty" when files differ), or None outside git."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT, capture_output=True,
            text=True, timeout=10,
        ).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def provenance(argv: list[str] | None = None) -> dict:
    """Where a result came from: command, commit, versions, machine, date."""
    import torchvision

    argv = sys.argv if argv is None else argv
    prog = Path(argv[0]).name if argv else "refinenet-edu"
    if prog in ("__main__.py", "-m"):
        prog = "refinenet-edu"
    return {
        "command": " ".join(["refinenet-edu" if prog.startswith("refinenet") else prog] + [shlex.quote(a) for a in argv[1:]]),
        "commit": git_commit(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "torch": str(torch.__version__),
        "torchvision": str(torchvision.__version__),
        "platform": platform.platform(),
    }


def add_data_arguments(parser, *, default: str | None = "synthscenes") -> None:
    g = parser.add_argument_group("data")
    g.add_argument(
        "--data", default=default,
        help="dataset: 'synthscenes' (embedded), 'voc2012', 'sbd', or a folder in PASCAL VOC layout "
             f"(default: {default})",
    )
    g.add_argument("--data-root", default=None, help="where voc2012/sbd live (or are downloaded to)")
    g.add_argument("--download", action="store_true", help="download voc2012/sbd if missing (off by default)")


def load_split(args, split: str, transforms):
    from refinenet_edu.datasets import load_dataset

    kwargs = {}
    if getattr(args, "data_root", None):
        kwargs["root"] = args.data_root
    if getattr(args, "download", False):
        kwargs["download"] = True
    return load_dataset(args.data, split, transforms=transforms, **kwargs)


def dataset_info(ds) -> dict:
    from refinenet_edu.training import describe_dataset

    return describe_dataset(ds)
