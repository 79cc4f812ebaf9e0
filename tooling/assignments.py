"""``./course assignments``: list the graded assignments and release student versions.

The instructor versions live in an nbgrader course directory (the current
folder when it holds ``source/``, else the repository's ``assignments/``)::

    assignments/
        nbgrader_config.py
        source/<name>/<name>.ipynb      instructor versions, with nbgrader markup

``release`` runs nbgrader's own ``GenerateAssignment`` converter -- the same
preprocessors as ``nbgrader generate_assignment`` (ClearSolutions,
ClearHiddenTests, ClearOutput, LockCells, ComputeChecksums, SaveCells, ...),
with the course's ``nbgrader_config.py`` -- into a temporary folder next to
the output, checks that no solution or hidden-test region is left, and only
then moves each assignment into place. An assignment folder already there is
replaced only if this command released it and nothing in it was added or
edited since (``<out>/.refinenet-edu-release.json`` lists what it released,
with checksums): a student's ``my_answers.txt`` or edited notebook is never
deleted; the release is refused instead. By default the assignments are
recorded in the course's gradebook (``assignments/gradebook.db``), which
``nbgrader autograde`` needs; ``--no-db`` skips that.

Usage::

    ./course assignments list
    ./course assignments release                     # all, into assignments/release/
    ./course assignments release 02_chained_residual_pooling --out /tmp/handout --no-db
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from refinenet_edu.files import atomic_write_text
from tooling.manifest import changed_since, file_manifest

__all__ = [
    "AssignmentInfo",
    "MARKERS",
    "RELEASE_RECORD",
    "RUN_RECORDS",
    "default_course_dir",
    "find_leftovers",
    "list_assignments",
    "release",
]

#: Text that must not survive in a student version (nbgrader's default delimiters).
MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")


@dataclass
class AssignmentInfo:
    """What an instructor notebook grades, read from its nbgrader cell metadata."""

    name: str
    path: Path
    auto_points: float = 0.0
    manual_points: float = 0.0
    graded_cells: list[tuple[str, float, str]] = field(default_factory=list)  # (grade_id, points, "auto"/"manual")

    @property
    def points(self) -> float:
        return self.auto_points + self.manual_points


def default_course_dir() -> Path:
    """The current directory if it is a course directory (holds ``source/``), else the checkout's ``assignments/``.

    So that ``./course assignments release`` run inside a course folder (as the instructor guide does,
    from ``assignments/`` or from a copy of it) works on that folder.
    """
    candidates = [Path.cwd(), Path(__file__).resolve().parents[1] / "assignments"]
    for c in candidates:
        if (c / "source").is_dir():
            return c
    raise ValueError(
        "no nbgrader course directory found (a folder with source/<name>/<name>.ipynb): "
        "pass --course-dir DIR"
    )


def _course_dir(course_dir: str | os.PathLike | None) -> Path:
    if course_dir is None:
        return default_course_dir()
    path = Path(course_dir).resolve()
    if not (path / "source").is_dir():
        raise ValueError(f"{path}: not an nbgrader course directory (no source/ folder in it)")
    return path


def _read_notebook(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: not a readable notebook ({err})") from err


def list_assignments(course_dir: str | os.PathLike | None = None) -> list[AssignmentInfo]:
    """Every ``source/<name>/<name>.ipynb`` with its points, sorted by name."""
    course = _course_dir(course_dir)
    infos = []
    for folder in sorted(p for p in (course / "source").iterdir() if p.is_dir() and not p.name.startswith(".")):
        nb_path = folder / f"{folder.name}.ipynb"
        if not nb_path.is_file():
            continue
        info = AssignmentInfo(folder.name, nb_path)
        for cell in _read_notebook(nb_path).get("cells", []):
            meta = cell.get("metadata", {}).get("nbgrader", {})
            if not meta.get("grade"):
                continue
            points = float(meta.get("points", 0))
            kind = "manual" if meta.get("solution") or cell.get("cell_type") == "markdown" else "auto"
            info.graded_cells.append((meta.get("grade_id", "?"), points, kind))
            if kind == "manual":
                info.manual_points += points
            else:
                info.auto_points += points
        infos.append(info)
    return infos


#: Files a run of an instructor notebook writes beside it, which must not be handed out (assignment 6's
#: recorded measurement: a student who received the instructor's would hand it in as theirs).
RUN_RECORDS = ("crp_experiment.json",)


def find_leftovers(folder: str | os.PathLike) -> list[str]:
    """``"file: cell i: marker"`` for every solution/hidden-test delimiter or output left in ``folder``,
    and ``"file: a run's record"`` for every :data:`RUN_RECORDS` file in it."""
    problems = [f"{p.name}: a run's record (delete it from the source folder)"
                for name in RUN_RECORDS for p in sorted(Path(folder).rglob(name))]
    for nb_path in sorted(Path(folder).rglob("*.ipynb")):
        for i, cell in enumerate(_read_notebook(nb_path).get("cells", [])):
            source = cell.get("source", "")
            source = "".join(source) if isinstance(source, list) else source
            for marker in MARKERS:
                if marker.lower() in source.lower():
                    problems.append(f"{nb_path.name}: cell {i}: {marker!r}")
            if cell.get("outputs"):
                problems.append(f"{nb_path.name}: cell {i}: outputs")
    return problems


def _nbgrader_config(course: Path, release_dir: Path, db: str | os.PathLike | bool | None):
    from traitlets.config import Config
    from traitlets.config.loader import PyFileConfigLoader

    config = Config()
    if (course / "nbgrader_config.py").is_file():
        config.merge(PyFileConfigLoader("nbgrader_config.py", path=str(course)).load_config())
    config.CourseDirectory.root = str(course)
    # An absolute release directory: nbgrader writes <release_dir>/./<name>/ instead of <root>/release/.
    config.CourseDirectory.release_directory = str(release_dir)
    config.GenerateAssignment.force = True
    config.GenerateAssignment.create_assignment = True
    if db is False:
        config.GenerateAssignment.no_database = True
        config.SaveCells.enabled = False
    elif db is not None:
        config.CourseDirectory.db_url = f"sqlite:///{Path(db).resolve()}"
    return config


@contextlib.contextmanager
def _interpreter_scripts_on_path():
    """nbgrader's gradebook runs the ``alembic`` command by name; find the one installed beside this Python.

    (``.venv/bin/refinenet-edu`` works without activating the environment, so its ``bin/`` may not be on PATH.)
    """
    scripts = str(Path(sys.executable).parent)
    old = os.environ.get("PATH", "")
    if shutil.which("alembic") is None and (Path(scripts) / "alembic").exists():
        os.environ["PATH"] = scripts + os.pathsep + old
    try:
        yield
    finally:
        os.environ["PATH"] = old


class _LogRecords(logging.Handler):
    """Keeps the log records of one nbgrader converter, to quote them when it fails."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def reason(self) -> str:
        """nbgrader's own explanation, one line: the first line of each error it logged, the exception of a
        logged traceback, without its generic "see the log" lines."""
        lines: list[str] = []
        for record in self.records:
            text = record.getMessage().strip()
            if text.startswith("Traceback (most recent call last)"):
                text = text.splitlines()[-1].split(": ", 1)[-1]
            elif record.levelno < logging.ERROR or text.startswith(("There was an error", "Please see")):
                continue
            text = text.splitlines()[0].strip().removesuffix("Cell contents are:").strip() if text else ""
            if text and not any(text in seen or seen in text for seen in lines):
                lines.append(text)
        return "; ".join(lines) or "nbgrader logged no reason"


