"""The ``refinenet-edu`` command line: :func:`main` (the console script) and :func:`build_parser`.

:mod:`.commands` dispatches to one module per subcommand (``train``, ``evaluate``,
``predict``, ``data``, ``summary``, ``pretrain`` and ``ablate``); :mod:`.options`
holds the options several of them share; :mod:`.errors` is the one error path.
"""

from typing import TYPE_CHECKING

from refinenet_edu._exports import exports_of, lazy_exports

if TYPE_CHECKING:  # what editors and type checkers read; at run time each name loads on first use
    from refinenet_edu.cli.commands import COMMANDS, build_parser, main

_EXPORTS = exports_of(__file__)  # name -> module: the TYPE_CHECKING block above, read at run time
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
