"""Build hook: a wheel carries the files the library reads from the repository's top-level folders.

From a checkout (or an editable install) :func:`refinenet_edu.resources.resource` finds ``data/``,
``results/`` and ``notebooks/`` beside the package. A wheel has no checkout, so
``build_py`` copies what the library reads into ``refinenet_edu/_shipped/`` inside the wheel: the
embedded dataset (``data/synthscenes``, 16 MB of JPEG and PNG files: copied, not regenerated, so a
wheel's set is byte for byte the one the shipped checkpoint and results were made from), the shipped
checkpoints, the VOC-shaped sample that notebook 10 reads (``data/voc-shaped-sample``, 84 KB), the result
sets the notebooks read (the ablations, the losses) and the notebooks with the
diagrams they show (``notebooks/figures/``). The graded
assignments' sources (their solutions and hidden tests) are not shipped: releasing and grading them is the
course tooling's work (tooling/, run from a checkout). Everything else is in pyproject.toml.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent

#: (folder in the repository, what to leave out); kept in step with refinenet_edu.resources.KINDS
SHIPPED = (
    ("data/synthscenes", ()),
    ("data/checkpoints", ()),
    ("data/voc-shaped-sample", ()),
    ("data/README.md", ()),
    ("results/ablation", ()),
    ("results/ablation-60ep", ()),
    ("results/ablation-pretrained", ()),
    ("results/losses", ()),
    ("notebooks", (".ipynb_checkpoints",)),
)


class BuildWithResources(build_py):
    def run(self):
        super().run()
        if self.editable_mode:  # an editable install reads the checkout itself
            return
        target = Path(self.build_lib) / "refinenet_edu" / "_shipped"
        for name, ignore in SHIPPED:
            source, dest = ROOT / name, target / name
            if not source.exists():
                raise SystemExit(f"setup.py: {source} is missing; a wheel is built from a full checkout")
            dest.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, dest, ignore=shutil.ignore_patterns("__pycache__", *ignore),
                                dirs_exist_ok=True)
            else:
                shutil.copy2(source, dest)


setup(cmdclass={"build_py": BuildWithResources})
