"""Downloading VOC 2012 and SBD (refinenet_edu.datasets.download) against a loopback HTTP server.

The server (http.server in a thread, 127.0.0.1) serves small generated archives of the real
layout (VOCdevkit/VOC2012/..., benchmark_RELEASE/dataset/...) and misbehaves on request:
refused connections, 404, HTML pages, early-closed connections, ignored Range headers.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import io
import socket
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from refinenet_edu.cli import main
from refinenet_edu.datasets import download as dl
from refinenet_edu.datasets import voc2012, voc2012_aug
from refinenet_edu.datasets.download import ARCHIVES, DownloadError, download_dataset
from tooling.voc_shaped import make_voc_shaped


def tar_bytes(folder: Path, members: list[str], mode: str = "w") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tar:
        for m in members:
            tar.add(folder / m, arcname=m)
    return buf.getvalue()


@pytest.fixture(scope="module")
def archives(tmp_path_factory):
    src = make_voc_shaped(tmp_path_factory.mktemp("src"), train=3, val=2, sbd=2)
    (src / "VOCdevkit" / "README.txt").write_text("outside VOC2012/: must not be extracted\n")
    (src / "benchmark_RELEASE" / "benchmark_code_RELEASE").mkdir(exist_ok=True)
    (src / "benchmark_RELEASE" / "benchmark_code_RELEASE" / "x.m").write_text("% not the dataset\n")
    voc = tar_bytes(src, ["VOCdevkit/VOC2012", "VOCdevkit/README.txt"])
    sbd = tar_bytes(src, ["benchmark_RELEASE/dataset", "benchmark_RELEASE/benchmark_code_RELEASE"], "w:gz")
    return {"voc2012": voc, "sbd": sbd}


class Server:
    """Loopback HTTP server. Paths: /<mode>/<name> with mode good, html, html-octet, trunc, norange, 404."""

    def __init__(self, files: dict[str, bytes]):
        self.files = files
        self.log: list[tuple[str, str | None, int]] = []  # (path, Range header, body bytes sent)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                _, mode, name = self.path.split("/", 2)
                data = server.files[name]
                rng = self.headers.get("Range")
                sent = 0
                if mode == "404":
                    self.send_error(404, "Not Found")
                elif mode in ("html", "html-octet"):
                    body = b"<!DOCTYPE html><html><body>Access blocked by firewall policy</body></html>"
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html; charset=utf-8" if mode == "html" else
                                     "application/octet-stream")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    sent = len(body)
                else:
                    start = 0
                    if rng and mode != "norange":
                        start = int(rng.split("=")[1].split("-")[0])
                    if start >= len(data) and rng and mode != "norange":
                        self.send_error(416, "Range Not Satisfiable")
                    else:
                        body = data[start:]
                        self.send_response(206 if start else 200)
                        self.send_header("Content-Type", "application/x-tar")
                        self.send_header("Content-Length", str(len(body)))
                        if start:
                            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                        self.end_headers()
                        if mode == "trunc":
                            body = body[: len(body) // 2]
                            self.close_connection = True
                        self.wfile.write(body)
                        sent = len(body)
                server.log.append((self.path, rng, sent))

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def url(self, mode: str, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{mode}/{name}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(archives):
    s = Server(dict(archives))
    yield s
    s.close()


def refused_url() -> str:
    """A loopback port nobody listens on: connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/VOCtrainval_11-May-2012.tar"


def voc_archive(archives, *mirrors, md5=None) -> dl.Archive:
    """The real VOC 2012 entry (file name, layout, expected files) with loopback mirrors."""
    return dataclasses.replace(ARCHIVES["voc2012"], mirrors=tuple(mirrors),
                               md5=md5 or hashlib.md5(archives["voc2012"]).hexdigest())


def leftovers(root: Path) -> list[str]:
    """Temporary files or folders a failed or finished download must not leave behind."""
    return sorted(p.name for p in root.iterdir() if p.name.startswith(".") or p.name.endswith(".part"))


