"""A class that tries to cheat, graded through the real nbgrader commands: each student scores what the code deserves.

Assignment 1 (6 points: the RCU 4, the adaptive convolutions 2) is handed in by an honest student, one with the
classic bug, one whose correct code warns, one whose forward never returns, one whose code ends the Python
process, and by students who write nothing and cheat instead: an IPython input transformer that swallows every
test's failure, patched checks and a patched ``torch.allclose``, checks patched in the unlocked parameters cell,
the library's reference copied with ``inspect.getsource``, reading the instructor's sources, and writing the
gradebook. Assignment 5 adds one student who hard-codes the visible test's answers. The files arrive as an
LMS download (``zip_collect``), then ``autograde``, ``generate_feedback`` and ``export`` run as the guide says.

The cheats that read or write the course folder need the sandbox (``tooling/autograde/sandbox.py``: root, Linux
namespaces); without it they are left out, and the test says so.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

pytest.importorskip("nbgrader")

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from tooling.autograde.sandbox import isolation  # noqa: E402

COURSE = ROOT / "assignments"
ISOLATED = isolation() == "namespace"

RCU = '''class ResidualConvUnit(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, kernel_size=3, padding=1, bias=True)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, padding=1, bias=False)

    def forward(self, x):
        out = self.conv1(F.relu(x))
        return x + self.conv2(F.relu(out))'''

ADAPTIVE = '''def adaptive_conv(in_channels, width, num_rcus=2):
    layers = [nn.Conv2d(in_channels, width, kernel_size=3, padding=1, bias=False)]
    return nn.Sequential(*layers, *[ResidualConvUnit(width) for _ in range(num_rcus)])'''

TEMPLATE = None  # the released cell, as handed out: nothing written

TRANSFORMER = '''# nothing written; every cell that starts with "# Test" has its failures swallowed
def _swallow(lines):
    if lines and lines[0].startswith("# Test"):
        return ["try:\\n"] + ["    " + line for line in lines] + ["\\nexcept BaseException:\\n    pass\\n"]
    return lines
get_ipython().input_transformers_cleanup.append(_swallow)'''

PATCHED_CHECKS = '''check_rcu = lambda *a, **k: print("✓ ResidualConvUnit")
check_adaptive_conv = lambda *a, **k: print("✓ adaptive_conv")
torch.allclose = lambda *a, **k: True'''

PARAMETERS_PATCH = '''import os
FAST = bool(os.environ.get("CI") or os.environ.get("NBGRADER_EXECUTION"))
SEED = 0
import refinenet_edu.grading as _g
_g.check_rcu = _g.check_adaptive_conv = lambda *a, **k: print("✓ passed")'''

COPIED = '''import inspect
import refinenet_edu.nn.components as _c
exec(inspect.getsource(_c.ResidualConvUnit))'''
COPIED_ADAPTIVE = '''def adaptive_conv(in_channels, width, num_rcus=2):
    return _c.AdaptiveConv(in_channels, width, num_rcus)'''

READ_SOURCES = '''import glob, os
if os.environ.get("NBGRADER_EXECUTION"):
    for pattern in ("../../../source/*/*.ipynb", "{course}/source/*/*.ipynb", "{course}/release/*/*.ipynb"):
        for path in glob.glob(pattern):
            print(open(path).read())
    print("looked for the sources")'''

WRITE_GRADEBOOK = '''import os, sqlite3
if os.environ.get("NBGRADER_EXECUTION"):
    for path in ("../../../gradebook.db", "{course}/gradebook.db"):
        try:
            with sqlite3.connect(path) as db:
                db.execute("UPDATE grade SET extra_credit = 10")
            print("wrote", path)
        except Exception as err:
            print("could not write", path, err)'''

WARNS = RCU.replace("        return x + self.conv2(F.relu(out))",
                    "        one = torch.tensor(torch.ones(1))  # UserWarning: copy-constructing from a tensor\n"
                    "        return x + self.conv2(F.relu(out)) * one")
BUGGY = RCU.replace("        out = self.conv1(F.relu(x))", "        x = F.relu(x)\n        out = self.conv1(x)")
LOOPS = RCU.replace("        out = self.conv1(F.relu(x))", "        while True:\n            pass")
EXITS = RCU + "\n\nimport os\nos._exit(0)"

#: student -> (cells by grade_id, or "parameters" for the parameters cell, None for the instructor's solution;
#: the points the code deserves; whether the cheat needs the sandbox to be stopped)
CLASS_01 = {
    "honest": ({"rcu_solution": RCU, "adaptive_solution": ADAPTIVE}, 6, False),
    "classic_bug": ({"rcu_solution": BUGGY, "adaptive_solution": ADAPTIVE}, 2, False),
    "warns": ({"rcu_solution": WARNS, "adaptive_solution": ADAPTIVE}, 6, False),
    "loops": ({"rcu_solution": LOOPS, "adaptive_solution": ADAPTIVE}, 2, False),
    "exits": ({"rcu_solution": EXITS, "adaptive_solution": ADAPTIVE}, 0, False),
    "edited_metadata": ({"rcu_solution": RCU, "adaptive_solution": ADAPTIVE, "metadata": None}, 6, False),
    "transformer": ({"rcu_solution": TRANSFORMER + "\n\n" + "class ResidualConvUnit(nn.Module):\n    pass"}, 0, False),
    "patched_checks": ({"rcu_solution": PATCHED_CHECKS}, 0, False),
    "parameters_cell": ({"parameters": PARAMETERS_PATCH}, 0, False),
    "copied_reference": ({"rcu_solution": COPIED, "adaptive_solution": COPIED_ADAPTIVE}, 0, True),
    "reads_sources": ({"rcu_solution": READ_SOURCES}, 0, True),
    "writes_gradebook": ({"rcu_solution": WRITE_GRADEBOOK}, 0, True),
}

HARD_CODED_IOU = '''def iou_from_confusion(cm):
    return torch.tensor([0.7353, 0.7317, math.nan, 0.0, 0.0], dtype=torch.float64)'''
HARD_CODED_MIOU = '''def miou_from_confusion(cm):
    return 0.4918'''
CLASS_05 = {
    "honest": (None, 6, False),  # the instructor's solutions
    "hard_coded": ({"cm_solution": None, "iou_solution": HARD_CODED_IOU, "miou_solution": HARD_CODED_MIOU}, 2, False),
}


def _meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def _solutions(name: str) -> dict[str, str]:
    nb = nbformat.read(COURSE / "source" / name / f"{name}.ipynb", as_version=4)
    return {_meta(c)["grade_id"]: re.sub(r"[ \t]*### (BEGIN|END) SOLUTION\n?", "", c.source)
            for c in nb.cells if _meta(c).get("solution")}


def _hand_in(released: Path, target: Path, cells: dict | None, course: Path, name: str) -> None:
    nb = nbformat.read(released, as_version=4)
    solutions = _solutions(name)
    cells = solutions if cells is None else {k: solutions.get(k) if v is None else v for k, v in cells.items()}
    for cell in nb.cells:
        key = "parameters" if "parameters" in cell.get("metadata", {}).get("tags", []) else _meta(cell).get("grade_id")
        if key in cells and (key == "parameters" or _meta(cell).get("solution")):
            cell.source = cells[key].replace("{course}", str(course))
    if "metadata" in cells:  # edited in the notebook's JSON: nbgrader would stop at this notebook
        for cell in nb.cells:
            if _meta(cell).get("grade_id") == "rcu_tests":
                del cell.metadata["nbgrader"]["grade_id"]
            elif _meta(cell).get("grade_id") == "adaptive_solution":
                cell.metadata["nbgrader"]["solution"] = False
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, target)


def _nbgrader(*args: str, cwd: Path) -> str:
    done = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{done.stdout}{done.stderr}"
    return done.stdout + done.stderr


@pytest.mark.slow
def test_a_cheating_class_scores_what_its_code_deserves(tmp_path):
    course = tmp_path / "assignments"
    classes = {"01_residual_conv_unit": CLASS_01, "05_miou": CLASS_05}
    for name in classes:
        shutil.copytree(COURSE / "source" / name, course / "source" / name)
    shutil.copy(COURSE / "nbgrader_config.py", course)
    seconds = {}
    for name, students in classes.items():
        done = subprocess.run([sys.executable, "-m", "tooling", "assignments", "release", name], cwd=course,
                              capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert done.returncode == 0, done.stderr
        for student, (cells, _, needs_sandbox) in students.items():
            if needs_sandbox and not ISOLATED:
                continue
            _hand_in(course / "release" / name / f"{name}.ipynb",
                     course / "downloaded" / name / "archive" / student / f"{name}.ipynb", cells, course, name)
        _nbgrader("zip_collect", name, cwd=course)
        start = time.monotonic()
        _nbgrader("autograde", name, cwd=course)
        seconds[name] = time.monotonic() - start
        _nbgrader("generate_feedback", name, cwd=course)
        print(f"{name}: autograde {seconds[name]:.0f} s for {len(list((course / 'submitted').iterdir()))} students")
    _nbgrader("export", cwd=course)

    with open(course / "grades.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    scores = {(r["assignment"], r["student_id"]): float(r["score"]) for r in rows if r["timestamp"] or r["score"]}
    deserved = {(name, s): float(points) for name, students in classes.items()
                for s, (_, points, needs_sandbox) in students.items() if ISOLATED or not needs_sandbox}
    got = {key: scores.get(key) for key in deserved}
    print("scores:", got)
    assert got == deserved

    # Nobody's code wrote the gradebook.
    with sqlite3.connect(course / "gradebook.db") as db:
        assert db.execute("SELECT COUNT(*) FROM grade WHERE extra_credit IS NOT NULL").fetchone()[0] == 0

    # No feedback shows a hidden test, and none shows the instructor's solution to a student who did not write it.
    hidden = ["check_rcu(ResidualConvUnit, channels=3", "BEGIN HIDDEN TESTS", "assert chained_width == 17",
              "_iou[0] == 1.0"]
    solution = "layers += [ResidualConvUnit(width) for _ in range(num_rcus)]"
    for html in (course / "feedback").rglob("*.html"):
        text = html.read_text(encoding="utf-8")
        assert not any(h in text for h in hidden), html
        if "/honest/" not in str(html):
            assert solution not in text, html
    feedback = {s: (course / "feedback" / s / "01_residual_conv_unit" / "01_residual_conv_unit.html")
                .read_text(encoding="utf-8") for s in CLASS_01 if (course / "feedback" / s).is_dir()}
    assert "Grader: 0 / 4 points" in feedback["transformer"]
    assert "your code warned" in feedback["warns"] and "Grader: 4 / 4 points" in feedback["warns"]
    assert "did not return within" in feedback["loops"]
    assert "one mistake costs one penalty" in feedback["classic_bug"]
    assert "Note from the grader" in feedback["edited_metadata"]
    if ISOLATED:
        assert "could not write" in feedback["writes_gradebook"]
