"""``./course site --out DIR``: the stored notebooks as a static web site.

Each numbered notebook becomes ``DIR/<name>.html`` as it is stored (executed,
with its figures; nothing is run), rendered by nbconvert's JupyterLab template
with the site's frame around it: a bar with the course title and the page's
"Open in Colab" / "Launch on Binder" / GitHub links, a side navigation listing
every notebook, and previous/next links. ``DIR/index.html`` lists the
notebooks with their learning goals and launch links. The JupyterLab styles are
written once, to ``DIR/static/``, instead of into every page.

Links between notebooks (``03_chained_residual_pooling.ipynb``) point to their
pages; links to other files of the repository (``../data/README.md``) point to
the file on GitHub, at the address set in pyproject.toml (``[project.urls]``,
:mod:`tooling.links`). Equations are typeset by MathJax, loaded
from its CDN as nbconvert does, so a reader needs to be online for them.

The site is built in a new folder next to ``DIR`` and then put in its place,
so a failed build leaves the old site as it was. ``DIR`` must be new, empty, or
a site this command built before (it holds a ``.refinenet-edu-site`` marker
with the list of the files it wrote and their checksums) in which nothing was
added or edited since: nothing else is ever overwritten.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from refinenet_edu.files import atomic_write_text
from tooling.manifest import changed_since, file_manifest
from tooling.links import Repository, binder_url, colab_url, read_repository

__all__ = ["MARKER", "SiteReport", "build_site", "learning_goals", "rewrite_links"]

#: the file that marks a folder as a site this command built (and may replace)
MARKER = ".refinenet-edu-site"
SITE_TITLE = "RefineNet, built step by step"

_MD_LINK = re.compile(r"(\]\()([^)\s]+)((?:\s+\"[^\"]*\")?\))")
_HREF = re.compile(r"(href=\")([^\"]+)(\")")
_EXTERNAL = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|#|/)", re.IGNORECASE)


@dataclass
class SiteReport:
    """What ``build_site`` made."""

    out: Path
    pages: list[Path] = field(default_factory=list)
    seconds: float = 0.0
    bytes: int = 0
    warnings: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------
# Pieces of a page
# --------------------------------------------------------------------------


def learning_goals(nb, name: str = "notebook") -> str:
    """The markdown of the notebook's "Learning goals" section (heading excluded), before its first code cell."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            break
        if cell.cell_type != "markdown":
            continue
        lines = cell.source.split("\n")
        for i, line in enumerate(lines):
            m = re.match(r"^(#+)\s*learning goals\b", line, re.IGNORECASE)
            if m:
                level = len(m.group(1))
                body = []
                for rest in lines[i + 1:]:
                    h = re.match(r"^(#+)\s", rest)
                    if h and len(h.group(1)) <= level:
                        break
                    body.append(rest)
                return "\n".join(body).strip()
    raise ValueError(f"{name}: no 'Learning goals' section in a markdown cell before the first code cell")


def rewrite_links(markdown: str, pages: dict[str, str], repo: Repository, folder: str = "notebooks") -> tuple[str, list[str]]:
    """Point a notebook's relative links at the site's pages, or at the repository on GitHub.

    ``pages`` maps notebook file names to page names. Returns the new markdown
    and the links that name a notebook the course does not have.
    """
    unknown: list[str] = []

    def target(url: str) -> str:
        if _EXTERNAL.match(url):
            return url
        path, _, anchor = url.partition("#")
        anchor = f"#{anchor}" if anchor else ""
        name = Path(path).name
        if path.endswith(".ipynb") and "/" not in path:
            if name in pages:
                return pages[name] + anchor
            unknown.append(url)
            return url
        parts: list[str] = []
        for part in f"{folder}/{path}".split("/"):
            if part == "..":
                if parts:
                    parts.pop()
            elif part and part != ".":
                parts.append(part)
        return repo.blob_url("/".join(parts)) + anchor

    out = _MD_LINK.sub(lambda m: m.group(1) + target(m.group(2)) + m.group(3), markdown)
    out = _HREF.sub(lambda m: m.group(1) + html.escape(target(html.unescape(m.group(2)))) + m.group(3), out)
    return out, unknown


def _launch_links(repo: Repository, notebook: str) -> str:
    return (f'<a class="site-launch" href="{html.escape(colab_url(repo, notebook))}">Open in Colab</a>'
            f'<a class="site-launch" href="{html.escape(binder_url(repo, notebook))}">Launch on Binder</a>'
            f'<a class="site-launch" href="{html.escape(repo.blob_url("notebooks/" + notebook))}">Source on GitHub</a>')


