"""How each package of ``refinenet_edu`` names its public parts without importing them all at start-up.

Every ``__init__.py`` lists its names once, in an ``if TYPE_CHECKING:`` block of plain imports: editors and type
checkers read it (go-to-definition lands in the module that defines the name), and at run time :func:`exports_of`
reads the same block from the file, so that :func:`lazy_exports` imports a name on first use:
``refinenet-edu --help`` starts without loading PyTorch (``docs/contributing.md``).
"""

from __future__ import annotations

import ast
import importlib
import sys


def exports_of(init_file: str) -> dict[str, str]:
    """``name -> module`` of the ``from MODULE import NAME`` lines in ``init_file``'s ``if TYPE_CHECKING:`` block."""
    with open(init_file, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    table = {}
    for node in tree.body:
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for stmt in node.body:
                if not isinstance(stmt, ast.ImportFrom) or any(alias.asname for alias in stmt.names):
                    raise TypeError(f"{init_file}: only `from MODULE import NAME` lines belong in the TYPE_CHECKING block")
                table.update({alias.name: stmt.module for alias in stmt.names})
    return table


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
