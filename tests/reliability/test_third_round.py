"""Reliability, third round (issue 28): data loss (L), silent or wrong results (S), tracebacks (T), unclear
messages (U). One test (or a few) per numbered case of the issue; each failed on the code before its fix."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import tarfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from _reliability import cli, tiny_ablate, tiny_train  # noqa: F401
from refinenet_edu.cli import main
from tooling.cli import main as tooling_main


def one_line_error(err: str, command: str, prog: str = "refinenet-edu") -> str:
    err = err.strip()
    assert err.startswith(f"{prog} {command}: error:"), err
    assert "\n" not in err and "Traceback" not in err and "internal error" not in err, err
    return err


# ---------------------------------------------------------------- L1: two downloads into one --root
class SlowServer:
    """Loopback server (127.0.0.1) of one archive that holds its answer until ``go`` is set."""

    def __init__(self, data: bytes):
        self.go = threading.Event()
        self.asked = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.asked.set()
                server.go.wait(30)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-tar")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/VOCtrainval_11-May-2012.tar"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self):
        self.go.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def test_L1_a_refused_second_download_leaves_the_first_ones_part_alone(tmp_path):
    from refinenet_edu.datasets import download as dl
    from tooling.voc_shaped import make_voc_shaped

    src = make_voc_shaped(tmp_path / "src", train=2, val=1)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(src / "VOCdevkit" / "VOC2012", arcname="VOCdevkit/VOC2012")
    data = buf.getvalue()
    server = SlowServer(data)
    archive = dataclasses.replace(dl.ARCHIVES["voc2012"], mirrors=(server.url,), md5=hashlib.md5(data).hexdigest())
    root = tmp_path / "root"
    first: dict = {}

    def download():
        try:
            first["folder"] = dl.download_dataset(archive, root, progress=False)
        except Exception as err:  # noqa: BLE001 - reported by the assertion below
            first["error"] = err

    thread = threading.Thread(target=download)
    thread.start()
    try:
        assert server.asked.wait(30)  # the first run holds its (still empty) .part and waits for the bytes
        with pytest.raises(dl.DownloadError, match="another download of this file is running"):
            dl.download_dataset(archive, root, progress=False)
        assert (root / (archive.filename + ".part")).is_file()  # the first run's file is still there
    finally:
        server.go.set()
        thread.join(30)
        server.close()
    assert "error" not in first, first.get("error")
    assert first["folder"] == root / "VOCdevkit" / "VOC2012" and (first["folder"] / "JPEGImages").is_dir()


def test_U22_a_failed_download_leaves_no_empty_root(tmp_path, monkeypatch):
    from refinenet_edu.datasets import download as dl

    monkeypatch.setitem(dl.ARCHIVES, "voc2012", dataclasses.replace(dl.ARCHIVES["voc2012"], mirrors=()))
    root = tmp_path / "new" / "root"
    assert main(["data", "--download", "voc2012", "--root", str(root), "--quiet"]) == 2
    assert not (tmp_path / "new").exists()


# ---------------------------------------------------------------- L2: predict a second folder into one --out
def test_L2_predict_never_replaces_the_prediction_of_another_image(tiny_set, tiny_checkpoint, tmp_path, capsys):
    import shutil

    images = sorted((tiny_set / "JPEGImages").glob("*.jpg"))
    (tmp_path / "in1").mkdir()
    (tmp_path / "in2").mkdir()
    shutil.copy(images[0], tmp_path / "in1" / "a0.jpg")
    shutil.copy(images[1], tmp_path / "in2" / "a0.jpg")
    out = tmp_path / "out"
    assert main(["predict", str(tiny_checkpoint), str(tmp_path / "in1"), "--out", str(out)]) == 0
    before = {p: p.read_bytes() for p in (out / "a0.png", out / "overlays" / "a0.png")}
    assert main(["predict", str(tiny_checkpoint), str(tmp_path / "in1"), "--out", str(out)]) == 0  # the same image
    capsys.readouterr()
    assert main(["predict", str(tiny_checkpoint), str(tmp_path / "in2"), "--out", str(out)]) == 2
    err = one_line_error(capsys.readouterr().err, "predict")
    assert "a0.png" in err and "in1" in err and "another image" in err
    assert {p: p.read_bytes() for p in before} == before


def test_U22_predict_writes_nothing_for_a_refused_checkpoint(tiny_set, tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    image = next((tiny_set / "JPEGImages").glob("*.jpg"))
    assert main(["predict", str(bad), str(image), "--out", str(tmp_path / "out")]) == 2
    one_line_error(capsys.readouterr().err, "predict")
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- L3: course site over its own site
def test_L3_course_site_keeps_what_a_person_added_or_edited_in_its_site(tmp_path, capsys):
    from tooling.notebooks import find_notebooks
    from tooling.links import project_root

    notebook = find_notebooks(project_root() / "notebooks")[1]
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    (nbs / notebook.name).write_bytes(notebook.read_bytes())
    out = tmp_path / "site"
    args = ["site", "--dir", str(nbs), "--out", str(out)]
    assert tooling_main(args) == 0
    assert tooling_main(args) == 0  # its own site, unchanged: rebuilt
    (out / "user.txt").write_text("mine")
    (out / "mydir").mkdir()
    (out / "mydir" / "notes.md").write_text("mine too")
    capsys.readouterr()
    assert tooling_main(args) == 2
    err = one_line_error(capsys.readouterr().err, "site", "./course")
    assert "mydir" in err and "added or edited" in err
    assert (out / "user.txt").read_text() == "mine" and (out / "mydir" / "notes.md").read_text() == "mine too"
    (out / "user.txt").unlink()
    (out / "mydir" / "notes.md").unlink()
    (out / "mydir").rmdir()
    page = out / f"{notebook.stem}.html"
    page.write_text(page.read_text(encoding="utf-8") + "<!-- my note -->", encoding="utf-8")
    assert tooling_main(args) == 2
    assert page.name in one_line_error(capsys.readouterr().err, "site", "./course")
    assert page.read_text(encoding="utf-8").endswith("<!-- my note -->")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nbs", "site"]  # no half-built site left beside it


# ---------------------------------------------------------------- L4: assignments release over a folder
def test_L4_release_never_deletes_or_replaces_what_a_student_changed(tmp_path, capsys):
    name = "02_chained_residual_pooling"
    out = tmp_path / "handout"
    args = ["assignments", "release", name, "--out", str(out), "--no-db"]
    assert tooling_main(args) == 0
    assert tooling_main(args) == 0  # its own release, unchanged: replaced
    (out / name / "my_answers.txt").write_text("mine")
    capsys.readouterr()
    assert tooling_main(args) == 2
    err = one_line_error(capsys.readouterr().err, "assignments", "./course")
    assert "my_answers.txt" in err and "added or edited" in err
    assert (out / name / "my_answers.txt").read_text() == "mine"
    (out / name / "my_answers.txt").unlink()
    notebook = out / name / f"{name}.ipynb"
    notebook.write_text(notebook.read_text(encoding="utf-8").replace("NotImplementedError", "NotImplementedError  # mine"),
                        encoding="utf-8")
    edited = notebook.read_text(encoding="utf-8")
    assert tooling_main(args) == 2
    assert notebook.name in one_line_error(capsys.readouterr().err, "assignments", "./course")
    assert notebook.read_text(encoding="utf-8") == edited
    mine = tmp_path / "mine"  # a folder of the assignment's name that the command did not release
    (mine / name).mkdir(parents=True)
    (mine / name / "notes.txt").write_text("mine")
    assert tooling_main(["assignments", "release", name, "--out", str(mine), "--no-db"]) == 2
    assert "was not released by this command" in one_line_error(capsys.readouterr().err, "assignments", "./course")
    assert (mine / name / "notes.txt").read_text() == "mine"


# ---------------------------------------------------------------- S5: train --resume with other data
def test_S5_resume_refuses_another_training_set_and_another_num_workers(tiny_set, tmp_path, capsys):
    from refinenet_edu.datasets import generate_dataset

    other = generate_dataset(tmp_path / "other", seed=6, size=48, train_count=12, val_count=2)
    out = tmp_path / "run"
    assert main(tiny_train(tiny_set, out)) == 0
    last = (out / "last.pt").read_bytes()
    capsys.readouterr()
    assert main([*tiny_train(other, out), "--resume"]) == 2
    err = one_line_error(capsys.readouterr().err, "train")
    assert "another training set" in err and "last.pt" in err
    assert main([*tiny_train(tiny_set, out), "--resume", "--num-workers", "1"]) == 2
    assert "--num-workers 1 (the run has 0)" in one_line_error(capsys.readouterr().err, "train")
    assert (out / "last.pt").read_bytes() == last
    assert "another value gives other losses" in " ".join(cli("train", "--help").stdout.split())


# ---------------------------------------------------------------- S6: masks that are all "ignore"
@pytest.fixture
def unlabelled_set(tmp_path):
    """A dataset whose training masks are all the ignore label 255."""
    import numpy as np
    from PIL import Image

    from refinenet_edu.datasets import generate_dataset

    root = generate_dataset(tmp_path / "unlabelled", seed=7, size=48, train_count=4, val_count=2)
    for sample_id in (root / "ImageSets" / "Segmentation" / "train.txt").read_text().split():
        path = root / "SegmentationClass" / f"{sample_id}.png"
        with Image.open(path) as im:
            blank = Image.fromarray(np.full((im.height, im.width), 255, np.uint8), mode="P")
            blank.putpalette(im.getpalette())
        blank.save(path)
    return root


def test_S6_a_training_split_without_a_labelled_pixel_is_refused_before_training(unlabelled_set, tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*tiny_train(unlabelled_set, out), "--loss", "focal"]) == 2
    err = one_line_error(capsys.readouterr().err, "train")
    assert "no labelled pixel" in err and "unlabelled" in err
    assert not out.exists()
    ab = tmp_path / "ab"
    assert main(tiny_ablate(unlabelled_set, ab)) == 2
    err = one_line_error(capsys.readouterr().err, "ablate")
    assert "no labelled pixel" in err and "training split" in err
    assert not ab.exists()  # U22: no results file of 0 runs
    assert main(["data", "--check", str(unlabelled_set)]) == 1
    report = capsys.readouterr().out
    assert "train.txt: split 'train': no labelled pixel" in report and "split 'val'" not in report


# ---------------------------------------------------------------- S7: a launch-links block without its end
def test_S7_a_broken_launch_links_block_is_refused_naming_the_file(tmp_path, monkeypatch, capsys):
    import shutil

    from tooling import links as hosted

    root = tmp_path / "fork"
    (root / "notebooks").mkdir(parents=True)
    for name in ("pyproject.toml", "README.md", "CITATION.cff"):
        shutil.copy(hosted.project_root() / name, root / name)
    notebook = next((hosted.project_root() / "notebooks").glob("02_*.ipynb"))
    path = root / "notebooks" / notebook.name
    text = notebook.read_text(encoding="utf-8")
    assert hosted.LINKS_END in text
    path.write_text(text.replace(hosted.LINKS_END, ""), encoding="utf-8")
    monkeypatch.setattr(hosted, "project_root", lambda: root)
    assert tooling_main(["links"]) == 2
    assert str(path) in one_line_error(capsys.readouterr().err, "links", "./course")
    assert path.read_text(encoding="utf-8").count("<!-- launch-links") == 1  # no second block
    assert tooling_main(["links", "--check"]) == 2
    assert "launch-links block is broken" in one_line_error(capsys.readouterr().err, "links", "./course")
    assert tooling_main(["check", "--dir", str(root / "notebooks"), path.name]) == 1
    assert "launch-links block is broken" in capsys.readouterr().out


# ---------------------------------------------------------------- S8: data --out a symlink --force
def test_S8_data_refuses_a_symlink_out_and_keeps_link_and_target(tmp_path, capsys):
    from refinenet_edu.datasets import generate_dataset

    target = generate_dataset(tmp_path / "real", seed=1, size=32, train_count=2, val_count=1)
    before = sorted(p.relative_to(target) for p in target.rglob("*"))
    link = tmp_path / "link"
    link.symlink_to(target)
    assert main(["data", "--out", str(link), "--force", "--count", "4", "--size", "32"]) == 2
    err = one_line_error(capsys.readouterr().err, "data")
    assert "is a symbolic link" in err and str(target) in err
    assert link.is_symlink() and sorted(p.relative_to(target) for p in target.rglob("*")) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "real"]


# ---------------------------------------------------------------- T9, U16: out of memory, unknown devices
CPU_ALLOCATOR = ("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: you tried to "
                 "allocate 1600000000000 bytes. Error code 12 (Cannot allocate memory)")


@pytest.mark.parametrize("command, failure, advice", [
    ("evaluate", RuntimeError(CPU_ALLOCATOR), "--scales"),
    ("bench", RuntimeError(CPU_ALLOCATOR), "--input-size"),
    ("data", MemoryError("Unable to allocate 37.3 GiB for an array"), "--size"),  # U16
    ("train", RuntimeError(CPU_ALLOCATOR), "--batch-size"),
])
def test_T9_U16_running_out_of_memory_is_one_line_with_the_commands_own_options(command, failure, advice, capsys):
    from refinenet_edu.cli.errors import run_command

    def run():
        raise failure

    assert run_command(command, run) == 2
    err = one_line_error(capsys.readouterr().err, command)
    assert "out of memory" in err and advice in err
    if command == "data":
        assert "--batch-size" not in err and "--crop-size" not in err


def test_T9_bench_names_an_unknown_device_like_every_command(capsys):
    assert tooling_main(["bench", "--devices", "tpu", "--smoke", "--quiet"]) == 2
    assert "device='tpu': expected" in one_line_error(capsys.readouterr().err, "bench", "./course")


# ---------------------------------------------------------------- T10: a results.json of another shape
@pytest.mark.parametrize("content", ["[1, 2]", '{"format": "refinenet-edu-ablation", "runs": {"a": 1}}'])
def test_T10_ablate_names_a_results_file_of_another_shape(content, tiny_set, tmp_path, capsys):
    out = tmp_path / "ab"
    out.mkdir()
    (out / "results.json").write_text(content)
    assert main(tiny_ablate(tiny_set, out)) == 2
    err = one_line_error(capsys.readouterr().err, "ablate")
    assert str(out / "results.json") in err and "not an ablation results file" in err
    assert (out / "results.json").read_text() == content


# ---------------------------------------------------------------- T11: a full disk under torch.save
def test_T11_a_full_disk_while_torch_save_writes_is_one_line_naming_the_file(tmp_path, monkeypatch, capsys):
    import errno
    import os

    import torch

    from refinenet_edu.cli.errors import run_command
    from refinenet_edu.files import atomic_write

    real_fdopen = os.fdopen

    class Full:
        def __init__(self, f):
            self.f, self.written = f, 0

        def write(self, data):
            self.written += len(data)
            if self.written > 2000:
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.f.write(data)

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    monkeypatch.setattr(os, "fdopen", lambda fd, mode="r", *a, **k: Full(real_fdopen(fd, mode, *a, **k)))
    target = tmp_path / "last.pt"
    assert run_command("train", lambda: atomic_write(target, lambda f: torch.save({"w": torch.zeros(10_000)}, f))) == 2
    err = one_line_error(capsys.readouterr().err, "train")
    assert "no space left on device" in err and str(target) in err and "unexpected pos" not in err
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- T12: Ctrl-C and SIGTERM from the start
@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc to see torch being loaded")
@pytest.mark.parametrize("sig, status, word", [("SIGINT", 130, "interrupted"), ("SIGTERM", 143, "terminated")])
def test_T12_a_signal_while_torch_loads_is_one_line(sig, status, word, tiny_set, tmp_path):
    import signal

    from _reliability import popen

    proc = popen(*tiny_train(tiny_set, tmp_path / "run"))
    maps = Path(f"/proc/{proc.pid}/maps")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:  # until torch's library is being loaded
        try:
            if "libtorch" in maps.read_text():
                break
        except OSError:
            pass
        time.sleep(0.01)
    proc.send_signal(getattr(signal, sig))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == status, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith("refinenet-edu train: ") and word in err


# ---------------------------------------------------------------- T13: a bad image read by a loader worker
def test_T13_a_corrupt_image_read_in_a_loader_worker_is_its_own_one_line_message(tiny_set, tmp_path, capsys):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(tiny_set, data)
    image = sorted((data / "JPEGImages").glob("train_*.jpg"))[0]
    image.write_bytes(image.read_bytes()[:100])  # truncated
    assert main([*tiny_train(data, tmp_path / "run"), "--num-workers", "2"]) == 2
    err = one_line_error(capsys.readouterr().err, "train")
    assert image.name in err and "DataLoader worker" not in err


# ---------------------------------------------------------------- U21: unreadable checkpoints, never loaded unsafely
class _WritesAFile:
    """What a crafted pickle holds: unpickling it would call ``Path.touch`` (run code)."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (Path.touch, (Path(self.target),))


