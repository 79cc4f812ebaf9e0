"""The graded assignments: instructor versions pass, student versions are clean and fail in the right place.

* every instructor notebook (assignments/source) runs top to bottom in FAST
  mode (CI=1) and every check in it passes;
* ``./course assignments release`` (nbgrader's GenerateAssignment)
  writes student versions that contain no solution text, no hidden test and
  no output, and records the graded cells in the gradebook;
* each student version, run top to bottom, fails at the test of its first
  unimplemented part, and only there, with ``NotImplementedError``;
* the guide's points table matches the notebooks.

The whole nbgrader cycle of the instructor guide (release, fetch, submit,
collect, zip_collect, autograde, the Formgrader, feedback, export) with three
students is tests/test_instructor_guide.py.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest

pytest.importorskip("nbgrader")
from nbclient import NotebookClient  # noqa: E402
from nbclient.exceptions import CellExecutionError  # noqa: E402

from tooling import assignments  # noqa: E402
from tooling.cli import main as tooling_main  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
COURSE = ROOT / "assignments"
NAMES = [a.name for a in assignments.list_assignments(COURSE)]
DATA_READY = (ROOT / "data" / "synthscenes" / "ImageSets" / "Segmentation" / "train.txt").is_file()

#: Lines of each instructor solution that must not reach the students.
SOLUTION_LINES = {
    "01_residual_conv_unit": [
        "self.conv1 = nn.Conv2d(channels, channels, kernel_size=3, padding=1, bias=True)",
        "out = self.conv2(F.relu(out))",
        "layers += [ResidualConvUnit(width) for _ in range(num_rcus)]",
    ],
    "02_chained_residual_pooling": [
        "self.pool = nn.MaxPool2d(kernel_size=5, stride=1, padding=2)",
        "top = conv(self.pool(top))  # chained: the input is the previous block's output",
        "chained_width = 1 + 4 * 4",
    ],
    "03_multi_resolution_fusion": [
        "size = max((p.shape[-2:] for p in paths), key=lambda s: s[0] * s[1])  # the largest resolution",
        'y = F.interpolate(y, size=size, mode="bilinear", align_corners=False)',
    ],
    "04_four_cascade": [
        "self.refinenet3 = RefineNetBlock([self.refinenet4.out_channels, c3], [None, w3], **opts)",
        "r3 = self.refinenet3(r4, f3)",
        "return self.refinenet1(r2, f1)",
    ],
    "05_miou": [
        "index = target[keep] * num_classes + pred[keep]",
        "union = cm.sum(dim=1) + cm.sum(dim=0) - tp",
        "return float(iou[valid].mean()) if bool(valid.any()) else math.nan",
    ],
    "06_experiment_crp": [
        "model.eval()",
        '"CRP off": dict(crp_blocks=0),',
        "Reference run of this notebook in full mode",
    ],
}

#: Lines of hidden tests that must not reach the students.
HIDDEN_LINES = {
    "01_residual_conv_unit": ["check_rcu(ResidualConvUnit, channels=3, size=(5, 8), seed=1, allow_reference=False)"],
    "02_chained_residual_pooling": ["assert chained_width == 17"],
    "03_multi_resolution_fusion": ["check_fusion(MultiResolutionFusion, seed=1, allow_reference=False)"],
    "04_four_cascade": ["_dec.load_state_dict(_model.blocks.state_dict())"],
    "05_miou": ["check_confusion_matrix(confusion_matrix, seed=1, allow_reference=False)"],
    "06_experiment_crp": ['assert _off.crp_blocks == 0, "\'CRP off\' needs crp_blocks=0"'],
}


def _nbgrader(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def _source_notebook(name: str):
    return nbformat.read(COURSE / "source" / name / f"{name}.ipynb", as_version=4)


def _solution_region_lines(nb) -> set[str]:
    """Stripped lines inside BEGIN/END SOLUTION regions, minus lines that also occur outside them."""
    inside, outside = set(), set()
    for cell in nb.cells:
        in_region = False
        for line in cell.source.splitlines():
            text = line.strip()
            if "BEGIN SOLUTION" in text:
                in_region = True
            elif "END SOLUTION" in text:
                in_region = False
            elif text:
                (inside if in_region else outside).add(text)
    given = "\n".join(outside)
    return {t for t in inside if len(t) > 12 and t not in given}


@contextlib.contextmanager
def _kernel_environment():
    """Kernels see CI=1 (FAST mode), import this checkout's refinenet_edu, and plot off-screen."""
    env_path = os.pathsep.join([str(ROOT)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []))
    old = {k: os.environ.get(k) for k in ("CI", "PYTHONPATH", "NBGRADER_EXECUTION", "MPLBACKEND")}
    os.environ.update(CI="1", PYTHONPATH=env_path, MPLBACKEND="agg")
    os.environ.pop("NBGRADER_EXECUTION", None)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _execute(nb, cwd: Path):
    """Run ``nb`` in place (allow_errors=False); returns the CellExecutionError or None."""
    client = NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(cwd)}})
    try:
        client.execute()
    except CellExecutionError as err:
        return err
    return None


