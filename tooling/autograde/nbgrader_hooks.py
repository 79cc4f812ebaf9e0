"""The two nbgrader preprocessors that ``assignments/nbgrader_config.py`` puts into ``nbgrader autograde``.

* :class:`RebuildFromRelease` comes first: a notebook whose nbgrader metadata
  was changed (a cell's ``grade_id`` removed, a flag or the points edited),
  which nbgrader would drop with no feedback, is graded as the handed-out
  notebook holding the student's solution cells, and the feedback says so.
* :class:`SandboxedExecute` stands in for nbgrader's ``Execute``: the
  submitted notebook runs in the sandbox (``sandbox.py``: another user, no
  network, the course folder hidden), so student code can neither read the
  sources and hidden tests nor write the gradebook. Its outputs are the
  student's feedback.
* :class:`JudgedGrades` stands in for nbgrader's ``SaveAutoGrades``: the score
  of each graded cell is the judge's (``judge.py``), computed outside the
  student's kernel on inputs drawn at grading time, not whether the cell's
  output shows an error. A warning printed by correct code costs nothing.
  The judge's verdict is appended to the cell's outputs, so the feedback says
  it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
import refinenet_edu
from nbgrader import utils
from nbgrader.preprocessors import Execute, NbGraderPreprocessor, SaveAutoGrades
from traitlets import List, Unicode

from tooling.autograde.cases import ASSIGNMENTS
from tooling.autograde.judge import describe_isolation, judge_notebook
from tooling.autograde.sandbox import run_sandboxed

__all__ = ["JudgedGrades", "RebuildFromRelease", "SandboxedExecute"]

EXECUTOR = Path(__file__).with_name("execute.py")


_FLAGS = ("solution", "grade", "locked", "points")


def _nbgrader_cells(nb) -> dict:
    """grade_id -> (cell type, solution, grade, locked, points) of the cells nbgrader tracks; ``None`` where a
    tracked cell has no grade_id or one appears twice."""
    found = {}
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader")
        if not meta or not any(meta.get(f) for f in ("solution", "grade", "locked")):
            continue
        gid = meta.get("grade_id")
        if gid is None or gid in found:
            return None
        found[gid] = (cell.cell_type, *(meta.get(f) if f != "points" else float(meta.get(f) or 0) for f in _FLAGS))
    return found


class RebuildFromRelease(NbGraderPreprocessor):
    """A notebook whose nbgrader metadata disagrees with the handed-out version is rebuilt from that version.

    The student's solution cells are taken by ``grade_id`` where it is intact, else by their place among the
    solution cells; the parameters cell is kept; everything else is the handed-out notebook. A markdown cell at
    the top tells the student (and the feedback) what happened.
    """

    course_dir = Unicode("", help="The course directory (release/ is read from it).").tag(config=True)

    def preprocess(self, nb, resources):
        info = resources["nbgrader"]
        release = Path(self.course_dir) / "release" / info["assignment"] / f"{info['notebook']}.ipynb"
        if not self.course_dir or not release.is_file():
            return nb, resources
        handed_out = nbformat.read(release, as_version=4)
        expected, found = _nbgrader_cells(handed_out), _nbgrader_cells(nb)
        if found is not None and all(expected.get(g) == v for g, v in found.items()):
            return nb, resources  # intact (deleted cells are nbgrader's add_missing_cells' business)
        self.log.warning("The nbgrader metadata of %s's %s was changed; grading it as the handed-out notebook with "
                         "the student's solution cells", info["student"], info["notebook"])
        solutions = [c for c in handed_out.cells if c.get("metadata", {}).get("nbgrader", {}).get("solution")]
        solution_ids = {c.metadata["nbgrader"]["grade_id"] for c in solutions}
        by_id = {c.metadata["nbgrader"]["grade_id"]: c.source for c in nb.cells
                 if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") in solution_ids}
        answers = [c for c in nb.cells if c.get("metadata", {}).get("nbgrader", {}).get("solution")]
        params = [c.source for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
        for i, cell in enumerate(solutions):
            gid = cell.metadata["nbgrader"]["grade_id"]
            if gid in by_id:
                cell.source = by_id[gid]
            elif i < len(answers) and answers[i].metadata["nbgrader"].get("grade_id") not in expected:  # id removed
                cell.source = answers[i].source
        for cell in handed_out.cells:
            if params and "parameters" in cell.get("metadata", {}).get("tags", []):
                cell.source = params[0]
        handed_out.cells.insert(0, nbformat.v4.new_markdown_cell(
            "**Note from the grader:** the grading information of this notebook's cells (nbgrader's metadata) "
            "had been changed, so it was graded as the handed-out notebook holding your answer cells."))
        return handed_out, resources


class SandboxedExecute(Execute):
    """nbgrader's ``Execute``, run in the sandbox; a cell over ``timeout`` s is stopped, a dead kernel noted."""

    hidden = List(Unicode(), help="Folders the student's code must not see: the course directory, the "
                  "exchange.").tag(config=True)

    def preprocess(self, nb, resources):
        workdir = Path(tempfile.mkdtemp(prefix="refinenet-edu-execute-"))
        try:
            handed_in = Path(resources.get("metadata", {}).get("path") or ".")
            for f in handed_in.iterdir() if handed_in.is_dir() else []:
                if f.is_file() and f.suffix != ".ipynb":  # the student's other files (a measurement record)
                    shutil.copy(f, workdir / f.name)
            shutil.copy(EXECUTOR, workdir / "execute.py")
            nbformat.write(nb, workdir / "submission.ipynb")
            cells = sum(c.cell_type == "code" for c in nb.cells)
            env = {"NBGRADER_EXECUTION": "autograde", "MPLBACKEND": "Agg", "PYTHONUNBUFFERED": "1",
                   "IPYTHONDIR": str(workdir / ".ipython"), "MPLCONFIGDIR": str(workdir / ".matplotlib"),
                   "JUPYTER_RUNTIME_DIR": str(workdir / ".runtime"), "OMP_NUM_THREADS": "2"}
            try:
                done = run_sandboxed([sys.executable, "-I", "execute.py", "submission.ipynb", "executed.ipynb",
                                      str(self.timeout)], workdir=workdir,
                                     hide=[Path(p) for p in self.hidden] + [f / ".git" for f in _library_folders()],
                                     keep=_library_folders(), timeout=self.timeout * cells + 120, env=env)
                problem = None if (workdir / "executed.ipynb").is_file() else \
                    f"exit status {done.returncode}: " + done.stderr.decode(errors="replace").strip()[-300:]
            except subprocess.TimeoutExpired:
                problem = "it ran past its time limit"
            if problem:
                self.log.warning("Executing %s failed (%s); the judge grades it all the same",
                                 resources.get("nbgrader", {}).get("student"), problem)
                _first_code(nb).setdefault("outputs", []).append(nbformat.v4.new_output(
                    "stream", name="stdout", text=f"This notebook could not be run for feedback ({problem}).\n"))
                return nb, resources
            executed = nbformat.read(workdir / "executed.ipynb", as_version=4)
            if len(executed.cells) != len(nb.cells):
                raise ValueError("the executed notebook has another number of cells")
            for cell, done_cell in zip(nb.cells, executed.cells):
                if cell.cell_type == "code":
                    cell.outputs = done_cell.get("outputs", [])
                    cell.execution_count = done_cell.get("execution_count")
            return nb, resources
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


