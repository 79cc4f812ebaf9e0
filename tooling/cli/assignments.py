"""``./course assignments``: list the graded assignments, release student versions (:mod:`tooling.assignments`)."""

from __future__ import annotations

import argparse

from tooling.assignments import list_assignments, release


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True
    p = sub.add_parser("list", help="the assignments and their points", description="The assignments and their points.")
    p.add_argument("--course-dir", help="nbgrader course directory (default: the current folder if it holds source/, "
                   "else the repository's assignments/)")
    p = sub.add_parser(
        "release",
        help="generate the student versions with nbgrader",
        description="Generate student versions with nbgrader's preprocessors: solutions replaced by "
        "`raise NotImplementedError()`, hidden tests and outputs removed, test cells locked.",
    )
    p.add_argument("names", nargs="*", metavar="NAME", help="assignments to release (default: all)")
    p.add_argument("--course-dir", help="nbgrader course directory (default: the current folder if it holds source/, "
                   "else the repository's assignments/)")
    p.add_argument("--out", metavar="DIR", help="output folder (default: <course-dir>/release)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--db", metavar="PATH", help="gradebook SQLite file (default: <course-dir>/gradebook.db)")
    g.add_argument("--no-db", action="store_true", help="do not record the assignments in a gradebook")


def _points(x: float) -> str:
    return f"{x:g}"


def run(args: argparse.Namespace) -> int:
    if args.action == "list":
        infos = list_assignments(args.course_dir)
        print(f"{'assignment':32} {'auto':>5} {'manual':>6} {'total':>5}  graded cells")
        for a in infos:
            cells = ", ".join(f"{gid} ({_points(p)}{'' if kind == 'auto' else ', manual'})" for gid, p, kind in a.graded_cells)
            print(f"{a.name:32} {_points(a.auto_points):>5} {_points(a.manual_points):>6} {_points(a.points):>5}  {cells}")
        total = sum(a.points for a in infos)
        print(f"{'total':32} {_points(sum(a.auto_points for a in infos)):>5} "
              f"{_points(sum(a.manual_points for a in infos)):>6} {_points(total):>5}")
        return 0
    if args.action == "release":
        db = False if args.no_db else args.db
        folders = release(args.names, course_dir=args.course_dir, out=args.out, db=db)
        for folder in folders:
            print(f"released {folder.name} -> {folder / (folder.name + '.ipynb')}")
        if not args.no_db:
            where = args.db or "the course's gradebook (nbgrader_config.py, else <course-dir>/gradebook.db)"
            print(f"recorded in {where}")
        return 0
    raise ValueError(f"unknown action {args.action!r}")  # pragma: no cover - argparse rejects it first
