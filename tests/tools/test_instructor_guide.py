"""The instructor guide's command sequence (assignments/README.md), run as written on a scratch course.

Three students hand in every assignment: alice with the solutions (she deleted one locked test cell, which
nbgrader puts back), bob with the classic bug of each part planted (and one locked test cell edited), carol
untouched. alice and bob go through nbgrader's exchange (fetch, submit, collect), carol's files arrive as an
LMS archive (zip_collect). Then autograde, manual grading in the Formgrader (a real JupyterLab started in the
course folder, driven through its HTTP API), feedback, export; the test asserts every score in grades.csv,
what the feedback says, and which warnings the log shows.

The nbgrader commands run in this process, the way nbgrader's own tests run them (``NbGraderApp`` with the
command's arguments, then ``reset()``): the same code as the ``nbgrader`` command without its ~2 s start-up
each. Every command the test runs is checked to appear in the guide, so that the guide cannot drift.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import nbformat
import pytest

pytest.importorskip("nbgrader")
from jupyter_core.application import NoStart  # noqa: E402
from nbclient import NotebookClient  # noqa: E402
from nbgrader.apps import NbGraderApp  # noqa: E402


from tooling.cli import main as tooling_main  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
COURSE = ROOT / "assignments"
GUIDE = (COURSE / "README.md").read_text(encoding="utf-8")
NAMES = sorted(p.name for p in (COURSE / "source").iterdir() if p.is_dir())
DATA_READY = (ROOT / "data" / "synthscenes" / "ImageSets" / "Segmentation" / "train.txt").is_file()

# ---------------------------------------------------------------- what bob hands in: the classic bugs

BUGS = {
    ("01_residual_conv_unit", "rcu_solution"): '''class ResidualConvUnit(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, kernel_size=3, padding=1, bias=True)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, padding=1, bias=False)

    def forward(self, x):
        x = F.relu(x)  # planted: the shortcut now carries relu(x)
        return x + self.conv2(F.relu(self.conv1(x)))''',
    ("02_chained_residual_pooling", "crp_solution"): '''class ChainedResidualPooling(nn.Module):
    def __init__(self, channels, num_blocks=4):
        super().__init__()
        self.num_blocks = num_blocks
        self.pool = nn.MaxPool2d(kernel_size=5, stride=1, padding=2)
        self.convs = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1, bias=False) for _ in range(num_blocks))

    def forward(self, x):
        x = F.relu(x)
        out = x
        for conv in self.convs:
            out = out + conv(self.pool(x))  # planted: parallel pools, every block reads x
        return out''',
    ("03_multi_resolution_fusion", "fusion_solution"): '''class MultiResolutionFusion(nn.Module):
    def __init__(self, in_channels):
        super().__init__()
        in_channels = list(in_channels)
        self.out_channels = min(in_channels)
        self.convs = nn.ModuleList() if len(in_channels) == 1 else nn.ModuleList(
            nn.Conv2d(c, self.out_channels, 3, padding=1, bias=False) for c in in_channels)

    def forward(self, *paths):
        if len(self.convs) == 0:
            return paths[0]
        size = min((p.shape[-2:] for p in paths), key=lambda s: s[0] * s[1])  # planted: the wrong branch
        return sum(F.interpolate(c(p), size=size, mode="bilinear", align_corners=False)
                   for c, p in zip(self.convs, paths))''',
    ("04_four_cascade", "cascade_solution"): '''class FourCascadedDecoder(nn.Module):
    def __init__(self, enc_channels, widths, crp_blocks=4, output_rcus=3):
        super().__init__()
        c1, c2, c3, c4 = enc_channels
        w1, w2, w3, w4 = widths
        opts = dict(crp_blocks=crp_blocks, output_rcus=output_rcus)
        self.refinenet4 = RefineNetBlock([c4], [w4], **opts)
        self.refinenet3 = RefineNetBlock([self.refinenet4.out_channels, c3], [None, w3], **opts)
        self.refinenet2 = RefineNetBlock([self.refinenet3.out_channels, c2], [None, w2], **opts)
        self.refinenet1 = RefineNetBlock([self.refinenet2.out_channels, c1], [None, w1], **opts)

    def forward(self, features):
        f1, f2, f3, f4 = features
        r4 = self.refinenet4(f4)
        r3 = self.refinenet3(f3, r4)  # planted: the paths in the wrong order
        r2 = self.refinenet2(r3, f2)
        return self.refinenet1(r2, f1)''',
    ("05_miou", "cm_solution"): '''def confusion_matrix(pred, target, num_classes, ignore_index=255):
    pred, target = torch.as_tensor(pred).flatten(), torch.as_tensor(target).flatten()
    keep = target != ignore_index
    index = pred[keep] * num_classes + target[keep]  # planted: transposed
    return torch.bincount(index, minlength=num_classes * num_classes).reshape(num_classes, num_classes)''',
    ("05_miou", "iou_solution"): '''def iou_from_confusion(cm):
    cm = torch.as_tensor(cm).double()
    return cm.diagonal() / cm.sum(dim=1)  # planted: recall, not IoU''',
    ("06_experiment_crp", "predict_solution"): '''def predict(model, images):
    with torch.no_grad():  # planted: model.eval() forgotten
        return model(images).argmax(dim=1)''',
    ("06_experiment_crp", "crp_answer"): "CRP made no difference, it is about the same.",
}
ALICE_ANSWER = (
    "My recorded run is FAST mode (1 epoch, 8 images): CRP on and off differ in mIoU and per class, but after one "
    "epoch nothing can be concluded. CRP's chained 5x5 pools see 17 px at 1/32, the context boat and car need; "
    "wire and dot need resolution. To be surer: train to convergence, 3 seeds per variant, mean and spread."
)

#: name -> {student: points}; assignment 6 includes the 4 manual points given in the Formgrader.
EXPECTED = {
    "01_residual_conv_unit": {"alice": 6, "bob": 2, "carol": 0},  # bob: the RCU only; his adaptive conv is right
    "02_chained_residual_pooling": {"alice": 5, "bob": 1, "carol": 0},
    "03_multi_resolution_fusion": {"alice": 5, "bob": 0, "carol": 0},
    "04_four_cascade": {"alice": 6, "bob": 0, "carol": 0},
    "05_miou": {"alice": 6, "bob": 2, "carol": 0},  # bob: his mean of his (wrong) IoUs is right
    "06_experiment_crp": {"alice": 3 + 4, "bob": 1 + 1, "carol": 0},
}
MANUAL = {"alice": 4, "bob": 1}  # what the grader gives the written answer of assignment 6 in the Formgrader

#: What bob reads in his feedback: the named mistake of each planted bug.
BOB_READS = {
    "01_residual_conv_unit": ["the shortcut carries relu(x) instead of x"],
    "02_chained_residual_pooling": ["the blocks are wired in PARALLEL"],
    "03_multi_resolution_fusion": ["the output is at the LOW resolution"],
    "04_four_cascade": ["refinenet3 received"],
    "05_miou": ["the matrix is transposed", "that is the class accuracy (recall"],
    "06_experiment_crp": ["dropout was ACTIVE during prediction"],
}


# ---------------------------------------------------------------- running the guide's commands


def _guide_commands() -> list[str]:
    """Every command line in the guide's ```bash blocks, comments stripped."""
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", GUIDE, flags=re.S):
        for line in block.splitlines():
            line = line.split(" #")[0].strip()
            if line and not line.startswith("#"):
                lines.append(line)
    return lines


