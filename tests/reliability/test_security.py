"""Nothing outside what a command was given is read, replaced or deleted (issue 16, findings 2-4).

Split files name ids inside the dataset folder only (``../x``, absolute paths
and symlinks out of the folder are reported by ``data --check`` with the line
and refused by the loader); ``data --force`` replaces only a folder the
generator made; ``predict`` never writes over an input and never gives two
outputs one name.
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from PIL import Image

from refinenet_edu.cli import main
from refinenet_edu.datasets import load_dataset
from refinenet_edu.datasets.voc import DatasetError


@pytest.fixture
def escaping_set(tiny_set, tmp_path):
    """A copy of tiny_set and an ``outside/secret`` image + mask next to it."""
    root = tmp_path / "set"
    shutil.copytree(tiny_set, root)
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(root / "JPEGImages" / "val_00000.jpg", outside / "secret.jpg")
    shutil.copy(root / "SegmentationClass" / "val_00000.png", outside / "secret.png")
    return root, outside


def _write_val(root, *lines):
    (root / "ImageSets" / "Segmentation" / "val.txt").write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("bad_id", ["../../outside/secret", "ABSOLUTE", "JPEGImages/../../outside/secret"])
def test_ids_that_leave_the_dataset_folder_are_reported_and_refused(escaping_set, bad_id, capsys):
    root, outside = escaping_set
    if bad_id == "ABSOLUTE":
        bad_id = str(outside / "secret")
    _write_val(root, "val_00000", bad_id)
    assert main(["data", "--check", str(root)]) == 1
    out = capsys.readouterr().out
    assert "val.txt" in out and "line 2" in out and bad_id in out and "outside the dataset folder" in out
    with pytest.raises(DatasetError, match="line 2"):
        load_dataset(root, "val")


def test_symlinks_out_of_the_folder_are_reported_and_refused(escaping_set, capsys):
    root, outside = escaping_set
    image = root / "JPEGImages" / "val_00001.jpg"
    image.unlink()
    os.symlink(outside / "secret.jpg", image)
    assert main(["data", "--check", str(root)]) == 1
    out = capsys.readouterr().out
    assert "val_00001.jpg" in out and "symlink" in out and "line 2" in out
    with pytest.raises(DatasetError, match="symlink"):
        load_dataset(root, "val")
    # a symlink that stays inside the folder is fine
    image.unlink()
    os.symlink(root / "JPEGImages" / "val_00000.jpg", image)
    assert main(["data", "--check", str(root)]) == 0
    assert len(load_dataset(root, "val")) == 2


def test_data_force_never_deletes_a_folder_it_did_not_make(tmp_path, capsys):
    thesis = tmp_path / "thesis"
    thesis.mkdir()
    (thesis / "thesis.tex").write_text("\\begin{document}")
    assert main(["data", "--out", str(thesis), "--count", "4", "--size", "32", "--force"]) == 2
    err = capsys.readouterr().err
    assert str(thesis) in err and "not made by" in err
    assert (thesis / "thesis.tex").read_text() == "\\begin{document}"


def test_data_force_replaces_a_set_it_made_but_not_a_file_added_to_it(tmp_path, capsys):
    out = tmp_path / "set"
    assert main(["data", "--out", str(out), "--count", "4", "--size", "32"]) == 0
    assert main(["data", "--out", str(out), "--count", "5", "--size", "32", "--seed", "1", "--force"]) == 0
    assert len((out / "ImageSets" / "Segmentation" / "train.txt").read_text().split()) == 4
    (out / "notes.txt").write_text("mine")
    capsys.readouterr()
    assert main(["data", "--out", str(out), "--count", "4", "--size", "32", "--force"]) == 2
    assert "notes.txt" in capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "mine"


def test_data_force_never_replaces_a_file(tmp_path, capsys):
    target = tmp_path / "afile"
    target.write_text("x")
    for extra in ([], ["--force"]):
        assert main(["data", "--out", str(target), "--count", "4", "--size", "32", *extra]) == 2
        assert "is a file" in capsys.readouterr().err
        assert target.read_text() == "x"


@pytest.fixture
def photos(tiny_set, tmp_path):
    """photo.jpg and photo.png (one stem, two files) in a folder of their own."""
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(tiny_set / "JPEGImages" / "val_00000.jpg", folder / "photo.jpg")
    Image.open(tiny_set / "JPEGImages" / "val_00001.jpg").save(folder / "photo.png")
    return folder


def test_predict_never_writes_over_an_input(tiny_checkpoint, photos, capsys):
    before = {p.name: p.read_bytes() for p in photos.iterdir()}
    assert main(["predict", str(tiny_checkpoint), str(photos), "--out", str(photos)]) == 2
    err = capsys.readouterr().err
    assert "input" in err and str(photos) in err
    assert {p.name: p.read_bytes() for p in photos.iterdir()} == before


def test_predict_gives_every_input_its_own_output(tiny_checkpoint, photos, tmp_path):
    out = tmp_path / "masks"
    assert main(["predict", str(tiny_checkpoint), str(photos), "--out", str(out)]) == 0
    masks = sorted(p.name for p in out.glob("*.png"))
    assert len(masks) == 2, masks
    assert sorted(p.name for p in (out / "overlays").glob("*.png")) == masks
    for name in masks:
        assert np.array(Image.open(out / name)).shape == (48, 48)


def test_predict_refuses_two_inputs_of_one_name_from_two_folders(tiny_checkpoint, photos, tmp_path, capsys):
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(photos / "photo.jpg", other / "photo.jpg")
    out = tmp_path / "masks"
    assert main(["predict", str(tiny_checkpoint), str(photos / "photo.jpg"), str(other / "photo.jpg"),
                 "--out", str(out)]) == 2
    assert "photo.jpg" in capsys.readouterr().err
    assert not out.exists()


def test_predict_replaces_only_what_predict_wrote(tiny_checkpoint, photos, tmp_path, capsys):
    """A user's own file in --out is never replaced; predict's own outputs are, by the next run."""
    out = tmp_path / "masks"
    out.mkdir()
    (out / "photo_jpg.png").write_text("my own picture")
    assert main(["predict", str(tiny_checkpoint), str(photos / "photo.jpg"), str(photos / "photo.png"),
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(out / "photo_jpg.png") in err and "not written by" in err, err
    assert (out / "photo_jpg.png").read_text() == "my own picture"
    assert sorted(p.name for p in out.iterdir()) == ["photo_jpg.png"]  # nothing else written

    again = tmp_path / "again"
    for _ in range(2):  # the second run replaces the first run's masks and overlays
        assert main(["predict", str(tiny_checkpoint), str(photos), "--out", str(again)]) == 0
    assert sorted(p.name for p in again.glob("*.png")) == ["photo_jpg.png", "photo_png.png"]
    assert sorted(p.name for p in (again / "overlays").glob("*.png")) == ["photo_jpg.png", "photo_png.png"]
