"""``./course``: execute, export and check the notebook course.

    ./course execute [--fast | --full] [--html OUT_DIR] [--dir DIR] [NOTEBOOK ...]
    ./course check [--dir DIR] [NOTEBOOK ...]
    ./course site --out DIR        (tooling/site.py)
    ./course links [--check]       (tooling/links.py)

``execute`` re-runs notebooks top to bottom with ``nbclient`` in the current
Python environment (the kernel is this interpreter, as with nbval's
``--nbval-current-env``), in each notebook's own folder, and stores each one
as the run leaves it: outputs, figures and execution counts, but no widget
state and no timing metadata. ``--fast`` (the default) sets ``CI=1`` for the
kernel, which turns on every notebook's FAST switch: this is how the stored
copies in ``notebooks/`` are made, and what nbval runs in CI. ``--full``
removes ``CI`` and ``NBGRADER_EXECUTION`` so the notebooks do the real thing.
``--html OUT_DIR`` also exports each executed notebook to HTML (nbconvert's
lab template) with an ``index.html``, for instructors who publish the course.
Every file is written atomically (a temporary file renamed into place), and a
notebook whose run fails is left untouched.

``check`` verifies the course's conventions (docs/contributing.md, "Notebook conventions") without
running anything; ``tests/tools/test_notebooks.py`` runs the same checks.

NOTEBOOK arguments are paths, file names in the notebook folder, or number
prefixes (``03`` selects ``03_*.ipynb``). Without any, every numbered
notebook (``NN_name.ipynb``) of the folder is taken, in order.
"""

from __future__ import annotations

import atexit
import contextlib
import html
import os
import re
import signal
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from refinenet_edu.files import atomic_write_text
from refinenet_edu.resources import resource

__all__ = [
    "FAST_ENV_VARS",
    "MAX_NOTEBOOK_BYTES",
    "NOTEBOOK_NAME",
    "ExecutionReport",
    "NotebookFailed",
    "check_notebook",
    "check_numbering",
    "execute_notebook",
    "export_html",
    "find_notebooks",
    "kernel_env",
    "notebook_title",
    "select_notebooks",
    "strip_widget_state",
]

#: a course notebook's file name: two digits, an underscore, a name
NOTEBOOK_NAME = re.compile(r"^(?P<number>\d{2})_[A-Za-z0-9][A-Za-z0-9_.-]*\.ipynb$")
#: :data:`NOTEBOOK_NAME` in words
NOTEBOOK_RULE = ("NN_name.ipynb: two digits, an underscore, then ASCII letters, digits, '_', '.' or '-' "
                 "(starting with a letter or digit)")
#: the end of the launch-links block that ``./course links`` (tooling/links.py) writes
LINKS_END = "<!-- /launch-links -->"


def link_marker_problem(text: str) -> str | None:
    """What is wrong with ``text``'s launch-links markers (a start or end marker removed by hand), or None."""
    starts, ends = text.count("<!-- launch-links"), text.count(LINKS_END)
    if starts != ends or starts > 1:
        return (f"its launch-links block is broken ({starts} start marker(s) '<!-- launch-links ...', {ends} end "
                f"marker(s) '{LINKS_END}'): restore the missing marker or delete what is left of the block by hand, "
                "then run `./course links` again")
    return None


#: the tag (and cell id) of the set-up cell that ``./course links`` (tooling/links.py) writes first
SETUP_TAG = "hosted-setup"
#: either of these in the environment turns a notebook's FAST switch on
FAST_ENV_VARS = ("CI", "NBGRADER_EXECUTION")
#: stored notebooks stay well under this size
MAX_NOTEBOOK_BYTES = 1_000_000
WIDGET_VIEW_MIME = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE_KEY = "widgets"
_CHECK_MARKER = re.compile(r"^\s*#\s*NBVAL_CHECK_OUTPUT\s*$", re.MULTILINE)


# --------------------------------------------------------------------------
# Finding notebooks
# --------------------------------------------------------------------------


