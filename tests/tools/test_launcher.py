"""course.py, the set-up behind `./course lab|test` and `py course.py lab|test` (Windows).

The logic is tested with the steps recorded instead of run (Windows paths
included), and the real `./course` bash script is run up to the point where it
hands over to JupyterLab or pytest, with an environment whose interpreter only
prints what it was given. The real steps (venv, pip) run in every CI run: CI's
`./course test` on a fresh clone makes `.venv` from nothing through course.py.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load_launcher():
    spec = importlib.util.spec_from_file_location("course_launcher", ROOT / "course.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


launcher = _load_launcher()


def _project(tmp_path: Path, text: str = '[project]\nname = "x"\n') -> Path:
    root = tmp_path / "project"
    root.mkdir()
    (root / "pyproject.toml").write_text(text)
    return root


class Recorder:
    """Stands in for running a step: records it, and makes the interpreter a `venv` step would make."""

    def __init__(self, windows: bool):
        self.calls: list[list[str]] = []
        self.windows = windows

    def __call__(self, cmd):
        self.calls.append([str(c) for c in cmd])
        if cmd[1:3] == ["-m", "venv"]:
            py = launcher.venv_python(Path(cmd[3]), self.windows)
            py.parent.mkdir(parents=True)
            py.write_text("")


def test_venv_interpreter_is_in_scripts_on_windows_and_bin_elsewhere(tmp_path):
    assert launcher.venv_python(tmp_path, windows=True) == tmp_path / "Scripts" / "python.exe"
    assert launcher.venv_python(tmp_path, windows=False) == tmp_path / "bin" / "python"


@pytest.mark.parametrize("windows", [False, True], ids=["posix", "windows"])
def test_environment_is_made_once_and_remade_when_pyproject_changes(tmp_path, windows):
    root, venv = _project(tmp_path), tmp_path / "env"
    py = launcher.venv_python(venv, windows)
    run = Recorder(windows)
    got = launcher.ensure_env(venv, root, run=run, python="/usr/bin/python3", python_version="3.11.7",
                              windows=windows, torch="default", log=lambda m: None)
    assert got == py
    assert run.calls == [
        ["/usr/bin/python3", "-m", "venv", str(venv)],
        [str(py), "-m", "pip", "install", "--quiet", "--upgrade", "pip"],
        [str(py), "-m", "pip", "install", "--quiet", "-e", f"{root}[dev,instructor]"],
    ]
    stamp = (venv / launcher.STAMP_NAME).read_text()
    assert stamp.strip() == launcher.wanted_stamp(root, "3.11.7") and stamp.endswith(" 3.11.7\n")

    run.calls.clear()  # current: nothing runs
    launcher.ensure_env(venv, root, run=run, python_version="3.11.7", windows=windows, torch="default", log=lambda m: None)
    assert run.calls == []

    (root / "pyproject.toml").write_text('[project]\nname = "x"\nversion = "2"\n')  # pip again, same venv
    launcher.ensure_env(venv, root, run=run, python_version="3.11.7", windows=windows, torch="default", log=lambda m: None)
    assert [c[3:5] for c in run.calls] == [["install", "--quiet"], ["install", "--quiet"]]

    run.calls.clear()  # another Python version: pip again too
    launcher.ensure_env(venv, root, run=run, python_version="3.12.1", windows=windows, torch="default", log=lambda m: None)
    assert len(run.calls) == 2


PYPROJECT = ('[project]\nname = "x"\ndependencies = [\n    "numpy>=1.24",\n    "torch>=2.4",  # a comment\n'
             '    "torchvision >= 0.19, <1",\n]\n[project.optional-dependencies]\ndev = ["torch-tb-profiler>=0.4"]\n')


@pytest.mark.parametrize("windows", [False, True], ids=["posix", "windows"])
def test_without_an_nvidia_gpu_a_new_environment_gets_the_cpu_only_wheels_first(tmp_path, windows):
    root, venv = _project(tmp_path, PYPROJECT), tmp_path / "env"
    py, run, said = str(launcher.venv_python(venv, windows)), Recorder(windows), []
    launcher.ensure_env(venv, root, run=run, python="/usr/bin/python3", windows=windows, torch="cpu",
                        probe=lambda url: url == "https://download.pytorch.org/whl/cpu/torch/", log=said.append)
    assert run.calls[1:] == [
        [py, "-m", "pip", "install", "--quiet", "--upgrade", "pip"],
        [py, "-m", "pip", "install", "--quiet", "--index-url", "https://download.pytorch.org/whl/cpu",
         "torch>=2.4", "torchvision>=0.19,<1"],
        [py, "-m", "pip", "install", "--quiet", "-e", f"{root}[dev,instructor]"],
    ]
    assert any("CPU-only wheels from https://download.pytorch.org/whl/cpu" in m for m in said)

    # a refresh keeps the torch the environment has, whichever build: the CPU index is not asked again
    site = venv / "Lib" / "site-packages" if windows else venv / "lib" / "python3.11" / "site-packages"
    (site / "torch").mkdir(parents=True)
    (root / "pyproject.toml").write_text(PYPROJECT + "# changed\n")
    run.calls.clear()
    launcher.ensure_env(venv, root, run=run, windows=windows, torch="cpu", probe=lambda url: True, log=lambda m: None)
    assert not any("--index-url" in c for c in run.calls) and len(run.calls) == 2


def test_when_the_cpu_only_wheels_cannot_be_had_the_default_ones_come_with_the_rest(tmp_path):
    # download.pytorch.org is not reachable from every machine (nor from this project's CI machine):
    # the failed step is reported, and the environment is made with the default wheels
    root, venv = _project(tmp_path, PYPROJECT), tmp_path / "env"
    calls, said = [], []

    def offline(cmd):
        calls.append([str(c) for c in cmd])
        if "--index-url" in cmd:
            raise launcher.SetupError(f"`{' '.join(cmd)}` failed (exit status 1); see above")
        Recorder(False)(cmd)

    py = launcher.ensure_env(venv, root, run=offline, windows=False, torch="cpu", probe=lambda url: True,
                             log=said.append)
    assert [c[4:6] for c in calls[1:]] == [["--quiet", "--upgrade"], ["--quiet", "--index-url"], ["--quiet", "-e"]]
    assert calls[-1] == [str(py), "-m", "pip", "install", "--quiet", "-e", f"{root}[dev,instructor]"]
    assert any("could not be installed" in m and "default PyTorch wheels come with the rest" in m for m in said)
    assert launcher.is_current(venv, launcher.wanted_stamp(root), windows=False)

    # where the index does not answer at all (as on this project's machine: no DNS for download.pytorch.org),
    # pip is not even tried there (pip would retry every page it looks up there)
    venv2, said = tmp_path / "env2", []
    calls.clear()
    launcher.ensure_env(venv2, root, run=offline, windows=False, torch="cpu", probe=lambda url: False,
                        log=said.append)
    assert not any("--index-url" in c for c in calls) and calls[-1][4:6] == ["--quiet", "-e"]
    assert any("https://download.pytorch.org/whl/cpu cannot be reached" in m for m in said)
    assert launcher.is_current(venv2, launcher.wanted_stamp(root), windows=False)


def test_reachable_asks_with_a_get_and_says_no_quickly_when_nothing_answers(tmp_path):
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/whl/cpu/torch/" else 404)
            self.end_headers()
            self.wfile.write(b"<html></html>")

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        assert launcher.reachable(f"{base}/whl/cpu/torch/", timeout=10)
        assert not launcher.reachable(f"{base}/whl/cpu/nothing/", timeout=10)
    finally:
        server.shutdown()
        server.server_close()
    assert not launcher.reachable(f"{base}/whl/cpu/torch/", timeout=5)  # closed: refused at once
    assert not launcher.reachable("not a url")


@pytest.mark.parametrize("environ, nvidia_smi, platform, wheels", [
    ({}, None, "linux", "cpu"),
    ({}, "/usr/bin/nvidia-smi", "linux", "default"),
    ({}, None, "win32", "cpu"),
    ({}, "C:\\Windows\\System32\\nvidia-smi.exe", "win32", "default"),
    ({}, None, "darwin", "default"),
    ({"REFINENET_EDU_TORCH": "auto"}, None, "linux", "cpu"),
    ({"REFINENET_EDU_TORCH": "default"}, None, "linux", "default"),
    ({"REFINENET_EDU_TORCH": "CPU"}, "/usr/bin/nvidia-smi", "linux", "cpu"),
    ({"REFINENET_EDU_TORCH": "cpu"}, None, "darwin", "cpu"),
])
def test_which_torch_wheels(environ, nvidia_smi, platform, wheels):
    which = {"nvidia-smi": nvidia_smi}.get
    assert launcher.torch_wheels(environ, which=which, platform=platform) == wheels


def test_an_unknown_torch_choice_is_an_error():
    with pytest.raises(launcher.SetupError, match="REFINENET_EDU_TORCH='cuda': use cpu, default or auto"):
        launcher.torch_wheels({"REFINENET_EDU_TORCH": "cuda"}, which=lambda name: None, platform="linux")


def test_the_cpu_only_wheels_keep_the_projects_pins():
    assert [r.split(">")[0] for r in launcher.torch_requirements(ROOT)] == ["torch", "torchvision"]
    assert all(">=" in r for r in launcher.torch_requirements(ROOT))


def test_a_failed_step_leaves_no_stamp_and_says_which_command(tmp_path):
    root, venv = _project(tmp_path), tmp_path / "env"

    def failing(cmd):
        if "pip" in cmd and "-e" in cmd:
            raise launcher.SetupError(f"`{' '.join(cmd)}` failed (exit status 1); see above")
        Recorder(False)(cmd)

    with pytest.raises(launcher.SetupError, match="pip install --quiet -e"):
        launcher.ensure_env(venv, root, run=failing, windows=False, torch="default", log=lambda m: None)
    assert not (venv / launcher.STAMP_NAME).exists()


def test_the_stamp_is_the_one_the_bash_script_wrote():
    # `./course` used to write: "<sha256 of pyproject.toml> <python version>"; environments made by it stay current
    out = subprocess.run(["bash", "-c", 'sha256sum pyproject.toml | cut -d" " -f1'], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout.strip()
    assert launcher.wanted_stamp(ROOT, "3.11.7") == f"{out} 3.11.7"


def test_lab_and_test_commands():
    py = Path("/env/bin/python")
    assert launcher.lab_command(py, Path("/repo"), ["--no-browser"], as_root=False) == [
        "/env/bin/python", "-m", "jupyterlab", "--ServerApp.root_dir=" + str(Path("/repo") / "notebooks"), "--no-browser"]
    assert "--allow-root" in launcher.lab_command(py, Path("/repo"), [], as_root=True)
    assert launcher.lab_command(py, Path("/repo"), ["--port", "8890"], instructor=True, as_root=False) == [
        "/env/bin/python", "-m", "jupyterlab", "--ServerApp.root_dir=" + str(Path("/repo") / "assignments"),
        "--port", "8890"]
    assert launcher.test_command(py, ["-x"]) == ["/env/bin/python", "-m", "pytest", "tests", "notebooks",
                                                 "--nbval-lax", "--nbval-current-env", "-x"]
    assert launcher.test_env({})["CI"] == "true"
    assert launcher.test_env({"CI": "1"})["CI"] == "1"


def test_students_lab_reads_the_student_config_first_and_the_instructors_does_not():
    root, sep = Path("/repo"), os.pathsep
    student = str(root / "tooling" / "jupyter-student")
    assert launcher.lab_env(root, environ={})["JUPYTER_CONFIG_PATH"] == student
    assert launcher.lab_env(root, environ={"JUPYTER_CONFIG_PATH": "/etc/j"})["JUPYTER_CONFIG_PATH"] == f"{student}{sep}/etc/j"
    assert "JUPYTER_CONFIG_PATH" not in launcher.lab_env(root, instructor=True, environ={})
    # an instructor's lab started from a student's (whose terminals inherit the path) is an instructor's
    env = launcher.lab_env(root, instructor=True, environ={"JUPYTER_CONFIG_PATH": f"{student}{sep}/etc/j", "X": "1"})
    assert env == {"JUPYTER_CONFIG_PATH": "/etc/j", "X": "1"}
    assert "JUPYTER_CONFIG_PATH" not in launcher.lab_env(root, instructor=True, environ={"JUPYTER_CONFIG_PATH": student})


def _installed_nbgrader() -> tuple[dict, str]:
    """nbgrader's server extensions and the name of its JupyterLab extension, as installed in this environment."""
    server = Path(sys.prefix) / "etc" / "jupyter" / "jupyter_server_config.d" / "nbgrader.json"
    lab = Path(sys.prefix) / "share" / "jupyter" / "labextensions" / "@jupyter" / "nbgrader" / "package.json"
    if not (server.is_file() and lab.is_file()):
        pytest.skip("nbgrader is not installed here (the [instructor] extra)")
    return json.loads(server.read_text())["ServerApp"]["jpserver_extensions"], json.loads(lab.read_text())["name"]


