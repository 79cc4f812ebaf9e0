"""Inside the new namespaces, still root: hide folders, drop to the sandbox user, run the command.

Called by :func:`tooling.autograde.sandbox.run_sandboxed` only (its one argument is the plan, as JSON).
"""

import json
import os
import resource
import subprocess
import sys


def mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True)


#: exit status when the sandbox itself could not be set up (the grader's fault, never the student's)
SETUP_FAILED = 97


def outermost(paths: list) -> list:
    """``paths`` without those inside another one (hiding the outer one hides them already)."""
    paths = sorted(set(paths), key=len)
    return [p for i, p in enumerate(paths) if not any(p.startswith(q.rstrip("/") + "/") for q in paths[:i])]


def main() -> None:
    plan = json.loads(sys.argv[1])
    try:
        isolate(plan)
    except Exception as err:  # noqa: BLE001
        print(f"sandbox: could not be set up: {err}", file=sys.stderr)
        raise SystemExit(SETUP_FAILED) from None
    os.execve(plan["argv"][0], plan["argv"], plan["env"])


def isolate(plan: dict) -> None:
    hide = outermost(plan["hide"])
    inside = lambda path, folders: any(path == f or path.startswith(f.rstrip("/") + "/") for f in folders)  # noqa: E731
    stage = "/run/refinenet-edu-keep" if os.path.isdir("/run") else "/tmp/refinenet-edu-keep"
    os.makedirs(stage, exist_ok=True)
    mount("-t", "tmpfs", "-o", "size=1m,mode=700", "none", stage)
    kept = []
    for i, path in enumerate(plan["keep"]):  # set aside what must stay visible under a hidden folder
        held = os.path.join(stage, str(i))
        os.makedirs(held)
        mount("--rbind", path, held)
        kept.append((held, path))
    for path in hide:
        mount("-t", "tmpfs", "-o", "size=1m,mode=755", "none", path)
    for held, path in kept:
        if inside(path, hide):
            os.makedirs(path, exist_ok=True)
            mount("--rbind", held, path)
    # a hidden folder inside a kept one (the course folder inside a kept checkout) is hidden again
    again = [h for h in plan["hide"] if h not in hide and inside(h, [p for _, p in kept]) and os.path.isdir(h)]
    for path in outermost(again):
        mount("-t", "tmpfs", "-o", "size=1m,mode=755", "none", path)
    for path in hide + outermost(again):  # empty and read-only: nothing to read, nowhere to write
        mount("-o", "remount,ro", path)
    resource.setrlimit(resource.RLIMIT_FSIZE, (plan["max_file_bytes"], plan["max_file_bytes"]))
    os.setgroups([])
    os.setgid(plan["gid"])
    os.setuid(plan["uid"])
    os.chdir(plan["workdir"])


if __name__ == "__main__":
    main()
