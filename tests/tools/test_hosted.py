"""The course on hosted Jupyter: the repository setting, the launch links, the set-up cell, Binder.

The set-up cell is tested for real: a fresh virtual environment that has torch
and Jupyter's kernel but neither refinenet_edu nor tqdm nor JupyterLab (the
site-packages of this environment, less those, seen through a .pth file: no
torch is downloaded) runs notebook 00 with the cell in front. The cell clones
this checkout (``REFINENET_EDU_SOURCE=file://...``, instead of the public
repository), installs it, adds tqdm, leaves torch and JupyterLab alone, and the
notebook's other cells run against the clone.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
import tomllib

from tooling import links as hosted

ROOT = Path(__file__).resolve().parents[2]
FORK = "https://github.com/a-fork/refinenet-course"


# --------------------------------------------------------------------------
# The setting and what is generated from it
# --------------------------------------------------------------------------


def test_stored_notebooks_readme_and_citation_agree_with_the_setting():
    """Every numbered notebook has the launch links and the set-up cell of pyproject.toml's address."""
    assert hosted.links_problems(ROOT) == []
    repo = hosted.read_repository(ROOT)
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        first_md = next(c for c in nb.cells if c.cell_type == "markdown")
        assert hosted.colab_url(repo, path.name) in first_md.source, path.name
        setup = next(c for c in nb.cells if c.cell_type == "code")
        assert hosted.SETUP_TAG in setup.metadata["tags"] and setup.execution_count == 1, path.name
        assert [o.get("text") for o in setup.outputs] == [hosted.LOCAL_OUTPUT], f"{path.name}: store it executed"


def test_the_setting_is_one_github_address_in_pyproject():
    urls = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]
    repo = hosted.read_repository(ROOT)
    assert repo.url == urls["Repository"]
    assert hosted.colab_url(repo, "03_x.ipynb") == (
        f"https://colab.research.google.com/github/{repo.owner}/{repo.name}/blob/main/notebooks/03_x.ipynb")
    assert hosted.binder_url(repo, "03_x.ipynb") == (
        f"https://mybinder.org/v2/gh/{repo.owner}/{repo.name}/main?urlpath=lab/tree/notebooks/03_x.ipynb")


@pytest.mark.parametrize("url", ["https://gitlab.com/a/b", "github.com/a/b", "https://github.com/a", ""])
def test_an_address_that_is_not_github_is_a_one_line_error(url):
    with pytest.raises(ValueError, match=r"is not an address https://github.com/OWNER/NAME") as err:
        hosted.Repository(url)
    assert "\n" not in str(err.value)


def _copy_project(tmp_path: Path, notebooks: list[str] | None = None) -> Path:
    root = tmp_path / "fork"
    (root / "notebooks").mkdir(parents=True)
    for name in ("pyproject.toml", "README.md", "CITATION.cff"):
        shutil.copy(ROOT / name, root / name)
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        if notebooks is None or path.name[:2] in notebooks:
            shutil.copy(path, root / "notebooks" / path.name)
    return root


def test_a_fork_changes_one_line_and_the_generator_follows(tmp_path):
    root = _copy_project(tmp_path, ["00", "07"])
    text = (root / "pyproject.toml").read_text()
    old = hosted.read_repository(root).url
    (root / "pyproject.toml").write_text(text.replace(f'Repository = "{old}"', f'Repository = "{FORK}"'))
    before = {p.name: p.read_text() for p in (root / "notebooks").iterdir()}

    problems = hosted.links_problems(root)
    assert sorted(p.split(":")[0] for p in problems) == [
        "CITATION.cff", "README.md", "notebooks/00_welcome.ipynb", "notebooks/07_training.ipynb"]

    changed = hosted.write_links(root)
    assert len(changed) == 4 and hosted.links_problems(root) == []
    assert hosted.write_links(root) == []  # idempotent
    fork = hosted.Repository(FORK)
    for path in sorted((root / "notebooks").iterdir()):
        nb = nbformat.read(path, as_version=4)
        first_md = next(c for c in nb.cells if c.cell_type == "markdown")
        assert f"[Open in Colab]({hosted.colab_url(fork, path.name)})" in first_md.source
        assert f"[Launch on Binder]({hosted.binder_url(fork, path.name)})" in first_md.source
        assert first_md.source.count("<!-- launch-links") == 1 and old not in first_md.source
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert hosted.SETUP_TAG in code[0].metadata["tags"] and f'"{FORK}"' in code[0].source
        assert "parameters" in code[1].metadata["tags"]
        # every other cell is as it was, outputs included
        was = nbformat.reads(before[path.name], as_version=4)
        rest = [c for c in nb.cells if c is not first_md and c is not code[0]]
        was_rest = [c for c in was.cells if c.cell_type != "markdown" or c is not next(
            x for x in was.cells if x.cell_type == "markdown")]
        was_rest = [c for c in was_rest if hosted.SETUP_TAG not in c.get("metadata", {}).get("tags", [])]
        assert rest == was_rest
    assert f"howpublished = {{\\url{{{FORK}}}}}" in (root / "README.md").read_text()
    assert hosted.colab_url(fork, "00_welcome.ipynb") in (root / "README.md").read_text()
    assert f'repository-code: "{FORK}"' in (root / "CITATION.cff").read_text()


