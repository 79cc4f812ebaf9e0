"""Atomic writes: the old file or the new one, never half of either."""

from __future__ import annotations

import stat

import pytest

from refinenet_edu.files import atomic_write, atomic_write_json, atomic_write_text


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = atomic_write_text(tmp_path / "a.txt", "old")

    def crash(f):
        f.write(b"half")
        raise RuntimeError("power cut")

    with pytest.raises(RuntimeError, match="power cut"):
        atomic_write(target, crash)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_new_files_are_world_readable_and_replacements_keep_their_mode(tmp_path):
    path = atomic_write_json(tmp_path / "sub" / "r.json", {"x": 1})
    assert path.read_text() == '{\n  "x": 1\n}\n'
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    path.chmod(0o600)
    atomic_write_text(path, "again")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