def _needs_data(name: str) -> None:
    if name == "06_experiment_crp" and not DATA_READY:
        pytest.skip("data/synthscenes is not generated in this checkout (refinenet-edu data --out data/synthscenes)")


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    """All student versions, released once with a gradebook."""
    base = tmp_path_factory.mktemp("release")
    out, db = base / "release", base / "gradebook.db"
    folders = assignments.release(course_dir=COURSE, out=out, db=db)
    return {"out": out, "db": db, "folders": folders}


@pytest.fixture(scope="module")
def executed(released, tmp_path_factory):
    """Every instructor and student notebook, executed once, a few kernels at a time (most of the time is
    kernel start-up and imports). ``{("instructor"|"student", name): (notebook, CellExecutionError|None)}``."""
    jobs = {}
    for name in NAMES:
        if name != "06_experiment_crp" or DATA_READY:
            jobs[("instructor", name)] = _source_notebook(name)
        jobs[("student", name)] = nbformat.read(released["out"] / name / f"{name}.ipynb", as_version=4)
    cwd = tmp_path_factory.mktemp("run")
    with _kernel_environment(), ThreadPoolExecutor(max_workers=3) as pool:
        futures = {key: pool.submit(_execute, nb, cwd) for key, nb in jobs.items()}
        return {key: (jobs[key], f.result()) for key, f in futures.items()}


# ------------------------------------------------------------------ instructor versions


def test_every_instructor_notebook_is_well_formed():
    assert NAMES == sorted(SOLUTION_LINES), "every assignment needs its solution lines listed in this test"
    for name in NAMES:
        nb = _source_notebook(name)
        nbformat.validate(nb)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert "parameters" in code[0].metadata.get("tags", []), f"{name}: first code cell must be tagged parameters"
        assert 'FAST = bool(os.environ.get("CI") or os.environ.get("NBGRADER_EXECUTION"))' in code[0].source
        ids = [_nbgrader(c)["grade_id"] for c in nb.cells if _nbgrader(c)]
        assert len(ids) == len(set(ids)), f"{name}: duplicate grade_id"
        for cell in nb.cells:
            meta = _nbgrader(cell)
            has_solution = "BEGIN SOLUTION" in cell.source
            has_hidden = "BEGIN HIDDEN TESTS" in cell.source
            if has_solution:
                assert meta.get("solution"), f"{name}: a solution region outside a solution cell"
            if has_hidden:
                assert meta.get("grade") and meta.get("locked"), f"{name}: hidden tests outside a locked grade cell"
            if meta:
                assert meta["schema_version"] == 3
            if meta.get("grade"):
                assert meta.get("points", 0) > 0
        assert any(_nbgrader(c).get("solution") for c in code), f"{name}: no solution cell"
        assert any("BEGIN HIDDEN TESTS" in c.source for c in code), f"{name}: no hidden tests"


def test_every_graded_check_refuses_the_librarys_own_classes():
    """A check called with its default accepts the library's reference itself (the course notebooks show it
    passing); in a graded cell that would let `ResidualConvUnit = refinenet_edu.ResidualConvUnit` pass."""
    for name in NAMES:
        for cell in _source_notebook(name).cells:
            if cell.cell_type == "code" and _nbgrader(cell).get("grade"):
                calls = re.findall(r"\bcheck_\w+\((?:[^()]|\([^()]*(?:\([^()]*\))?[^()]*\))*\)", cell.source)
                for call in calls:
                    assert "allow_reference=False" in call, f"{name}: {call}"