def find_notebooks(directory: str | Path | None = None) -> list[Path]:
    """The numbered notebooks (``NN_name.ipynb``) of ``directory``, in order."""
    directory = Path(directory) if directory is not None else resource("notebooks")
    if not directory.is_dir():
        raise ValueError(f"{directory}: notebook folder not found (pass --dir DIR)")
    return sorted(p for p in directory.iterdir() if p.is_file() and NOTEBOOK_NAME.match(p.name))


def select_notebooks(names: list[str] | None, directory: str | Path | None = None) -> list[Path]:
    """Resolve NOTEBOOK arguments (paths, names or number prefixes) to files.

    Raises ``ValueError`` naming an argument that matches nothing, or a
    number prefix that matches several notebooks.
    """
    if not names:
        found = find_notebooks(directory)
        if not found:
            where = Path(directory) if directory is not None else resource("notebooks")
            others = sorted(p.name for p in where.glob("*.ipynb"))
            shown = ", ".join(repr(n) for n in others[:5]) + (", ..." if len(others) > 5 else "")
            raise ValueError(f"{where}: no numbered notebooks found: a course notebook is named {NOTEBOOK_RULE}; "
                             + (f"found {len(others)} other .ipynb file(s): {shown} (rename them, or name one "
                                "as a NOTEBOOK argument)" if others else "found no .ipynb file there"))
        return found
    directory = Path(directory) if directory is not None else resource("notebooks")
    chosen: list[Path] = []
    for name in names:
        path = Path(name)
        if path.suffix == ".ipynb" and path.is_file():
            chosen.append(path)
            continue
        if (directory / name).is_file():
            chosen.append(directory / name)
            continue
        matches = [p for p in find_notebooks(directory) if p.name.startswith(name)] if directory.is_dir() else []
        if len(matches) == 1:
            chosen.append(matches[0])
        elif not matches:
            raise ValueError(f"notebook {name!r}: no such file, and no notebook in {directory} starts with it")
        else:
            raise ValueError(f"notebook {name!r} is ambiguous: {', '.join(p.name for p in matches)}")
    return chosen


def notebook_title(nb) -> str:
    """The text of the first markdown heading, or an empty string."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return ""


# --------------------------------------------------------------------------
# Executing and writing
# --------------------------------------------------------------------------


def kernel_env(fast: bool, base: dict[str, str] | None = None) -> dict[str, str]:
    """The kernel's environment: ``CI=1`` for FAST mode, without both switches for full mode."""
    env = dict(os.environ if base is None else base)
    for var in FAST_ENV_VARS:
        env.pop(var, None)
    if fast:
        env["CI"] = "1"
    return env


def strip_widget_state(nb):
    """Remove widget state (notebook metadata) and widget views (outputs), in place.

    A stored widget view without its state cannot be displayed, so the
    output's other representations are kept: a picture or HTML the display
    offers for that case (the ablation dashboard's static picture). A widget
    whose only other representation is its text is dropped: that text is the
    widget's state when it was created (``VBox(children=...``, a progress
    bar's "0%"), not what the run showed. The widgets come back when the
    reader runs the cell. Also drops nbclient's timing metadata.
    """
    nb.metadata.pop(WIDGET_STATE_KEY, None)
    for cell in nb.cells:
        cell.metadata.pop(WIDGET_STATE_KEY, None)
        cell.metadata.pop("execution", None)
        if cell.cell_type != "code":
            continue
        kept = []
        for output in cell.get("outputs", []):
            data = output.get("data")
            if data is not None and data.pop(WIDGET_VIEW_MIME, None) is not None and set(data) <= {"text/plain"}:
                continue
            kept.append(output)
        cell.outputs = kept
    return nb


@dataclass
class ExecutionReport:
    """What happened to one notebook."""

    path: Path
    seconds: float
    ok: bool
    error: str = ""
    size: int = 0
    html: Path | None = None
    warnings: list[str] = field(default_factory=list)