def _torch_files(folder: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, what the message must call it) for files torch's safe loader refuses."""
    import json
    import pickle
    import zipfile

    import torch

    files = {}
    for protocol in (2, 4):  # protocol 4 pickles also made torch warn about the protocol
        path = folder / f"crafted{protocol}.pt"
        path.write_bytes(pickle.dumps({"model": _WritesAFile(folder / "written")}, protocol=protocol))
        files[path.name] = (path, "a pickle that holds objects other than tensors and plain data")
    path = folder / "history.json"
    path.write_text(json.dumps({"epoch": 1}))
    files[path.name] = (path, "it is a JSON file")
    good = folder / "good.pt"
    torch.save({"w": torch.zeros(1000)}, good)
    path = folder / "truncated.pt"
    path.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    files[path.name] = (path, "a truncated or damaged zip archive")
    path = folder / "other.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("other/notes.txt", "not a checkpoint")
    files[path.name] = (path, "a zip archive without data.pkl")
    return files


@pytest.mark.parametrize("name", ["crafted2.pt", "crafted4.pt", "history.json", "truncated.pt", "other.zip"])
def test_U21_an_unreadable_checkpoint_says_what_it_is_and_never_advises_unsafe_loading(name, tiny_set, tmp_path,
                                                                                        capsys, recwarn):
    path, what = _torch_files(tmp_path)[name]
    assert main(["evaluate", str(path), "--data", str(tiny_set), "--quiet"]) == 2
    err = one_line_error(capsys.readouterr().err, "evaluate")
    assert str(path) in err and what in err and "refused" in err
    assert "weights_only" not in err and "trusted source" not in err
    assert not (tmp_path / "written").exists()  # no pickled code ran
    assert not [w for w in recwarn if "pickle protocol" in str(w.message)]  # torch's warning is not shown


