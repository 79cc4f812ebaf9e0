"""What a generated folder (the course site, an nbgrader release) holds, so that the next run that regenerates it
can tell what a person added or edited there and refuse to overwrite it."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def file_manifest(folder: str | os.PathLike) -> dict[str, str]:
    """What a generated folder holds: each entry's ``/``-separated path -> the SHA-256 of a file, ``"folder"``
    or ``"link"``; kept beside the folder, so that the next run can tell what a person added or edited there."""
    folder = Path(folder)
    manifest = {}
    for path in sorted(folder.rglob("*")):
        name = path.relative_to(folder).as_posix()
        if path.is_symlink():
            manifest[name] = "link"
        elif path.is_dir():
            manifest[name] = "folder"
        else:
            manifest[name] = hashlib.sha256(path.read_bytes()).hexdigest()
    return manifest


def changed_since(folder: str | os.PathLike, manifest: dict[str, str], *, ignore: tuple[str, ...] = ()) -> list[str]:
    """The entries of ``folder`` added or edited since ``manifest`` (:func:`file_manifest`) was taken,
    except the names ``ignore``; what was removed since is not counted (nothing of it can be lost)."""
    now = file_manifest(folder)
    return [name for name, digest in now.items() if name not in ignore and manifest.get(name) != digest]
