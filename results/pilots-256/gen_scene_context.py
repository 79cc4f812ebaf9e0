"""Pilot only: SynthScenes with scene-level context (boat/car told apart by a region far away)."""
import sys

import numpy as np
from refinenet_edu.datasets import synthetic as S

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
S.generate_dataset(out, size=size, overwrite=True, render=render)
print("wrote", out)