def _nav(entries: list[tuple[str, str, str]], current: str | None) -> str:
    items = []
    for _notebook, page, title in entries:
        here = ' aria-current="page" class="site-current"' if page == current else ""
        items.append(f'<li><a href="{html.escape(page)}"{here}>{html.escape(title)}</a></li>')
    return ('<nav class="site-nav" aria-label="Course">\n<a class="site-home" href="index.html">Contents</a>\n'
            f'<ol start="0">\n{chr(10).join(items)}\n</ol>\n</nav>')


def _header(repo: Repository, notebook: str | None) -> str:
    links = _launch_links(repo, notebook) if notebook else (
        f'<a class="site-launch" href="{html.escape(binder_url(repo))}">Launch on Binder</a>'
        f'<a class="site-launch" href="{html.escape(repo.url)}">Source on GitHub</a>')
    return (f'<header class="site-header"><a class="site-title" href="index.html">{html.escape(SITE_TITLE)}</a>'
            f'<span class="site-links">{links}</span></header>')


def _pager(entries: list[tuple[str, str, str]], index: int) -> str:
    parts = []
    if index > 0:
        parts.append(f'<a class="site-prev" rel="prev" href="{html.escape(entries[index - 1][1])}">'
                     f'&larr; {html.escape(entries[index - 1][2])}</a>')
    if index + 1 < len(entries):
        parts.append(f'<a class="site-next" rel="next" href="{html.escape(entries[index + 1][1])}">'
                     f'{html.escape(entries[index + 1][2])} &rarr;</a>')
    return f'<div class="site-pager">{"".join(parts)}</div>'


def _footer() -> str:
    return ('<footer class="site-footer">Code: MIT licence (LICENSE). Text, figures and data: CC BY 4.0 '
            '(LICENSE-content). Cite the course with CITATION.cff, and the paper: Lin, Milan, Shen, Reid, '
            '<i>RefineNet: Multi-Path Refinement Networks for High-Resolution Semantic Segmentation</i>, CVPR 2017, '
            '<a href="https://arxiv.org/abs/1611.06612">arXiv:1611.06612</a>.</footer>')


_PAGE_TEMPLATE = r"""{%- extends 'index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{% block notebook_css %}
<link rel="stylesheet" href="static/jupyterlab.css">
<link rel="stylesheet" href="static/site.css">
{% endblock notebook_css %}
{%- block body_header -%}
<body class="jp-Notebook site-page" data-jp-theme-light="true" data-jp-theme-name="JupyterLab Light">
{{ resources.site.header }}
<div class="site-body">
{{ resources.site.nav }}
<main>
{%- endblock body_header -%}
{% block body_footer %}
{{ resources.site.pager }}
</main>
</div>
{{ resources.site.footer }}
</body>
{% endblock body_footer %}
"""

_SITE_CSS = """/* ./course site: the frame around nbconvert's JupyterLab pages */
html { scroll-padding-top: 3.5rem; }  /* anchors land below the sticky bar */
body.site-page { margin: 0; padding: 0; }
.site-header { position: sticky; top: 0; z-index: 10; display: flex; flex-wrap: wrap; align-items: center;
  gap: 0.5rem 1.5rem; padding: 0.6rem 1.2rem; background: #263238; color: #fff; font-family: var(--jp-ui-font-family, sans-serif); }
.site-header a { color: #fff; text-decoration: none; }
.site-title { font-weight: 600; font-size: 1.1rem; }
.site-links { display: flex; flex-wrap: wrap; gap: 0.5rem; }
.site-launch { border: 1px solid #90a4ae; border-radius: 4px; padding: 0.15rem 0.6rem; font-size: 0.9rem; }
.site-launch:hover { background: #37474f; }
.site-body { display: flex; align-items: flex-start; }
.site-nav { flex: 0 0 16rem; position: sticky; top: 3rem; max-height: calc(100vh - 3rem); overflow-y: auto;
  padding: 1rem; box-sizing: border-box; font-family: var(--jp-ui-font-family, sans-serif); font-size: 0.9rem; }
.site-nav ol { padding-left: 1.6rem; }
.site-nav li { margin: 0.3rem 0; }
.site-nav a { text-decoration: none; color: #1565c0; }
.site-nav a.site-current { font-weight: 600; color: #000; }
.site-body > main { flex: 1 1 auto; min-width: 0; padding: 1rem 1.5rem; }
.site-pager { display: flex; justify-content: space-between; gap: 1rem; margin: 2rem 0 1rem; }
.site-footer { padding: 1rem 1.5rem; border-top: 1px solid #ddd; color: #555; font-size: 0.85rem;
  font-family: var(--jp-ui-font-family, sans-serif); }
.site-index { max-width: 60rem; font-family: var(--jp-content-font-family, sans-serif); line-height: 1.5; }
.site-index section { border-top: 1px solid #ddd; padding-top: 0.5rem; }
.site-links-inline { display: flex; flex-wrap: wrap; gap: 0.5rem; }
.site-index .site-launch { border-color: #1565c0; color: #1565c0; text-decoration: none; }
.site-index .site-launch:hover { background: #e3f2fd; }
@media (max-width: 50rem) { .site-body { display: block; } .site-nav { position: static; max-height: none; } }
/* from nbconvert's lab template (its inline style) */
a.anchor-link { display: none; }
.jp-InputArea { overflow: hidden; }
.jp-InputArea-editor { overflow: hidden; }
.cm-editor.cm-s-jupyter .highlight pre { padding: var(--jp-code-padding) 4px; margin: 0; font-family: inherit;
  font-size: inherit; line-height: inherit; color: inherit; }
.jp-OutputArea-output pre { line-height: inherit; font-family: inherit; }
.jp-RenderedText pre { color: var(--jp-content-font-color1); font-size: var(--jp-code-font-size); }
.jp-Collapser { display: none; }
"""


