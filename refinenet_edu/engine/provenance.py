"""Where a result came from: the command, the commit, the versions, the machine.

Training runs, evaluations, benchmarks and the ablation grid all stamp their
outputs with :func:`provenance`.
"""

from __future__ import annotations

import datetime
import platform
import shlex
import subprocess
import sys
from pathlib import Path

import torch

from refinenet_edu.resources import checkout_root

__all__ = ["git_commit", "provenance"]

def git_commit() -> str | None:
    """The checkout's commit (with "-dirty" when files differ), or None outside git."""
    root = checkout_root()
    if root is None:  # installed from a wheel: no repository to ask
        return None
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True,
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
