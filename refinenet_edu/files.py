"""Writing files atomically: nothing half-written is ever left behind; reading torch files safely.

Every file the library writes (checkpoints, histories, results, predictions, notebooks) goes through
:func:`atomic_write`: the data goes to a temporary file in the same folder, is flushed to disk, and is then
renamed over the target with ``os.replace``, which is atomic. A crash or an error mid-write leaves the old file
(or none) and no temporary file.

Every ``torch.load`` of the library goes through :func:`read_torch_file`: tensors and plain data only
(``weights_only=True``), and a file it refuses is named with what it is (a JSON file, a zip archive without
``data.pkl``, a pickle that names code), never with torch's advice to load it unsafely.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import IO, Any, Callable

__all__ = ["first_non_finite", "not_a_file", "not_a_folder", "read_torch_file", "atomic_write", "atomic_write_bytes",
           "atomic_write_text", "atomic_write_json", "remove_stale_temporaries"]


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


def atomic_write_json(path: str | os.PathLike, data: Any) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def remove_stale_temporaries(folder: str | os.PathLike, *, also: tuple[str, ...] = (),
                             only: tuple[str, ...] | None = None) -> list[Path]:
    """Remove what a killed process left in ``folder``: :func:`atomic_write`'s temporaries (with ``only``: those
    of the files of these names), and the entries named by the glob patterns ``also``. Returns what was removed.
    Only safe while holding the folder's lock (:func:`refinenet_edu.engine.locks.output_lock`): then no other
    command is writing there, and every temporary is a leftover.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    temporary = re.compile(r"\.(.+)\.[a-z0-9_]{8}\.tmp")  # atomic_write's: .<name>.<8 random characters>.tmp
    found = [p for p in folder.iterdir() if (m := temporary.fullmatch(p.name)) and (only is None or m[1] in only)
             and p.is_file() and not p.is_symlink()]
    for pattern in also:
        found += [p for p in folder.glob(pattern) if p not in found]
    for p in found:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    return found


# ---------------------------------------------------------------- why a path is not what was expected
def not_a_file(path: str | os.PathLike, missing: str = "no such file") -> str:
    """Why ``path`` is not a file to read, said after its name: it is a folder, a dangling link, a part of its
    path is a file, or (``missing``) there is nothing there."""
    path = Path(path)
    if path.is_dir():
        return "is a folder (a directory), a file was expected"
    return _no_entry(path) or missing


def not_a_folder(path: str | os.PathLike) -> str | None:
    """Why no folder can be made at ``path`` (a dangling link, a part of its path is a file, a file is there),
    else None."""
    path = Path(path)
    if path.is_file():
        return "is a file, a folder was expected"
    return _no_entry(path)


def _no_entry(path: Path) -> str | None:
    if path.is_symlink() and not path.exists():
        return f"is a dangling link (to {os.readlink(path)}, which does not exist)"
    for parent in reversed(path.parents):
        if parent.is_symlink() and not parent.exists():
            return f"a part of the path is a dangling link ({parent} -> {os.readlink(parent)})"
        if parent.exists() and not parent.is_dir():
            return f"a part of the path is a file ({parent}), a folder was expected there"
    return None


# ---------------------------------------------------------------- reading torch files
def read_torch_file(path: str | os.PathLike, *, what: str = "checkpoint") -> Any:
    """``torch.load(path, weights_only=True)`` onto the CPU: tensors and plain data, no pickled code ever runs.

    A missing path raises ``FileNotFoundError``, a folder ``IsADirectoryError`` (both with a message only). A
    file torch refuses raises ``ValueError("<what> <path>: refused, ...")``, saying what the file is instead
    (torch's own message ends by advising ``weights_only=False``, which for a crafted pickle would run its
    code). torch's warning about a pickle's protocol is not shown.
    """
    import warnings

    import torch

    path = Path(path)
    if not path.is_file():
        raise (IsADirectoryError if path.is_dir() else FileNotFoundError)(f"{what} {path}: {not_a_file(path)}")
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*pickle protocol", category=UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except OSError:
        raise
    except Exception:  # noqa: BLE001 - torch raises UnpicklingError, RuntimeError, EOFError, ...
        raise ValueError(f"{what} {path}: refused, {_what_file_is(path)}") from None


def first_non_finite(state: Any) -> str | None:
    """The name of the first floating-point tensor of the mapping ``state`` that holds inf or NaN, else None."""
    import torch

    for key, value in state.items():
        if torch.is_tensor(value) and value.is_floating_point() and not bool(torch.isfinite(value).all()):
            return str(key)
    return None


def _what_file_is(path: Path) -> str:
    """What a file torch could not read holds, read without running any of it."""
    import zipfile

    with open(path, "rb") as f:
        data = f.read(64 * 2**20)
    if not data:
        return "an empty file, not a PyTorch checkpoint"
    if data.startswith(b"PK"):
        try:
            archive = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError, ValueError):
            return "a truncated or damaged zip archive (a PyTorch checkpoint copied or written only in part?)"
        with archive:
            pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
            if not pickles:
                return "not a PyTorch checkpoint: it is a zip archive without data.pkl"
            try:
                data = archive.read(pickles[0])
            except (zipfile.BadZipFile, OSError, ValueError, EOFError):
                return "a damaged PyTorch checkpoint (its data.pkl cannot be read)"
        return _what_pickle_is(data, "a PyTorch checkpoint whose pickle")
    if data[:1] == b"\x80":  # a pickle (protocol 2 or later)
        return "not a PyTorch checkpoint: it is " + _what_pickle_is(data, "a pickle that")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return "not a PyTorch checkpoint (not a zip archive nor a pickle)"
    if text.lstrip()[:1] in ("{", "["):
        try:
            json.loads(text)
            return "not a PyTorch checkpoint: it is a JSON file"
        except ValueError:
            pass
    return "not a PyTorch checkpoint: it is a text file"


def _what_pickle_is(data: bytes, subject: str) -> str:
    """``subject`` + what the pickle ``data`` names, found by reading its opcodes (nothing is run)."""
    import pickletools

    names, strings = [], []
    try:
        for op, arg, _ in pickletools.genops(data):
            if op.name in ("GLOBAL", "INST"):
                names.append(str(arg).replace(" ", "."))
            elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                names.append(f"{strings[-2]}.{strings[-1]}")
            elif isinstance(arg, str):
                strings.append(arg)
    except Exception:  # noqa: BLE001 - a damaged pickle; its names so far are enough
        if not names:
            return f"{subject} is damaged or cut short"
    names = {n.replace("__builtin__.", "builtins.").replace("copy_reg.", "copyreg.") for n in names}
    try:  # what torch's safe loader accepts (a private list: if it moves, fall back to torch's data types)
        from torch._weights_only_unpickler import _get_allowed_globals

        allowed = set(_get_allowed_globals())
        code = sorted(n for n in names if n not in allowed)
    except (ImportError, AttributeError, TypeError):
        code = sorted(n for n in names if not n.startswith(("torch.", "collections.OrderedDict"))
                      or n.startswith(("torch.nn.", "torch.optim.")))
    if code:
        shown = ", ".join(code[:3]) + (", ..." if len(code) > 3 else "")
        return f"{subject} holds objects other than tensors and plain data ({shown}); loading it could run code"
    return f"{subject} holds what torch's safe loader cannot read (tensors and plain data only)"