def _exporter():
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab", extra_loaders=[DictLoader({"refinenet_site.html.j2": _PAGE_TEMPLATE})])
    exporter.template_file = "refinenet_site.html.j2"
    return exporter


def _lab_css(exporter) -> str:
    """JupyterLab's styles (light theme) as nbconvert's lab template ships them."""
    parts = []
    for name in ("index.css", "theme-light.css"):
        found = next((Path(d) / "static" / name for d in exporter.template_paths
                      if (Path(d) / "static" / name).is_file()), None)
        if found is None:
            raise ValueError(f"nbconvert's lab template has no static/{name} (is nbconvert >= 7 installed?)")
        parts.append(found.read_text(encoding="utf-8"))
    return "\n".join(parts)


def _markdown_html(text: str) -> str:
    from nbconvert.filters.markdown_mistune import markdown2html_mistune

    return markdown2html_mistune(text)


def _index_page(repo: Repository, entries, goals: dict[str, str], intro: str) -> str:
    sections = []
    for notebook, page, title in entries:
        sections.append(
            f'<section id="{html.escape(Path(page).stem)}">\n<h2><a href="{html.escape(page)}">{html.escape(title)}</a></h2>\n'
            f'<p class="site-links-inline">{_launch_links(repo, notebook)}</p>\n'
            f'<h3>Learning goals</h3>\n{_markdown_html(goals[notebook])}\n</section>')
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1.0\">\n"
            f"<title>{html.escape(SITE_TITLE)}</title>\n"
            '<link rel="stylesheet" href="static/jupyterlab.css">\n<link rel="stylesheet" href="static/site.css">\n'
            "</head>\n<body class=\"jp-Notebook site-page\" data-jp-theme-light=\"true\">\n"
            f"{_header(repo, None)}\n<div class=\"site-body\">\n{_nav(entries, 'index.html')}\n"
            f"<main class=\"site-index jp-RenderedHTMLCommon\">\n<h1>{html.escape(SITE_TITLE)}</h1>\n{intro}\n"
            + "\n".join(sections) + "\n</main>\n</div>\n" + _footer() + "\n</body>\n</html>\n")


# --------------------------------------------------------------------------
# Building
# --------------------------------------------------------------------------


def _check_out_dir(out: Path, new: dict[str, str] | None = None) -> None:
    """Refuse an ``out`` that is not new, empty or a site this command built and nobody changed since.

    ``new``: the manifest of the site about to replace it; for a site of an older version (a marker
    without a manifest) the files it will write are the only ones allowed there.
    """
    if out.is_symlink() and not out.exists():
        raise ValueError(f"--out {out}: is a dangling link; choose another --out")
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: exists and is not a folder")
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not (out / MARKER).is_file():
        raise ValueError(f"--out {out}: holds files that `./course site` did not make; "
                         "choose a new or empty folder")
    try:
        recorded = json.loads((out / MARKER).read_text(encoding="utf-8"))["files"]
    except (ValueError, KeyError, TypeError):  # the marker of an older version: no manifest
        recorded = None
    if recorded is None and new is None:
        return
    changed = changed_since(out, recorded if recorded is not None else new or {}, ignore=(MARKER,))
    if changed:
        raise ValueError(f"--out {out}: {out / changed[0]} was added or edited since `./course site` "
                         f"built the site there ({len(changed)} such entries); it is left as it is: move your files "
                         "out of the folder or choose another --out")


