"""Chromium for the browser tests (tests/viz/test_browser.py, test_explorables_browser.py, tests/tools/test_site.py).

Debian's ``chromium`` (``.ci/run`` installs it), driven by Playwright with
``executable_path``, headless, without the sandbox (CI runs as root) and with
background networking off: the tests reach nothing outside the machine.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]


def find_chromium() -> str | None:
    """Debian's Chromium, or None when it is not installed."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


def artifacts_dir(tmp_path: Path) -> Path:
    """Where screenshots go: ``$REFINENET_EDU_ARTIFACTS`` if set, else the test's tmp folder."""
    folder = Path(os.environ["REFINENET_EDU_ARTIFACTS"]) if os.environ.get("REFINENET_EDU_ARTIFACTS") else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def launch_lab_browser(playwright, profile: Path, executable: str):
    """A headless Chromium context with its own profile and a window JupyterLab lays out fully (1400x1000)."""
    return playwright.chromium.launch_persistent_context(
        str(profile), executable_path=executable, headless=True, args=CHROMIUM_ARGS,
        viewport={"width": 1400, "height": 1000},
    )
