"""How each package of ``refinenet_edu`` names its public parts without importing them all at start-up.

Every ``__init__.py`` lists its public names twice over, in one place: an ``if TYPE_CHECKING:`` block of ordinary
imports (what an editor's go-to-definition and a type checker read) and the table ``_EXPORTS`` that maps each name
to the module defining it (a test checks that the two agree). At run time a name is imported the first time it is
used, so ``refinenet-edu --help`` starts without loading PyTorch and ``import refinenet_edu.nn.config`` does not
pay for torchvision.
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
