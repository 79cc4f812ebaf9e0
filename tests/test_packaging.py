"""The set-up stays consistent: pyproject.toml, environment.yml, README and CI."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]


def _pyproject_requirements() -> set[str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    reqs = set(data["project"]["dependencies"])
    for extra in data["project"]["optional-dependencies"].values():
        reqs.update(extra)
    return {r.replace(" ", "") for r in reqs}


def _environment_requirements() -> set[str]:
    lines = (ROOT / "environment.yml").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "- pip:")
    reqs = set()
    for line in lines[start + 1 :]:
        stripped = line.strip()
        if stripped.startswith("#") or not stripped:
            continue
        if not stripped.startswith("- "):
            break
        reqs.add(stripped[2:].replace(" ", ""))
    return reqs


def test_environment_yml_matches_pyproject():
    assert _environment_requirements() == _pyproject_requirements()


def test_readme_gives_the_two_commands_and_ci_calls_the_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "./course lab" in readme and "./course test" in readme
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^\./course test\b", ci, re.M), ".ci/run must call the README's test command"


def test_console_script_is_declared_and_runs():
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert data["project"]["scripts"]["refinenet-edu"] == "refinenet_edu.cli:main"
    out = subprocess.run(
        [sys.executable, "-m", "refinenet_edu", "--help"], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert "summary" in out.stdout


def test_environment_yml_is_a_conda_environment_for_the_supported_python():
    # conda is not installed here, so the conda route is checked as far as it can be without it: the file
    # parses as conda reads it, asks for the Python that pyproject.toml supports, and pip-installs the pins above.
    import yaml

    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert env["name"] == "refinenet-edu" and env["channels"] == ["conda-forge"]
    conda_deps = [d for d in env["dependencies"] if isinstance(d, str)]
    assert f"python{requires}" in conda_deps and "pip" in conda_deps
    (pip_section,) = [d["pip"] for d in env["dependencies"] if isinstance(d, dict)]
    assert {r.replace(" ", "") for r in pip_section} == _pyproject_requirements()