class NotebookFailed(RuntimeError):
    """A notebook's run stopped: a cell raised, ran over the time limit, or the kernel died.

    ``str()`` names the notebook; ``reason`` is the rest (the cell, by its number, and what happened)."""

    def __init__(self, path: Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = path, reason


def _client(nb, **options):
    """An ``nbclient.NotebookClient`` whose Ctrl-C and SIGTERM are not lost.

    nbclient's own handlers of SIGINT and SIGTERM shut the kernel down and let the run end as "Kernel died" and an
    AssertionError of its clean-up, so a stopped command looked like a failed notebook. This client shuts the kernel
    down the same way, notes the signal in ``stopped_by`` (for :func:`execute_notebook` to stop as the command's
    own handler would) and, when the run ends, gives the signals back to the handlers they had before."""
    import asyncio

    from nbclient import NotebookClient

    class Client(NotebookClient):
        stopped_by: int | None = None

        def _stop(self, sig: int) -> None:
            self.stopped_by = sig
            self._async_cleanup_kernel_future = asyncio.ensure_future(self._async_cleanup_kernel())
            atexit.unregister(self._cleanup_kernel)  # as nbclient's handler does: the kernel is being shut down

        @contextlib.asynccontextmanager
        async def async_setup_kernel(self, **kwargs):
            main = threading.current_thread() is threading.main_thread()
            before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)} if main else {}
            async with super().async_setup_kernel(**kwargs):
                loop = asyncio.get_running_loop()
                for sig in before:
                    loop.add_signal_handler(sig, self._stop, sig)  # in place of nbclient's
                try:
                    yield
                finally:
                    for sig, handler in before.items():
                        loop.remove_signal_handler(sig)
                        signal.signal(sig, handler)

    return Client(nb, **options)


def _failure(nb, index: int | None, err: BaseException, timeout: int | None, kernel_log) -> str:
    """What stopped a notebook's run, in one line naming the cell."""
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    if index is None:
        where = "before its first cell"
    else:
        code = sum(1 for c in nb.cells[: index + 1] if c.cell_type == "code")
        where = f"cell {index + 1} (code cell {code})"
    if isinstance(err, CellTimeoutError) or (isinstance(err, TimeoutError) and timeout is not None):
        return f"{where} ran over the time limit of {timeout} s a cell (--timeout); stopped"
    if isinstance(err, DeadKernelError):
        kernel_log.seek(0)
        lines = [line.strip() for line in kernel_log.read().decode("utf-8", "replace").splitlines() if line.strip()]
        return f"the kernel died in {where}" + (f" (its last words: {lines[-1]})" if lines else "")
    ename = getattr(err, "ename", None)
    if ename is not None:  # CellExecutionError: the cell's own exception
        return f"{where} raised {ename}: {' '.join(str(getattr(err, 'evalue', '')).split())}"
    text = " ".join(str(err).split())
    return f"{where}: {type(err).__name__}" + (f": {text}" if text else "")


