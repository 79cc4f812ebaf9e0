"""Run a command where student code cannot reach the course: another user, no network, folders hidden.

Autograding runs code a student wrote. With :func:`isolation` ``"namespace"``
(Linux, run as root: a container, a grading VM, CI) the command runs

* in new mount, network and PID namespaces (``unshare``): no network at all,
  and every process it starts ends with it;
* with each folder of ``hide`` covered by an empty, unreadable file system
  (the course directory: sources, hidden tests, other submissions, the
  gradebook; for the judge's runner also the library's reference code),
  folders of ``keep`` inside them (the Python environment, the library for
  the feedback run) put back, and a hidden folder inside a kept one hidden
  again;
* as the unprivileged user ``nobody``, who can write only ``workdir``;
* with a limit on the size of the files it writes; ``/tmp`` and the other shared
  scratch folders are hidden too (``TMPDIR`` is ``workdir``).

Without root there is no such isolation (``"none"``): the command runs as the
instructor, and ``assignments/README.md`` says how to get it (a container).
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
from pathlib import Path

__all__ = ["SANDBOX_USER", "SandboxError", "isolation", "run_sandboxed"]

SANDBOX_USER = "nobody"
_ENTER = Path(__file__).with_name("_enter.py")
#: folders every user can write: hidden too, so that one submission cannot leave files for the next
_SHARED_SCRATCH = ("/tmp", "/var/tmp", "/dev/shm")


class SandboxError(RuntimeError):
    """The sandbox could not be set up: the grading machine's problem, never the student's."""


def isolation() -> str:
    """``"namespace"`` where :func:`run_sandboxed` can isolate (root, ``unshare`` works), else ``"none"``."""
    if os.environ.get("REFINENET_EDU_SANDBOX") == "none" or not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "none"
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return "none"
    try:
        pwd.getpwnam(SANDBOX_USER)
    except KeyError:
        return "none"
    probe = subprocess.run(["unshare", "--mount", "--net", "--pid", "--fork", "true"], capture_output=True)
    return "namespace" if probe.returncode == 0 else "none"


def run_sandboxed(argv: list[str], *, workdir: Path, hide: list[Path], keep: list[Path] = (),
                  timeout: float, env: dict[str, str] | None = None,
                  max_file_bytes: int = 256 << 20) -> subprocess.CompletedProcess:
    """Run ``argv`` in ``workdir`` isolated as the module docstring says; ``TimeoutExpired`` after ``timeout`` s.

    ``env`` is the whole environment of the command (nothing of the caller's leaks in).
    """
    env = dict(env or {})
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.setdefault("HOME", str(workdir))
    env.setdefault("TMPDIR", str(workdir))
    if isolation() != "namespace":
        return subprocess.run(argv, cwd=workdir, env=env, capture_output=True, timeout=timeout)
    user = pwd.getpwnam(SANDBOX_USER)
    hide, keep = list(hide) + [Path(p) for p in _SHARED_SCRATCH], list(keep) + [workdir]
    for needed in (Path(sys.base_prefix), Path(sys.prefix)):  # the interpreter, wherever it is installed
        hide += [a for a in needed.parents if a != Path("/") and not os.stat(a).st_mode & 0o001]
        keep.append(needed)
    os.chown(workdir, user.pw_uid, user.pw_gid)
    for path in workdir.rglob("*"):
        os.chown(path, user.pw_uid, user.pw_gid)
    plan = {"argv": argv, "workdir": str(workdir), "env": env, "uid": user.pw_uid, "gid": user.pw_gid,
            "hide": [str(p) for p in hide if Path(p).exists()], "keep": [str(p) for p in keep if Path(p).exists()],
            "max_file_bytes": max_file_bytes}
    cmd = ["unshare", "--mount", "--net", "--pid", "--fork", "--kill-child",
           sys.executable, "-I", str(_ENTER), json.dumps(plan)]
    done = subprocess.run(cmd, cwd=workdir, capture_output=True, timeout=timeout)
    if done.returncode == 97:  # _enter.SETUP_FAILED
        raise SandboxError(done.stderr.decode(errors="replace").strip())
    return done