GUIDE_COMMANDS = _guide_commands()


def _documented(template: str) -> None:
    assert template in GUIDE_COMMANDS, f"the guide does not show the command {template!r}"


PHASES: dict[str, list[float]] = {}


def _cpu() -> float:
    import resource

    return sum(getattr(resource.getrusage(who), f) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
               for f in ("ru_utime", "ru_stime"))


def nbgrader(template: str, cwd: Path, **values: str) -> str:
    """Run a documented nbgrader command (``$NAME`` etc. filled in) in this process; return its log."""
    _documented(template)
    command = template
    for key, value in values.items():
        command = command.replace(f"${key}", value)
    args = shlex.split(command)
    assert args[0] == "nbgrader", command
    t0, c0 = time.monotonic(), _cpu()
    log = io.StringIO()
    app = NbGraderApp.instance()
    old = os.getcwd()
    os.chdir(cwd)
    code = 0
    try:
        app.initialize(args[1:])
        app.init_logging(logging.StreamHandler, [log], color=False, subapps=True)
        app.start()
    except NoStart:
        pass
    except SystemExit as err:
        code = err.code or 0
    finally:
        app.reset()
        os.chdir(old)
    text = log.getvalue()
    phase = PHASES.setdefault(args[1], [0.0, 0.0])
    phase[0] += time.monotonic() - t0
    phase[1] += _cpu() - c0
    assert code == 0, f"{command} (in {cwd}) exited with {code}:\n{text}"
    return text


