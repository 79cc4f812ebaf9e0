"""The stored VOC-shaped sample (``data/voc-shaped-sample``, which notebook 10 reads) is what ``tooling/voc_shaped.py``
writes with the arguments ``SAMPLE``, so that the two cannot drift apart.

The sample is written again into a temporary folder by the command its README names and compared file by file:
the same file names; the split lists byte for byte; the masks (PNG) and SBD's masks (MATLAB files) by their decoded
contents, exactly. Bytes would be too strict for those two: a PNG's bytes depend on the zlib and Pillow that
compressed it (the pixels and the palette do not), and a MAT file's header holds the time it was written, so its bytes
differ on every write. The images (JPEG) are compared by their decoded pixels, as tests/datasets/test_synthetic.py
compares SynthScenes: a libjpeg build other than the one that wrote them may round a little differently (the
tolerance is half a grey level on average), while a drifted generator changes them by far more (measured on the first
image: another seed, 33 grey levels; a JPEG quality of 92 instead of 90, 7).
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy.io import loadmat

from tooling import voc_shaped
from tooling.voc_shaped import SAMPLE_FOLDER


def _files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def _decode(path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), np.int16)


def test_the_stored_sample_is_what_the_generator_writes(tmp_path, capsys):
    fresh = tmp_path / "sample"
    assert voc_shaped.main([str(fresh)]) == 0
    assert "train=4, val=2, sbd=2, seed=0" in capsys.readouterr().out
    stored = _files(SAMPLE_FOLDER)
    assert stored == sorted(["README.md", *_files(fresh)])
    assert len(stored) == 1 + (6 + 6 + 3) + (4 + 4 + 2)  # README; VOC: images, masks, lists; SBD: the same
    errors = []
    for name in stored:
        old, new = SAMPLE_FOLDER / name, fresh / name
        if name.endswith(".txt"):
            assert old.read_bytes() == new.read_bytes(), name
        elif name.endswith(".png"):
            with Image.open(old) as a, Image.open(new) as b:
                assert a.mode == b.mode == "P", name
                np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=name)
                assert a.getpalette() == b.getpalette(), name
        elif name.endswith(".mat"):
            a, b = (loadmat(p)["GTcls"][0, 0] for p in (old, new))
            for field in ("Segmentation", "CategoriesPresent"):
                np.testing.assert_array_equal(a[field], b[field], err_msg=f"{name}: {field}")
        elif name.endswith(".jpg"):
            a, b = _decode(old), _decode(new)
            assert a.shape == b.shape, name
            errors.append(np.abs(a - b).mean())
        else:
            assert name == "README.md", name
    assert len(errors) == 10 and max(errors) < 0.5, errors


def test_writing_the_sample_again_keeps_other_files_and_refuses_foreign_ones(tmp_path, capsys):
    folder = tmp_path / "sample"
    assert voc_shaped.main([str(folder)]) == 0
    (folder / "README.md").write_text("notes")
    jpeg = folder / "VOCdevkit" / "VOC2012" / "JPEGImages" / "2007_000000.jpg"
    jpeg.write_bytes(b"an older version")
    assert voc_shaped.main([str(folder)]) == 0  # the sample's own files are rewritten
    assert (folder / "README.md").read_text() == "notes"
    assert jpeg.read_bytes()[:2] == b"\xff\xd8"
    # a real download (or anything the sample does not have) is never deleted
    real = folder / "VOCdevkit" / "VOC2012" / "JPEGImages" / "2012_004331.jpg"
    real.write_bytes(b"a user's image")
    capsys.readouterr()
    assert voc_shaped.main([str(folder)]) == 2
    assert "2012_004331.jpg: not a file of the sample" in capsys.readouterr().err
    assert real.read_bytes() == b"a user's image" and jpeg.is_file()
    assert not [p for p in folder.iterdir() if p.name.startswith(".voc-shaped-")]
    assert voc_shaped.main([str(folder), "extra"]) == 2
