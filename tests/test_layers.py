"""The package's layers: data flows one way, and each layer imports only the layers before it.

``refinenet_edu`` is layered (docs/contributing.md, "The package"): the network (``nn``) first,
then ``datasets``, ``engine``, ``experiments``, ``viz``, ``grading`` and last the
command line (``cli``); the top-level modules (``resources``, ``files``) are
below them all. The course's maintenance tooling (``tooling/`` at the repository root: the
notebook executor, the site, the launch links, nbgrader release and autograding, the
benchmark harness) is above the package: it imports the library, never the other way round. These tests read every module's source (``import`` statements anywhere in
the file, lazy ones inside functions included) and fail on an import of a later layer and on
an import cycle, so that a change that ties the layers together is caught where it is made.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import refinenet_edu

PACKAGE = Path(refinenet_edu.__file__).resolve().parent

#: the layers, first to last: a module may import its own layer and the ones before it
LAYERS = ("base", "nn", "datasets", "engine", "experiments", "viz", "grading", "cli")

#: modules outside the layers: the package's root (``__version__`` and lazy re-exports of ``nn``; every
#: import of a submodule runs it first, so importing it adds nothing) and ``python -m refinenet_edu``
ENTRY_POINTS = {"refinenet_edu", "refinenet_edu.__main__"}


def module_name(path: Path) -> str:
    parts = ("refinenet_edu", *path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) > 2 or (PACKAGE / parts[1]).is_dir():
        return parts[1]
    return "base"  # a top-level module: resources, files


def imports_of(path: Path) -> list[tuple[str, int]]:
    """(module imported, line) for every import of a ``refinenet_edu`` module in ``path``."""
    module = module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                names = [".".join(base + ([node.module] if node.module else []))]
            else:
                names = [node.module or ""]
            # `from refinenet_edu.nn import model` imports the module refinenet_edu.nn.model
            names += [f"{names[0]}.{alias.name}" for alias in node.names
                      if (PACKAGE.parent / f"{names[0]}.{alias.name}".replace(".", "/")).with_suffix(".py").is_file()
                      or (PACKAGE.parent / f"{names[0]}.{alias.name}".replace(".", "/")).is_dir()]
        else:
            continue
        found += [(name, node.lineno) for name in names if name.split(".")[0] in ("refinenet_edu", "tooling")]
    return found


def import_graph() -> dict[str, list[tuple[str, int]]]:
    modules = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
    graph = {}
    for name, path in modules.items():
        targets = []
        for target, line in imports_of(path):
            while target not in modules and "." in target:  # `from pkg.mod import name`: the module is pkg.mod
                target = target.rpartition(".")[0]
            if target != name:
                targets.append((target, line))
        graph[name] = targets
    return graph


def test_every_module_is_in_a_layer():
    for name in import_graph():
        if name not in ENTRY_POINTS:
            assert layer_of(name) in LAYERS, f"{name}: not in a layer; put it in one of {LAYERS}"


def test_no_module_imports_a_later_layer():
    upward = []
    for name, targets in import_graph().items():
        if name in ENTRY_POINTS:
            continue
        for target, line in targets:
            if target == "refinenet_edu.__main__":
                upward.append(f"{name}:{line} imports {target} (the command's entry point)")
            elif target.split(".")[0] == "tooling":
                continue  # test_the_package_never_imports_the_tooling_nor_notebook_machinery says it
            elif target != "refinenet_edu" and LAYERS.index(layer_of(target)) > LAYERS.index(layer_of(name)):
                upward.append(f"{name}:{line} ({layer_of(name)}) imports {target} ({layer_of(target)}, a later layer)")
    assert not upward, "imports against the flow of the layers:\n" + "\n".join(upward)


def test_the_package_never_imports_the_tooling_nor_notebook_machinery():
    # tooling/ is not in the wheel, and nbconvert/nbclient/nbgrader are the tooling's dependencies
    found = [f"{name}:{line} imports {target}" for name, targets in import_graph().items()
             for target, line in targets if target.split(".")[0] == "tooling"]
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            found += [f"{module_name(path)}:{node.lineno} imports {n}" for n in names
                      if n.split(".")[0] in ("nbconvert", "nbclient", "nbgrader")]
    assert not found, "the library imports course tooling:\n" + "\n".join(found)


def test_no_import_cycle():
    graph = {name: sorted({t for t, _ in targets} - {"refinenet_edu"}) for name, targets in import_graph().items()}
    cycles, state, stack = [], {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in graph.get(node, ()):
            if state.get(nxt) == "open":
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_layers_name_real_packages():
    # a renamed layer must be renamed here too, or the tests above would pass over it
    for layer in LAYERS[1:]:
        assert (PACKAGE / layer / "__init__.py").is_file(), f"refinenet_edu/{layer}/ is missing"


def test_the_network_and_its_config_import_little():
    # nn needs torch and torchvision; its config is data and imports neither torchvision nor the layers above
    code = ("import sys, refinenet_edu.nn.config; "
            "print(sorted(m for m in sys.modules if m.startswith(('torchvision', 'refinenet_edu.'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['refinenet_edu._exports', 'refinenet_edu.nn', 'refinenet_edu.nn.config']", out
