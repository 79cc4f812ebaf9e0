"""refinenet-edu set-up: the two commands of README.md, on Linux, macOS and Windows.

    python course.py lab  [jupyter options]   create/refresh the environment, open JupyterLab on notebooks/
    python course.py lab --instructor [...]   the same environment, JupyterLab with nbgrader on assignments/
    python course.py test [pytest options]    create/refresh the environment, run unit tests and every notebook
    python course.py hosted                   Colab, Kaggle: install this checkout into the running Python,
                                              keeping what the platform ships (torch, Jupyter)
    python course.py COMMAND [options]        the course's maintenance commands, in the environment:
                                              execute, check, site, links, figures, assignments, bench, retime
                                              (tooling/cli/__init__.py; `python course.py execute --help`)

`./course lab` and `./course test` (bash) call this file; on Windows run
`py course.py lab` (or `python course.py lab`). The environment (`.venv`, or
REFINENET_EDU_VENV) is created from nothing the first time and reused while it
is current: a stamp records a hash of pyproject.toml and the Python version,
and pip runs again only when either changes. The environment's Python is the
one that runs this file: `py -3.12 course.py lab`, or PYTHON=python3.12 ./course lab.

A new environment on Linux or Windows without an NVIDIA GPU (no `nvidia-smi`
on PATH) gets PyTorch's CPU-only wheels (torch, torchvision) from
https://download.pytorch.org/whl/cpu: the default Linux wheels bring the CUDA
libraries, gigabytes that only an NVIDIA GPU uses. Where that server cannot be
reached (or pip fails there), the default wheels are installed instead.
REFINENET_EDU_TORCH=default always takes the default wheels,
REFINENET_EDU_TORCH=cpu always the CPU-only ones.

Students' JupyterLab does not show nbgrader's instructor tools (the Nbgrader
menu, the Formgrader, Create Assignment, Validate): `lab` puts
tooling/jupyter-student/ first on JUPYTER_CONFIG_PATH, which turns nbgrader's
server and JupyterLab extensions off for that launch. `lab --instructor` starts
JupyterLab in assignments/, nbgrader's course directory, with all of nbgrader.
Both use the one environment (the tests need nbgrader too).

`hosted` is what the first code cell of every notebook runs on Colab or Kaggle,
where refinenet_edu is not installed: an editable install of this checkout
without its dependencies, then only the dependencies that are missing, with the
versions of everything already installed held fixed (pip constraints), so the
platform's torch, torchvision and Jupyter are never replaced. The Jupyter
front-end packages (JupyterLab) are not installed there at all: the platform's
front-end runs the notebooks.

Only the standard library is used: this runs before anything is installed.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
MIN_PYTHON = (3, 10)
STAMP_NAME = ".refinenet-edu-stamp"
#: the extras `lab` and `test` install (pyproject.toml [project.optional-dependencies])
EXTRAS = "dev,instructor"
#: PyTorch's index of CPU-only wheels (https://pytorch.org/get-started/locally/)
CPU_WHEELS = "https://download.pytorch.org/whl/cpu"
#: the distributions taken from there when a new environment gets the CPU-only wheels
TORCH_PACKAGES = ("torch", "torchvision")
#: the students' Jupyter configuration folder: nbgrader's extensions off (its README.md says how)
STUDENT_CONFIG = Path("tooling") / "jupyter-student"
#: the option of `lab` that keeps nbgrader's UI on and starts in the course directory
INSTRUCTOR = "--instructor"
#: dependencies a hosted platform's own Jupyter front-end stands in for: `hosted` never installs them
FRONT_END = frozenset({"jupyterlab", "notebook", "jupyter-server", "jupyterlab-server", "nbclassic"})
#: the distribution `hosted` installs
DISTRIBUTION = "refinenet-edu"


class SetupError(Exception):
    """A set-up step failed; the message is one line for the user."""


# --------------------------------------------------------------------------
# The environment (lab, test)
# --------------------------------------------------------------------------


def venv_python(venv: Path, windows: bool | None = None) -> Path:
    """The interpreter of a virtual environment: ``Scripts\\python.exe`` on Windows, ``bin/python`` elsewhere."""
    windows = (os.name == "nt") if windows is None else windows
    return venv / "Scripts" / "python.exe" if windows else venv / "bin" / "python"


def default_venv(root: Path = ROOT, environ: dict[str, str] | None = None) -> Path:
    environ = os.environ if environ is None else environ
    return Path(environ["REFINENET_EDU_VENV"]) if environ.get("REFINENET_EDU_VENV") else root / ".venv"


def wanted_stamp(root: Path = ROOT, python_version: str | None = None) -> str:
    """What the stamp holds for an environment that is current: ``<sha256 of pyproject.toml> <Python version>``."""
    digest = hashlib.sha256((root / "pyproject.toml").read_bytes()).hexdigest()
    version = python_version if python_version is not None else sys.version.split()[0]
    return f"{digest} {version}"


def is_current(venv: Path, want: str, windows: bool | None = None) -> bool:
    stamp = venv / STAMP_NAME
    return (venv_python(venv, windows).exists() and stamp.is_file()
            and stamp.read_text(encoding="utf-8").strip() == want)


def _run(cmd: list[str], **kwargs) -> None:
    """Run a set-up step; a failure is a SetupError naming the command."""
    result = subprocess.run(cmd, **kwargs)
    if result.returncode != 0:
        raise SetupError(f"`{' '.join(str(c) for c in cmd)}` failed (exit status {result.returncode}); see above")


def torch_wheels(environ: dict[str, str] | None = None, *, which=shutil.which, platform: str = sys.platform) -> str:
    """Which PyTorch wheels a new environment gets: ``"cpu"`` (CPU_WHEELS) or ``"default"`` (the package index's).

    REFINENET_EDU_TORCH=cpu or =default decides; unset (or ``auto``): the CPU-only wheels on Linux and
    Windows when ``nvidia-smi``, which comes with NVIDIA's driver, is not on PATH; the default wheels where it
    is, and on macOS (whose wheels have no CUDA).
    """
    environ = os.environ if environ is None else environ
    choice = environ.get("REFINENET_EDU_TORCH", "").strip().lower() or "auto"
    if choice in ("cpu", "default"):
        return choice
    if choice != "auto":
        raise SetupError(f"REFINENET_EDU_TORCH={environ['REFINENET_EDU_TORCH']!r}: use cpu, default or auto")
    if platform == "darwin":
        return "default"
    return "default" if which("nvidia-smi") else "cpu"


def torch_requirements(root: Path = ROOT) -> list[str]:
    """torch's and torchvision's requirements as pyproject.toml's dependencies state them (e.g. ``torch>=2.4``)."""
    text = (root / "pyproject.toml").read_text(encoding="utf-8")
    block = re.search(r"^dependencies\s*=\s*\[(.*?)^\]", text, flags=re.S | re.M)
    found = {}
    for item in re.findall(r'"([^"]+)"', block.group(1) if block else ""):
        name, spec, marker = parse_requirement(item)
        if normalize(name) in TORCH_PACKAGES and not marker:
            found[normalize(name)] = f"{name}{spec}"
    return [found.get(name, name) for name in TORCH_PACKAGES]


def has_torch(venv: Path, windows: bool | None = None) -> bool:
    """Whether the environment already has a torch package (then a refresh keeps it, whichever build it is)."""
    windows = (os.name == "nt") if windows is None else windows
    if windows:
        return (venv / "Lib" / "site-packages" / "torch").is_dir()
    return any(p.is_dir() for p in venv.glob("lib/python*/site-packages/torch"))


def reachable(url: str, timeout: float = 15) -> bool:
    """Whether ``url`` answers a GET (proxies from the environment, as urllib takes them); the body is not read."""
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status < 400
    except (OSError, ValueError):
        return False


def ensure_env(venv: Path, root: Path = ROOT, *, run=_run, python: str = sys.executable,
               python_version: str | None = None, windows: bool | None = None, torch: str | None = None,
               probe=reachable, log=None) -> Path:
    """Create or refresh the environment in ``venv``; return its interpreter.

    ``run`` executes each step (a list of arguments); tests pass their own to
    check the steps without creating anything. ``torch`` is ``"cpu"`` or
    ``"default"`` (torch_wheels() decides when it is None): with ``"cpu"``, an
    environment without torch first gets the CPU-only wheels, when ``probe``
    finds their index; when it does not, or that step fails, the default
    wheels come with the rest.
    """
    log = log or (lambda message: print(f"course: {message}", file=sys.stderr, flush=True))
    want = wanted_stamp(root, python_version)
    py = venv_python(venv, windows)
    if is_current(venv, want, windows):
        log(f"reusing the current environment in {venv}")
        return py
    log(f"creating the environment in {venv} (first time: a few minutes; torch is large)")
    if not py.exists():
        run([python, "-m", "venv", str(venv)])
    stamp = venv / STAMP_NAME
    if stamp.exists():
        stamp.unlink()
    run([str(py), "-m", "pip", "install", "--quiet", "--upgrade", "pip"])
    if (torch or torch_wheels()) == "cpu" and not has_torch(venv, windows):
        why = ("REFINENET_EDU_TORCH=cpu" if os.environ.get("REFINENET_EDU_TORCH", "").strip().lower() == "cpu"
               else "no NVIDIA GPU here (no nvidia-smi)")
        if not probe(f"{CPU_WHEELS}/torch/"):
            log(f"{why}, but {CPU_WHEELS} cannot be reached: the default PyTorch wheels come with the rest")
        else:
            log(f"{why}: installing PyTorch's CPU-only wheels from {CPU_WHEELS} "
                "(REFINENET_EDU_TORCH=default for the default ones)")
            try:
                run([str(py), "-m", "pip", "install", "--quiet", "--index-url", CPU_WHEELS,
                     *torch_requirements(root)])
            except SetupError as err:
                log(f"the CPU-only wheels could not be installed ({err}): "
                    "the default PyTorch wheels come with the rest")
    run([str(py), "-m", "pip", "install", "--quiet", "-e", f"{root}[{EXTRAS}]"])
    stamp.write_text(want + "\n", encoding="utf-8")
    return py


def is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def lab_command(py: Path, root: Path, args: list[str], *, instructor: bool = False,
                as_root: bool | None = None) -> list[str]:
    """JupyterLab on ``root/notebooks``, or for the instructor on ``root/assignments`` (nbgrader's course
    directory, where its Formgrader finds ``nbgrader_config.py``); as root (containers, CI machines)
    Jupyter needs --allow-root."""
    as_root = is_root() if as_root is None else as_root
    folder = root / ("assignments" if instructor else "notebooks")
    return [str(py), "-m", "jupyterlab", f"--ServerApp.root_dir={folder}",
            *(["--allow-root"] if as_root else []), *args]


def lab_env(root: Path, *, instructor: bool = False, environ: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of `lab`: for students, ``root/tooling/jupyter-student`` first on JUPYTER_CONFIG_PATH
    (Jupyter reads it before every other configuration folder), which turns nbgrader's server extensions and
    its JupyterLab extension off; for the instructor, that folder taken off the path again."""
    env = dict(os.environ if environ is None else environ)
    config = str(root / STUDENT_CONFIG)
    rest = [p for p in env.get("JUPYTER_CONFIG_PATH", "").split(os.pathsep) if p and p.rstrip("/\\") != config]
    paths = rest if instructor else [config, *rest]
    if paths:
        env["JUPYTER_CONFIG_PATH"] = os.pathsep.join(paths)
    else:
        env.pop("JUPYTER_CONFIG_PATH", None)
    return env


def test_command(py: Path, args: list[str]) -> list[str]:
    """pytest on the unit tests and every notebook (nbval), in the environment's interpreter."""
    return [str(py), "-m", "pytest", "tests", "notebooks", "--nbval-lax", "--nbval-current-env", *args]


#: the maintenance commands of tooling/ (tooling/cli/__init__.py), run in the environment by `python -m tooling`
TOOLING_COMMANDS = ("execute", "check", "site", "links", "figures", "assignments", "bench", "retime")


def tooling_command(py: Path, command: str, args: list[str]) -> list[str]:
    """``python -m tooling COMMAND ...`` in the environment's interpreter (tooling/ is not installed)."""
    return [str(py), "-m", "tooling", command, *args]


def tooling_env(root: Path = ROOT, environ: dict[str, str] | None = None) -> dict[str, str]:
    """The caller's environment with the checkout first on PYTHONPATH, so that ``tooling`` imports from any folder."""
    env = dict(os.environ if environ is None else environ)
    env["PYTHONPATH"] = os.pathsep.join([str(root), *filter(None, [env.get("PYTHONPATH")])])
    return env


def test_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The notebooks run in FAST mode under test (docs/contributing.md: FAST is on when CI or
    NBGRADER_EXECUTION is set); `lab` runs them for real."""
    env = dict(os.environ if environ is None else environ)
    env.setdefault("CI", "true")
    return env


def _exec(cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> int:
    """Hand over to ``cmd``: replace this process on POSIX; on Windows run it and return its status."""
    if cwd is not None:
        os.chdir(cwd)
    if os.name == "nt":
        return subprocess.call(cmd, env=env)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(cmd[0], cmd, env if env is not None else os.environ)
    return 0  # not reached


# --------------------------------------------------------------------------
# Hosted Jupyter (Colab, Kaggle): install into the running Python
# --------------------------------------------------------------------------

_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*([^;]*?)\s*(?:;(.*))?$")
_VERSION = re.compile(r"^\s*v?(\d+(?:\.\d+)*)")


def normalize(name: str) -> str:
    """A distribution name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_requirement(text: str) -> tuple[str, str, str]:
    """``'torch>=2.4'`` -> ``('torch', '>=2.4', '')``; the third part is the environment marker."""
    m = _REQUIREMENT.match(text)
    if not m:
        raise SetupError(f"cannot read the requirement {text!r}")
    return m.group(1), m.group(2).replace(" ", ""), (m.group(3) or "").strip()


def _release(version: str) -> tuple[int, ...]:
    m = _VERSION.match(version)
    return tuple(int(p) for p in m.group(1).split(".")) if m else ()


def satisfies(version: str, specifier: str) -> bool:
    """Whether ``version`` meets ``specifier`` (comma-separated ``>=``, ``>``, ``<=``, ``<``, ``==``, ``!=``),
    comparing release numbers only (enough for this project's pins)."""
    have = _release(version)
    for clause in filter(None, specifier.split(",")):
        m = re.match(r"^(>=|<=|==|!=|~=|>|<)(.+)$", clause.strip())
        if not m:
            raise SetupError(f"cannot read the version specifier {clause!r}")
        op, want = m.group(1), _release(m.group(2))
        n = max(len(have), len(want))
        a, b = have + (0,) * (n - len(have)), want + (0,) * (n - len(want))
        ok = {">=": a >= b, "~=": a >= b, ">": a > b, "<=": a <= b, "<": a < b, "==": a == b, "!=": a != b}[op]
        if not ok:
            return False
    return True


def installed_versions() -> dict[str, str]:
    """Every distribution the running Python sees: normalized name -> version."""
    from importlib import metadata

    found: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name and normalize(name) not in found:
            found[normalize(name)] = dist.version
    return found


def plan_hosted(requirements: list[str], installed: dict[str, str]) -> dict[str, list]:
    """Sort the package's core requirements into what to keep, install and skip.

    Returns ``{"keep": [(name, version, ok)], "install": [requirement], "skip": [name]}``:
    a requirement already installed is kept at the platform's version (``ok``
    says whether that version meets the pin); a Jupyter front-end package that
    is missing is skipped; everything else that is missing is installed.
    Requirements with an environment marker (the extras) are left out.
    """
    plan: dict[str, list] = {"keep": [], "install": [], "skip": []}
    for text in requirements:
        name, spec, marker = parse_requirement(text)
        if marker:
            continue
        key = normalize(name)
        if key in installed:
            plan["keep"].append((name, installed[key], satisfies(installed[key], spec)))
        elif key in FRONT_END:
            plan["skip"].append(name)
        else:
            plan["install"].append(f"{name}{spec}")
    return plan


def constraints_text(installed: dict[str, str]) -> str:
    """pip constraints that hold every installed distribution at its version."""
    lines = [f"{name}=={version}" for name, version in sorted(installed.items())
             if re.match(r"^[0-9][0-9A-Za-z.+!_-]*$", version) and name != normalize(DISTRIBUTION)]
    return "\n".join(lines) + "\n"


def _pip_quietly(cmd: list[str], skipped: list[str]) -> None:
    """Run a pip step of `hosted`, showing its output only where it matters.

    On success, pip's chatter (setuptools' editable-install notice) is dropped,
    and so are its dependency-conflict notes about the front-end packages that
    `hosted` leaves out on purpose; any other note is shown. On failure
    everything is shown.
    """
    result = subprocess.run(cmd, capture_output=True, text=True)
    lines = (result.stdout + result.stderr).splitlines()
    if result.returncode != 0:
        print("\n".join(lines))
        raise SetupError(f"`{' '.join(cmd)}` failed (exit status {result.returncode}); see above")
    skipped_keys = {normalize(name) for name in skipped}
    conflicts = [ln for ln in lines if re.search(r" requires \S+.*, which is not installed|but you have ", ln)]
    unexpected = [ln for ln in conflicts
                  if not any(re.search(rf" requires {re.escape(k)}\b", normalize(ln)) for k in skipped_keys)]
    if unexpected:
        print("\n".join(unexpected))


def device_report(python: str = sys.executable) -> str:
    """What DEVICE = "auto" will use here, from PyTorch itself (a subprocess: this file imports no torch)."""
    probe = ("import torch\n"
             "if torch.cuda.is_available():\n"
             "    print('GPU: ' + torch.cuda.get_device_name(0) + ' (cuda); DEVICE = \"auto\" in the notebooks uses it')\n"
             "elif getattr(torch.backends, 'mps', None) is not None and torch.backends.mps.is_available():\n"
             "    print('GPU: Apple Metal (mps); DEVICE = \"auto\" in the notebooks uses it')\n"
             "else:\n"
             "    print('no GPU visible to PyTorch: the notebooks run on the CPU (slower). Colab: Runtime > Change '\n"
             "          'runtime type > a GPU; Kaggle: Settings > Accelerator > a GPU; then run this cell again')\n")
    result = subprocess.run([python, "-c", probe], capture_output=True, text=True)
    if result.returncode != 0:
        lines = (result.stderr or "").strip().splitlines()
        return f"PyTorch could not be imported to look for a GPU: {lines[-1] if lines else 'no message'}"
    return result.stdout.strip()


def hosted(root: Path = ROOT, *, run=None, python: str = sys.executable, installed=installed_versions,
           requires=None, report=device_report, log=print) -> dict[str, list]:
    """Install this checkout into the running Python the way hosted Jupyter needs it (module docstring)."""
    from importlib import metadata

    for required in ("pyproject.toml", "refinenet_edu", "notebooks"):
        if not (root / required).exists():
            raise SetupError(f"{root}: not a refinenet-edu checkout ({required} is missing)")
    log(f"set-up: installing refinenet-edu from {root} (editable, without its dependencies) ...")
    front_end = sorted(FRONT_END)
    run = run or (lambda cmd: _pip_quietly(cmd, front_end))
    run([python, "-m", "pip", "install", "--quiet", "--no-deps", "-e", str(root)])
    if requires is None:
        importlib.invalidate_caches()
        requires = metadata.requires(DISTRIBUTION) or []
    before = installed()
    plan = plan_hosted(list(requires), before)
    if plan["install"]:
        log(f"set-up: installing what is missing: {' '.join(plan['install'])} "
            "(every installed package held at its version)")
        with tempfile.TemporaryDirectory() as tmp:
            constraints = Path(tmp) / "constraints.txt"
            constraints.write_text(constraints_text(before), encoding="utf-8")
            run([python, "-m", "pip", "install", "--quiet", "-c", str(constraints), *plan["install"]])
    kept = ", ".join(f"{name} {version}" for name, version, _ in plan["keep"])
    log(f"set-up: kept the platform's {kept}" if kept else "set-up: nothing of the platform's was needed")
    for name, version, ok in plan["keep"]:
        if not ok:
            log(f"set-up: warning: {name} {version} is older than the course asks for; it is kept, "
                "and the parts that need the newer one may fail")
    if plan["skip"]:
        log(f"set-up: not installed: {', '.join(plan['skip'])} (the platform's own Jupyter runs the notebooks)")
    data = root / "data" / "synthscenes" / "ImageSets" / "Segmentation" / "train.txt"
    log(f"set-up: the embedded dataset and checkpoints are in {root / 'data'}" if data.is_file()
        else f"set-up: warning: {data} is missing; the checkout is incomplete")
    log(f"set-up: {report(python)}")
    return plan


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------


def usage() -> str:
    return __doc__.split("\n\n")[1]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if sys.version_info < MIN_PYTHON:
        print(f"course: error: Python {'.'.join(map(str, MIN_PYTHON))} or newer is needed, this is "
              f"{sys.version.split()[0]} (choose it with `py -3.12 course.py ...` or PYTHON=python3.12 ./course ...)",
              file=sys.stderr)
        return 1
    cmd = argv.pop(0) if argv else ""
    try:
        if cmd == "lab":
            instructor = INSTRUCTOR in argv
            args = [a for a in argv if a != INSTRUCTOR]
            py = ensure_env(default_venv())
            print("course: JupyterLab for the instructor in assignments/, with nbgrader (Formgrader: menu Nbgrader)"
                  if instructor else
                  f"course: JupyterLab on notebooks/ (nbgrader's instructor tools are hidden: `lab {INSTRUCTOR}`)",
                  file=sys.stderr, flush=True)
            return _exec(lab_command(py, ROOT, args, instructor=instructor), env=lab_env(ROOT, instructor=instructor),
                         cwd=ROOT / "assignments" if instructor else None)
        if cmd == "test":
            py = ensure_env(default_venv())
            return _exec(test_command(py, argv), env=test_env(), cwd=ROOT)
        if cmd == "hosted" and not argv:
            hosted()
            return 0
        if cmd in TOOLING_COMMANDS:
            py = ensure_env(default_venv())
            return _exec(tooling_command(py, cmd, argv), env=tooling_env())
    except SetupError as err:
        print(f"course: error: {err}", file=sys.stderr)
        return 1
    print(usage(), file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