def test_the_student_config_turns_off_every_nbgrader_extension_installed():
    server, lab = _installed_nbgrader()
    config = ROOT / launcher.STUDENT_CONFIG
    off = json.loads((config / "jupyter_server_config.json").read_text())["ServerApp"]["jpserver_extensions"]
    assert off == {name: False for name in server} and len(off) == 4
    assert json.loads((config / "labconfig" / "page_config.json").read_text()) == {"disabledExtensions": {lab: True}}


@pytest.mark.parametrize("instructor", [False, True], ids=["student", "instructor"])
def test_jupyter_reads_the_launch_config_as_intended(instructor):
    # what Jupyter itself makes of lab_env: the server extensions it will load, and the page config that JupyterLab
    # hands to its front end (jupyterlab_server's reader; "@jupyter/nbgrader" there disables all of its plugins)
    _installed_nbgrader()
    probe = ("import json\n"
             "from jupyter_server.serverapp import ServerApp\n"
             "from jupyterlab_server.config import get_static_page_config\n"
             "app = ServerApp()\n"
             "app.load_config_file()\n"
             "app.find_server_extensions()\n"
             "print(json.dumps([{k: v for k, v in app.jpserver_extensions.items() if 'nbgrader' in k},\n"
             "                  get_static_page_config(level='all').get('disabledExtensions', {})]))\n")
    out = subprocess.run([sys.executable, "-c", probe], env=launcher.lab_env(ROOT, instructor=instructor),
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    server, disabled = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(server) == 4 and set(server.values()) == {instructor}
    assert disabled.get("@jupyter/nbgrader", False) is not instructor


def test_unknown_command_prints_usage(capsys):
    assert launcher.main(["serve"]) == 2
    err = capsys.readouterr().err
    assert "course.py lab" in err and "course.py test" in err and "course.py hosted" in err
    assert "course.py lab --instructor" in err


def _fake_env(tmp_path: Path) -> Path:
    """An environment that is current, whose `python` prints its arguments, CI and the folder it runs in."""
    venv = tmp_path / "env"
    py = launcher.venv_python(venv, windows=False)
    py.parent.mkdir(parents=True)
    py.write_text('#!/bin/sh\necho "ARGS $*"\necho "CI=${CI:-unset}"\necho "CWD $(pwd)"\n'
                  'echo "JUPYTER_CONFIG_PATH=${JUPYTER_CONFIG_PATH:-unset}"\n')
    py.chmod(0o755)
    (venv / launcher.STAMP_NAME).write_text(launcher.wanted_stamp(ROOT) + "\n")
    return venv


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_script_hands_test_to_course_py(tmp_path):
    venv = _fake_env(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env.update(REFINENET_EDU_VENV=str(venv), PYTHON=sys.executable)
    out = subprocess.run([str(ROOT / "course"), "test", "-x", "-q"], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert f"reusing the current environment in {venv}" in out.stderr
    assert "ARGS -m pytest tests notebooks --nbval-lax --nbval-current-env -x -q" in out.stdout
    assert "CI=true" in out.stdout and f"CWD {ROOT}" in out.stdout


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_script_hands_lab_to_course_py(tmp_path):
    venv = _fake_env(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "JUPYTER_CONFIG_PATH"}
    env.update(REFINENET_EDU_VENV=str(venv), PYTHON=sys.executable)
    out = subprocess.run([str(ROOT / "course"), "lab", "--no-browser"], env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    root_flag = " --allow-root" if launcher.is_root() else ""
    assert f"ARGS -m jupyterlab --ServerApp.root_dir={ROOT / 'notebooks'}{root_flag} --no-browser" in out.stdout
    assert f"JUPYTER_CONFIG_PATH={ROOT / 'tooling' / 'jupyter-student'}\n" in out.stdout
    assert "instructor tools are hidden" in out.stderr


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_script_hands_the_instructors_lab_to_course_py(tmp_path):
    venv = _fake_env(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "JUPYTER_CONFIG_PATH"}
    env.update(REFINENET_EDU_VENV=str(venv), PYTHON=sys.executable)
    out = subprocess.run([str(ROOT / "course"), "lab", "--instructor", "--no-browser"], env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    root_flag = " --allow-root" if launcher.is_root() else ""
    assert f"ARGS -m jupyterlab --ServerApp.root_dir={ROOT / 'assignments'}{root_flag} --no-browser" in out.stdout
    assert f"CWD {ROOT / 'assignments'}" in out.stdout and "JUPYTER_CONFIG_PATH=unset" in out.stdout


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_script_hands_a_maintenance_command_to_tooling_in_the_callers_folder(tmp_path):
    venv = _fake_env(tmp_path)
    env = dict(os.environ, REFINENET_EDU_VENV=str(venv), PYTHON=sys.executable)
    out = subprocess.run([str(ROOT / "course"), "site", "--out", "site"], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "ARGS -m tooling site --out site" in out.stdout and f"CWD {tmp_path}" in out.stdout
    assert launcher.tooling_env(Path("/repo"), {"PYTHONPATH": "/mine"})["PYTHONPATH"] == os.pathsep.join(["/repo", "/mine"])


def test_tooling_runs_the_maintenance_commands(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-m", "tooling", "--help"], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert all(c in out.stdout for c in launcher.TOOLING_COMMANDS)
    from tooling.cli import build_parser  # the launcher forwards exactly the commands the tooling has

    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert sorted(commands.choices) == sorted(launcher.TOOLING_COMMANDS)
    bad = subprocess.run([sys.executable, "-m", "tooling", "execute", "--timeout", "0"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.startswith("./course execute: error: --timeout 0"), bad.stderr


def test_bash_script_without_a_command_prints_usage_and_fails():
    out = subprocess.run([str(ROOT / "course")], capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "./course lab" in out.stdout and "./course test" in out.stdout
    assert "./course lab --instructor" in out.stdout


def test_readme_documents_the_windows_commands():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "py course.py lab" in readme and "py course.py test" in readme
    assert "Scripts" in readme


# --------------------------------------------------------------------------
# `python course.py hosted` (Colab, Kaggle): the plan, without installing anything
# --------------------------------------------------------------------------

REQUIRES = ["torch>=2.4", "torchvision>=0.19", "numpy>=1.24", "jupyterlab>=4.0", "tqdm>=4.64",
            'pytest>=7.4; extra == "dev"']


def test_hosted_keeps_what_is_installed_skips_the_front_end_and_installs_the_rest():
    plan = launcher.plan_hosted(REQUIRES, {"torch": "2.3.1+cu121", "torchvision": "0.18.1", "numpy": "1.26.4"})
    assert plan == {"keep": [("torch", "2.3.1+cu121", False), ("torchvision", "0.18.1", False),
                             ("numpy", "1.26.4", True)],
                    "install": ["tqdm>=4.64"], "skip": ["jupyterlab"]}
    # an installed front-end is kept like anything else; the extras (markers) are never installed
    plan = launcher.plan_hosted(REQUIRES, {"jupyterlab": "4.2.0", "tqdm": "4.66.0"})
    assert ("jupyterlab", "4.2.0", True) in plan["keep"] and plan["skip"] == []
    assert not any("pytest" in r for r in plan["install"])


@pytest.mark.parametrize("version, spec, ok", [
    ("2.4.0", ">=2.4", True), ("2.14.1+cu130", ">=2.4", True), ("2.3.1", ">=2.4", False),
    ("10.0", ">=9.5,<11", True), ("11.0.1", ">=9.5,<11", False), ("1.0", "==1.0.0", True), ("1.0", "!=1.0", False),
])
def test_version_comparison(version, spec, ok):
    assert launcher.satisfies(version, spec) is ok


def test_constraints_hold_every_installed_version_except_the_package():
    text = launcher.constraints_text({"torch": "2.14.1+cu130", "notebook": "6.5.7", "refinenet-edu": "0.1.0",
                                      "weird": "not a version"})
    assert text.splitlines() == ["notebook==6.5.7", "torch==2.14.1+cu130"]


def test_hosted_steps_and_what_it_says(tmp_path):
    root = tmp_path / "checkout"
    for folder in ("refinenet_edu", "notebooks", "data/synthscenes/ImageSets/Segmentation"):
        (root / folder).mkdir(parents=True)
    (root / "pyproject.toml").write_text("")
    (root / "data/synthscenes/ImageSets/Segmentation/train.txt").write_text("0\n")
    calls, said, constraints = [], [], []

    def run(cmd):
        calls.append(cmd)
        if "-c" in cmd:
            constraints.append(Path(cmd[cmd.index("-c") + 1]).read_text())

    plan = launcher.hosted(root, run=run, python="/py", installed=lambda: {"torch": "2.14.1", "notebook": "6.5"},
                           requires=REQUIRES, report=lambda py: "GPU: Tesla T4 (cuda)", log=said.append)
    assert calls == [["/py", "-m", "pip", "install", "--quiet", "--no-deps", "-e", str(root)],
                     ["/py", "-m", "pip", "install", "--quiet", "-c", calls[1][6],
                      "torchvision>=0.19", "numpy>=1.24", "tqdm>=4.64"]]
    assert constraints == ["notebook==6.5\ntorch==2.14.1\n"]
    assert plan["skip"] == ["jupyterlab"]
    text = "\n".join(said)
    assert "kept the platform's torch 2.14.1" in text and "not installed: jupyterlab" in text
    assert "GPU: Tesla T4 (cuda)" in text and str(root / "data") in text


def test_hosted_refuses_a_folder_that_is_not_a_checkout(tmp_path):
    with pytest.raises(launcher.SetupError, match="not a refinenet-edu checkout"):
        launcher.hosted(tmp_path, run=lambda cmd: None, log=lambda m: None)


def test_pip_notes_about_the_skipped_front_end_are_dropped(capsys):
    script = ("import sys; print('ERROR: pip\\'s dependency resolver does not currently take into account');"
              "print('refinenet-edu 0.1.0 requires jupyterlab>=4.0, which is not installed.');"
              "print('foo 1.0 requires bar>=2, which is not installed.')")
    launcher._pip_quietly([sys.executable, "-c", script], ["jupyterlab"])
    assert capsys.readouterr().out == "foo 1.0 requires bar>=2, which is not installed.\n"
    with pytest.raises(launcher.SetupError, match="exit status 3"):
        launcher._pip_quietly([sys.executable, "-c", "print('boom'); raise SystemExit(3)"], [])
    assert "boom" in capsys.readouterr().out