@contextlib.contextmanager
def _activated_environment(home: Path):
    """What `source .venv/bin/activate` gives: this environment's scripts first on PATH; FAST mode comes from
    NBGRADER_EXECUTION (autograde), not from CI. Jupyter's per-user folders (nbgrader's submission cache, Lab's
    runtime files, a user's ~/.jupyter config) are moved into ``home``, so that the test touches none of yours."""
    keep = {k: os.environ.get(k) for k in ("PATH", "CI", "PYTHONPATH", "MPLBACKEND", "JUPYTER_CONFIG_DIR",
                                           "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR")}
    os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    os.environ["MPLBACKEND"] = "agg"
    os.environ.pop("CI", None)
    for key, sub in (("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_DATA_DIR", "data"), ("JUPYTER_RUNTIME_DIR", "runtime")):
        os.environ[key] = str(home / ".jupyter" / sub)
    try:
        yield
    finally:
        for k, v in keep.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _nbgrader_meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def _solutions(name: str) -> dict[str, str]:
    nb = nbformat.read(COURSE / "source" / name / f"{name}.ipynb", as_version=4)
    return {_nbgrader_meta(c)["grade_id"]: re.sub(r"[ \t]*### (BEGIN|END) SOLUTION\n?", "", c.source).strip()
            for c in nb.cells if _nbgrader_meta(c).get("solution")}


def _hand_in(path: Path, name: str, student: str) -> None:
    """Fill in the fetched notebook as ``student`` would."""
    nb = nbformat.read(path, as_version=4)
    solutions = _solutions(name)
    for cell in list(nb.cells):
        gid = _nbgrader_meta(cell).get("grade_id")
        if _nbgrader_meta(cell).get("solution"):
            cell.source = BUGS.get((name, gid), solutions[gid]) if student == "bob" else solutions[gid]
            if student == "alice" and gid == "crp_answer":
                cell.source = ALICE_ANSWER
        if student == "alice" and name == "05_miou" and gid == "miou_tests":
            nb.cells.remove(cell)  # deleted a locked test cell
        if student == "bob" and name == "01_residual_conv_unit" and gid == "rcu_tests":
            cell.source = "# Test: Residual Conv Unit (4 points)\nprint('✓ looks fine to me')"  # edited a locked cell
    nbformat.write(nb, path)


def _run_like_a_student(path: Path) -> None:
    """Restart & Run All in Jupyter, in FAST mode (CI=1), to produce assignment 6's recorded measurement."""
    nb = nbformat.read(path, as_version=4)
    os.environ["CI"] = "1"
    try:
        NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=True,
                       resources={"metadata": {"path": str(path.parent)}}).execute()
    finally:
        os.environ.pop("CI", None)
    nbformat.write(nb, path)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Lab:
    """`jupyter lab` started in the course folder, as the guide says, and its Formgrader's HTTP API."""

    def __init__(self, course: Path, log: Path):
        _documented("jupyter lab")
        self.port, self.token = _free_port(), "walkthrough"
        args = [str(Path(sys.executable).parent / "jupyter"), "lab", "--no-browser", f"--port={self.port}",
                "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={self.token}"]
        if hasattr(os, "getuid") and os.getuid() == 0:
            args.append("--allow-root")
        self.log = open(log, "wb")
        self.proc = subprocess.Popen(args, cwd=course, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 90
        while True:
            try:
                self.get("/api/status")
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"jupyter lab did not start: {log.read_text(errors='replace')[-2000:]}") from None
                time.sleep(0.5)

    def request(self, method: str, path: str, body=None):
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=30) as answer:
            return json.loads(answer.read() or b"null")

    def get(self, path: str):
        return self.request("GET", path)

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


