"""The write-your-own exercises of notebooks 01-08 and 10: each template is graded by a check, and the folded
solution next to it passes that check (so a student who writes the solution sees it pass).

The template cell of each exercise defines a class or function and calls a ``check_*`` on it; the markdown cell
after it holds the solution in ``<details>``. This test runs the solution's code and the template's call.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from refinenet_edu import RefineNetBlock

REPO = Path(__file__).resolve().parents[2]

#: notebook, the name the student defines, how the template grades it
EXERCISES = [
    ("01_residual_conv_unit", "MyRCU", "check_rcu"),
    ("02_multi_resolution_fusion", "MyFusion", "check_fusion"),
    ("03_chained_residual_pooling", "MyCRP", "check_crp"),
    ("04_refinenet_block", "my_forward", "check_block_forward"),
    ("05_full_network", "MyCascade", "check_cascade"),
    ("06_data_pipeline", "my_augment", "check_joint_augment"),
    ("07_training", "my_train_step", "check_train_step"),
    ("08_evaluation", "my_miou", "check_miou"),
    ("08_evaluation", "my_band", "check_boundary_band"),
    ("10_beyond", "make_lw_block", "check_lw_block"),
]


def _cells(stem):
    return json.loads((REPO / "notebooks" / f"{stem}.ipynb").read_text(encoding="utf-8"))["cells"]


def _exercise(stem, name):
    cells = _cells(stem)
    defines = re.compile(rf"^(class|def) {name}\b", re.M)
    for i, cell in enumerate(cells):
        src = "".join(cell["source"])
        if cell["cell_type"] == "code" and defines.search(src):
            after = "".join(cells[i + 1]["source"])
            solution = re.search(r"<details><summary>Solution</summary>\s*```python\n(.*?)```", after, re.S)
            assert solution, f"{stem}: the cell after the {name} template has no folded Python solution"
            return src, solution.group(1)
    raise AssertionError(f"{stem}: no code cell defines {name}")


def _namespace():
    return {"torch": torch, "nn": nn, "F": F, "RefineNetBlock": RefineNetBlock}


@pytest.mark.parametrize("stem, name, check", EXERCISES)
def test_the_template_is_graded_and_the_solution_passes(stem, name, check):
    template, solution = _exercise(stem, name)
    assert f"{check}({name})" in template, f"{stem}: the template does not call {check}({name})"
    import refinenet_edu.grading as checks

    grade = getattr(checks, check)
    # the template as given is not done: grading it says so (a named mistake, or the template's own
    # NotImplementedError), and the cell prints that instead of failing
    ns = _namespace()
    exec(template.split("\ntry:")[0], ns)
    with pytest.raises((NotImplementedError, checks.CheckFailed)):
        grade(ns[name])
    # the folded solution passes
    ns = _namespace()
    exec(solution, ns)
    grade(ns[name])
