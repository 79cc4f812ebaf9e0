"""Where the files the course ships are: the embedded data, checkpoints, results, notebooks.

:func:`resource` answers for a checkout, or an editable install of one (``./course`` makes one): the repository's
own ``data/``, ``results/``, ``notebooks/`` beside the package; and for a wheel: the copies it carries in
``refinenet_edu/_shipped/`` (``setup.py`` puts them there). Nothing here writes anything: a resource that is in
neither place is reported by the caller that needs it (e.g. :func:`refinenet_edu.datasets.load_dataset`).

Datasets a user downloads (PASCAL VOC, SBD) are not shipped: they live in :func:`downloads_root`, the checkout's
``data/`` or, from a wheel, a folder of the user's (never site-packages, which may be read-only and is replaced
by the next install).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["KINDS", "checkout_root", "downloads_root", "my_course_model", "resource"]

#: The top-level folders of the repository that the library reads.
KINDS = ("data", "results", "notebooks")

_PACKAGE = Path(__file__).resolve().parent
#: Where a wheel carries its copies of the folders in :data:`KINDS`.
SHIPPED = _PACKAGE / "_shipped"


def checkout_root() -> Path | None:
    """The repository this package was imported from (a checkout or an editable install), else ``None``."""
    root = _PACKAGE.parent
    return root if (root / "pyproject.toml").is_file() and (root / "course").is_file() else None


def resource(kind: str, *parts: str) -> Path:
    """The path of a shipped file or folder, e.g. ``resource("data", "synthscenes")``: ``kind`` is one of
    :data:`KINDS`, ``parts`` a path inside it. Returned whether or not it exists (a download creates it in ``data/``).
    """
    if kind not in KINDS:
        raise ValueError(f"resource kind {kind!r}: expected one of {list(KINDS)}")
    root = checkout_root()
    base = root / kind if root is not None else SHIPPED / kind
    return base.joinpath(*parts)


def downloads_root() -> Path:
    """The default folder of downloaded datasets (``load_dataset("voc2012")`` without ``root``).

    ``$REFINENET_EDU_DATA`` if set; else the checkout's ``data/`` (where ``.gitignore`` keeps them out of git);
    else, for a wheel install, ``%LOCALAPPDATA%\\refinenet-edu`` on Windows, ``$XDG_DATA_HOME/refinenet-edu``
    (default ``~/.local/share/refinenet-edu``) elsewhere.
    """
    if os.environ.get("REFINENET_EDU_DATA"):
        return Path(os.environ["REFINENET_EDU_DATA"]).expanduser()
    root = checkout_root()
    if root is not None:
        return root / "data"
    if sys.platform == "win32" and os.environ.get("LOCALAPPDATA"):
        return Path(os.environ["LOCALAPPDATA"]) / "refinenet-edu"
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "refinenet-edu"


def my_course_model() -> Path:
    """The model the student trained in notebook 07, as 07 keeps it for notebook 08 (it may not exist yet), in the
    checkout's ``runs/`` (which ``.gitignore`` keeps out of git), or in ``runs/`` of :func:`downloads_root` for a wheel."""
    root = checkout_root()
    runs = root / "runs" if root is not None else downloads_root() / "runs"
    return runs / "notebook-07" / "my-course-model.pt"