def test_a_changed_set_up_cell_drops_its_stale_output(tmp_path):
    root = _copy_project(tmp_path, ["01"])
    hosted.write_links(root)
    path = next((root / "notebooks").iterdir())
    nb = nbformat.read(path, as_version=4)
    setup = next(c for c in nb.cells if c.cell_type == "code")
    setup.execution_count, setup.outputs = 1, [nbformat.v4.new_output("stream", name="stdout", text="old\n")]
    setup.source += "\n# edited by hand"
    nbformat.write(nb, path)
    assert hosted.links_problems(root) == [
        f"notebooks/{path.name}: set-up cell disagree(s) with {hosted.read_repository(root).url} "
        "(run `./course links`)"]
    hosted.write_links(root)
    setup = next(c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
    assert setup.outputs == [] and setup.execution_count is None and "edited by hand" not in setup.source


def _without_links(nb):
    """``nb`` as it was before `course links`: no set-up cell, no launch links, execution counts one lower."""
    import copy

    old = copy.deepcopy(nb)
    old.cells = [c for c in old.cells if hosted.SETUP_TAG not in c.get("metadata", {}).get("tags", [])]
    for c in old.cells:
        if c.cell_type == "code" and c.execution_count:
            c.execution_count -= 1
    first_md = next(c for c in old.cells if c.cell_type == "markdown")
    first_md.source = re.sub(r"\n\n<!-- launch-links.*?<!-- /launch-links -->\n", "\n", first_md.source, flags=re.S)
    return old


@pytest.mark.parametrize("number", ["00", "07"])
def test_a_new_set_up_cell_is_stored_as_a_local_run_leaves_it(number):
    """In a notebook stored as one clean run, the new cell gets count 1 and the output it prints here."""
    (path,) = (ROOT / "notebooks").glob(f"{number}_*.ipynb")
    stored = nbformat.read(path, as_version=4)
    old = _without_links(stored)
    assert hosted.SETUP_TAG not in json.dumps([c.metadata for c in old.cells])
    assert hosted.apply_to_notebook(old, hosted.read_repository(ROOT), path.name) == ["launch links", "set-up cell (new)"]
    assert old == stored
    # a notebook not stored as one run gets the cell unexecuted
    messy = _without_links(stored)
    next(c for c in messy.cells if c.cell_type == "code").execution_count = 7
    hosted.apply_to_notebook(messy, hosted.read_repository(ROOT), path.name)
    setup = next(c for c in messy.cells if c.cell_type == "code")
    assert setup.execution_count is None and setup.outputs == []


def test_links_check_command_reports_and_fails(tmp_path, monkeypatch, capsys):
    from tooling.cli import main as tooling_main

    root = _copy_project(tmp_path, ["02"])
    old = hosted.read_repository(root).url
    (root / "pyproject.toml").write_text((root / "pyproject.toml").read_text().replace(old, FORK))
    monkeypatch.setattr(hosted, "project_root", lambda: root)
    assert tooling_main(["links", "--check"]) == 1
    assert "02_multi_resolution_fusion.ipynb" in capsys.readouterr().out
    assert tooling_main(["links"]) == 0
    assert tooling_main(["links", "--check"]) == 0


def test_set_up_cell_does_nothing_where_the_package_is_importable(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"the set-up cell ran a command: {args}")

    monkeypatch.setattr(subprocess, "run", refuse)
    monkeypatch.setattr(subprocess, "Popen", refuse)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(hosted.setup_cell_source(hosted.read_repository(ROOT)), "set-up cell", "exec"), {})
    assert out.getvalue() == hosted.LOCAL_OUTPUT


