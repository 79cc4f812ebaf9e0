"""``./course COMMAND`` (``py course.py COMMAND`` on Windows): the course's maintenance commands.

``./course lab`` and ``./course test`` set up the environment (course.py); the commands here run in it:

    execute, check, site, links    the stored notebooks (tooling/notebooks.py, site.py, links.py)
    figures                        the diagrams the notebooks show, as notebooks/figures/*.png (tooling/figures.py)
    assignments list | release     the graded assignments (tooling/assignments.py, nbgrader)
    bench                          speed, FLOP/s and memory of presets and torchvision peers (tooling/bench.py)
    retime --out DIR               the inference times of a finished ablation results set, again on this machine
                                   (tooling/retime.py)

They fail the way the library's ``refinenet-edu`` commands do: one line, exit status 2
(:mod:`refinenet_edu.cli.errors`).
"""

from __future__ import annotations

import argparse
import sys

from refinenet_edu.cli.errors import run_command, terminate_as_interrupt
from refinenet_edu.cli.commands import Parser

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    from tooling.cli import assignments, bench, figures, notebooks, retime

    parser = Parser(prog="./course", description="The course's maintenance commands (outside the library).")
    parser.add_argument("--debug", action="store_true", help="show the traceback of a failure")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    notebooks.add_commands(sub)
    for name, module, text in (
        ("assignments", assignments, "list the graded assignments, release student versions (nbgrader)"),
        ("bench", bench, "speed, FLOP/s and memory of presets and torchvision peers (CPU/CUDA)"),
        ("figures", figures, "draw the diagrams the notebooks show into notebooks/figures/ (PNG)"),
        ("retime", retime, "measure the inference times of a finished ablation results set again, on this machine"),
    ):
        p = sub.add_parser(name, help=text, description=text)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((a for a in argv if not a.startswith("-")), "")
    with terminate_as_interrupt():
        return run_command(command, lambda: _main(argv, command), debug="--debug" in argv, prog="./course")


def _main(argv: list[str], command: str) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:  # --help (0) or a bad option (2, one line)
        return int(stop.code or 0)
    args._argv = ["./course", *argv]
    return int(args._run(args) or 0)  # main's run_command maps its failures to one line
