"""The course notebooks follow the conventions (docs/contributing.md, "Notebook conventions"), and the course command works.

The first half reads every stored notebook in ``notebooks/`` (whoever wrote it)
without running it: nbval runs them (``./course test`` passes ``notebooks``
with ``--nbval-lax``). The second half runs ``./course`` on small
notebooks made in a temporary folder.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from tooling import notebooks as course
from tooling.cli import main as tooling_main

NOTEBOOK_DIR = Path(__file__).resolve().parents[2] / "notebooks"
NOTEBOOKS = course.find_notebooks(NOTEBOOK_DIR) if NOTEBOOK_DIR.is_dir() else []
FAST_LINE = 'FAST = bool(os.environ.get("CI") or os.environ.get("NBGRADER_EXECUTION"))'


def _read(path: Path):
    return nbformat.read(path, as_version=4)


def _code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


each_notebook = pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])


# --------------------------------------------------------------------------
# The stored course
# --------------------------------------------------------------------------


def test_the_course_has_notebooks():
    assert NOTEBOOKS, f"no numbered notebooks (NN_name.ipynb) in {NOTEBOOK_DIR}"


def test_numbering_is_contiguous_from_00():
    numbers = [int(p.name[:2]) for p in NOTEBOOKS]
    assert len(numbers) == len(set(numbers)), f"two notebooks share a number: {[p.name for p in NOTEBOOKS]}"
    assert numbers == list(range(len(numbers))), f"numbers must run 00, 01, ... without gaps; found {numbers}"
    assert len(numbers) <= 11, "the course has notebooks 00 to 10"


def test_every_notebook_in_the_folder_is_numbered():
    # nbval runs every .ipynb under notebooks/, so a stray scratch notebook would run (and fail) in CI.
    stray = [p.name for p in NOTEBOOK_DIR.glob("*.ipynb") if not course.NOTEBOOK_NAME.match(p.name)]
    assert not stray, f"notebooks not named NN_name.ipynb: {stray}"


@each_notebook
def test_first_code_cell_is_tagged_parameters_and_sets_fast(path, monkeypatch):
    first = course.parameters_cell(_read(path))
    assert "parameters" in first.metadata.get("tags", []), \
        "the first code cell after the hosted set-up cell must be tagged 'parameters'"
    # Run the cell: FAST must follow CI and NBGRADER_EXECUTION.
    for env, expected in (({}, False), ({"CI": "true"}, True), ({"NBGRADER_EXECUTION": "autograde"}, True)):
        for var in course.FAST_ENV_VARS:
            monkeypatch.delenv(var, raising=False)
        for var, value in env.items():
            monkeypatch.setenv(var, value)
        namespace: dict = {}
        exec(compile(first.source, f"{path.name}[parameters]", "exec"), namespace)
        assert namespace.get("FAST") is expected, f"with {env or 'neither variable'} FAST should be {expected}"


@each_notebook
def test_learning_goals_come_first(path):
    nb = _read(path)
    head = []
    for cell in nb.cells:
        if cell.cell_type == "code":
            break
        head.append(cell.source)
    assert any(re.search(r"learning goals", s, re.IGNORECASE) for s in head), \
        "a markdown cell before the first code cell must state the learning goals"


@each_notebook
def test_is_well_under_one_megabyte(path):
    assert path.stat().st_size < course.MAX_NOTEBOOK_BYTES, f"{path.stat().st_size:,} bytes"


@each_notebook
def test_holds_no_widget_state(path):
    raw = json.loads(path.read_text(encoding="utf-8"))
    assert "widgets" not in raw.get("metadata", {}), "notebook metadata holds widget state"
    assert not any("widgets" in c.get("metadata", {}) for c in raw["cells"]), "a cell's metadata holds widget state"
    assert "application/vnd.jupyter.widget-state+json" not in path.read_text(encoding="utf-8")


@each_notebook
def test_has_checked_deterministic_cells(path):
    checked = [c for c in _code_cells(_read(path)) if re.search(r"^\s*#\s*NBVAL_CHECK_OUTPUT\s*$", c.source, re.M)]
    assert checked, "mark the deterministic cells (shapes, parameter counts, tables) with # NBVAL_CHECK_OUTPUT"
    for c in checked:
        assert c.get("outputs"), f"checked cell without stored output: {c.source[:80]!r}"


@each_notebook
def test_is_stored_executed_by_one_clean_run(path):
    cells = [c for c in _code_cells(_read(path)) if c.source.strip()]
    counts = [c.execution_count for c in cells]
    assert counts == list(range(1, len(cells) + 1)), \
        f"execution counts {counts}: store the notebook as one top-to-bottom run (./course execute)"
    errors = [o for c in cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, f"stored error output: {errors[0].get('ename')}: {errors[0].get('evalue')}"
    assert any(c.get("outputs") for c in cells), "no outputs stored"


@each_notebook
def test_course_check_agrees(path):
    assert course.check_notebook(path) == []


# --------------------------------------------------------------------------
# The checker itself, on made-up notebooks
# --------------------------------------------------------------------------


def _good_notebook(*extra_cells, executed: bool = True):
    cells = [
        new_markdown_cell("# A lesson\n\n## Learning goals\n\n1. something"),
        new_code_cell(f"import os\n{FAST_LINE}", metadata={"tags": ["parameters"]}),
        new_code_cell("# NBVAL_CHECK_OUTPUT\nprint(1 + 1)"),
        *extra_cells,
    ]
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    if executed:
        count = 0
        for c in nb.cells:
            if c.cell_type == "code" and c.source.strip():
                count += 1
                c.execution_count = count
        nb.cells[2].outputs = [nbformat.v4.new_output("stream", name="stdout", text="2\n")]
    return nb


def _write(nb, path: Path) -> Path:
    nbformat.write(nb, path)
    return path


def test_check_accepts_a_good_notebook(tmp_path):
    assert course.check_notebook(_write(_good_notebook(), tmp_path / "00_good.ipynb")) == []


@pytest.mark.parametrize(
    "breakage, message",
    [
        ("untagged", "tagged 'parameters'"),
        ("no_fast", "FAST"),
        ("no_goals", "Learning goals"),
        ("widgets", "widget state"),
        ("unchecked", "NBVAL_CHECK_OUTPUT"),
        ("unexecuted", "not executed"),
        ("out_of_order", "execution count"),
        ("error", "stored an error"),
    ],
)
def test_check_names_each_problem(tmp_path, breakage, message):
    nb = _good_notebook(new_code_cell("x = 1"), executed=breakage != "unexecuted")
    if breakage == "untagged":
        nb.cells[1].metadata["tags"] = []
    elif breakage == "no_fast":
        nb.cells[1].source = "import os\nFAST = False"
    elif breakage == "no_goals":
        nb.cells[0].source = "# A lesson"
    elif breakage == "widgets":
        nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    elif breakage == "unchecked":
        nb.cells[2].source = "print(1 + 1)"
    elif breakage == "out_of_order":
        nb.cells[3].execution_count = 7
    elif breakage == "error":
        nb.cells[3].outputs = [nbformat.v4.new_output("error", ename="ValueError", evalue="boom", traceback=[])]
    problems = course.check_notebook(_write(nb, tmp_path / "03_broken.ipynb"))
    assert any(message in p for p in problems), problems


def test_check_flags_size_and_name(tmp_path):
    nb = _good_notebook()
    nb.cells[2].outputs[0].text = "x" * course.MAX_NOTEBOOK_BYTES
    problems = course.check_notebook(_write(nb, tmp_path / "lesson.ipynb"))
    assert any("not NN_name.ipynb" in p for p in problems)
    assert any("under 1,000,000 bytes" in p for p in problems)


def test_check_numbering():
    paths = [Path(n) for n in ("00_a.ipynb", "01_b.ipynb", "03_c.ipynb", "03_d.ipynb")]
    problems = course.check_numbering(paths)
    assert any("02 missing" in p for p in problems) and any("share the number(s) 03" in p for p in problems)
    assert course.check_numbering([Path("00_a.ipynb"), Path("01_b.ipynb")]) == []


def test_select_notebooks(tmp_path):
    for name in ("00_welcome.ipynb", "01_rcu.ipynb", "10_beyond.ipynb"):
        _write(_good_notebook(), tmp_path / name)
    (tmp_path / "scratch.ipynb").write_text("{}")
    assert [p.name for p in course.select_notebooks(None, tmp_path)] == ["00_welcome.ipynb", "01_rcu.ipynb", "10_beyond.ipynb"]
    assert [p.name for p in course.select_notebooks(["01", "10_beyond.ipynb"], tmp_path)] == ["01_rcu.ipynb", "10_beyond.ipynb"]
    with pytest.raises(ValueError, match="ambiguous"):
        course.select_notebooks(["0"], tmp_path)
    with pytest.raises(ValueError, match="no notebook"):
        course.select_notebooks(["07"], tmp_path)
    with pytest.raises(ValueError, match="not found"):
        course.select_notebooks(None, tmp_path / "missing")


def test_strip_widget_state_keeps_pictures_and_drops_stale_widget_text():
    """Issue 18: stored, a progress bar showed "0%" and the dashboard ``VBox(children=...``."""
    nb = _good_notebook()
    nb.metadata["widgets"] = {"state": {}}
    view = {"application/vnd.jupyter.widget-view+json": {"model_id": "abc"}}
    nb.cells[2].outputs = [
        nbformat.v4.new_output("display_data", data={**view, "text/plain": "epoch 1/2:   0%|          | 0/4"}),
        nbformat.v4.new_output("stream", name="stdout", text="epoch   1/2  loss 1.79\n"),
        nbformat.v4.new_output("display_data", data={**view, "text/plain": "<AblationDashboard>",
                                                     "image/png": "iVBORw0KGgo=", "text/html": "<img>"}),
        nbformat.v4.new_output("display_data", data={"text/plain": "42"}),
    ]
    course.strip_widget_state(nb)
    assert "widgets" not in nb.metadata
    outputs = nb.cells[2].outputs
    assert [o.get("text") for o in outputs][:1] == ["epoch   1/2  loss 1.79\n"]
    assert dict(outputs[1].data) == {"text/plain": "<AblationDashboard>", "image/png": "iVBORw0KGgo=",
                                     "text/html": "<img>"}
    assert dict(outputs[2].data) == {"text/plain": "42"}  # not a widget: kept as it is
    assert len(outputs) == 3


def test_kernel_env():
    base = {"CI": "true", "NBGRADER_EXECUTION": "autograde", "HOME": "/h"}
    assert course.kernel_env(True, base) == {"CI": "1", "HOME": "/h"}
    assert course.kernel_env(False, base) == {"HOME": "/h"}


# --------------------------------------------------------------------------
# ./course execute / check, with a real kernel
# --------------------------------------------------------------------------


def _lesson(tmp_path: Path, name: str = "00_lesson.ipynb", *cells) -> Path:
    nb = _good_notebook(
        new_code_cell("print('FAST is', FAST)"),
        new_code_cell("import ipywidgets\nipywidgets.IntSlider(value=3)"),
        *cells,
        executed=False,
    )
    return _write(nb, tmp_path / name)


@pytest.mark.slow
def test_execute_stores_notebooks_and_exports_html(tmp_path, capsys):
    path = _lesson(tmp_path)
    html_dir = tmp_path / "site"
    assert tooling_main(["execute", "--dir", str(tmp_path), "--html", str(html_dir)]) == 0
    nb = _read(path)
    texts = ["".join(o.get("text", "")) for c in _code_cells(nb) for o in c.outputs]
    assert "FAST is True\n" in texts, texts  # --fast is the default: CI=1 for the kernel
    assert "widgets" not in nb.metadata
    # a bare widget (an IntSlider) keeps no output: its text would be its creation-time state (strip_widget_state)
    assert _code_cells(nb)[-1].outputs == []
    assert course.check_notebook(path) == []
    assert "FAST is True" in (html_dir / "00_lesson.html").read_text(encoding="utf-8")
    assert "00_lesson.html" in (html_dir / "index.html").read_text(encoding="utf-8")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temporary files left behind"
    assert "1 of 1 notebook(s) executed" in capsys.readouterr().out

    assert tooling_main(["execute", "--full", "--dir", str(tmp_path), "00"]) == 0
    texts = ["".join(o.get("text", "")) for c in _code_cells(_read(path)) for o in c.outputs]
    assert "FAST is False\n" in texts, texts


@pytest.mark.slow
def test_a_failing_notebook_is_left_unchanged(tmp_path, capsys):
    path = _lesson(tmp_path, "00_lesson.ipynb", new_code_cell("raise RuntimeError('broken lesson')"))
    before = path.read_bytes()
    assert tooling_main(["execute", "--dir", str(tmp_path)]) == 1
    assert path.read_bytes() == before
    assert "RuntimeError: broken lesson" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["00_lesson.ipynb"]


def test_course_command_reports_bad_input(tmp_path, capsys):
    assert tooling_main(["execute", "--dir", str(tmp_path / "nowhere")]) == 2
    assert "notebook folder not found" in capsys.readouterr().err
    _lesson(tmp_path)
    assert tooling_main(["execute", "--dir", str(tmp_path), "05"]) == 2
    assert "no notebook" in capsys.readouterr().err
    (tmp_path / "file").write_text("")
    assert tooling_main(["execute", "--dir", str(tmp_path), "--html", str(tmp_path / "file")]) == 2


def test_course_check_command(tmp_path, capsys):
    _write(_good_notebook(), tmp_path / "00_good.ipynb")
    assert tooling_main(["check", "--dir", str(tmp_path)]) == 0
    assert "00_good.ipynb: OK" in capsys.readouterr().out
    _write(_good_notebook(), tmp_path / "02_gap.ipynb")
    assert tooling_main(["check", "--dir", str(tmp_path)]) == 1
    assert "01 missing" in capsys.readouterr().out