@pytest.mark.parametrize("name", ["crafted4.pt", "history.json"])
def test_U21_encoder_and_port_weights_are_read_the_same_safe_way(name, tmp_path):
    from refinenet_edu.nn.encoders import ResNetEncoder
    from refinenet_edu.nn.port_weights import load_port_weights

    path, what = _torch_files(tmp_path)[name]
    for load in (lambda: ResNetEncoder("resnet18", weights=str(path), width=8), lambda: load_port_weights(path)):
        with pytest.raises(ValueError) as info:
            load()
        assert str(path) in str(info.value) and what in str(info.value) and "weights_only" not in str(info.value)
    assert not (tmp_path / "written").exists()


# ---------------------------------------------------------------- U19: a blown-up epoch is not a good checkpoint
@pytest.mark.parametrize("subset, blown", [(8, 1), (4, 2)])  # 2 steps an epoch: epoch 1 blows up; 1 step: epoch 2
def test_U19_train_flags_a_blown_up_epoch_by_the_statistics_rule_and_never_keeps_it_as_best(subset, blown, tiny_set,
                                                                                           tmp_path, capsys):
    import json

    from refinenet_edu.engine.checkpoints import load_checkpoint
    from refinenet_edu.experiments.comparison import diverged

    out = tmp_path / "run"
    assert main(tiny_train(tiny_set, out, "--epochs", 3, "--optimizer", "sgd", "--lr", 1, "--subset", subset)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    history = json.loads((out / "history.json").read_text())
    assert diverged({"history": history}) == blown  # the rule of the ablation statistics ...
    loss = history[blown - 1]["loss"]
    warning = [line for line in err if line.startswith("warning:")]
    assert len(warning) == 1 and f"epoch {blown}: training loss {loss:.4g}" in warning[0]  # ... is training's
    assert "never written as best.pt" in warning[0]
    error = one_line_error(err[-1], "train")
    assert "The last good checkpoint" not in error and "had already diverged" in error
    if blown == 1:
        assert not (out / "best.pt").exists() and "no good checkpoint was written" in error
    else:
        assert load_checkpoint(out / "best.pt")["epoch"] == blown - 2  # 0-based: the epoch before the blow-up
        assert f"best.pt (epoch {blown - 1}) holds the best epoch that did not" in error


def test_U19_one_rule_counts_the_first_batch_as_the_lowest_before_epoch_1():
    from refinenet_edu.engine.divergence import first_loss_jump
    from refinenet_edu.experiments.comparison import diverged

    assert diverged({"history": [{"epoch": 1, "initial_loss": 3.0, "loss": 4.4e29}]}) == 1
    assert diverged({"history": [{"epoch": 1, "initial_loss": 3.0, "loss": 2.9}, {"epoch": 2, "loss": 2.5}]}) is None
    assert diverged({"history": [{"epoch": 1, "loss": 4.4e29}]}) is None  # results files of before: no first batch
    assert first_loss_jump([{"epoch": 1, "loss": 1.0}, {"epoch": 2, "loss": 11.0}]).lowest == 1.0


# ---------------------------------------------------------------- T14: a hanging notebook
def _hanging_notebook(folder: Path) -> Path:
    """01_hang.ipynb: a heading, one quick cell, then a cell that marks that it started and sleeps."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Hang"), nbformat.v4.new_code_cell("x = 1"),
                nbformat.v4.new_code_cell(f"import pathlib, time\npathlib.Path({str(folder / 'started')!r}).touch()\n"
                                          "time.sleep(120)")]
    folder.mkdir(exist_ok=True)
    path = folder / "01_hang.ipynb"
    nbformat.write(nb, path)
    return path


def test_T14_a_cell_over_the_time_limit_is_one_line_naming_notebook_cell_and_limit(tmp_path, capfd):
    path = _hanging_notebook(tmp_path / "nbs")
    before = path.read_bytes()
    assert tooling_main(["execute", "--dir", str(path.parent), "--timeout", "2"]) == 1
    err = capfd.readouterr().err.strip()  # the file descriptor: the kernel's own stderr included
    assert "\n" not in err and "Traceback" not in err and "Error" not in err and "---" not in err, err
    assert err.startswith("01_hang.ipynb: FAILED") and "cell 3 (code cell 2)" in err and "time limit of 2 s" in err
    assert path.read_bytes() == before


@pytest.mark.parametrize("sig, status, word", [("SIGTERM", 143, "terminated"), ("SIGINT", 130, "interrupted")])
def test_T14_a_signal_while_a_notebook_runs_stops_the_command_in_one_line(sig, status, word, tmp_path):
    import signal

    from _reliability import popen

    path = _hanging_notebook(tmp_path / "nbs")
    before = path.read_bytes()
    proc = popen("execute", "--dir", path.parent, "--timeout", "100", module="tooling")
    deadline = time.monotonic() + 90
    while not (path.parent / "started").exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    assert (path.parent / "started").exists()
    proc.send_signal(getattr(signal, sig))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == status, err
    assert len(err.strip().splitlines()) == 1 and err.startswith(f"./course execute: {word}"), err
    assert path.read_bytes() == before


# ---------------------------------------------------------------- U15: a folder, a file or a dangling link in the way
def test_U15_a_folder_where_a_file_should_be_is_named_as_a_folder(tiny_set, tiny_checkpoint, tmp_path, capsys):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(tiny_set, data)
    split = data / "ImageSets" / "Segmentation" / "val.txt"
    split.unlink()
    split.mkdir()
    assert main(tiny_train(data, tmp_path / "run")) == 2
    err = one_line_error(capsys.readouterr().err, "train")
    assert "split file for 'val': is a folder (a directory)" in err and "not found" not in err
    for command in (["evaluate", str(tmp_path), "--data", str(tiny_set)],
                    ["predict", str(tmp_path), str(tiny_set / "JPEGImages"), "--out", str(tmp_path / "p")]):
        assert main(command) == 2
        err = one_line_error(capsys.readouterr().err, command[0])
        assert f"checkpoint {tmp_path}: is a folder (a directory)" in err and "no such file" not in err
    from refinenet_edu.engine.checkpoints import load_checkpoint

    with pytest.raises(IsADirectoryError, match="is a folder"):
        load_checkpoint(tmp_path)


@pytest.mark.parametrize("command", ["train", "evaluate", "data"])
def test_U15_an_output_under_a_file_or_at_a_dangling_link_says_so(command, tiny_set, tiny_checkpoint, tmp_path, capsys):
    (tmp_path / "afile").write_text("mine")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")

    def args(out):
        return {"train": tiny_train(tiny_set, out),
                "evaluate": ["evaluate", str(tiny_checkpoint), "--data", str(tiny_set), "--quiet", "--out", str(out)],
                "data": ["data", "--out", str(out), "--count", "4", "--size", "32"]}[command]

    assert main(args(tmp_path / "afile" / "out")) == 2
    err = one_line_error(capsys.readouterr().err, command)
    assert "a part of the path is a file" in err and "already exists" not in err and str(tmp_path / "afile") in err
    out = tmp_path / "dangling" / "x.json" if command == "evaluate" else tmp_path / "dangling"
    assert main(args(out)) == 2
    err = one_line_error(capsys.readouterr().err, command)
    assert "dangling link" in err and "already exists" not in err
    assert (tmp_path / "afile").read_text() == "mine" and (tmp_path / "dangling").is_symlink()
    assert not (tmp_path / "nowhere").exists()


# ---------------------------------------------------------------- U17: where the results are, not a guess
def test_U17_a_missing_results_file_suggests_only_a_folder_that_holds_results(tmp_path, capsys):
    (tmp_path / "ab").mkdir()
    assert tooling_main(["retime", "--out", str(tmp_path / "ab" / "nonexist"), "--device", "cpu"]) == 2
    err = one_line_error(capsys.readouterr().err, "retime", "./course")
    assert "no ablation results there" in err and f"--out {tmp_path / 'ab'}" not in err and "run it first" in err
    (tmp_path / "ab" / "results.json").write_text('{"format": "refinenet-edu-ablation"}')
    for out in (tmp_path / "ab" / "nonexist", tmp_path):  # the folder above, a folder below
        assert tooling_main(["retime", "--out", str(out), "--device", "cpu"]) == 2
        assert f"results are in --out {tmp_path / 'ab'}" in one_line_error(capsys.readouterr().err, "retime", "./course")


# ---------------------------------------------------------------- U18: encoder weights holding inf
def test_U18_encoder_weights_holding_inf_are_refused_when_loaded_naming_the_file(tiny_set, tmp_path, capsys):
    import torch

    from refinenet_edu.experiments.pretraining import save_encoder
    from refinenet_edu.nn.encoders import ResNetEncoder

    enc = tmp_path / "enc.pt"
    save_encoder(ResNetEncoder("resnet18", width=8), enc, {})  # (it refuses to write inf itself)
    state = torch.load(enc, weights_only=True)
    state["layer2.0.conv1.weight"][0, 0, 0, 0] = float("inf")
    torch.save(state, enc)
    ab = tmp_path / "ab"
    for command, args in (("ablate", [*tiny_ablate(tiny_set, ab), "--encoder-weights", str(enc)]),
                          ("train", [*tiny_train(tiny_set, tmp_path / "run"), "--weights", str(enc)])):
        assert main(args) == 2
        err = one_line_error(capsys.readouterr().err, command)
        assert f"encoder weights {enc}" in err and "layer2.0.conv1.weight" in err and "inf or NaN" in err, err
        assert "learning rate" not in err
    assert not ab.exists() and not (tmp_path / "run").exists()


# ---------------------------------------------------------------- U20: notebooks whose names break the rule
def test_U20_no_numbered_notebook_states_the_naming_rule_and_the_names_found(tmp_path, capsys):
    import nbformat

    for name in ("01_Einführung.ipynb", "02_größe.ipynb"):
        nbformat.write(nbformat.v4.new_notebook(), tmp_path / name)
    for action in ("execute", "check"):
        assert tooling_main([action, "--dir", str(tmp_path)]) == 2
        err = one_line_error(capsys.readouterr().err, action, "./course")
        assert "two digits, an underscore, then ASCII letters" in err
        assert "'01_Einführung.ipynb', '02_größe.ipynb'" in err
