"""The judge (tooling/autograde): every graded cell of every assignment is judged, solutions pass, templates fail.

The judge never runs student code in its own process; these tests give it notebooks and read its verdicts.
The whole class through nbgrader is tests/tools/test_grading_adversarial.py.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from tooling.autograde.cases import ASSIGNMENTS  # noqa: E402
from tooling.autograde.judge import judge_notebook  # noqa: E402

COURSE = ROOT / "assignments"
NAMES = sorted(p.name for p in (COURSE / "source").iterdir() if p.is_dir())


def _source(name: str):
    return nbformat.read(COURSE / "source" / name / f"{name}.ipynb", as_version=4)


def _auto_graded(nb) -> set[str]:
    return {c.metadata["nbgrader"]["grade_id"] for c in nb.cells
            if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade")}


def test_every_automatically_graded_cell_has_a_judge_test():
    for name in NAMES:
        judged = {t.grade_id for t in ASSIGNMENTS[name].tests}
        assert judged == _auto_graded(_source(name)), name


@pytest.mark.parametrize("name", NAMES)
def test_the_solutions_pass_and_the_handed_out_templates_fail(name):
    nb = _source(name)
    verdicts = judge_notebook(name, nb)  # a new seed: the solutions hold for any inputs
    assert all(v.passed for v in verdicts.values()), {k: v.notes for k, v in verdicts.items()}
    for cell in nb.cells:  # what a student receives: the solution regions replaced by nbgrader's stub
        if cell.get("metadata", {}).get("nbgrader", {}).get("solution"):
            cell.source = re.sub(r"### BEGIN SOLUTION.*?### END SOLUTION", "# YOUR CODE HERE\nraise NotImplementedError()",
                                 cell.source, flags=re.S)
    verdicts = judge_notebook(name, nb)
    assert not any(v.passed for v in verdicts.values()), name


def _rcu_notebook(rcu_source: str, adaptive_source: str | None = None):
    nb = _source("01_residual_conv_unit")
    for cell in nb.cells:
        gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if gid == "rcu_solution":
            cell.source = rcu_source
        elif gid == "adaptive_solution" and adaptive_source is not None:
            cell.source = adaptive_source
    return nb


GOOD_RCU = """class ResidualConvUnit(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)

    def forward(self, x):
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))
"""


def test_patching_torch_in_the_students_code_changes_nothing():
    cheat = "torch.allclose = lambda *a, **k: True\ntorch.equal = lambda *a, **k: True\n" \
            "class ResidualConvUnit(nn.Module):\n    def __init__(self, c):\n        super().__init__()\n" \
            "        self.conv1 = nn.Conv2d(c, c, 3, padding=1)\n        self.conv2 = nn.Conv2d(c, c, 3, padding=1, " \
            "bias=False)\n    def forward(self, x):\n        return x\n"
    verdict = judge_notebook("01_residual_conv_unit", _rcu_notebook(cheat))["rcu_tests"]
    assert not verdict.passed and "differs from the reference" in verdict.notes[0]


def test_a_warning_is_a_note_not_a_failure():
    warns = GOOD_RCU.replace("        return x", "        import warnings\n        warnings.warn('old API', "
                             "DeprecationWarning)\n        return x")
    verdict = judge_notebook("01_residual_conv_unit", _rcu_notebook(warns))["rcu_tests"]
    assert verdict.passed and any("DeprecationWarning: old API" in n for n in verdict.notes)


def test_one_mistake_one_penalty_and_an_endless_loop_costs_one_short_timeout():
    loops = GOOD_RCU.replace("        return x", "        while True:\n            pass\n        return x")
    verdicts = judge_notebook("01_residual_conv_unit", _rcu_notebook(loops))
    assert not verdicts["rcu_tests"].passed and "did not return within" in verdicts["rcu_tests"].notes[0]
    assert verdicts["adaptive_tests"].passed  # judged with the reference RCU in place of the looping one
    assert "one mistake costs one penalty" in verdicts["adaptive_tests"].notes[-1]


def test_a_syntax_error_is_named_with_its_cell():
    verdict = judge_notebook("01_residual_conv_unit", _rcu_notebook("class ResidualConvUnit(nn.Module:\n"))
    assert not verdict["rcu_tests"].passed
    assert any("SyntaxError" in n and "rcu_solution" in n for n in verdict["rcu_tests"].notes)
