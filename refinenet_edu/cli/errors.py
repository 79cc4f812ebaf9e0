"""The one error path of the ``refinenet-edu`` command line.

Every sub-command runs through :func:`run_command`. An *expected* failure -- bad input, a missing or unreadable file, a
full or read-only disk, an output held by another command, a diverged or out-of-memory run -- ends as one line on
stderr, ``refinenet-edu <command>: error: <what> ... <what to do>``, and exit status 2 (argparse's own status for a bad
option). Ctrl-C ends with status 130 and says what was kept (:func:`kept`); so does SIGTERM, with status 143. Anything
else is a bug: one line asking to re-run with ``--debug`` (status 1). ``--debug`` (or ``REFINENET_EDU_DEBUG=1``) shows
the traceback of every failure instead.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib
import math
import os
import re
import signal
import sys
import threading
import traceback
from typing import Callable

__all__ = ["EXIT_ERROR", "EXIT_INTERRUPTED", "describe", "kept", "non_negative_int", "number", "positive_float",
           "positive_int", "run_command", "terminate_as_interrupt"]

EXIT_ERROR = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143  # 128 + SIGTERM, what a shell reports for a process killed by it
EXIT_BUG = 1


#: what the running command has kept so far, for the Ctrl-C message (see :func:`kept`)
_kept: str | None = None


def kept(what: str | None) -> None:
    """Record what an interrupted command leaves behind, e.g. "checkpoints up to epoch 3 in runs/x"."""
    global _kept
    _kept = what


_OS_ADVICE = {
    errno.ENOSPC: "no space left on device (the disk is full): free some space or choose another output",
    errno.EDQUOT: "the disk quota is used up: free some space or choose another output",
    errno.EROFS: "the file system is read-only: choose another output",
    errno.EACCES: "permission denied: choose another output or change the folder's permissions",
    errno.EPERM: "operation not permitted: choose another output or change the folder's permissions",
    errno.ENOENT: "no such file or folder",
    errno.EISDIR: "is a folder, a file was expected",
    errno.ENOTDIR: "a part of the path is a file, a folder was expected",
    errno.EEXIST: "already exists",
}


def _os_message(err: OSError) -> str:
    if err.errno is None:  # raised with a message only, e.g. FileNotFoundError("checkpoint x: no such file")
        return str(err)
    where = "" if err.filename is None else str(err.filename)
    if err.filename2 is not None:
        where = f"{where} -> {err.filename2}"
    advice = _OS_ADVICE.get(err.errno) or err.strerror or str(err)
    if err.errno in (errno.EEXIST, errno.ENOENT, errno.ENOTDIR) and err.filename is not None and err.filename2 is None:
        # mkdir of an output (parents=True) meets a file or a dangling link: "already exists" said nothing
        from refinenet_edu.files import not_a_folder

        problem = not_a_folder(err.filename)
        if problem and os.path.isfile(err.filename):
            problem = "is a file where the path needs a folder (a part of the path is a file)"
        advice = problem or advice
    return f"{where}: {advice}" if where else advice


#: what to lower when a command runs out of memory (default: the training sizes)
_MEMORY_ADVICE = {
    "data": "lower --size or --count",
    "evaluate": "lower --scales, or use --window or --subset",
    "predict": "use --window, or leave out --multi-scale",
    "bench": "lower --input-size or --batch",
}


def describe(err: BaseException, command: str | None = None) -> str | None:
    """The one-line message of an expected failure of ``command``, or None for a bug."""
    from refinenet_edu.engine.locks import LockHeld

    if isinstance(err, (LockHeld, ValueError)):
        return str(err)
    if isinstance(err, OSError):
        return _os_message(err)
    advice = _MEMORY_ADVICE.get(command or "", "lower --batch-size or --crop-size")
    if isinstance(err, MemoryError):
        return f"out of memory: {advice}, or choose a smaller model"
    if isinstance(err, RuntimeError):
        import torch

        from refinenet_edu.engine.loop import TrainingDiverged
        from refinenet_edu.experiments.runner import RunsFailed

        if isinstance(err, (TrainingDiverged, RunsFailed)):  # failures the library explains in their message
            return str(err)
        inner = _worker_error(str(err))
        if inner is not None:
            return inner
        text = str(err).lower()
        # the CPU allocator says "can't allocate memory", CUDA "out of memory"
        if isinstance(err, torch.OutOfMemoryError) or "out of memory" in text or "can't allocate memory" in text:
            first = str(err).splitlines()[0] if str(err) else ""
            return first if "lower" in first else (
                f"out of memory on the device ({first}): {advice}, or use --precision auto (bf16 or fp16 on a GPU)")
    return None


_WORKER = re.compile(r"^Caught \w+ in DataLoader worker process \d+")


def _worker_error(text: str) -> str | None:
    """The message of an expected failure inside a DataLoader worker, which torch re-raises as a RuntimeError
    ("Caught DatasetError in DataLoader worker process 0. Original Traceback ...") when the original type cannot
    be rebuilt from the text; None when ``text`` is not that, or the original is a bug."""
    if not _WORKER.match(text):
        return None
    last = text.strip().splitlines()[-1]  # "refinenet_edu.datasets.voc.DatasetError: FILE: what is wrong"
    qualname, _, message = last.partition(": ")
    module, _, name = qualname.rpartition(".")
    try:
        kind = getattr(importlib.import_module(module or "builtins"), name)
    except (ImportError, AttributeError, ValueError):
        return None
    expected = isinstance(kind, type) and issubclass(kind, (ValueError, OSError, MemoryError))
    return message if expected and message else None


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, a batch system's time limit): stopped like Ctrl-C, exit status 143."""