def execute_notebook(path: str | Path, *, fast: bool = True, timeout: int | None = None, kernel_name: str = "python3",
                     save: bool = True):
    """Run a notebook top to bottom; on success store it (atomically) and return it.

    Returns ``(notebook, seconds)``. Raises :class:`NotebookFailed` naming the cell by its number when a cell
    fails, runs over ``timeout`` seconds or the kernel dies; the file is then left untouched. The kernel's own
    stderr (log lines, the tracebacks of its shutdown after a timeout) is not shown. Ctrl-C or SIGTERM while it
    runs raise what their handlers raise (``KeyboardInterrupt``).
    """
    import nbformat

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    running: dict[str, int | None] = {"cell": None}

    def started(cell=None, cell_index=None, **_):
        running["cell"] = cell_index
    client = _client(
        nb,
        timeout=timeout,
        kernel_name=kernel_name,
        resources={"metadata": {"path": str(path.parent.resolve())}},
        record_timing=False,
        # True although the state is stripped below: with False, nbclient's
        # Output-widget capture (``with output:`` in a cell) fails with a
        # KeyError on the widget's comm id (nbclient 0.11, output_widget.py).
        store_widget_state=True,
        allow_errors=False,
        on_cell_execute=started,
    )
    start = time.perf_counter()
    with tempfile.TemporaryFile() as kernel_log:
        try:
            client.execute(env=kernel_env(fast), stderr=kernel_log)
        except Exception as err:  # noqa: BLE001 - a failing cell, a timeout, a dead kernel, a signal
            if client.stopped_by is not None:  # Ctrl-C or SIGTERM: stop as their handler says (kernel shut down)
                handler = signal.getsignal(client.stopped_by)
                if callable(handler):
                    handler(client.stopped_by, None)
                raise KeyboardInterrupt from None
            raise NotebookFailed(path, _failure(nb, running["cell"], err, timeout, kernel_log)) from err
    seconds = time.perf_counter() - start
    strip_widget_state(nb)
    if save:
        atomic_write_text(path, nbformat.writes(nb) + "\n")
    return nb, seconds


def export_html(nb, out_path: str | Path) -> Path:
    """Write ``nb`` as a stand-alone HTML page (nbconvert, lab template)."""
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter(template_name="lab").from_notebook_node(nb)
    out_path = Path(out_path)
    atomic_write_text(out_path, body)
    return out_path


def write_index(out_dir: Path, entries: list[tuple[str, str]]) -> Path:
    items = "\n".join(f'    <li><a href="{html.escape(href)}">{html.escape(title)}</a></li>' for href, title in entries)
    page = (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<title>RefineNet, built step by step</title>\n</head>\n<body>\n"
        "<h1>RefineNet, built step by step</h1>\n"
        "<p>A course that re-creates RefineNet (Lin et al., CVPR 2017, arXiv:1611.06612) one component at a time.</p>\n"
        f"<ol start=\"0\">\n{items}\n</ol>\n</body>\n</html>\n"
    )
    path = out_dir / "index.html"
    atomic_write_text(path, page)
    return path


def error_summary(err: BaseException) -> str:
    if isinstance(err, NotebookFailed):
        return err.reason
    ename = getattr(err, "ename", type(err).__name__)
    evalue = getattr(err, "evalue", str(err).strip().splitlines()[-1] if str(err).strip() else "")
    return f"{ename}: {evalue}"


# --------------------------------------------------------------------------
# Conventions (docs/contributing.md, "Notebook conventions")
# --------------------------------------------------------------------------


def _code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def parameters_cell(nb):
    """The cell tagged ``parameters``'s place: the first code cell after the hosted set-up cell (if any).

    The set-up cell (tagged ``hosted-setup``, written by ``./course
    links``, tooling/links.py) comes first so that on Colab the
    package is installed before anything imports it.
    """
    code = [c for c in _code_cells(nb) if SETUP_TAG not in c.metadata.get("tags", [])]
    return code[0] if code else None


