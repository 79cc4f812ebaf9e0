"""The wheel works without the checkout: built from it, installed (not editable), run from elsewhere.

A checkout or an editable install finds ``data/``, ``results/`` and ``notebooks/`` beside the
package; a wheel carries copies (setup.py, ``refinenet_edu/_shipped``) and
:func:`refinenet_edu.resources.resource` must find those. This test builds the wheel from this
checkout, installs it into a fresh virtual environment, and from a folder outside the checkout
trains one epoch on the embedded set, evaluates the shipped checkpoint, prints a summary and predicts an image.

To stay fast it installs the wheel alone (``--no-deps``) and lends the fresh environment the
dependencies of the one running the tests (a ``.pth`` line naming its site-packages; ``.pth``
files there, such as an editable install's finder, are not run), so nothing is downloaded and torch
is not installed a second time.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def run(cmd, **kwargs):
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kwargs)
    assert done.returncode == 0, f"{cmd} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(python, refinenet-edu script, a folder outside the checkout) of a fresh environment with the wheel."""
    tmp = tmp_path_factory.mktemp("wheel")
    # build from a copy of the checkout's files (tracked, and untracked ones git does not ignore): an in-tree
    # build would leave build/ behind, whose stale modules a later wheel would carry
    source = tmp / "source"
    listed = run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT)
    for name in filter(None, listed.split("\0")):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    dist = tmp / "dist"
    env = dict(os.environ, PIP_NO_INDEX="1")
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", dist, source], env=env)
    (wheel,) = dist.glob("refinenet_edu-*.whl")
    target = tmp / "venv"
    venv.EnvBuilder(with_pip=False).create(target)
    python = target / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    site = Path(run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).strip())
    (site / "_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "-q", wheel], env=env)
    outside = tmp / "elsewhere"
    outside.mkdir()
    script = python.parent / ("refinenet-edu.exe" if os.name == "nt" else "refinenet-edu")
    return python, script, outside, wheel


def test_the_wheel_carries_the_resources(installed):
    *_, wheel = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in ("data/synthscenes/meta.json", "data/checkpoints/course-synthscenes.pt",
                 "data/voc-shaped-sample/benchmark_RELEASE/dataset/cls/2008_000000.mat",
                 "results/ablation/results.json", "results/ablation-60ep/results.json",
                 "results/ablation-pretrained/results.json", "results/losses/focal/results.json",
                 "notebooks/00_welcome.ipynb", "notebooks/figures/rcu.png"):
        assert f"refinenet_edu/_shipped/{path}" in names, f"the wheel lacks {path}"
    # the course's tooling and the graded assignments' sources (solutions, hidden tests) stay out of it
    leaked = [n for n in names if n.startswith(("tooling/", "refinenet_edu/tools/")) or "assignments/" in n]
    assert not leaked, leaked[:5]


def test_the_installed_package_is_the_wheel_and_finds_its_resources(installed):
    python, _, outside, _ = installed
    code = ("import json, refinenet_edu; from refinenet_edu.resources import checkout_root, downloads_root, resource; "
            "print(json.dumps([refinenet_edu.__file__, str(checkout_root()), "
            "str(resource('data', 'synthscenes')), str(resource('results', 'ablation')), str(downloads_root())]))")
    env = {k: v for k, v in os.environ.items() if k != "REFINENET_EDU_DATA"}
    package, root, data, results, downloads = json.loads(run([python, "-c", code], cwd=outside, env=env))
    assert ROOT not in Path(package).parents, f"imported from the checkout: {package}"
    assert root == "None"
    assert (Path(data) / "meta.json").is_file() and (Path(results) / "results.json").is_file()
    # datasets a user downloads (VOC, SBD) go to the user's data folder, not into site-packages
    assert Path(package).parent not in Path(downloads).parents and "refinenet-edu" in Path(downloads).name


def test_train_one_epoch_on_the_embedded_set_from_outside_the_checkout(installed):
    python, script, outside, _ = installed
    env = dict(os.environ, OMP_NUM_THREADS="2")
    run([script, "train", "--epochs", "1", "--subset", "16", "--batch-size", "4", "--num-workers", "0",
         "--out", outside / "run", "--quiet"], cwd=outside, env=env)
    assert (outside / "run" / "best.pt").is_file() and (outside / "run" / "last.pt").is_file()


def test_evaluate_the_shipped_checkpoint_from_outside_the_checkout(installed):
    python, script, outside, _ = installed
    checkpoint = run([python, "-c", "from refinenet_edu.resources import resource; "
                      "print(resource('data', 'checkpoints', 'course-synthscenes.pt'))"], cwd=outside).strip()
    out = outside / "evaluation.json"
    run([script, "evaluate", checkpoint, "--data", "synthscenes", "--subset", "8", "--out", out, "--quiet"],
        cwd=outside)
    scores = json.loads(out.read_text())
    assert scores["dataset"]["name"] == "synthscenes"
    # the trained model, not a random one (which scores about 0.05): the shipped model is at 0.66 on all 150
    assert scores["metrics"]["miou"] > 0.3, scores["metrics"]["miou"]


def test_summary_and_predict_from_outside_the_checkout(installed):
    python, script, outside, _ = installed
    shown = run([script, "summary", "--preset", "official", "--backbone", "resnet101", "--num-classes", "21"],
                cwd=outside)
    assert "118,052,437" in shown  # the official network's parameter count (tests/nn/test_port_layout.py)
    checkpoint, image = run([python, "-c", "from refinenet_edu.resources import resource; "
                             "print(resource('data', 'checkpoints', 'course-synthscenes.pt')); "
                             "print(resource('data', 'synthscenes', 'JPEGImages', 'val_00000.jpg'))"],
                            cwd=outside).split()
    run([script, "predict", checkpoint, image, "--out", outside / "masks"], cwd=outside)
    assert (outside / "masks" / "val_00000.png").is_file()