# ---------------------------------------------------------------- the walkthrough


@pytest.mark.skipif(not DATA_READY, reason="data/synthscenes is not generated (assignment 6 trains on it)")
def test_the_guides_command_sequence_grades_three_students(tmp_path):
    started = time.monotonic()
    course = tmp_path / "assignments"
    shutil.copytree(COURSE / "source", course / "source")
    shutil.copy(COURSE / "nbgrader_config.py", course)
    homes = {s: tmp_path / "home" / s for s in ("alice", "bob", "carol")}
    for home in homes.values():
        home.mkdir(parents=True)
    exchange = course / "exchange"
    student_opts = dict(EXCHANGE=str(exchange))
    logs: dict[str, str] = {}

    with _activated_environment(tmp_path / "home"):
        _documented("../course assignments release")
        with _chdir(course):
            assert tooling_main(["assignments", "release"]) == 0
        for name in NAMES:
            nbgrader("nbgrader release_assignment $NAME", course, NAME=name)
            for student in ("alice", "bob"):
                opts = dict(NAME=name, STUDENT=student, **student_opts)
                nbgrader("nbgrader fetch_assignment $NAME --course refinenet-edu "
                         "--Exchange.root=$EXCHANGE", homes[student], **opts)
                path = homes[student] / name / f"{name}.ipynb"
                _hand_in(path, name, student)
                if student == "alice" and name == "06_experiment_crp":
                    t0, c0 = time.monotonic(), _cpu()
                    _run_like_a_student(path)
                    PHASES["alice runs 06"] = [time.monotonic() - t0, _cpu() - c0]
                    assert (path.parent / "crp_experiment.json").is_file()
                nbgrader("nbgrader submit $NAME --course refinenet-edu --Exchange.root=$EXCHANGE "
                         "--student $STUDENT", homes[student], **opts)
            nbgrader("nbgrader collect $NAME", course, NAME=name)
            # carol e-mailed her (untouched) notebook; the LMS archive has one folder per student.
            archive = course / "downloaded" / name / "archive"
            archive.mkdir(parents=True)
            with zipfile.ZipFile(archive / "submissions.zip", "w") as z:
                z.write(course / "release" / name / f"{name}.ipynb", f"carol/{name}.ipynb")
            nbgrader("nbgrader zip_collect $NAME", course, NAME=name)
            logs[name] = nbgrader("nbgrader autograde $NAME", course, NAME=name)
        autograded = time.monotonic()

        t0, c0 = time.monotonic(), _cpu()
        lab = _Lab(course, tmp_path / "lab.log")
        try:
            listed = {a["name"] for a in lab.get("/formgrader/api/assignments")}
            assert listed == set(NAMES), listed
            for sub in lab.get("/formgrader/api/submitted_notebooks/06_experiment_crp/06_experiment_crp"):
                if sub["student"] in MANUAL:
                    grades = lab.get(f"/formgrader/api/grades?submission_id={sub['id']}")
                    answer = next(g for g in grades if g["name"] == "crp_answer")
                    assert answer["needs_manual_grade"], answer
                    lab.request("PUT", f"/formgrader/api/grade/{answer['id']}",
                                {"manual_score": MANUAL[sub["student"]], "extra_credit": 0})
        finally:
            lab.close()
        PHASES["jupyter lab"] = [time.monotonic() - t0, _cpu() - c0]

        for name in NAMES:
            nbgrader("nbgrader generate_feedback $NAME", course, NAME=name)
            # carol's files came through zip_collect: she has no exchange submission to attach feedback to.
            nbgrader("nbgrader release_feedback $NAME --CourseDirectory.student_id_exclude=carol", course, NAME=name)
        nbgrader("nbgrader fetch_feedback $NAME --course refinenet-edu --Exchange.root=$EXCHANGE "
                 "--student $STUDENT", homes["bob"], NAME="01_residual_conv_unit", STUDENT="bob", **student_opts)
        nbgrader("nbgrader export", course)
    finished = time.monotonic()

    # The scores.
    with open(course / "grades.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    scores = {name: {r["student_id"]: float(r["score"]) for r in rows if r["assignment"] == name} for name in NAMES}
    print("scores:", json.dumps(scores))
    assert scores == {name: {s: float(v) for s, v in EXPECTED[name].items()} for name in NAMES}

    # Warnings: only the locked cell bob edited, none of nbgrader's harmless checksum warnings (#1961).
    changed = [line for log in logs.values() for line in log.splitlines() if "has changed" in line]
    assert len(changed) == 1 and "rcu_tests" in changed[0] and "checksum" in changed[0], changed
    assert "Missing grade cell miou_tests" in logs["05_miou"]
    restored = nbformat.read(course / "autograded" / "alice" / "05_miou" / "05_miou.ipynb", as_version=4)
    assert any("was missing from the submission" in c.source for c in restored.cells)

    # Assignment 6: the grader sees alice's recorded measurement, and that bob recorded none.
    for student, expected in (("alice", "Recorded measurement (crp_experiment.json"), ("bob", "No recorded measurement")):
        nb = nbformat.read(course / "autograded" / student / "06_experiment_crp" / "06_experiment_crp.ipynb",
                           as_version=4)
        record = next(c for c in nb.cells if _nbgrader_meta(c).get("grade_id") == "record_code")
        assert expected in "".join(o.get("text", "") for o in record.outputs), record.outputs
    recorded = json.loads((course / "autograded" / "alice" / "06_experiment_crp" / "crp_experiment.json").read_text())
    assert recorded["mode"] == "FAST" and set(recorded["miou"]) == {"CRP on", "CRP off"}

    # What bob reads: the named mistake in his feedback, the message as the traceback, no library source.
    for name, phrases in BOB_READS.items():
        html = (course / "feedback" / "bob" / name / f"{name}.html").read_text(encoding="utf-8")
        text = " ".join(re.sub(r"<[^>]+>", " ", html).split())
        for phrase in phrases:
            assert phrase.replace(">", "&gt;") in text, (name, phrase)
        assert "harness.py" not in html and "__tracebackhide__" not in html, name
        nb = nbformat.read(course / "autograded" / "bob" / name / f"{name}.ipynb", as_version=4)
        for cell in nb.cells:
            for out in cell.get("outputs", []):
                if out.get("output_type") == "error" and out["ename"] == "CheckFailed":
                    # The traceback is the message itself: no frame, no library source.
                    shown = [re.sub(r"\x1b\[[0-9;]*m", "", line) for line in out["traceback"]]
                    assert shown == ["CheckFailed: " + out["evalue"].splitlines()[0], *out["evalue"].splitlines()[1:]]
                    print(f"bob reads in {name} / {_nbgrader_meta(cell).get('grade_id')}:\n" + "\n".join(shown))
    assert (homes["bob"] / "01_residual_conv_unit" / "feedback").is_dir()

    # Time: the guide's whole sequence for 3 students x 6 assignments stays a CI test.
    cpu = _cpu()
    print("phases (wall s, CPU s):", {k: [round(v[0]), round(v[1])] for k, v in PHASES.items()})
    print(f"walkthrough: autograding done after {autograded - started:.0f} s, all of it {finished - started:.0f} s; "
          f"CPU time of this process and its children so far {cpu:.0f} s")


@contextlib.contextmanager
def _chdir(path: Path):
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)
