"""Every package of refinenet_edu names its public parts the same way (refinenet_edu/_exports.py).

An editor's go-to-definition reads the ``if TYPE_CHECKING:`` imports; at run time ``_exports.exports_of``
reads the same block into ``_EXPORTS``. These tests check that every name of the block resolves to the object
defined where the block says, that ``__all__`` lists exactly them, and that the light entry points stay light.
"""

import ast
import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import refinenet_edu

PACKAGES = ["refinenet_edu"] + [
    f"refinenet_edu.{m.name}" for m in pkgutil.iter_modules(refinenet_edu.__path__) if m.ispkg
]


def type_checking_imports(package: str) -> dict[str, str]:
    """``name -> module`` read from the package's ``if TYPE_CHECKING:`` block."""
    tree = ast.parse(Path(importlib.import_module(package).__file__).read_text())
    found = {}
    for node in tree.body:
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for stmt in node.body:
                assert isinstance(stmt, ast.ImportFrom), f"{package}: only imports belong in the TYPE_CHECKING block"
                found.update({alias.name: stmt.module for alias in stmt.names})
    return found


@pytest.mark.parametrize("package", PACKAGES)
def test_the_names_of_the_type_checking_block_are_the_public_names(package):
    module = importlib.import_module(package)
    names = type_checking_imports(package)
    assert names, f"{package}: no TYPE_CHECKING block"
    assert module._EXPORTS == names
    assert module.__all__ == sorted(names)


def test_only_imports_belong_in_the_type_checking_block(tmp_path):
    from refinenet_edu._exports import exports_of

    init = tmp_path / "__init__.py"
    for wrong in ("x = 1", "from a.b import c as d", "import a.b"):
        init.write_text(f"from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from a.b import c\n    {wrong}\n")
        with pytest.raises(TypeError, match="only `from MODULE import NAME` lines"):
            exports_of(str(init))
    init.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from a.b import c, d\n    from e import f\n")
    assert exports_of(str(init)) == {"c": "a.b", "d": "a.b", "f": "e"}


@pytest.mark.parametrize("package", PACKAGES)
def test_every_exported_name_is_the_object_its_module_defines(package):
    module = importlib.import_module(package)
    for name, source in module._EXPORTS.items():
        assert getattr(module, name) is getattr(importlib.import_module(source), name), f"{package}.{name}"
        assert name in dir(module)
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        _ = module.not_a_name


def test_root_points_to_the_network():
    assert refinenet_edu._EXPORTS["build_refinenet"] == "refinenet_edu.nn.model"
    assert refinenet_edu._EXPORTS["RefineNetBlock"] == "refinenet_edu.nn.components"


def test_the_command_line_starts_without_pytorch():
    # refinenet-edu --help; tests/test_layers.py checks that nn.config loads without torchvision
    code = "import sys, refinenet_edu.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
