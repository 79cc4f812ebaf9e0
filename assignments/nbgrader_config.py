# nbgrader configuration of the ./course assignments (this folder is the course directory).
# Read by every `nbgrader ...` command run from this folder, by the Formgrader of a JupyterLab started in this
# folder, and by `./course assignments release`. README.md beside this file is the instructor guide.
import importlib.util
import sys
from pathlib import Path

c = get_config()  # noqa: F821 (provided by traitlets when nbgrader loads this file)

HERE = Path(__file__).resolve().parent

# The judge (below) lives in the repository's tooling/, which is not part of the library: find the checkout
# beside this folder, or the one refinenet_edu is installed from (`pip install -e`).
for _root in (HERE.parent, Path(importlib.util.find_spec("refinenet_edu").origin).parents[1]):
    if (_root / "tooling" / "autograde").is_dir():
        sys.path.insert(0, str(_root))
        break

c.CourseDirectory.course_id = "refinenet-edu"

# The exchange: where `nbgrader release_assignment` puts the student versions, students' `fetch_assignment`
# and `submit` read and write, and `nbgrader collect` picks the submissions up. Here a folder beside this file
# (git-ignored), which works when instructor and students share this machine. On a JupyterHub, use a folder
# every user can read and write (nbgrader's default is /srv/nbgrader/exchange) and put the same line into the
# students' nbgrader_config.py (for example /etc/jupyter/nbgrader_config.py).
c.Exchange.root = str(HERE / "exchange")

# Students' unimplemented code raises NotImplementedError (nbgrader's default stub, stated here on purpose:
# the CI tests check that each student version fails with it at the first unimplemented part).
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# Autograding executes every notebook with NBGRADER_EXECUTION set, so the notebooks run in FAST mode;
# the experiment assignment trains two small models, which takes well under a minute on a laptop CPU. A cell
# that runs longer (an endless loop) is stopped after this many seconds and the next cell runs.
c.SandboxedExecute.timeout = 120

# Assignment 6 records the student's measurement in crp_experiment.json beside the notebook; autograde must
# never replace it with a file of the same name from source/ (it copies the source folder's other files).
c.Autograde.exclude_overwriting = {"06_experiment_crp": ["crp_experiment.json"]}

# A student who deleted a locked test cell gets it back (marked as re-added) and is graded by it.
c.OverwriteCells.add_missing_cells = True

# nbgrader 0.9 warns "Attribute 'checksum' for cell ... has changed!" for every test cell with hidden tests,
# although the student changed nothing (jupyter/nbgrader#1961: the gradebook keeps the checksum of the
# instructor's cell, hidden tests included). RestoreLockedCells is nbgrader's OverwriteCells (it restores every
# locked cell from the gradebook, as before) that warns only when the student's cell differs from the cell
# as it was handed out: that warning now means a student edited a locked cell.
# RebuildFromRelease (first) repairs a notebook whose nbgrader metadata a student changed. The hidden tests are
# then cleared again: the scores come from the judge (below), so they never run in the
# student's kernel and never reach the feedback.
c.Autograde.sanitize_preprocessors = [
    "tooling.autograde.nbgrader_hooks.RebuildFromRelease",
    "nbgrader.preprocessors.ClearOutput",
    "nbgrader.preprocessors.DeduplicateIds",
    "nbgrader.preprocessors.OverwriteKernelspec",
    "tooling.autograde.restore.RestoreLockedCells",
    "nbgrader.preprocessors.ClearHiddenTests",
    "nbgrader.preprocessors.CheckCellMetadata",
]

# Scores are computed outside the student's kernel (tooling/autograde, README.md "How scores are computed"):
# SandboxedExecute runs the notebook for its feedback as an unprivileged user without network and with this
# folder and the exchange hidden (when nbgrader runs as root); JudgedGrades scores each graded cell by running
# the student's solution cells in another sandboxed process on inputs drawn at grading time and comparing the
# outputs with the library's reference, in nbgrader's own process.
c.Autograde.autograde_preprocessors = [
    "tooling.autograde.nbgrader_hooks.SandboxedExecute",
    "nbgrader.preprocessors.IgnorePattern",
    "nbconvert.preprocessors.ClearMetadataPreprocessor",
    "nbgrader.preprocessors.LimitOutput",
    "tooling.autograde.nbgrader_hooks.JudgedGrades",
    "nbgrader.preprocessors.AssignLatePenalties",
    "nbgrader.preprocessors.CheckCellMetadata",
]
c.SandboxedExecute.hidden = [str(HERE), c.Exchange.root]
c.JudgedGrades.course_dir = str(HERE)
# A notebook whose nbgrader metadata was edited (which nbgrader would drop with no feedback) is graded as the
# handed-out notebook holding the student's solution cells, and its feedback says so.
c.RebuildFromRelease.course_dir = str(HERE)

# Feedback never shows hidden tests (nbgrader's GenerateFeedback keeps them otherwise).
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.ClearHiddenTests",
    "nbgrader.preprocessors.GetGrades",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]

# `nbgrader zip_collect NAME` reads the archives (or files) in downloaded/NAME/archive/, e.g. from an LMS, and
# expects one folder per student: <student id>/<file>, for example alice/06_experiment_crp.ipynb and
# alice/crp_experiment.json (the measurement that assignment 6 records). See README.md, "Without a hub".
c.ZipCollectApp.collector_plugin = "nbgrader.plugins.FileNameCollectorPlugin"
c.FileNameCollectorPlugin.named_regexp = r".*/(?P<student_id>[^/]+)/(?P<file_id>[^/]+)$"
c.FileNameCollectorPlugin.valid_ext = [".ipynb", ".json"]
