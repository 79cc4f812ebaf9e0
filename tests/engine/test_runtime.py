"""Library calls leave the caller's process as they found it: threads, start method, cuDNN flags."""

from __future__ import annotations

import ast
import multiprocessing
from pathlib import Path

import pytest
import torch

import refinenet_edu
from refinenet_edu.engine.runtime import cpu_threads, loader_start_method

PACKAGE = Path(refinenet_edu.__file__).resolve().parent


def test_cpu_threads_restores_the_callers_number_also_after_an_error():
    before = torch.get_num_threads()
    target = 1 if before != 1 else 2
    with cpu_threads(target):
        assert torch.get_num_threads() == target
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), cpu_threads(target):
        raise RuntimeError("inside")
    assert torch.get_num_threads() == before
    with cpu_threads(None):
        assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="threads=0"), cpu_threads(0):
        pass


def test_the_loader_start_method_is_chosen_per_loader_not_for_the_process():
    before = multiprocessing.get_start_method(allow_none=True)
    assert loader_start_method(0) is None
    method = loader_start_method(2)
    assert method is None or method in multiprocessing.get_all_start_methods()
    assert multiprocessing.get_start_method(allow_none=True) == before


#: the calls that change the whole process, and the one place each may be made (which restores it)
PROCESS_WIDE = {
    "set_start_method": set(),
    "set_num_threads": {"refinenet_edu/engine/runtime.py"},
    "set_num_interop_threads": set(),
    "set_default_dtype": set(),
    "set_flush_denormal": set(),
    "use_deterministic_algorithms": set(),
}


def test_no_library_module_changes_process_wide_settings_elsewhere():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        where = path.relative_to(PACKAGE.parent).as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                name = node.func.attr
                if name in PROCESS_WIDE and where not in PROCESS_WIDE[name]:
                    found.append(f"{where}:{node.lineno} calls {name}")
    assert not found, "process-wide changes (use a context that restores them, e.g. cpu_threads):\n" + "\n".join(found)
