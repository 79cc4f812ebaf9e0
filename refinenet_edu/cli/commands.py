"""The ``refinenet-edu`` command line.

Each sub-command lives in its own module of this package, named in ``COMMANDS``; that module defines
``add_arguments(parser)`` and ``run(args) -> int`` and nothing else the library needs: the work is done by the library's
layers below (``nn``, ``datasets``, ``engine``, ``experiments``). The modules are imported only when their command is
used, so ``refinenet-edu --help`` is fast. Every command runs through the one error path of
:mod:`refinenet_edu.cli.errors`.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from refinenet_edu.cli.errors import run_command, terminate_as_interrupt

#: sub-command -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "summary": ("refinenet_edu.cli.summary", "parameter count, per-block table and FLOPs of a model"),
    "data": ("refinenet_edu.cli.data", "generate the embedded dataset or check a VOC-layout folder"),
    "train": ("refinenet_edu.cli.train", "train a RefineNet (default: the course preset on the embedded dataset)"),
    "evaluate": ("refinenet_edu.cli.evaluate", "score a checkpoint: mIoU, accuracies, boundary accuracy"),
    "predict": ("refinenet_edu.cli.predict", "segment image files with a checkpoint"),
    "pretrain": ("refinenet_edu.cli.pretrain", "pretrain an encoder (FCN-32s head) for the ablation, as ImageNet weights stand in"),
    "ablate": ("refinenet_edu.cli.ablate", "train a grid of variants (cascades, CRP, RCUs) over seeds and compare them"),
}


class Parser(argparse.ArgumentParser):
    """argparse, with a bad option reported in one line (no usage block) and exit 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only ``command``'s module is imported to add its options."""
    parser = Parser(
        prog="refinenet-edu",
        description="RefineNet (Lin et al., CVPR 2017), built step by step.",
    )
    debug_help = "show the traceback of a failure (by default: one line saying what is wrong and what to do)"
    parser.add_argument("--debug", action="store_true", help=debug_help)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=debug_help)
        p.set_defaults(_module=module_name)
        if name == command:
            importlib.import_module(module_name).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    # Ctrl-C and SIGTERM are handled from the start: building the parser imports torch (seconds)
    with terminate_as_interrupt():
        return run_command(command or "", lambda: _main(argv, command), debug="--debug" in argv)


def _main(argv: list[str], command: str | None) -> int:
    parser = build_parser(command)
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help (0) or a bad option (2, one line): the status, as for every failure
        return int(stop.code or 0)
    args._argv = ["refinenet-edu", *argv]  # for provenance records
    return importlib.import_module(args._module).run(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