@pytest.mark.parametrize("name", NAMES)
def test_instructor_version_runs_and_every_check_passes(name, executed):
    _needs_data(name)
    nb, error = executed[("instructor", name)]
    assert error is None, f"{name}: {error}"  # a failing check or hidden test raises
    for cell in nb.cells:
        if _nbgrader(cell).get("grade") and cell.cell_type == "code":
            text = "".join(o.get("text", "") for o in cell.outputs if o.get("output_type") == "stream")
            assert "✓" in text, f"{name}: test cell {_nbgrader(cell)['grade_id']} printed no ✓"
            assert not any(o.get("output_type") == "error" for o in cell.outputs)


# ------------------------------------------------------------------ student versions


def test_release_writes_student_versions_without_solutions_or_hidden_tests(released):
    assert [f.name for f in released["folders"]] == NAMES
    assert not list(released["out"].glob(".release-*")), "the temporary folder was left behind"
    for name in NAMES:
        path = released["out"] / name / f"{name}.ipynb"
        text = path.read_text(encoding="utf-8")
        student = nbformat.read(path, as_version=4)
        for marker in assignments.MARKERS:
            assert marker not in text, f"{name}: {marker!r} left in the student version"
        for line in SOLUTION_LINES[name] + HIDDEN_LINES[name]:
            assert line not in text, f"{name}: {line!r} reached the student version"
        for line in _solution_region_lines(_source_notebook(name)):
            assert line not in text, f"{name}: solution line {line!r} reached the student version"
        source = _source_notebook(name)
        n_code_regions = sum(c.source.count("### BEGIN SOLUTION") for c in source.cells if c.cell_type == "code")
        assert text.count("raise NotImplementedError()") == n_code_regions
        manual = [c for c in student.cells if c.cell_type == "markdown" and _nbgrader(c).get("solution")]
        assert all(c.source.strip() == "YOUR ANSWER HERE" for c in manual)
        for cell in student.cells:
            assert not cell.get("outputs"), f"{name}: outputs left in the student version"
            meta = _nbgrader(cell)
            if meta.get("grade") and not meta.get("solution"):
                assert cell.metadata.get("editable") is False and cell.metadata.get("deletable") is False
                assert meta.get("checksum"), "nbgrader's checksum of a graded cell is missing"


def test_release_records_the_graded_cells_in_the_gradebook(released):
    from nbgrader.api import Gradebook

    infos = {a.name: a for a in assignments.list_assignments(COURSE)}
    with Gradebook(f"sqlite:///{released['db']}") as gb:
        for name in NAMES:
            nb = gb.find_notebook(name, name)
            assert nb.max_score == pytest.approx(infos[name].points)
            assert {c.name for c in nb.grade_cells} == {gid for gid, _, _ in infos[name].graded_cells}


def _first_expected_failure(student) -> int:
    """Index of the first code cell after the first solution code cell: its test (or first use)."""
    cells = student.cells
    first_solution = next(
        i for i, c in enumerate(cells) if c.cell_type == "code" and _nbgrader(c).get("solution")
    )
    return next(i for i in range(first_solution + 1, len(cells)) if cells[i].cell_type == "code")


@pytest.mark.parametrize("name", NAMES)
def test_student_version_fails_first_at_the_first_unimplemented_part(name, executed):
    student, error = executed[("student", name)]
    expected = _first_expected_failure(student)
    assert isinstance(error, CellExecutionError), f"{name}: the student version ran without an error"
    failed = [i for i, c in enumerate(student.cells)
              if any(o.get("output_type") == "error" for o in c.get("outputs", []))]
    assert failed == [expected], f"{name}: failed in cell(s) {failed}, expected only cell {expected}"
    error = next(o for o in student.cells[expected].outputs if o.get("output_type") == "error")
    assert error["ename"] == "NotImplementedError", f"{name}: {error['ename']}: {error['evalue']}"
    assert error.ename == "NotImplementedError"
    assert _nbgrader(student.cells[expected]).get("grade"), f"{name}: the failing cell should be a test cell"
    # Every cell before it ran (no cell was skipped); nothing after it ran.
    for i, cell in enumerate(student.cells):
        if cell.cell_type == "code" and i != expected:
            assert (cell.get("execution_count") is not None) == (i < expected), f"{name}: cell {i}"


# ------------------------------------------------------------------ command line and guide


