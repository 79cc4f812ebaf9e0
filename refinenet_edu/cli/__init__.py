"""The ``refinenet-edu`` command line: :func:`main` (the console script) and :func:`build_parser`.

:mod:`.commands` dispatches to one module per subcommand (``train``, ``evaluate``,
``predict``, ``data``, ``summary``, ``pretrain`` and ``ablate``); :mod:`.options`
holds the options several of them share; :mod:`.errors` is the one error path.
"""

from typing import TYPE_CHECKING

from refinenet_edu._exports import lazy_exports

if TYPE_CHECKING:  # what editors and type checkers read; at run time each name loads on first use
    from refinenet_edu.cli.commands import COMMANDS, build_parser, main

_EXPORTS = {
    "COMMANDS": "refinenet_edu.cli.commands",
    "build_parser": "refinenet_edu.cli.commands",
    "main": "refinenet_edu.cli.commands",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
