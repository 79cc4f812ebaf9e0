"""The explorables of notebooks 01-05 in a real browser: JupyterLab + headless Chromium (Playwright).

The test collects the cells tagged ``explorable`` from notebooks 01-05 (the
cells a student runs, unchanged) into one generated notebook in a temporary
folder, starts JupyterLab once on that folder (a free port, a random token,
autosave off, settings and workspaces in the temporary folder, ``CI=1`` for
the kernel), opens the notebook in headless Chromium (Debian's
``/usr/bin/chromium`` through Playwright's ``executable_path``, no sandbox,
background networking off), runs every cell, and then, for each explorable,
moves one control and checks that its figure (the PNG's bytes) and its
read-out text change, and that no error shows. The repository's notebooks
are only read.

Skipped only when Chromium is not installed (``.ci/run`` installs it).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from _chromium import artifacts_dir, find_chromium, launch_lab_browser
from _jupyterlab import running_jupyterlab, sessions

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = ["01_residual_conv_unit", "02_multi_resolution_fusion", "03_chained_residual_pooling",
             "04_refinenet_block", "05_full_network"]

# For each explorable: the control to move (its description), how, and a text the read-out must then show.
MOVES = {
    "rcu": ("input", "select", "negative impulse", "the first ReLU zeroes a negative input"),
    "fusion": ("upsampling", "select", "nearest", "nearest from 1/16"),
    "crp": ("CRP blocks", "slider", None, "measured width 21 px"),
    "block": ("block", "select", "refinenet2", "refinenet2, image 0"),
    "cascade": ("block", "select", "refinenet1", "refinenet1 at 1/4"),
}

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def explorable_cells() -> list[tuple[str, str]]:
    """(notebook, source) of every code cell tagged ``explorable`` in notebooks 01-05, in course order."""
    cells = []
    for stem in NOTEBOOKS:
        nb = json.loads((REPO / "notebooks" / f"{stem}.ipynb").read_text())
        cells += [(stem, "".join(c["source"])) for c in nb["cells"]
                  if c["cell_type"] == "code" and "explorable" in c.get("metadata", {}).get("tags", [])]
    return cells


def test_every_notebook_01_to_05_has_one_explorable_cell():
    found = [stem for stem, _ in explorable_cells()]
    assert found == NOTEBOOKS


@pytest.fixture(scope="module")
def chromium_path():
    path = find_chromium()
    if path is None:
        pytest.skip("chromium is not installed (apt-get install chromium; .ci/run does it)")
    return path


@pytest.fixture(scope="module")
def lab(tmp_path_factory, chromium_path):
    """JupyterLab on a temporary folder holding the generated notebook; yields (base_url, token, folder)."""
    import nbformat

    root = tmp_path_factory.mktemp("explorables")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src, metadata={"tags": ["explorable"], "from": stem})
                for stem, src in explorable_cells()]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, root / "explorables.ipynb")

    with running_jupyterlab(root, tmp_path_factory.mktemp("jupyter")) as (base, token):
        yield base, token, root


def _kernel_idle(base: str, token: str) -> bool:
    return any(s.get("kernel", {}).get("execution_state") == "idle" for s in sessions(base, token))


def _wait(predicate, seconds: float, what: str) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            if predicate():
                return
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(f"{what} within {seconds} s")


def test_explorables_respond_in_jupyterlab(lab, chromium_path, tmp_path):
    from playwright.sync_api import sync_playwright

    base, token, root = lab
    stored = {stem: (REPO / "notebooks" / f"{stem}.ipynb").read_bytes() for stem in NOTEBOOKS}
    shots = artifacts_dir(tmp_path)
    started = time.time()
    with sync_playwright() as pw:
        browser = launch_lab_browser(pw, tmp_path / "chromium-profile", chromium_path)
        page = None
        try:
            page = browser.new_page()
            page.set_default_timeout(60_000)
            page.goto(f"{base}/lab/tree/explorables.ipynb?token={token}&reset")
            page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=120_000)
            _wait(lambda: _kernel_idle(base, token), 180, "the kernel did not become idle")
            for attempt in range(2):  # Run > Run All Cells (again if the first click came too early)
                page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
                page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
                try:
                    page.wait_for_function(
                        "() => document.querySelector('.refinenet-explorable') || [...document.querySelectorAll("
                        "'.jp-CodeCell .jp-InputPrompt')].some(p => p.textContent.includes('[*]'))", timeout=30_000)
                    break
                except Exception:
                    if attempt:
                        raise
                    page.keyboard.press("Escape")
            page.wait_for_function(
                f"() => document.querySelectorAll('.refinenet-explorable img').length === {len(MOVES)} && "
                "[...document.querySelectorAll('.refinenet-explorable img')].every(i => i.naturalWidth > 100)",
                timeout=240_000)
            assert page.locator(".jp-RenderedText[data-mime-type='application/vnd.jupyter.stderr'] "
                                ":text('Traceback')").count() == 0
            assert page.locator("[data-mime-type='application/vnd.jupyter.error']").count() == 0
            ran = time.time() - started

            for name, (description, kind, value, expected) in MOVES.items():
                box = page.locator(f".explorable-{name}")
                box.scroll_into_view_if_needed()
                image, readout = box.locator("img").first, box.locator(".explorable-readout")
                before_src, before_text = image.get_attribute("src"), readout.inner_text()
                control = box.locator(".widget-inline-hbox", has_text=description).first
                if kind == "select":
                    control.locator("select").select_option(value)
                else:  # a slider: one step to the right with the keyboard
                    control.locator(".noUi-handle").first.focus()
                    page.keyboard.press("ArrowRight")
                page.wait_for_function("([el, old]) => el.getAttribute('src') !== old",
                                       arg=[image.element_handle(), before_src], timeout=60_000)
                page.wait_for_function("([el, text]) => el.innerText.includes(text)",
                                       arg=[readout.element_handle(), expected], timeout=30_000)
                text = readout.inner_text()
                assert text != before_text and "error in" not in text, (name, text)
                box.screenshot(path=str(shots / f"explorable_{name}.png"))
            print(f"explorables: JupyterLab ran the 5 cells in {ran:.0f} s; all moved in "
                  f"{time.time() - started - ran:.0f} s more")
        except Exception:
            if page is not None:  # what the browser showed when it failed
                page.screenshot(path=str(shots / "explorables_failure.png"), full_page=True)
                (shots / "explorables_failure.txt").write_text(page.inner_text("body")[-20000:])
            raise
        finally:
            browser.close()
    for stem, data in stored.items():
        assert (REPO / "notebooks" / f"{stem}.ipynb").read_bytes() == data, f"{stem} changed"