@contextlib.contextmanager
def terminate_as_interrupt():
    """While the block runs (in the main thread), SIGTERM raises :class:`Terminated`, so that it ends a
    command as Ctrl-C does: one line saying what was kept. The previous handler is restored after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_command(name: str, run: Callable[[], int], *, debug: bool = False, prog: str = "refinenet-edu") -> int:
    """Run a sub-command of ``prog``; map its failures to one line and an exit status."""
    debug = debug or os.environ.get("REFINENET_EDU_DEBUG", "") not in ("", "0")
    kept(None)
    label = f"{prog} {name}" if name else prog
    try:
        return int(run() or 0)
    except KeyboardInterrupt as stop:
        if debug:
            traceback.print_exc()
        what = _kept or "nothing half-written was left behind (files are written whole or not at all)"
        how = "terminated (SIGTERM)" if isinstance(stop, Terminated) else "interrupted"
        print(f"{label}: {how}; {what}", file=sys.stderr)
        return EXIT_TERMINATED if isinstance(stop, Terminated) else EXIT_INTERRUPTED
    except Exception as err:  # noqa: BLE001 - the one place that maps every failure to a message
        if debug:
            traceback.print_exc()
        message = describe(err, name)
        if message is None:
            print(f"{label}: internal error: {type(err).__name__}: {' '.join(str(err).split())} "
                  "(a bug: run again with --debug for the traceback and report it)", file=sys.stderr)
            return EXIT_BUG
        print(f"{label}: error: {' '.join(message.split())}", file=sys.stderr)
        return EXIT_ERROR


# ---------------------------------------------------------------- argument types
def number(kind: type, text: str) -> float | int:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r}: expected a finite number")
    return value


def _at_least(kind: type, low: float, *, strict: bool, expected: str):
    """An argparse type: a ``kind`` number ``> low`` (``strict``) or ``>= low``, else "expected ``expected``"."""
    def parse(text: str):
        value = number(kind, text)
        if value < low or (strict and value == low):
            raise argparse.ArgumentTypeError(f"{text!r}: expected {expected}")
        return value

    return parse


#: argparse type: an integer >= 1.
positive_int = _at_least(int, 1, strict=False, expected="an integer >= 1")
#: argparse type: an integer >= 0.
non_negative_int = _at_least(int, 0, strict=False, expected="an integer >= 0")
#: argparse type: a finite number > 0.
positive_float = _at_least(float, 0, strict=True, expected="a number > 0")
