"""The ``refinenet-edu`` command line: :func:`main` (the console script) and :func:`build_parser`.

:mod:`.main` dispatches to one module per subcommand (``train``, ``evaluate``,
``predict``, ``data``, ``summary``, ``pretrain``, ``ablate``, ``bench``,
``course``, ``assignments``); :mod:`.options` holds the options several of them
share; :mod:`.errors` is the one error path.
"""

from refinenet_edu.cli.main import COMMANDS, build_parser, main

__all__ = ["COMMANDS", "build_parser", "main"]