def _library_folders() -> list[Path]:
    """What the feedback run's kernel imports the library (and the embedded data) from: the checkout, or the
    installed package; kept visible wherever it is (a checkout under /tmp is otherwise hidden with /tmp)."""
    package = Path(refinenet_edu.__file__).resolve().parent
    return [package.parent if (package.parent / "pyproject.toml").is_file() else package]


def _first_code(nb):
    return next((c for c in nb.cells if c.cell_type == "code"), nb.cells[0])


class JudgedGrades(SaveAutoGrades):
    """nbgrader's ``SaveAutoGrades`` with the judge's score for every graded cell the judge knows."""

    course_dir = Unicode("", help="The course directory (hidden from student code).").tag(config=True)

    def preprocess(self, nb, resources):
        assignment = resources["nbgrader"]["assignment"]
        self.verdicts = {}
        if assignment in ASSIGNMENTS:
            self.log.info("Judging %s of %s: %s", assignment, resources["nbgrader"]["student"], describe_isolation())
            self.verdicts = judge_notebook(assignment, nb, course_dir=Path(self.course_dir) if self.course_dir
                                           else None, log=self.log)
        return super().preprocess(nb, resources)

    def preprocess_cell(self, cell, resources, cell_index):
        verdict = self.verdicts.get(cell.metadata.get("nbgrader", {}).get("grade_id"))
        if verdict is not None and utils.is_grade(cell):
            points = float(cell.metadata["nbgrader"]["points"])
            cell.outputs.append(nbformat.v4.new_output("stream", name="stdout", text=verdict.feedback(points)))
        return super().preprocess_cell(cell, resources, cell_index)

    def _add_score(self, cell, resources) -> None:
        verdict = self.verdicts.get(cell.metadata["nbgrader"]["grade_id"])
        if verdict is None:
            return super()._add_score(cell, resources)
        grade = self.gradebook.find_grade(cell.metadata["nbgrader"]["grade_id"], self.notebook_id,
                                          self.assignment_id, self.student_id)
        grade.auto_score = float(cell.metadata["nbgrader"]["points"]) if verdict.passed else 0.0
        grade.needs_manual_grade = grade.manual_score is not None
        self.gradebook.db.commit()