def test_first_mirror_down_then_404_then_a_good_one(archives, server, tmp_path):
    archive = voc_archive(archives, refused_url(), server.url("404", "voc2012"), server.url("good", "voc2012"))
    folder = download_dataset(archive, tmp_path, progress=False)
    assert folder == tmp_path / "VOCdevkit" / "VOC2012"
    assert len(voc2012(tmp_path, "val")) == 2 and len(voc2012(tmp_path, "train")) == 3
    assert not (tmp_path / "VOCdevkit" / "README.txt").exists()  # only VOCdevkit/VOC2012 is extracted
    assert (tmp_path / archive.filename).read_bytes() == archives["voc2012"]
    assert leftovers(tmp_path) == []
    # a second call finds the complete folder and does not touch the network
    n = len(server.log)
    assert download_dataset(archive, tmp_path, progress=False) == folder
    assert len(server.log) == n


def test_mirrors_answering_html_are_skipped(archives, server, tmp_path, capsys):
    archive = voc_archive(archives, server.url("html", "voc2012"), server.url("html-octet", "voc2012"),
                          server.url("good", "voc2012"))
    download_dataset(archive, tmp_path, progress=True)
    out = capsys.readouterr().out
    assert out.count("HTML page") == 2
    assert [p.split("/")[1] for p, _, _ in server.log] == ["html", "html-octet", "good"]
    assert len(voc2012(tmp_path, "val")) == 2 and leftovers(tmp_path) == []


def test_a_wrong_checksum_everywhere_leaves_nothing_and_says_what_to_do(archives, server, tmp_path):
    archive = voc_archive(archives, server.url("good", "voc2012"), md5="0" * 32)
    with pytest.raises(DownloadError) as err:
        download_dataset(archive, tmp_path, progress=False)
    text = str(err.value)
    assert "MD5" in text and "0" * 32 in text and "by hand" in text and "\n" not in text
    assert str(tmp_path / archive.filename) in text
    assert list(tmp_path.iterdir()) == []  # no archive, no .part, no dataset folder


def test_a_truncated_download_is_kept_and_resumed_with_a_range_request(archives, server, tmp_path):
    size = len(archives["voc2012"])
    with pytest.raises(DownloadError, match="closed after") as err:
        download_dataset(voc_archive(archives, server.url("trunc", "voc2012")), tmp_path, progress=False)
    part = tmp_path / (ARCHIVES["voc2012"].filename + ".part")
    assert "kept in" in str(err.value) and part.stat().st_size == size // 2
    assert not (tmp_path / "VOCdevkit").exists()

    download_dataset(voc_archive(archives, server.url("good", "voc2012")), tmp_path, progress=False)
    path, rng, sent = server.log[-1]
    assert rng == f"bytes={size // 2}-" and sent == size - size // 2  # only the missing bytes came
    assert len(voc2012(tmp_path, "train")) == 3 and leftovers(tmp_path) == []


def test_a_truncated_mirror_is_continued_by_the_next_one(archives, server, tmp_path):
    size = len(archives["voc2012"])
    download_dataset(voc_archive(archives, server.url("trunc", "voc2012"), server.url("good", "voc2012")),
                     tmp_path, progress=False)
    assert [(p.split("/")[1], r) for p, r, _ in server.log] == [("trunc", None), ("good", f"bytes={size // 2}-")]
    assert (tmp_path / ARCHIVES["voc2012"].filename).read_bytes() == archives["voc2012"]


def test_a_mirror_that_ignores_range_starts_over(archives, server, tmp_path):
    part = tmp_path / (ARCHIVES["voc2012"].filename + ".part")
    part.write_bytes(b"junk from another run")
    download_dataset(voc_archive(archives, server.url("norange", "voc2012")), tmp_path, progress=False)
    assert (tmp_path / ARCHIVES["voc2012"].filename).read_bytes() == archives["voc2012"]
    assert leftovers(tmp_path) == []


def test_an_archive_put_there_by_hand_is_checked_and_never_deleted(archives, tmp_path):
    path = tmp_path / ARCHIVES["voc2012"].filename
    path.write_bytes(archives["voc2012"][:1000])
    with pytest.raises(DownloadError, match="MD5 is .* delete it and run again"):
        download_dataset(voc_archive(archives, refused_url()), tmp_path, progress=False)
    assert path.stat().st_size == 1000 and not (tmp_path / "VOCdevkit").exists()
    path.write_bytes(archives["voc2012"])  # the right file: extracted without any mirror
    assert download_dataset(voc_archive(archives), tmp_path, progress=False).is_dir()


