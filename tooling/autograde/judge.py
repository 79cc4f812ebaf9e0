"""The judge: scores a submitted notebook without ever running the student's code in its own process.

For each graded cell of the assignment (``cases.ASSIGNMENTS``) the judge draws
new inputs and weights from a seed made at grading time, starts ``runner.py``
in a fresh sandboxed process (``sandbox.py``) with the student's solution
cells, and compares what the runner hands back with the library's reference,
here. Whatever the student's code does in its notebook or in the runner -
patching the checks or torch, swallowing exceptions, reading files - it can
change only the outputs it hands back, so only code that computes the right
outputs scores.
"""

from __future__ import annotations

import functools
import secrets
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

import refinenet_edu
from refinenet_edu.files import read_torch_file
from tooling.autograde.cases import ASSIGNMENTS, Test
from tooling.autograde.sandbox import isolation, run_sandboxed

__all__ = ["Verdict", "judge_notebook", "solution_cells"]

RUNNER = Path(__file__).with_name("runner.py")
#: the most a runner may write back (result.pt)
MAX_RESULT_BYTES = 64 << 20


@dataclass
class Verdict:
    """The judge's score of one graded cell, and what the feedback says about it."""

    grade_id: str
    passed: bool
    notes: list[str] = field(default_factory=list)

    def feedback(self, points: float) -> str:
        head = (f"Grader: {points:g} / {points:g} points" if self.passed
                else f"Grader: 0 / {points:g} points")
        return "\n".join([head + " (checked on new inputs, outside this notebook)", *self.notes]) + "\n"


def solution_cells(nb) -> list[tuple[str, str]]:
    """``(grade_id, source)`` of the notebook's solution code cells, in order: everything the student wrote."""
    cells = []
    for i, cell in enumerate(nb.cells):
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.get("cell_type") == "code" and meta.get("solution"):
            cells.append((str(meta.get("grade_id", f"cell{i}")), cell.get("source", "")))
    return cells


def hidden_paths(course_dir: Path | None) -> list[Path]:
    """What the runner must not see: the course directory and the library's source (the reference), wherever
    Python could import it from (the installed package, an editable checkout, a folder on ``sys.path``)."""
    packages = {Path(refinenet_edu.__file__).resolve().parent}
    packages |= {(Path(p) / "refinenet_edu").resolve() for p in sys.path if p and (Path(p) / "refinenet_edu").is_dir()}
    packages |= {Path(p).resolve() for p in _editable_targets()}
    hide = set(packages)
    for package in packages:
        if (package.parent / "pyproject.toml").is_file():  # a checkout: its notebooks print the reference too
            hide.add(package.parent)
    if course_dir is not None:
        hide.add(Path(course_dir).resolve())
    return sorted(hide)


@functools.lru_cache(maxsize=1)
def _editable_targets() -> list[str]:
    """Where an editable install (``pip install -e``) of the library points, for the runner's interpreter."""
    done = subprocess.run([sys.executable, "-I", "-c", "import importlib.util as u; s = u.find_spec('refinenet_edu'); "
                           "print(s.origin if s and s.origin else '')"], capture_output=True, text=True, timeout=60)
    origin = done.stdout.strip()
    return [str(Path(origin).parent)] if origin else []


def judge_notebook(assignment: str, nb, *, course_dir: Path | None = None, seed: int | None = None,
                   log=None) -> dict[str, Verdict]:
    """Judge every graded cell of ``assignment`` in ``nb`` (a notebook node); grade_id -> :class:`Verdict`."""
    spec = ASSIGNMENTS[assignment]
    seed = secrets.randbits(63) if seed is None else seed
    cells = solution_cells(nb)
    verdicts: dict[str, Verdict] = {}
    for number, test in enumerate(spec.tests):
        gen = torch.Generator().manual_seed(seed + number)
        substitutes = [code for grade_id, code in test.substitutes.items()
                       if grade_id in verdicts and not verdicts[grade_id].passed]
        verdicts[test.grade_id] = _judge_test(test, spec, cells, substitutes, gen, course_dir, log)
        if substitutes:
            verdicts[test.grade_id].notes.append(
                "(Judged with the reference in place of your " + ", ".join(n for c in substitutes for n in c[2])
                + ", which failed its own test: one mistake costs one penalty.)")
    return verdicts


def _judge_test(test: Test, spec, cells, substitutes, gen, course_dir, log) -> Verdict:
    made = test.make(gen)
    request = {"prelude": spec.prelude, "given": spec.given, "cells": cells, "substitutes": substitutes,
               "cases": [case for case, _ in made]}
    result, problem = _run(request, spec.limit, course_dir)
    if problem:
        return Verdict(test.grade_id, False, [f"{test.what}: {problem}"])
    verdict = Verdict(test.grade_id, True)
    for label, err in result.get("cells", {}).items():
        if err:
            verdict.notes.append(f"Your cell {label!r} raised {_error(err)}.")
    cases = result.get("cases", [])
    for (case, expected), out in zip(made, cases):
        if out.get("error"):
            stage = f" ({out['stage']})" if out.get("stage") else ""
            problem = f"raised {_error(out['error'])}{stage}"
        else:
            problem = test.compare(case, expected, out)
        if problem:
            verdict.passed = False
            verdict.notes.insert(0, f"{test.what}: {problem}, on a hidden case.")
            break
    else:
        if len(cases) != len(made):
            verdict.passed = False
            verdict.notes.insert(0, f"{test.what}: the grader got no answer for some hidden cases.")
    warned = sorted({w for out in cases for w in out.get("warnings", [])})
    if warned:
        verdict.notes.append("Note (no points lost): your code warned: " + "; ".join(warned[:3]))
    return verdict


def _error(err: dict) -> str:
    text = f"{err.get('type', 'an error')}: {err.get('message', '')}".rstrip(": ")
    return text + (f" at {err['where']}" if err.get("where") else "")


def _run(request: dict, limit: float, course_dir: Path | None) -> tuple[dict, str | None]:
    """Run the runner on ``request`` in a sandbox; (result, None) or ({}, what went wrong, in one line)."""
    workdir = Path(tempfile.mkdtemp(prefix="refinenet-edu-judge-"))
    try:
        shutil.copy(RUNNER, workdir / "runner.py")
        torch.save(request, workdir / "request.pt")
        try:
            done = run_sandboxed([sys.executable, "-I", "runner.py"], workdir=workdir,
                                 hide=hidden_paths(course_dir), timeout=limit,
                                 env={"OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"})
        except subprocess.TimeoutExpired:
            return {}, f"your code did not finish within {limit:.0f} s (an endless loop?)"
        result_file = workdir / "result.pt"
        if not result_file.is_file():
            tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:] if done.stderr else []
            reason = f" ({tail[0][:200]})" if tail else ""
            return {}, f"the process running your code ended without an answer, exit status {done.returncode}{reason}"
        if result_file.stat().st_size > MAX_RESULT_BYTES:
            return {}, "your code's answers were too large to read"
        try:
            result = read_torch_file(result_file, what="the runner's answers")
        except Exception:  # noqa: BLE001 - whatever the student's process left there, it is no answer
            return {}, "the answers of your code could not be read (was the answer file changed?)"
        if not isinstance(result, dict):
            return {}, "the answers of your code could not be read"
        return result, None
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def describe_isolation() -> str:
    """One line for the log: how student code is isolated on this machine."""
    if isolation() == "namespace":
        return "student code runs as 'nobody', without network, with the course folder and the library hidden"
    return ("student code runs as this user, with no isolation (not root): see assignments/README.md, "
            "'Isolating student code'")