# --------------------------------------------------------------------------
# The set-up cell, for real, in a fresh environment
# --------------------------------------------------------------------------

WITHHELD = ("refinenet-edu", "tqdm", "jupyterlab")  # not in the fresh environment


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name or "").lower()


def _site_packages() -> Path:
    import sysconfig

    return Path(sysconfig.get_paths()["purelib"])


def _base_without(tmp: Path, withheld: tuple[str, ...]) -> Path:
    """A folder of links to this environment's site-packages, less the files of the ``withheld`` distributions."""
    from importlib import metadata

    site = _site_packages()
    hidden: set[str] = set()
    for dist in metadata.distributions(path=[str(site)]):
        if _normalize(dist.metadata["Name"]) in withheld:
            # the top-level entries its RECORD lists: packages, modules, the .dist-info folder, .pth files
            hidden.update(Path(str(f)).parts[0] for f in (dist.files or []) if not str(f).startswith(".."))
    hidden.update(p.name for p in site.glob("__editable__*refinenet_edu*"))
    base = tmp / "base-site-packages"
    base.mkdir()
    for entry in site.iterdir():
        if entry.name not in hidden and entry.name != "__pycache__":
            (base / entry.name).symlink_to(entry)
    return base


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_set_up_cell_installs_the_checkout_in_a_fresh_environment(tmp_path, monkeypatch):
    from nbclient import NotebookClient

    if subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--git-dir"], capture_output=True).returncode:
        pytest.skip("the checkout is not a git repository (the set-up cell clones one)")
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout
    # 1. a fresh environment: this one's packages (torch, ipykernel, ...) without the withheld ones
    venv = tmp_path / "fresh"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    base = _base_without(tmp_path, WITHHELD)
    fresh_site = next((venv / "lib").glob("python3*/site-packages"))
    (fresh_site / "base.pth").write_text(f"import site; site.addsitedir({str(base)!r})\n")
    fresh_python = venv / "bin" / "python"
    (venv / "bin" / "pip").unlink(missing_ok=True)
    probe = subprocess.run([str(fresh_python), "-c", "import importlib.util as u, torch, ipykernel; "
                            "print([u.find_spec(m) is None for m in ('refinenet_edu', 'tqdm', 'jupyterlab')])"],
                           capture_output=True, text=True, cwd=tmp_path)
    assert probe.stdout.strip() == "[True, True, True]", probe.stderr
    # pip itself comes from the base (venv --without-pip): the cell runs `python -m pip`
    kernels = tmp_path / "jupyter" / "kernels" / "fresh"
    kernels.mkdir(parents=True)
    (kernels / "kernel.json").write_text(json.dumps({
        "argv": [str(fresh_python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "fresh", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv(hosted.SOURCE_VAR, f"file://{ROOT}")
    monkeypatch.setenv("CI", "1")  # the notebook's FAST mode
    monkeypatch.delenv("PYTHONPATH", raising=False)

    # 2. notebook 00 with the set-up cell in front, in an empty folder (as on Colab)
    work = tmp_path / "content"
    work.mkdir()
    nb = nbformat.read(ROOT / "notebooks" / "00_welcome.ipynb", as_version=4)
    hosted.apply_to_notebook(nb, hosted.read_repository(ROOT), "00_welcome.ipynb")
    client = NotebookClient(nb, timeout=600, kernel_name="fresh", record_timing=True, allow_errors=False,
                            resources={"metadata": {"path": str(work)}})
    start = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - start

    # 3. what the set-up cell did
    setup = next(c for c in nb.cells if c.cell_type == "code")
    out = "".join(o.get("text", "") for o in setup.outputs)
    timing = setup.metadata["execution"]
    from datetime import datetime

    cell_seconds = (datetime.fromisoformat(timing["shell.execute_reply"].replace("Z", "+00:00"))
                    - datetime.fromisoformat(timing["iopub.execute_input"].replace("Z", "+00:00"))).total_seconds()
    print(f"set-up cell: {cell_seconds:.1f} s; notebook 00 in all: {seconds:.1f} s\n{out}")
    checkout = work / "refinenet-edu"
    assert f"cloning file://{ROOT} into {checkout}" in out, out
    assert "installing what is missing: tqdm>=" in out, out
    assert "kept the platform's torch " in out and "not installed: jupyterlab" in out, out
    assert "GPU" in out, out
    assert (checkout / "data" / "synthscenes").is_dir()
    head = subprocess.run(["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    assert head == subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True).stdout

    # installed in the fresh environment: the package (editable, from the clone) and tqdm; not torch, not JupyterLab
    installed = {p.name.split("-")[0].lower() for p in fresh_site.glob("*.dist-info")}
    assert {"refinenet_edu", "tqdm"} <= installed and not installed & {"torch", "torchvision", "jupyterlab"}, installed
    # a new session (a restarted kernel) imports the clone through the editable install, and the cell is a no-op
    again = subprocess.run([str(fresh_python), "-c", "import refinenet_edu; print(refinenet_edu.__file__)\n"
                            + hosted.setup_cell_source(hosted.read_repository(ROOT))],
                           capture_output=True, text=True, cwd=work)
    assert again.stdout.splitlines() == [str(checkout / "refinenet_edu" / "__init__.py"),
                                         "set-up: refinenet_edu is importable here, nothing to install"], again.stderr
    # 4. the notebook's next cells ran against the clone (allow_errors=False: any error would have raised)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count == i + 1 for i, c in enumerate(code) if c.source.strip())
    if dirty:
        print(f"note: the clone is of HEAD; uncommitted changes were not tested:\n{dirty}")


# --------------------------------------------------------------------------
# Binder (repo2docker)
# --------------------------------------------------------------------------


def _requirement_lines(path: Path) -> list[str]:
    return [ln.split("#", 1)[0].strip() for ln in path.read_text().splitlines() if ln.split("#", 1)[0].strip()]


def _release(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.match(r"\d+(?:\.\d+)*", version).group(0).split("."))


def test_binder_environment_has_cpu_torch_and_installs_the_package():
    lines = _requirement_lines(ROOT / "binder" / "requirements.txt")
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in lines
    assert "-e ." in lines  # repo2docker installs it from the repository root, after copying the repository
    pins = dict(re.match(r"^([A-Za-z0-9_.-]+)==(\S+)$", ln).groups() for ln in lines if "==" in ln)
    assert set(pins) == {"torch", "torchvision"}
    for name, version in pins.items():
        assert version.endswith("+cpu"), f"{name}=={version}: the CPU build (+cpu) keeps the image small"
    torch_v, vision_v = _release(pins["torch"]), _release(pins["torchvision"])
    assert vision_v[:2] == (0, torch_v[1] + 15), f"torchvision {pins['torchvision']} is not the pair of torch {pins['torch']}"
    # the pins meet pyproject.toml's
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for dep in deps:
        m = re.match(r"^(torch|torchvision)>=(\S+)$", dep)
        if m:
            assert _release(pins[m.group(1)]) >= _release(m.group(2)), f"binder pins {m.group(1)}=={pins[m.group(1)]}"
    # the Python version is one the package supports
    runtime = (ROOT / "binder" / "runtime.txt").read_text().strip()
    assert re.fullmatch(r"python-3\.\d+", runtime), runtime
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert _release(runtime.split("-")[1]) >= _release(requires.lstrip(">="))


def test_binder_links_open_existing_notebooks():
    repo = hosted.read_repository(ROOT)
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        url = hosted.binder_url(repo, path.name)
        target = url.split("urlpath=", 1)[1]
        assert target.startswith("lab/tree/") and (ROOT / target[len("lab/tree/"):]).is_file()
    assert hosted.binder_url(repo).endswith("urlpath=lab/tree/notebooks")
