"""Pilot only: SynthScenes with scene-level context (boat/car told apart by a region far away)."""
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
from refinenet_edu.datasets import synthetic as S
from refinenet_edu.datasets.palette import write_mask_png

def render(seed, split, index, size=256):
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), S._SPLIT_CODES[split], int(index), 3]))
    scale = size / 128.0
    background = S._blotch_texture(rng, size)
    image = background.copy()
    mask = np.zeros((size, size), np.uint8)
    harbour = rng.random() < 0.5
    field = S._fractal_noise(rng, size, (1, 3))
    region = field > S._quantile(field, 1.0 - rng.uniform(0.15, 0.35))
    tex = S._ripple_texture(rng, size) if harbour else S._checker_texture(rng, size)
    image[region] = tex[region]
    mask[region] = S.WATER if harbour else S.PAVEMENT
    gap = int(rng.uniform(12.0, 40.0) * scale)
    free = S._room(~region, gap)
    S._place_objects(rng, size, image, mask, free, S.BOAT if harbour else S.CAR)
    S._paint_occluders(rng, size, image, mask, background)
    S._paint_wires(rng, size, image, mask)
    S._paint_dots(rng, size, image, mask)
    light = 0.85 + 0.3 * S._smooth_noise(rng, size, 2)
    noise = rng.normal(0.0, rng.uniform(2.0, 10.0), size=image.shape)
    image = image * light[:, :, None] + noise
    return S.Sample(image=np.clip(np.rint(image), 0, 255).astype(np.uint8), mask=mask)

out = sys.argv[1]
size = int(sys.argv[2])
final = Path(out)
final.parent.mkdir(parents=True, exist_ok=True)
work = Path(tempfile.mkdtemp(prefix=f".{final.name}.pilot-", dir=final.parent))
try:  # built beside OUT and swapped in at the end: an interrupted run leaves OUT as it was
    # the shipped generator writes the layout, split files and meta.json; these samples replace its own
    data = S.generate_dataset(work / "data", size=size)
    for split, count in (("train", 600), ("val", 150)):
        for i in range(count):
            sample = render(0, split, i, size)
            (data / "JPEGImages" / f"{split}_{i:05d}.jpg").write_bytes(S.encode_jpeg(sample.image))
            write_mask_png(sample.mask, data / "SegmentationClass" / f"{split}_{i:05d}.png", S.PALETTE)
    if final.exists():
        S.refuse_to_replace(final)  # only a set the generator made, holding nothing else
        final.rename(work / "old")
    data.rename(final)
finally:
    shutil.rmtree(work, ignore_errors=True)
out = final
print("wrote", out)