def check_notebook(path: str | Path) -> list[str]:
    """Every way the stored notebook at ``path`` breaks the course's conventions.

    An empty list means it follows them all: a numbered name; under 1 MB; a
    first code cell (after the hosted set-up cell, see :func:`parameters_cell`)
    tagged ``parameters`` that sets ``FAST`` from ``CI`` and
    ``NBGRADER_EXECUTION``; learning goals in a markdown cell before the first
    code cell; no widget state; at least one ``# NBVAL_CHECK_OUTPUT`` cell,
    each with output to compare; stored executed by one clean top-to-bottom
    run (execution counts 1, 2, 3, ... on every non-empty code cell) without
    error outputs.
    """
    import nbformat

    path = Path(path)
    problems: list[str] = []
    if not NOTEBOOK_NAME.match(path.name):
        problems.append(f"file name {path.name!r} is not NN_name.ipynb")
    size = path.stat().st_size
    if size >= MAX_NOTEBOOK_BYTES:
        problems.append(f"{size:,} bytes: stored notebooks must stay under {MAX_NOTEBOOK_BYTES:,} bytes "
                        "(lower the figure dpi or the number of figures)")
    try:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
    except Exception as err:  # unreadable or invalid JSON / schema
        return problems + [f"not a valid notebook: {err}"]

    markers = link_marker_problem("\n".join(c.source for c in nb.cells if c.cell_type == "markdown"))
    if markers:
        problems.append(markers)
    code = _code_cells(nb)
    first = parameters_cell(nb)
    if first is None:
        return problems + ["has no code cells"]
    if "parameters" not in first.metadata.get("tags", []):
        problems.append("the first code cell (after the hosted set-up cell) is not tagged 'parameters'")
    src = first.source
    if not re.search(r"^FAST\s*=", src, re.MULTILINE) or not all(v in src for v in FAST_ENV_VARS):
        problems.append("the parameters cell does not set FAST from the CI and NBGRADER_EXECUTION variables, e.g. "
                        "FAST = bool(os.environ.get(\"CI\") or os.environ.get(\"NBGRADER_EXECUTION\"))")

    before_code = []
    for cell in nb.cells:
        if cell.cell_type == "code":
            break
        if cell.cell_type == "markdown":
            before_code.append(cell.source)
    if not any(re.search(r"learning goals", s, re.IGNORECASE) for s in before_code):
        problems.append("no 'Learning goals' in a markdown cell before the first code cell")

    if WIDGET_STATE_KEY in nb.metadata:
        problems.append("holds widget state (notebook metadata 'widgets'); store it with "
                        "`./course execute`, which strips it")
    if any(WIDGET_STATE_KEY in c.metadata for c in nb.cells):
        problems.append("holds widget state in a cell's metadata")

    checked = [c for c in code if _CHECK_MARKER.search(c.source) or "nbval-check-output" in c.metadata.get("tags", [])]
    if not checked:
        problems.append("no cell marked '# NBVAL_CHECK_OUTPUT' (mark the deterministic ones: shapes, counts, tables)")
    for c in checked:
        if not c.get("outputs"):
            lines = [ln for ln in c.source.splitlines() if ln.strip() and not _CHECK_MARKER.match(ln)]
            problems.append(f"the NBVAL_CHECK_OUTPUT cell {(lines[0] if lines else '')[:60]!r} "
                            "has no stored output to compare")

    expected = 1
    for i, c in enumerate(code):
        if not c.source.strip():
            continue
        if c.execution_count is None:
            problems.append(f"code cell {i + 1} was not executed (store the notebook executed)")
            break
        if c.execution_count != expected:
            problems.append(f"code cell {i + 1} has execution count {c.execution_count}, expected {expected}: "
                            "store the notebook as one clean top-to-bottom run")
            break
        expected += 1
    for i, c in enumerate(code):
        for out in c.get("outputs", []):
            if out.get("output_type") == "error":
                problems.append(f"code cell {i + 1} stored an error ({out.get('ename')}: {out.get('evalue')})")
    return problems


def check_numbering(paths: list[Path]) -> list[str]:
    """Problems with the numbering of a course: 00, 01, ... without gaps or repeats."""
    numbers = sorted(int(m["number"]) for p in paths if (m := NOTEBOOK_NAME.match(Path(p).name)))
    problems = []
    repeats = sorted({n for n in numbers if numbers.count(n) > 1})
    if repeats:
        problems.append(f"several notebooks share the number(s) {', '.join(f'{n:02d}' for n in repeats)}")
    unique = sorted(set(numbers))
    if unique and unique != list(range(unique[-1] + 1)):
        missing = sorted(set(range(unique[-1] + 1)) - set(unique))
        problems.append(f"numbering has gaps: {', '.join(f'{n:02d}' for n in missing)} missing")
    return problems


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------


