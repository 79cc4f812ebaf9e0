"""The ``refinenet-edu`` command line.

Each sub-command lives in the module named in ``COMMANDS``; that module
defines ``add_arguments(parser)`` and ``run(args) -> int``. The modules are
imported only when their command is used, so ``refinenet-edu --help`` is fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

#: sub-command -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "summary": ("refinenet_edu.summary", "parameter count, per-block table and FLOPs of a model"),
    "data": ("refinenet_edu.datasets.cli", "generate the embedded dataset or check a VOC-layout folder"),
    "train": ("refinenet_edu.commands.train", "train a RefineNet (default: the course preset on the embedded dataset)"),
    "evaluate": ("refinenet_edu.commands.evaluate", "score a checkpoint: mIoU, accuracies, boundary accuracy"),
    "predict": ("refinenet_edu.commands.predict", "segment image files with a checkpoint"),
    "assignments": ("refinenet_edu.tools.assignments", "list the graded assignments, release student versions (nbgrader)"),
    "course": ("refinenet_edu.tools.course", "execute the course notebooks in place (FAST or full), export HTML, check conventions"),
    "pretrain": ("refinenet_edu.experiments.pretraining", "pretrain an encoder (FCN-32s head) for the ablation, as ImageNet weights stand in"),
    "ablate": ("refinenet_edu.ablation", "train a grid of variants (cascades, CRP, RCUs) over seeds and compare them"),
    "bench": ("refinenet_edu.tools.bench", "speed, FLOP/s and memory of presets and torchvision peers (CPU/CUDA)"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only ``command``'s module is imported to add its options."""
    parser = argparse.ArgumentParser(
        prog="refinenet-edu",
        description="RefineNet (Lin et al., CVPR 2017), built step by step.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module_name)
        if name == command:
            importlib.import_module(module_name).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command)
    args = parser.parse_args(argv)
    args._argv = ["refinenet-edu", *argv]  # for provenance records
    module = importlib.import_module(args._module)
    try:
        return int(module.run(args) or 0)
    except ValueError as err:  # bad input: a clear message, no traceback
        print(f"refinenet-edu {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
