"""How each package of ``refinenet_edu`` names its public parts without importing them all at start-up.

Every ``__init__.py`` lists its names in an ``if TYPE_CHECKING:`` block of plain imports (what editors read) and in
the table ``_EXPORTS`` (name -> module), from which a name is imported on first use: ``refinenet-edu --help`` starts
without loading PyTorch (``docs/contributing.md``).
"""

from __future__ import annotations

import importlib
import sys


def lazy_exports(package: str, table: dict[str, str]):
    """The ``__getattr__`` and ``__dir__`` of ``package``, which import a name of ``table`` on first use."""

    def __getattr__(name: str):
        if name not in table:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(table[name]), name)
        setattr(sys.modules[package], name, value)  # the next use is an ordinary attribute
        return value

    def __dir__():
        return sorted(set(vars(sys.modules[package])) | set(table))

    return __getattr__, __dir__
