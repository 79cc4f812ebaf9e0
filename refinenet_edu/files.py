"""Writing files atomically: nothing half-written is ever left behind.

Every file the library writes (checkpoints, histories, results, predictions,
notebooks) goes through :func:`atomic_write`: the data goes to a temporary
file in the same folder, is flushed to disk, and is then renamed over the
target with ``os.replace``, which is atomic. A crash or an error mid-write
leaves the old file (or none) and no temporary file.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import IO, Any, Callable

__all__ = ["atomic_write", "atomic_write_bytes", "atomic_write_text", "atomic_write_json", "changed_since", "file_manifest",
           "remove_stale_temporaries"]


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], Any]) -> Path:
    """Call ``write(f)`` on a binary temporary file, then rename it to ``path``.

    The parent folder is created if needed. The file gets the mode of the file
    it replaces, or 0o644 (``mkstemp`` alone would leave it readable by its
    owner only).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o644)
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        # an OSError, or one a writer wrapped (torch.save: "unexpected pos ..." for a full disk)
        cause = err if isinstance(err, OSError) else err.__context__ if isinstance(err, Exception) else None
        if isinstance(cause, OSError) and cause.errno is not None and cause.filename in (None, tmp):
            raise OSError(cause.errno, cause.strerror or str(cause), str(path)) from err  # name the caller's file
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """UTF-8 text with ``\\n`` line endings."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, data: Any, *, indent: int = 2) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=indent) + "\n")


#: the temporary files of :func:`atomic_write` (``.<name>.<8 random characters>.tmp``)
_TEMPORARY = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")


def remove_stale_temporaries(folder: str | os.PathLike, *, also: tuple[str, ...] = (),
                             only: tuple[str, ...] | None = None) -> list[Path]:
    """Remove what a killed process left in ``folder``: :func:`atomic_write`'s temporaries (with
    ``only``: those of the files of these names), and the entries named by the glob patterns
    ``also`` (files or folders). Returns what was removed.

    Only safe while holding the folder's lock (:func:`refinenet_edu.engine.locks.output_lock`):
    then no other command is writing there, and every temporary is a leftover.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if _TEMPORARY.match(p.name) and p.is_file() and not p.is_symlink()
             and (only is None or any(p.name.startswith(f".{name}.") and len(p.name) == len(name) + 14
                                      for name in only))]
    for pattern in also:
        found += [p for p in folder.glob(pattern) if p not in found]
    for p in found:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    return found


def file_manifest(folder: str | os.PathLike) -> dict[str, str]:
    """What a generated folder holds: every entry by its path relative to ``folder`` (``/``-separated)
    -> the SHA-256 of a file, ``"folder"`` or ``"link"``. Kept beside a folder a command generates, so
    that the next run can tell what a person added or edited there since (:func:`changed_since`)."""
    import hashlib

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
