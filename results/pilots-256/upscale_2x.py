"""Pilot B's data: the shipped 128 px SynthScenes blown up 2x (images bicubic, masks nearest).

Usage: python upscale_2x.py OUT_DIR   (run from the repository root)
"""
import json
import shutil
import sys
from pathlib import Path

from PIL import Image

src, dst = Path("data/synthscenes"), Path(sys.argv[1])
shutil.copytree(src / "ImageSets", dst / "ImageSets")
meta = json.loads((src / "meta.json").read_text())
meta["note"] = "data/synthscenes upscaled 2x (pilot)"
(dst / "meta.json").write_text(json.dumps(meta))
for sub, resample in (("JPEGImages", Image.BICUBIC), ("SegmentationClass", Image.NEAREST)):
    (dst / sub).mkdir(parents=True)
    for p in (src / sub).iterdir():
        im = Image.open(p)
        big = im.resize((im.width * 2, im.height * 2), resample)
        big.save(dst / sub / p.name, **({"quality": 92, "subsampling": 0} if sub == "JPEGImages" else {}))