def build_site(out: str | Path, *, notebook_dir: str | Path | None = None, root: str | Path | None = None,
               log=None) -> SiteReport:
    """Render every numbered notebook of ``notebook_dir`` (default: the checkout's) into the site ``out``."""
    import nbformat

    from tooling.notebooks import find_notebooks, notebook_title
    from tooling.links import project_root

    start = time.perf_counter()
    log = log or (lambda message: None)
    out = Path(out)
    _check_out_dir(out)
    root = Path(root) if root is not None else project_root()
    repo = read_repository(root)
    paths = find_notebooks(notebook_dir if notebook_dir is not None else root / "notebooks")
    if not paths:
        raise ValueError(f"{notebook_dir or root / 'notebooks'}: no numbered notebooks (NN_name.ipynb) to publish")

    notebooks = {p.name: nbformat.read(p, as_version=4) for p in paths}
    entries = [(p.name, f"{p.stem}.html", notebook_title(notebooks[p.name]) or p.stem) for p in paths]
    pages = {notebook: page for notebook, page, _ in entries}
    goals = {name: learning_goals(nb, name) for name, nb in notebooks.items()}
    report = SiteReport(out)

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".building", dir=out.parent))
    try:
        staging.chmod(0o755)  # a site is for reading
        exporter = _exporter()
        (staging / "static").mkdir()
        atomic_write_text(staging / "static" / "jupyterlab.css", _lab_css(exporter))
        atomic_write_text(staging / "static" / "site.css", _SITE_CSS)
        for i, (notebook, page, title) in enumerate(entries):
            nb = notebooks[notebook]
            for cell in nb.cells:
                if cell.cell_type == "markdown":
                    cell.source, unknown = rewrite_links(cell.source, pages, repo)
                    report.warnings += [f"{notebook}: links to {u}, which is not a notebook of the course"
                                        for u in unknown]
            nb.metadata["title"] = f"{title} · {SITE_TITLE}"
            resources = {"site": {"header": _header(repo, notebook), "nav": _nav(entries, page),
                                  "pager": _pager(entries, i), "footer": _footer()}}
            body, _ = exporter.from_notebook_node(nb, resources=resources)
            atomic_write_text(staging / page, body)
            log(f"{page}: {len(body) / 1000:.0f} kB")
        intro = _markdown_html(
            "A hands-on course that re-creates **RefineNet** (Lin, Milan, Shen, Reid: *RefineNet: Multi-Path "
            "Refinement Networks for High-Resolution Semantic Segmentation*, CVPR 2017, "
            "[arXiv:1611.06612](https://arxiv.org/abs/1611.06612)) one component at a time, trains it, evaluates it "
            "and takes it apart. Each page below is a notebook as stored in the repository, executed, with its "
            "figures; open it in Colab (a GPU) or on Binder to run it, or on your machine with `./course lab` "
            f"([the repository]({repo.url})).")
        atomic_write_text(staging / "index.html", _index_page(repo, entries, goals, intro))
        manifest = file_manifest(staging)
        atomic_write_text(staging / MARKER, json.dumps({
            "about": "built by `./course site`; the next build replaces this folder if nothing in it "
                     "was added or edited since",
            "files": manifest}, indent=1) + "\n")
        _replace_dir(staging, out, manifest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    report.pages = [out / "index.html"] + [out / page for _, page, _ in entries]
    report.bytes = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    report.seconds = time.perf_counter() - start
    return report


def _replace_dir(staging: Path, out: Path, manifest: dict[str, str]) -> None:
    """Put the finished ``staging`` folder where ``out`` is (an old site moves aside first, then goes)."""
    if not out.exists():
        staging.rename(out)
        return
    _check_out_dir(out, manifest)  # again: it may have changed while we built
    old = out.with_name(f".{out.name}.{time.time_ns()}.old")
    out.rename(old)
    staging.rename(out)
    shutil.rmtree(old, ignore_errors=True)


def run(args) -> int:
    """``./course site``."""
    report = build_site(args.out, notebook_dir=args.dir, log=print)
    for warning in report.warnings:
        print(f"warning: {warning}")
    print(f"site: {len(report.pages)} pages, {report.bytes / 1e6:.1f} MB in {report.out}, "
          f"built in {report.seconds:.1f} s; open {report.out / 'index.html'}")
    return 0