def test_a_truncated_archive_fails_cleanly(archives, tmp_path):
    damaged = archives["voc2012"][: len(archives["voc2012"]) * 2 // 3]
    (tmp_path / ARCHIVES["voc2012"].filename).write_bytes(damaged)
    archive = voc_archive(archives, md5=hashlib.md5(damaged).hexdigest())  # right checksum, broken tar
    with pytest.raises(DownloadError, match="damaged or truncated archive|has no|holds no"):
        download_dataset(archive, tmp_path, progress=False)
    assert not (tmp_path / "VOCdevkit" / "VOC2012").exists() and leftovers(tmp_path) == []


def test_a_half_extracted_folder_is_reported_and_left_alone(archives, tmp_path):
    half = tmp_path / "VOCdevkit" / "VOC2012" / "JPEGImages"
    half.mkdir(parents=True)
    (half / "mine.jpg").write_bytes(b"x")
    with pytest.raises(DownloadError, match="incomplete .*SegmentationClass.*left as it is"):
        download_dataset(voc_archive(archives, refused_url()), tmp_path, progress=False)
    assert [p.name for p in half.iterdir()] == ["mine.jpg"]


def test_a_full_disk_while_extracting_leaves_no_half_dataset(archives, tmp_path, monkeypatch):
    (tmp_path / ARCHIVES["voc2012"].filename).write_bytes(archives["voc2012"])
    real, calls = dl._extract_member, []

    def fill_up(tar, member, folder):
        calls.append(member.name)
        if len(calls) == 5:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(tar, member, folder)

    monkeypatch.setattr(dl, "_extract_member", fill_up)
    with pytest.raises(DownloadError, match="disk filled up while extracting"):
        download_dataset(voc_archive(archives), tmp_path, progress=False)
    assert not (tmp_path / "VOCdevkit" / "VOC2012").exists() and leftovers(tmp_path) == []
    assert (tmp_path / ARCHIVES["voc2012"].filename).is_file()  # the checked archive stays for the next try


def test_too_little_space_for_the_download_is_said_before_writing(archives, server, tmp_path, monkeypatch):
    monkeypatch.setattr(dl.shutil, "disk_usage", lambda path: type("U", (), {"free": 10})())
    with pytest.raises(DownloadError, match="not enough disk space"):
        download_dataset(voc_archive(archives, server.url("good", "voc2012")), tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_the_command_line_downloads_and_reports_errors_in_one_line(archives, server, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(ARCHIVES, "voc2012", voc_archive(archives, refused_url(), server.url("good", "voc2012")))
    assert main(["data", "--download", "voc2012", "--root", str(tmp_path / "a"), "--quiet"]) == 0
    assert "ready in" in capsys.readouterr().out
    assert len(voc2012(tmp_path / "a", "val")) == 2

    monkeypatch.setitem(ARCHIVES, "voc2012", voc_archive(archives, server.url("html", "voc2012")))
    assert main(["data", "--download", "voc2012", "--root", str(tmp_path / "b"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("refinenet-edu data: error:") and "\n" not in err and "Traceback" not in err
    assert "HTML page" in err and "by hand" in err
    assert main(["data", "--download", "voc2012"]) == 2
    assert "--root" in capsys.readouterr().err


def test_sbd_then_voc2012_aug_leaves_voc_val_out(archives, server, tmp_path, monkeypatch):
    pytest.importorskip("scipy")
    sbd = dataclasses.replace(ARCHIVES["sbd"], mirrors=(server.url("good", "sbd"),),
                              md5=hashlib.md5(archives["sbd"]).hexdigest())
    monkeypatch.setitem(ARCHIVES, "sbd", sbd)
    monkeypatch.setitem(ARCHIVES, "voc2012", voc_archive(archives, server.url("good", "voc2012")))
    train = voc2012_aug(tmp_path, "train", download=True)  # downloads both archives
    assert (tmp_path / "benchmark_RELEASE" / "dataset" / "cls").is_dir()
    assert not (tmp_path / "benchmark_RELEASE" / "benchmark_code_RELEASE").exists()
    voc_train, voc_val = voc2012(tmp_path, "train").ids, voc2012(tmp_path, "val").ids
    # SBD holds the first VOC train image, the first VOC val image and 2 extra ones
    assert train.ids == [*voc_train, "2008_000000", "2008_000001"]
    assert not set(train.ids) & set(voc_val)
    image, mask = train[len(voc_train)]  # an SBD image, read through torchvision's SBDataset
    assert image.shape[-2:] == mask.shape and int(mask.max()) < 21
    assert voc2012_aug(tmp_path, "val").ids == voc_val