@contextlib.contextmanager
def _captured_log(converter):
    """Route ``converter``'s log (and its preprocessors', which log through it) into a :class:`_LogRecords`."""
    records = _LogRecords()
    logger = logging.getLogger(f"refinenet_edu.assignments.nbgrader.{id(converter)}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(records)
    old = converter.log
    converter.log = logger
    try:
        yield records
    finally:
        converter.log = old
        logger.removeHandler(records)


#: the record, in a release folder, of what each released assignment folder held (manifest.file_manifest)
RELEASE_RECORD = ".refinenet-edu-release.json"


def _released_before(out_dir: Path) -> dict[str, dict[str, str]]:
    path = out_dir / RELEASE_RECORD
    if not path.is_file():
        return {}
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(record, dict) or not all(isinstance(v, dict) for v in record.values()):
            raise TypeError("expected an object of assignment folders")
        return record
    except (ValueError, TypeError) as err:
        raise ValueError(f"{path}: not a record of ./course assignments release ({err}); move it away to "
                         f"release into {out_dir}") from None


def _check_replaceable(dest: Path, recorded: dict[str, str] | None) -> None:
    """Refuse to replace ``dest`` unless it is a folder this command released that nobody changed since."""
    if not dest.exists() and not dest.is_symlink():
        return
    if not dest.is_dir() or dest.is_symlink():
        raise ValueError(f"{dest}: exists and is not a folder released by ./course assignments release; "
                         "it is left as it is: move it away or choose another --out")
    if recorded is None:
        if any(dest.iterdir()):
            raise ValueError(f"{dest}: was not released by this command (no record in {dest.parent / RELEASE_RECORD}); "
                             "it is left as it is: move it away or choose another --out")
        return
    changed = changed_since(dest, recorded)
    if changed:
        raise ValueError(f"{dest / changed[0]}: added or edited since the release ({len(changed)} such entries); "
                         f"{dest} is left as it is: move your files out of it or choose another --out")


def _replace_dir(src: Path, dest: Path, scratch: Path) -> None:
    """Move ``src`` to ``dest``; an existing ``dest`` is swapped out first, then deleted."""
    old = None
    if dest.exists():
        old = scratch / f".old-{dest.name}"
        os.replace(dest, old)
    os.replace(src, dest)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def release(
    names: Sequence[str] | None = None,
    *,
    course_dir: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    db: str | os.PathLike | bool | None = None,
) -> list[Path]:
    """Generate the student versions of ``names`` (default: all) with nbgrader; return their folders.

    ``out`` defaults to ``<course_dir>/release`` (nbgrader's layout). ``db``:
    ``None`` records the assignments in ``<course_dir>/gradebook.db`` (or the
    ``db_url`` of ``nbgrader_config.py``), a path uses that SQLite file,
    ``False`` uses no gradebook. Raises ``ValueError`` for an unknown name or
    when nbgrader rejects a notebook; nothing under ``out`` changes then.
    """
    from nbgrader.converters import GenerateAssignment
    from nbgrader.converters.base import NbGraderException
    from nbgrader.coursedir import CourseDirectory

    course = _course_dir(course_dir)
    available = [a.name for a in list_assignments(course)]
    if not available:
        raise ValueError(f"{course / 'source'}: no assignments (expected source/<name>/<name>.ipynb)")
    names = list(names) if names else available
    unknown = [n for n in names if n not in available]
    if unknown:
        raise ValueError(f"unknown assignment(s) {unknown}; available: {available}")
    out_dir = Path(out).resolve() if out is not None else course / "release"
    out_dir.mkdir(parents=True, exist_ok=True)

    scratch = Path(tempfile.mkdtemp(prefix=".release-", dir=out_dir))
    try:
        generated = scratch / "generated"
        config = _nbgrader_config(course, generated, db)
        for name in names:
            coursedir = CourseDirectory(config=config)
            coursedir.assignment_id = name
            converter = GenerateAssignment(coursedir=coursedir, config=config)
            with _captured_log(converter) as log:
                try:
                    with _interpreter_scripts_on_path():
                        converter.start()
                except NbGraderException as err:
                    raise ValueError(f"{course / 'source' / name / (name + '.ipynb')}: nbgrader could not generate "
                                     f"{name!r}: {log.reason()}") from err
            folder = generated / name
            if not (folder / f"{name}.ipynb").is_file():
                raise ValueError(f"nbgrader wrote no {name}.ipynb for {name!r}: {log.reason()}")
            leftovers = find_leftovers(folder)
            if leftovers:
                raise ValueError(f"{name}: the student version still contains " + "; ".join(leftovers))
        results = []
        record = _released_before(out_dir)
        for name in names:  # all checked before any is replaced
            _check_replaceable(out_dir / name, record.get(name))
        for name in names:
            manifest = file_manifest(generated / name)
            _replace_dir(generated / name, out_dir / name, scratch)
            record[name] = manifest
            atomic_write_text(out_dir / RELEASE_RECORD, json.dumps(record, indent=1, sort_keys=True) + "\n")
            results.append(out_dir / name)
        return results
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
