"""Helpers of the reliability tests: tiny command lines that run in about a second on a CPU."""

from __future__ import annotations

import os
import subprocess
import sys

MODEL = ["--encoder-width", "8", "--widths", "8", "8", "8", "16"]


def tiny_train(data, out, *extra) -> list[str]:
    """``refinenet-edu train`` arguments: one epoch of a width-8 model on 4 images, 32 px crops."""
    return ["train", "--data", str(data), "--epochs", "1", "--batch-size", "4", "--crop-size", "32", *MODEL,
            "--device", "cpu", "--precision", "fp32", "--subset", "4", "--quiet", "--out", str(out), *map(str, extra)]


def tiny_ablate(data, out, *extra) -> list[str]:
    """``refinenet-edu ablate`` arguments: one variant, seed 0, one epoch on 4 images, no timing."""
    return ["ablate", "--variants", "4-cascaded-crp4", "--seeds", "0", "--data", str(data), "--subset", "4", "--epochs", "1",
            "--batch-size", "4", "--crop-size", "32", *MODEL, "--device", "cpu", "--precision", "fp32",
            "--no-timing", "--save-predictions", "none", "--out", str(out), *map(str, extra)]


def cli(*args, **kwargs) -> subprocess.CompletedProcess:
    """Run ``python -m refinenet_edu ARGS`` in a fresh process (one thread)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", **kwargs.pop("env", {})}
    return subprocess.run([sys.executable, "-m", "refinenet_edu", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=kwargs.pop("timeout", 120), **kwargs)


def popen(*args, module: str = "refinenet_edu") -> subprocess.Popen:
    """``python -m MODULE ARGS`` running on (``tooling``: the course's ``./course`` commands, from the checkout)."""
    checkout = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = os.pathsep.join(filter(None, [checkout, os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path}
    return subprocess.Popen([sys.executable, "-m", module, *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=_ctrl_c_reaches_it if os.name == "posix" else None)


def _ctrl_c_reaches_it() -> None:
    """In the child, before Python starts: SIGINT at its default, as for a command typed at a terminal. A test run
    started in the background (``cmd &`` in a script, ``nohup``) ignores SIGINT, and a child would inherit that."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
