"""One writer per output: a lock beside every file or folder a command writes.

Two commands writing one output folder would lose each other's work (two ``train`` runs into one ``--out`` leave
``best.pt`` of one and ``last.pt`` of the other). Every command that writes therefore holds :func:`output_lock` on
its output while it writes, and a second command on the same output stops at once with :class:`LockHeld`, a
one-line message naming the output, the process holding it and its command.

The lock is ``fcntl.flock`` on a file beside the output (``runs/.course-run.lock`` for ``runs/course-run``; the
output may not exist yet). The kernel drops it when its process dies, so the lock of a killed run is free at once;
the file records the holder (pid, host, command, start) only for the message. Where ``fcntl`` is missing (Windows)
the file is created exclusively instead, and a file naming a process that no longer runs on this host is taken
over. ``ablate``, which merges several invocations into one results file, takes the lock only around each
read-merge-write and waits for it (``wait=`` seconds).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Iterator

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

from refinenet_edu.files import remove_stale_temporaries

__all__ = ["LockHeld", "lock_path", "output_lock"]


class LockHeld(RuntimeError):
    """Another process is writing ``path``; ``holder`` is what its lock file says (may be empty)."""

    def __init__(self, path: Path, holder: dict):
        self.path = Path(path)
        self.holder = holder
        who = []
        if holder.get("pid"):
            who.append(f"pid {holder['pid']}" + (f" on {holder['host']}" if holder.get("host") else ""))
        if holder.get("command"):
            who.append(f"`{holder['command']}`")
        if holder.get("since"):
            who.append(f"since {holder['since']}")
        super().__init__(
            f"{self.path}: another refinenet-edu command is writing it ({', '.join(who) or 'unknown process'}); "
            "wait for it to finish or choose another output"
        )


def lock_path(output: str | os.PathLike) -> Path:
    """The lock file of ``output``: ``.<name>.lock`` in the same folder."""
    output = Path(os.path.abspath(output))
    return output.parent / f".{output.name}.lock"


def _holder(path: Path) -> dict:
    try:
        data = json.loads(path.read_text() or "{}")
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. PermissionError: it runs, as another user
        pass
    return True


def _try_flock(path: Path, me: dict) -> int | None:
    """The locked descriptor of ``path``, or None when another process holds it."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        # the previous holder may have removed the file between our open and our lock:
        # then we hold a lock on a file nobody else will open, so start again
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(fd, 0)
            os.write(fd, (json.dumps(me) + "\n").encode())
            return fd
        os.close(fd)


def _try_exclusive(path: Path, me: dict) -> int | None:  # pragma: no cover - Windows
    for _ in range(2):
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            holder = _holder(path)
            pid = holder.get("pid")
            if holder.get("host") == me["host"] and isinstance(pid, int) and not _alive(pid):
                path.unlink(missing_ok=True)  # stale: its process is gone
                continue
            return None
        os.write(fd, (json.dumps(me) + "\n").encode())
        return fd
    return None


@contextlib.contextmanager
def output_lock(output: str | os.PathLike, *, command: str | None = None, wait: float = 0.0) -> Iterator[Path]:
    """Hold the lock of ``output`` (a file or folder, existing or not) for the ``with`` block.

    Raises :class:`LockHeld` when another live process holds it, after trying for ``wait`` seconds. ``command`` is
    recorded for that message (default: this process's command line). Yields the lock file's path.
    """
    path = lock_path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    me = {"pid": os.getpid(), "host": socket.gethostname(),  # what the lock file says, for LockHeld's message
          "command": command or " ".join(["refinenet-edu", *sys.argv[1:]]),
          "since": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}
    attempt = _try_flock if fcntl is not None else _try_exclusive
    deadline = time.monotonic() + wait
    while (fd := attempt(path, me)) is None:
        if time.monotonic() >= deadline:
            raise LockHeld(Path(output), _holder(path))
        time.sleep(0.05)
    try:
        yield path
    finally:
        # remove the file while still holding the lock, so a waiting process re-opens a fresh one
        with contextlib.suppress(OSError):
            path.unlink()
        os.close(fd)


@contextlib.contextmanager
def writing_folder(folder: str | os.PathLike, *, option: str = "--out", subfolders: tuple[str, ...] = ()) -> Iterator[Path]:
    """Hold ``folder``'s lock while a command writes into it, after removing what a killed run left there.

    ``option`` names the argument in the messages. A file at ``folder`` is a ``ValueError``. Stale temporaries
    of :func:`~refinenet_edu.files.atomic_write` are removed from ``folder`` and its ``subfolders``, since no
    other command writes there while the lock is held.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{option} {folder}: is a file; an output folder was expected (choose another {option})")
    with output_lock(folder):
        remove_stale_temporaries(folder)
        for sub in subfolders:
            remove_stale_temporaries(folder / sub)
        yield folder


@contextlib.contextmanager
def writing_file(path: str | os.PathLike, *, option: str = "--out", companions: tuple[str, ...] = ()) -> Iterator[Path]:
    """Hold the lock of the output file ``path`` (and of ``PATH<suffix>`` for each of ``companions``).

    A folder at ``path`` is a ``ValueError``; stale temporaries of these files are removed.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{option} {path}: is a folder; an output file was expected (give a file name)")
    with output_lock(path):
        names = [path.name, *(path.name + c for c in companions)]
        remove_stale_temporaries(path.parent, only=tuple(names))
        yield path