def test_release_cli_no_db_unknown_names_and_rerelease(tmp_path, capsys):
    out = tmp_path / "handout"
    assert tooling_main(["assignments", "release", "02_chained_residual_pooling", "--out", str(out), "--no-db"]) == 0
    nb_path = out / "02_chained_residual_pooling" / "02_chained_residual_pooling.ipynb"
    first = nb_path.read_text(encoding="utf-8")
    assert not list(tmp_path.rglob("gradebook.db")), "--no-db wrote a gradebook"
    # Releasing again replaces the folder (same content), leaving no temporary folder behind.
    assert tooling_main(["assignments", "release", "02_chained_residual_pooling", "--out", str(out), "--no-db"]) == 0
    assert nb_path.read_text(encoding="utf-8") == first
    assert sorted(p.name for p in out.iterdir()) == [assignments.RELEASE_RECORD, "02_chained_residual_pooling"]
    capsys.readouterr()
    assert tooling_main(["assignments", "release", "99_nope", "--out", str(out), "--no-db"]) == 2
    assert "unknown assignment(s) ['99_nope']" in capsys.readouterr().err
    assert tooling_main(["assignments", "list", "--course-dir", str(tmp_path)]) == 2
    assert "not an nbgrader course directory" in capsys.readouterr().err


def test_release_leaves_the_output_untouched_when_nbgrader_rejects_a_notebook(tmp_path):
    course = tmp_path / "course"
    shutil.copytree(COURSE / "source" / "05_miou", course / "source" / "05_miou")
    out = tmp_path / "out"
    assignments.release(course_dir=course, out=out, db=False)
    before = (out / "05_miou" / "05_miou.ipynb").read_text(encoding="utf-8")
    # A solution region in a cell that is not marked as a solution cell: nbgrader refuses it.
    path = course / "source" / "05_miou" / "05_miou.ipynb"
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("### BEGIN SOLUTION\nsecret = 42\n### END SOLUTION"))
    nbformat.write(nb, path)
    with pytest.raises(ValueError) as info:
        assignments.release(course_dir=course, out=out, db=False)
    # One line naming the notebook and quoting nbgrader's own reason, not "see the log above".
    message = str(info.value)
    assert "\n" not in message and str(path) in message and "nbgrader could not generate '05_miou'" in message
    assert "Solution region detected in a non-solution cell" in message
    assert (out / "05_miou" / "05_miou.ipynb").read_text(encoding="utf-8") == before
    assert sorted(p.name for p in out.iterdir()) == [assignments.RELEASE_RECORD, "05_miou"]


def test_release_refuses_to_hand_out_a_recorded_measurement(tmp_path, monkeypatch):
    course = tmp_path / "course"
    shutil.copytree(COURSE / "source" / "05_miou", course / "source" / "05_miou")
    (course / "source" / "05_miou" / "crp_experiment.json").write_text("{}")
    with pytest.raises(ValueError, match="crp_experiment.json: a run's record"):
        assignments.release(course_dir=course, out=tmp_path / "out", db=False)
    # Run inside a course folder, the command works on that folder.
    monkeypatch.chdir(course)
    assert assignments.default_course_dir() == course


def test_list_and_the_guides_points_table_match_the_notebooks(capsys):
    infos = assignments.list_assignments(COURSE)
    assert tooling_main(["assignments", "list"]) == 0
    listing = capsys.readouterr().out
    guide = (COURSE / "README.md").read_text(encoding="utf-8")
    for a in infos:
        assert a.name in listing
        row = next((line for line in guide.splitlines() if line.startswith(f"| `{a.name}`")), None)
        assert row is not None, f"README.md has no row for {a.name}"
        cells = [c.strip() for c in row.strip("|").split("|")]
        auto, manual, total = (float(x) for x in cells[-4:-1])
        assert (auto, manual, total) == (a.auto_points, a.manual_points, a.points), row
    total = sum(a.points for a in infos)
    assert re.search(rf"\*\*total\*\*.*\*\*{total:g}\*\*", guide), "README.md's total row is off"


def test_the_assignments_command_is_the_course_tooling_not_the_librarys():
    from refinenet_edu.cli import COMMANDS
    from tooling.cli import build_parser

    assert "assignments" not in COMMANDS
    args = build_parser().parse_args(["assignments", "list"])
    assert args._run.__module__ == "tooling.cli.assignments" and args.action == "list"
