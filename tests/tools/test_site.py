"""The published site: `./course site --out DIR`, built and then read in a real browser.

The site is built from the stored notebooks into a temporary folder, served on
a loopback port, and every page is opened in headless Chromium (Debian's, via
Playwright, tests/_chromium.py). Requests that leave the loopback
server (MathJax's CDN) are blocked: the test needs no network. Every page must
load, carry the navigation and its own Colab and Binder links, show every
figure its notebook stores, and every link must resolve: pages and anchors of
the site, files of the repository for the GitHub links, notebooks for the
Colab and Binder links.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import threading
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat
import pytest

from tooling.notebooks import find_notebooks
from tooling import links as hosted
from tooling.site import MARKER, build_site, learning_goals

from _chromium import CHROMIUM_ARGS, artifacts_dir, find_chromium

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = find_notebooks(ROOT / "notebooks")
REPO = hosted.read_repository(ROOT)
IMAGE_MIME = ("image/png", "image/jpeg", "image/svg+xml", "image/gif")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site") / "course-site"
    start = time.perf_counter()
    report = build_site(out)
    print(f"site: {len(report.pages)} pages, {report.bytes / 1e6:.2f} MB, built in {time.perf_counter() - start:.1f} s")
    return report


@pytest.fixture(scope="module")
def server(site):
    handler = functools.partial(_QuietHandler, directory=str(site.out))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _figures(path: Path) -> int:
    """How many image outputs the stored notebook has."""
    nb = nbformat.read(path, as_version=4)
    return sum(any(m in out.get("data", {}) for m in IMAGE_MIME)
               for cell in nb.cells if cell.cell_type == "code" for out in cell.get("outputs", []))


# --------------------------------------------------------------------------
# Without a browser
# --------------------------------------------------------------------------


def test_site_has_a_page_per_notebook_an_index_and_one_copy_of_the_styles(site):
    names = sorted(p.name for p in site.out.iterdir())
    assert names == sorted([MARKER, "index.html", "static", *(f"{p.stem}.html" for p in NOTEBOOKS)])
    assert sorted(p.name for p in (site.out / "static").iterdir()) == ["jupyterlab.css", "site.css"]
    for page in site.pages[1:]:
        text = page.read_text()
        assert "<style" not in text.split("</head>")[0] or len(text.split("</head>")[0]) < 60_000, \
            f"{page.name}: the JupyterLab styles belong in static/, not in every page"
    assert site.warnings == [], site.warnings


def test_index_shows_every_notebooks_learning_goals(site):
    index = (site.out / "index.html").read_text()
    for path in NOTEBOOKS:
        goals = learning_goals(nbformat.read(path, as_version=4), path.name)
        first_goal = re.search(r"^\s*1\.\s+(.{20})", goals, re.MULTILINE)
        assert first_goal, f"{path.name}: its learning goals are not a numbered list"
        words = re.sub(r"[*`_]", "", first_goal.group(1)).split()[:3]
        assert " ".join(words) in re.sub(r"<[^>]+>", "", index), f"{path.name}: goals missing from the index"


def test_the_site_command_refuses_a_folder_it_did_not_make_and_rebuilds_its_own(tmp_path, site):
    from tooling.cli import main as tooling_main

    mine = tmp_path / "notes"
    mine.mkdir()
    (mine / "todo.txt").write_text("mine")
    assert tooling_main(["site", "--out", str(mine)]) == 2
    assert (mine / "todo.txt").read_text() == "mine" and len(list(mine.iterdir())) == 1
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".notes.")], "a half-built site was left behind"
    # a site this command built is replaced whole: the page of a notebook that is gone goes too
    # (files a person added or edited there are refused: tests/reliability/test_third_round.py, L3)
    nb_dir = tmp_path / "nbs"
    nb_dir.mkdir()
    (nb_dir / NOTEBOOKS[1].name).write_bytes(NOTEBOOKS[1].read_bytes())
    out = tmp_path / "site"
    build_site(out, notebook_dir=nb_dir)
    (nb_dir / NOTEBOOKS[1].name).unlink()
    (nb_dir / NOTEBOOKS[7].name).write_bytes(NOTEBOOKS[7].read_bytes())
    build_site(out, notebook_dir=nb_dir)
    assert not (out / f"{NOTEBOOKS[1].stem}.html").exists() and (out / f"{NOTEBOOKS[7].stem}.html").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nbs", "notes", "site"]


# --------------------------------------------------------------------------
# In a browser
# --------------------------------------------------------------------------



@pytest.fixture(scope="module")
def browser_page(server):
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("chromium is not installed (apt-get install chromium chromium-driver; .ci/run does it)")
    pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
    from playwright.sync_api import sync_playwright

    blocked: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})

        def route(r):
            if r.request.url.startswith(server):
                r.continue_()
            else:
                blocked.append(r.request.url)
                r.abort()

        context.route("**/*", route)
        page = context.new_page()
        page.set_default_timeout(30_000)
        errors: list[str] = []
        page.on("pageerror", lambda err: errors.append(str(err)))
        yield page, errors, blocked
        context.close()
        browser.close()


@pytest.mark.browser
@pytest.mark.slow
def test_every_page_loads_with_navigation_launch_links_and_figures(site, server, browser_page, tmp_path):
    page, errors, blocked = browser_page
    shots = artifacts_dir(tmp_path)
    anchors: dict[str, set[str]] = {}  # page -> element ids
    links: dict[str, set[str]] = {}    # page -> hrefs
    for path in [None, *NOTEBOOKS]:
        name = "index.html" if path is None else f"{path.stem}.html"
        response = page.goto(f"{server}/{name}", wait_until="load")
        assert response is not None and response.status == 200, name
        assert page.title(), f"{name}: no title"
        # navigation: every page of the course, the current one marked
        nav = page.eval_on_selector_all(".site-nav ol a", "els => els.map(a => a.getAttribute('href'))")
        assert nav == [f"{p.stem}.html" for p in NOTEBOOKS], name
        if path is not None:
            assert page.get_attribute(".site-nav a[aria-current=page]", "href") == name
            launch = page.eval_on_selector_all(".site-header a.site-launch", "els => els.map(a => a.href)")
            assert hosted.colab_url(REPO, path.name) in launch and hosted.binder_url(REPO, path.name) in launch, name
            # the notebook's own first cell carries the same links, rendered as links
            first_cell = page.locator(".jp-MarkdownCell").first
            assert first_cell.locator(f"a[href='{hosted.colab_url(REPO, path.name)}']").count() == 1, name
            # figures: every stored image output is on the page, loaded and visible
            images = page.eval_on_selector_all(
                ".jp-OutputArea-output img",
                "els => els.map(i => [i.complete, i.naturalWidth, i.getBoundingClientRect().width])")
            assert len(images) >= _figures(path), f"{name}: {len(images)} images shown, {_figures(path)} stored"
            broken = [i for i, (done, width, shown) in enumerate(images) if not (done and width > 0 and shown > 0)]
            assert not broken, f"{name}: images {broken} did not load or are not shown"
        else:
            assert page.locator("section h3", has_text="Learning goals").count() == len(NOTEBOOKS)
            for nb in NOTEBOOKS:
                assert page.locator(f"a[href='{hosted.colab_url(REPO, nb.name)}']").count() == 1
        anchors[name] = set(page.eval_on_selector_all("[id]", "els => els.map(e => e.id)"))
        links[name] = set(page.eval_on_selector_all("a[href]", "els => els.map(a => a.href)"))
        if name in ("index.html", "03_chained_residual_pooling.html"):
            page.screenshot(path=str(shots / f"site_{Path(name).stem}.png"))
    assert not errors, f"script errors: {errors}"
    assert all(not url.startswith(server) for url in blocked)

    problems = []
    for name, hrefs in links.items():
        for href in hrefs:
            problem = _check_link(href, server, anchors, name)
            if problem:
                problems.append(f"{name}: {href}: {problem}")
    assert not problems, "\n".join(problems)


def _check_link(href: str, server: str, anchors: dict[str, set[str]], page: str) -> str | None:
    url = urlsplit(href)
    if href.startswith(server):
        target = unquote(url.path.lstrip("/")) or "index.html"
        if target not in anchors:
            return "no such page in the site"
        # a browser matches the fragment as written, then percent-decoded (nbconvert's heading ids are encoded)
        if url.fragment and not {url.fragment, unquote(url.fragment)} & anchors[target]:
            return f"no element with id {unquote(url.fragment)!r} on {target}"
        return None
    if url.scheme not in ("http", "https", "mailto"):
        return f"unexpected scheme {url.scheme!r}"
    prefix = f"{REPO.url}/blob/{hosted.BRANCH}/"
    if href.startswith(prefix):
        return None if (ROOT / unquote(href[len(prefix):].split("#")[0])).exists() else "no such file in the repository"
    if url.netloc in ("colab.research.google.com", "mybinder.org"):
        m = re.search(r"notebooks(?:/|%2F)(\d\d_[^/?#]+\.ipynb)$", href)
        if m and (ROOT / "notebooks" / unquote(m.group(1))).is_file():
            return None
        if url.netloc == "mybinder.org" and href == hosted.binder_url(REPO):
            return None
        return "does not open a notebook of the course"
    return None  # elsewhere on the web: not fetched (no network in tests)


def test_site_is_built_from_the_stored_notebooks_only(site):
    # nothing is executed: the pages show the stored outputs (execution counts as stored)
    path = NOTEBOOKS[0]
    nb = nbformat.read(path, as_version=4)
    counts = [c.execution_count for c in nb.cells if c.cell_type == "code" and c.execution_count]
    text = (site.out / f"{path.stem}.html").read_text()
    shown = [int(n) for n in re.findall(r'jp-InputPrompt[^>]*>In\s*\[(\d+)\]:', text)]
    assert shown == counts
    assert os.path.getsize(site.out / "index.html") < 200_000
