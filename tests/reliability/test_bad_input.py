"""Bad input is one line naming the option or file, exit 2, never a traceback (issue 16, finding 7).

Each case is a command line a user could type; ``--debug`` shows the
traceback. Nothing is written for a refused command.
"""

from __future__ import annotations

import pytest

from _reliability import tiny_ablate, tiny_train
from refinenet_edu.cli import main
from tooling.cli import main as tooling_main


def run(argv) -> int:
    """The library's refinenet-edu, or for ``bench`` the course's ./course (tooling/)."""
    command = tooling_main if argv[0] == "bench" else main
    try:
        return command([str(a) for a in argv])
    except SystemExit as stop:  # argparse's own errors
        return stop.code


def _set(argv, option, value):
    argv = list(argv)
    argv[argv.index(option) + 1] = str(value)
    return argv


BAD_OPTIONS = [
    ("train", "--subset", "0"), ("train", "--subset", "-1"), ("train", "--max-minutes", "-1"),
    ("train", "--lr", "inf"), ("train", "--lr", "nan"), ("train", "--lr", "-1"), ("train", "--epochs", "0"),
    ("train", "--batch-size", "0"), ("train", "--crop-size", "abc"),
    ("evaluate", "--subset", "0"), ("evaluate", "--subset", "-1"),
    ("ablate", "--subset", "0"), ("ablate", "--epochs", "0"), ("ablate", "--lr", "inf"), ("ablate", "--jobs", "0"),
    ("pretrain", "--lr", "inf"), ("pretrain", "--epochs", "0"),
    ("bench", "--iterations", "0"), ("bench", "--batch", "0"),
]


@pytest.mark.parametrize("command, option, value", BAD_OPTIONS)
def test_a_bad_option_value_is_one_line_naming_it(command, option, value, tiny_set, tiny_checkpoint, tmp_path, capsys):
    argv = {
        "train": tiny_train(tiny_set, tmp_path / "out"),
        "evaluate": ["evaluate", tiny_checkpoint, "--data", tiny_set, "--out", tmp_path / "out" / "e.json",
                     "--subset", "1"],
        "ablate": [*tiny_ablate(tiny_set, tmp_path / "out"), "--jobs", "1"],
        "pretrain": ["pretrain", "--data", tiny_set, "--out", tmp_path / "out" / "enc.pt", "--epochs", "1",
                     "--lr", "0.001"],
        "bench": ["bench", "--iterations", "1", "--batch", "1"],
    }[command]
    argv = _set(argv, option, value) if option in argv else [*argv, option, value]
    assert run(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and option in err and "Traceback" not in err, err
    assert not (tmp_path / "out").exists()


def test_a_missing_checkpoint_is_one_line(tiny_set, tmp_path, capsys):
    missing = tmp_path / "nowhere" / "best.pt"
    image = next((tiny_set / "JPEGImages").glob("*.jpg"))
    for argv in (["evaluate", missing, "--data", tiny_set], ["predict", missing, image, "--out", tmp_path / "p"]):
        assert run(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and str(missing) in err and "no such file" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # not even the checkpoint's folder was made


def test_an_output_of_the_wrong_kind_is_one_line(tiny_set, tiny_checkpoint, tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("mine")
    folder = tmp_path / "folder"
    folder.mkdir()
    image = next((tiny_set / "JPEGImages").glob("*.jpg"))
    cases = [
        (tiny_train(tiny_set, afile), "is a file"),
        (["predict", tiny_checkpoint, image, "--out", afile], "is a file"),
        ([*tiny_ablate(tiny_set, afile)], "is a file"),
        (["evaluate", tiny_checkpoint, "--data", tiny_set, "--out", folder, "--quiet"], "is a folder"),
        (["pretrain", "--data", tiny_set, "--out", folder], "is a folder"),
        (["evaluate", tiny_checkpoint, "--data", tiny_set, "--out", tmp_path / "e.json",
          "--save-predictions", afile, "--quiet"], "is a file"),
    ]
    for argv, expected in cases:
        assert run(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and expected in err and "Traceback" not in err, err
    assert afile.read_text() == "mine" and list(folder.iterdir()) == []


def test_resume_without_a_run_is_one_line(tiny_set, tmp_path, capsys):
    assert run([*tiny_train(tiny_set, tmp_path / "none"), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "last.pt" in err and str(tmp_path / "none") in err and "Traceback" not in err


def test_debug_shows_the_traceback(tmp_path, capsys):
    assert run(["--debug", "evaluate", tmp_path / "nope.pt"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().endswith("in its --out folder)")


def test_a_bug_is_one_line_asking_for_debug(monkeypatch, tmp_path, capsys):
    import refinenet_edu.cli.predict as predict

    def broken(*args):
        raise KeyError("boom")

    monkeypatch.setattr(predict, "_image_files", broken)
    (tmp_path / "c.pt").write_bytes(b"x")
    assert run(["predict", tmp_path / "c.pt", tmp_path]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error" in err and "--debug" in err and "Traceback" not in err


def test_a_batch_too_small_for_batch_norm_is_one_line(tiny_set, tmp_path, capsys):
    """Batch 1 of 32 px crops: torch's batch norm wording became a clear message naming the two options."""
    assert run(_set(tiny_train(tiny_set, tmp_path / "out"), "--batch-size", 1)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert "--batch-size 2 or more" in err and "--crop-size 64 or more" in err and "1x1" in err, err
    assert not (tmp_path / "out").exists()  # refused before the first epoch: no empty folder left behind


def test_a_crop_too_large_for_memory_is_one_line(tiny_set, tmp_path, capsys):
    """A crop whose batch cannot be allocated: the out-of-memory advice, not the allocator's internals."""
    assert run(_set(tiny_train(tiny_set, tmp_path / "out"), "--crop-size", 200_000)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and "alloc_cpu" not in err, err
    assert "out of memory" in err and "--crop-size" in err, err
    assert not (tmp_path / "out").exists()
