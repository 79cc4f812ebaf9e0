"""``./course execute | check | site | links``: the stored notebooks (:mod:`tooling.notebooks`, :mod:`tooling.site`,
:mod:`tooling.links`)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from tooling.notebooks import (
    MAX_NOTEBOOK_BYTES,
    ExecutionReport,
    error_summary,
    write_index,
    check_notebook,
    check_numbering,
    execute_notebook,
    export_html,
    notebook_title,
    select_notebooks,
)


def add_commands(sub) -> None:
    """The four commands, on the ``./course`` parser's sub-commands ``sub``."""
    ex = sub.add_parser("execute", help="re-execute notebooks in place (optionally export HTML)",
                        description="Re-execute notebooks top to bottom and store them as the run leaves them.")
    mode = ex.add_mutually_exclusive_group()
    mode.add_argument("--fast", dest="fast", action="store_true", default=True,
                      help="FAST mode, as CI runs them and as they are stored (sets CI=1; the default)")
    mode.add_argument("--full", dest="fast", action="store_false",
                      help="full mode: unset CI and NBGRADER_EXECUTION, do the real thing (a GPU helps)")
    ex.add_argument("--html", type=Path, metavar="OUT_DIR", help="also export each notebook to OUT_DIR/<name>.html")
    ex.add_argument("--timeout", type=int, default=None,
                    help="seconds one cell may run (default: 600 in FAST mode, no limit in full mode)")
    ex.add_argument("--no-save", dest="save", action="store_false", help="run (and export) without rewriting the notebooks")
    ch = sub.add_parser("check", help="check the notebooks' conventions without running them",
                        description="Check stored notebooks against the course's conventions (docs/contributing.md).")
    for p in (ex, ch):
        p.add_argument("--dir", type=Path, default=None, help="notebook folder (default: the checkout's notebooks/)")
        p.add_argument("notebooks", nargs="*", metavar="NOTEBOOK", help="paths, names or number prefixes such as 03")
    si = sub.add_parser("site", help="render the stored notebooks as a static web site",
                        description="Render the stored notebooks as a static site (tooling/site.py).")
    si.add_argument("--out", type=Path, required=True, metavar="DIR",
                    help="the site's folder: new, empty, or a site this command built before")
    si.add_argument("--dir", type=Path, default=None, help="notebook folder (default: the checkout's notebooks/)")
    li = sub.add_parser("links", help="write the Colab/Binder links and set-up cells from pyproject.toml",
                        description="Write the repository address of pyproject.toml [project.urls] everywhere it is "
                                    "derived: notebooks, README.md, CITATION.cff (tooling/links.py).")
    li.add_argument("--check", action="store_true", help="only report what disagrees; exit 1 if anything does")
    for action, p in (("execute", ex), ("check", ch), ("site", si), ("links", li)):
        p.set_defaults(action=action, _run=run)


def run(args: argparse.Namespace) -> int:
    if args.action in ("site", "links"):
        from tooling import links, site

        return (site if args.action == "site" else links).run(args)
    paths = select_notebooks(args.notebooks, args.dir)
    if args.action == "check":
        return _check(paths, whole_course=not args.notebooks)
    return _execute(args, paths)


def _check(paths: list[Path], whole_course: bool) -> int:
    failed = 0
    for path in paths:
        problems = check_notebook(path)
        failed += bool(problems)
        print(f"{path.name}: {'OK' if not problems else f'{len(problems)} problem(s)'}")
        for problem in problems:
            print(f"  - {problem}")
    if whole_course:
        for problem in check_numbering(paths):
            failed += 1
            print(f"course: {problem}")
    return 1 if failed else 0


def _execute(args: argparse.Namespace, paths: list[Path]) -> int:
    if args.html is not None:
        if args.html.exists() and not args.html.is_dir():
            raise ValueError(f"--html {args.html}: exists and is not a folder")
        args.html.mkdir(parents=True, exist_ok=True)
    if args.timeout is not None and args.timeout <= 0:
        raise ValueError(f"--timeout {args.timeout}: must be a positive number of seconds")
    timeout = args.timeout if args.timeout is not None else (600 if args.fast else None)
    mode = "FAST" if args.fast else "full"
    reports: list[ExecutionReport] = []
    index: list[tuple[str, str]] = []
    for path in paths:
        print(f"{path.name}: executing ({mode} mode) ...", flush=True)
        start = time.perf_counter()
        try:
            nb, seconds = execute_notebook(path, fast=args.fast, timeout=timeout, save=args.save)
        except Exception as err:  # a failing cell, a timeout, a dead kernel
            report = ExecutionReport(path, time.perf_counter() - start, False, error_summary(err))
            print(f"{path.name}: FAILED after {report.seconds:.1f} s, left unchanged: {report.error}", file=sys.stderr)
            reports.append(report)
            continue
        report = ExecutionReport(path, seconds, True, size=path.stat().st_size)
        if report.size >= MAX_NOTEBOOK_BYTES:
            report.warnings.append(f"{report.size:,} bytes, over the {MAX_NOTEBOOK_BYTES:,} byte limit")
        if args.html is not None:
            report.html = export_html(nb, args.html / f"{path.stem}.html")
            index.append((report.html.name, notebook_title(nb) or path.stem))
        saved = "stored" if args.save else "not stored (--no-save)"
        print(f"{path.name}: {seconds:.1f} s, {saved}, {report.size / 1000:.0f} kB"
              + (f", HTML: {report.html}" if report.html else ""), flush=True)
        for warning in report.warnings:
            print(f"{path.name}: warning: {warning}", file=sys.stderr)
        reports.append(report)
    if args.html is not None and index:
        print(f"index: {write_index(args.html, sorted(index))}")
    ok = [r for r in reports if r.ok]
    total = sum(r.seconds for r in reports)
    print(f"{len(ok)} of {len(reports)} notebook(s) executed in {total:.1f} s ({mode} mode)")
    return 0 if len(ok) == len(reports) else 1
