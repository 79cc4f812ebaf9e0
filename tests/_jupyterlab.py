"""A real JupyterLab server for the browser tests (tests/viz/test_browser.py, tests/viz/test_explorables_browser.py).

The server runs in its own session (so that stopping it stops the kernels it
started), with its configuration, settings and workspaces in a temporary
home, autosave off (a test must never rewrite a stored notebook) and no news
or update checks (the tests reach nothing outside the machine).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_jupyterlab(root: Path, home: Path, *, start_seconds: float = 120) -> Iterator[tuple[str, str]]:
    """JupyterLab serving ``root``; yields ``(base_url, token)`` once it answers, and stops it afterwards."""
    for plugin, settings in (("docmanager-extension/plugin", {"autosave": False}),
                             ("apputils-extension/notification", {"fetchNews": "false", "checkForUpdates": False})):
        path = home / "settings" / "@jupyterlab" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(settings))
    port, token = free_port(), uuid.uuid4().hex
    env = dict(os.environ, CI="1", JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTER_RUNTIME_DIR=str(home / "runtime"),
               JUPYTERLAB_SETTINGS_DIR=str(home / "settings"), JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"),
               PYTHONUNBUFFERED="1")
    log_path = home / "jupyterlab.log"
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
         f"--LabApp.user_settings_dir={home / 'settings'}", f"--LabApp.workspaces_dir={home / 'workspaces'}",
         "--LabApp.news_url=", "--ServerApp.terminals_enabled=False",
         *(["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else [])],
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + start_seconds
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                log.flush()
                pytest.fail(f"JupyterLab did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        yield base, token
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # the server and the kernels it started
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=20)
        log.close()


def sessions(base: str, token: str) -> list[dict]:
    """The server's notebook sessions (REST API /api/sessions)."""
    with urllib.request.urlopen(f"{base}/api/sessions?token={token}", timeout=5) as r:
        return json.loads(r.read())
