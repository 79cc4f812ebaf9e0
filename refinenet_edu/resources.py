"""Where the files the course ships are: the embedded data, checkpoints, results, notebooks.

One function, :func:`resource`, answers for every way the library is installed:

* a checkout, or an editable install of one (``./course`` makes one): the
  repository's own folders (``data/``, ``results/``, ``notebooks/``,
  ``assignments/``) beside the package;
* a wheel (``pip install refinenet-edu``): the copies the wheel carries in
  ``refinenet_edu/_shipped/`` (``setup.py`` puts them there when it builds one).

Nothing here writes anything: a resource that is in neither place is reported
by the caller that needs it (e.g. :func:`refinenet_edu.datasets.load_dataset`).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["KINDS", "checkout_root", "resource"]

#: The top-level folders of the repository that the library reads.
KINDS = ("data", "results", "notebooks", "assignments")

_PACKAGE = Path(__file__).resolve().parent
#: Where a wheel carries its copies of the folders in :data:`KINDS`.
SHIPPED = _PACKAGE / "_shipped"


def checkout_root() -> Path | None:
    """The repository this package was imported from (a checkout or an editable install), else ``None``."""
    root = _PACKAGE.parent
    return root if (root / "pyproject.toml").is_file() and (root / "course").is_file() else None


def resource(kind: str, *parts: str) -> Path:
    """The path of a shipped file or folder, e.g. ``resource("data", "synthscenes")``.

    ``kind`` is one of :data:`KINDS`; ``parts`` name a path inside it. From a
    checkout the path is in the repository; from a wheel it is the wheel's
    copy. The path is returned whether or not it exists (a caller may be
    about to create it, as a download does in ``data/``).
    """
    if kind not in KINDS:
        raise ValueError(f"resource kind {kind!r}: expected one of {list(KINDS)}")
    root = checkout_root()
    base = root / kind if root is not None else SHIPPED / kind
    return base.joinpath(*parts)
