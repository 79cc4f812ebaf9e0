"""Notebook 09's dashboard in a real browser: JupyterLab + headless Chromium (Playwright).

The test starts JupyterLab (a free port, a random token, the repository as its
root, autosave off, settings and workspaces in a temporary folder), opens
``notebooks/09_ablation.ipynb`` in headless Chromium, runs every cell (FAST
mode: ``CI=1`` for the kernel), checks that the dashboard renders with its
charts, changes the metric and checks that the bar chart changes, clicks
"Train now" and checks that the log keeps its newest line in view, and saves
screenshots (``$REFINENET_EDU_ARTIFACTS`` if set, else pytest's tmp folder).

It needs Debian's ``chromium`` (``.ci/run`` installs it) and the ``playwright``
Python package; without them it is skipped with the reason. The stored
notebook is never modified (checked at the end).
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest
from _chromium import artifacts_dir, find_chromium, launch_lab_browser
from _jupyterlab import running_jupyterlab, sessions

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = "notebooks/09_ablation.ipynb"

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def chromium_path():
    path = find_chromium()
    if path is None:
        pytest.skip("chromium is not installed (apt-get install chromium chromium-driver; .ci/run does it)")
    pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
    return path


@pytest.fixture(scope="module")
def jupyterlab(tmp_path_factory, chromium_path):
    """A JupyterLab server rooted at the repository; yields (base_url, token)."""
    with running_jupyterlab(REPO, tmp_path_factory.mktemp("jupyter")) as server:
        yield server


def test_notebook_09_dashboard_in_jupyterlab(jupyterlab, chromium_path, tmp_path):
    from playwright.sync_api import sync_playwright

    base, token = jupyterlab
    stored = (REPO / NOTEBOOK).read_bytes()
    shots = artifacts_dir(tmp_path)
    try:
        with sync_playwright() as pw:
            browser = launch_lab_browser(pw, tmp_path / "chromium-profile", chromium_path)
            page = None
            try:
                page = browser.new_page()
                page.set_default_timeout(60_000)
                page.goto(f"{base}/lab/tree/{NOTEBOOK}?token={token}&reset")
                page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=120_000)
                _wait_kernel_idle(base, token, 180)

                # Run > Run All Cells (once more if the first click came too early to start anything)
                for attempt in range(2):
                    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
                    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
                    try:
                        # the stored notebook already shows numbered prompts: wait for a running one ([*])
                        page.wait_for_function(
                            "() => document.querySelector('.ablation-dashboard') || "
                            "[...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]"
                            ".some(p => p.textContent.includes('[*]'))", timeout=30_000)
                        break
                    except Exception:
                        if attempt:
                            raise
                        page.keyboard.press("Escape")

                dashboard = page.locator(".ablation-dashboard")
                dashboard.wait_for(state="visible", timeout=300_000)
                _wait_all_cells_done(page, base, token, 400)
                errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr'] "
                                      ":text('Traceback')")
                assert page.locator(".jp-RenderedText[data-mime-type='application/vnd.jupyter.error']").count() == 0
                assert errors.count() == 0

                bars = dashboard.locator("img").first
                bars.wait_for(state="visible")
                assert bars.evaluate("img => img.naturalWidth") > 100
                dashboard.scroll_into_view_if_needed()
                page.screenshot(path=str(shots / "09_dashboard_before.png"), full_page=False)
                before_src = bars.get_attribute("src")
                before_png = bars.screenshot()

                metric = dashboard.locator(".widget-dropdown", has_text="metric").locator("select")
                metric.select_option(label="IoU of boat")
                page.wait_for_function(
                    "([el, old]) => el.getAttribute('src') !== old", arg=[bars.element_handle(), before_src],
                    timeout=60_000,
                )
                page.wait_for_timeout(500)
                after_png = bars.screenshot()
                assert hashlib.sha256(after_png).digest() != hashlib.sha256(before_png).digest()
                dashboard.screenshot(path=str(shots / "09_dashboard_after.png"))
                # "Train now" in its tab: the log shows the run, and its newest line stays in view as it grows
                dashboard.locator(".lm-TabBar-tabLabel", has_text="train now").click()
                dashboard.locator("button", has_text="Train now").click()
                log = dashboard.locator(".train-log")
                log.locator("text=done: mIoU").wait_for(timeout=300_000)
                at_end = log.evaluate(
                    "log => { const area = log.firstElementChild || log;"
                    " for (let i = 0; i < 60; i++) { const p = document.createElement('pre');"
                    " p.textContent = 'line ' + i; area.appendChild(p); }"
                    " const last = area.lastElementChild.getBoundingClientRect(), box = log.getBoundingClientRect();"
                    " return [log.scrollHeight > log.clientHeight, last.bottom <= box.bottom + 1 && last.top >= box.top - 1,"
                    " log.scrollHeight, log.clientHeight, getComputedStyle(log).maxHeight, getComputedStyle(log).flexDirection,"
                    " getComputedStyle(log).overflowY, area.className, log.className]; }")
                assert at_end[:2] == [True, True], at_end
                dashboard.screenshot(path=str(shots / "09_dashboard_trained.png"))
                # the messages area stays empty: no callback failed
                assert "error in" not in dashboard.inner_text()
            except Exception:
                if page is not None:  # what the browser showed when it failed
                    page.screenshot(path=str(shots / "09_failure.png"), full_page=True)
                    (shots / "09_failure.txt").write_text(page.inner_text("body")[-20000:])
                raise
            finally:
                browser.close()
    finally:
        if (REPO / NOTEBOOK).read_bytes() != stored:  # never leave the stored notebook changed
            (REPO / NOTEBOOK).write_bytes(stored)
            pytest.fail(f"{NOTEBOOK} was modified by the browser session (autosave?); restored")
    assert (shots / "09_dashboard_after.png").stat().st_size > 10_000


def _wait_kernel_idle(base: str, token: str, seconds: float) -> None:
    """Until the server reports the notebook's kernel started and idle (REST API /api/sessions)."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            if any(s.get("path", "").endswith(Path(NOTEBOOK).name) and s.get("kernel", {}).get("execution_state") == "idle"
                   for s in sessions(base, token)):
                return
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(f"the kernel of {NOTEBOOK} did not become idle within {seconds} s")


def _wait_all_cells_done(page, base: str, token: str, seconds: float) -> None:
    """Every queued cell has run: no '[*]' prompt is left and the kernel is idle."""
    page.wait_for_function(
        "() => ![...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')].some(p => p.textContent.includes('[*]'))",
        timeout=seconds * 1000,
    )
    _wait_kernel_idle(base, token, 60)
