"""Pilot only: SynthScenes v2 with every structure at least one 1/4-output cell wide ("coarse").

The paper's datasets have no classes thinner than RefineNet's output stride (4 px), and their objects span many
output cells. This draws the shipped generator's scenes with: boats and cars of radius 12-36 px (v2: 4-36),
never shrunk below 10 px to fit; wires 4-6 px wide (v2: 1-3); dots 6-8 px squares, 3-12 per image (v2: 3 px,
5-30). Regions, textures, occluders, lighting and noise are v2's. Usage: OUT [SEED] [COUNT] (size 128).
"""
import sys

import numpy as np

from refinenet_edu.datasets import synthetic as S


def place_objects(rng, size, image, mask, region, label):
    region = S._room(region, 1)
    if region.sum() < 30:
        return
    for _ in range(rng.integers(1, 5)):
        shape = S._object_shape(rng, rng.uniform(12.0, 36.0))
        placed = None
        while placed is None and shape["a"] >= 10.0:
            ys, xs = np.nonzero(S._room(region, int(0.6 * shape["b"] + 0.4 * shape["a"])))
            for _attempt in range(min(len(ys), 6)):
                k = rng.integers(len(ys))
                cy, cx = ys[k] + rng.uniform(-0.5, 0.5), xs[k] + rng.uniform(-0.5, 0.5)
                box, level, v = S._object_level(shape, size, cy, cx)
                inside = level <= 1.0
                if inside.any() and region[box][inside].all():
                    placed = box, level, v, inside
                    break
            else:
                shape = S._object_shape(rng, shape["a"] * 0.75)
        if placed is None:
            continue
        box, level, v, inside = placed
        body, stripe = S._colour_pair(rng)
        colour = np.where((np.abs(v) < shape["band"])[:, :, None], stripe, body)
        edge = level > 1.0 - 1.2 / shape["b"]
        colour = np.where(edge[:, :, None], body * 0.55, colour)
        image[box][inside] = colour[inside]
        mask[box][inside] = label


def square(width):
    lo = -(width // 2)
    return tuple((dy, dx) for dy in range(lo, lo + width) for dx in range(lo, lo + width))


def paint_wires(rng, size, image, mask):
    for _ in range(rng.choice(4, p=[0.15, 0.35, 0.3, 0.2])):
        p0, p1 = rng.uniform(0, size, 2), rng.uniform(0, size, 2)
        axis = rng.integers(2)
        p0[axis], p1[axis] = -2.0, size + 1.0
        if rng.random() < 0.5:
            p0, p1 = p1, p0
        d = p1 - p0
        normal = np.array([-d[1], d[0]]) / np.hypot(*d)
        t = np.linspace(0.0, 1.0, int(3 * np.hypot(*d)) + 2)
        sag = rng.uniform(-0.25, 0.25) * size
        wiggle = rng.uniform(0.0, 3.0) * np.sin(2 * np.pi * rng.uniform(1, 4) * t + rng.uniform(0, 6.3))
        pts = p0[None, :] + t[:, None] * d[None, :] + ((sag * np.sin(np.pi * t) + wiggle)[:, None] * normal[None, :])
        S._stamp(image, mask, np.rint(pts).astype(np.int64), square(int(rng.integers(4, 7))),
                 rng.uniform(*(S._DARK if rng.random() < 0.5 else S._BRIGHT), size=3), S.WIRE)


def paint_dots(rng, size, image, mask):
    n = int(rng.integers(3, 13))
    pts = rng.integers(4, size - 4, size=(n, 2))
    for k in range(n):
        lo, hi = S._DARK if rng.random() < 0.5 else S._BRIGHT
        S._stamp(image, mask, pts[k:k + 1], square(int(rng.integers(6, 9))), rng.uniform(lo, hi, 3), S.DOT)


def render(seed, split, index, size=128):
    """S.render_sample with this pilot's objects, wires and dots (the same random stream, drawn in the same order)."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), S._SPLIT_CODES[split], int(index)]))
    background = S._blotch_texture(rng, size)
    image = background.copy()
    mask = np.zeros((size, size), np.uint8)
    water, pavement = S._regions(rng, size)
    if water.any():
        image[water] = S._ripple_texture(rng, size)[water]
        mask[water] = S.WATER
    if pavement.any():
        image[pavement] = S._checker_texture(rng, size)[pavement]
        mask[pavement] = S.PAVEMENT
    place_objects(rng, size, image, mask, water, S.BOAT)
    place_objects(rng, size, image, mask, pavement, S.CAR)
    S._paint_occluders(rng, size, image, mask, background)
    paint_wires(rng, size, image, mask)
    paint_dots(rng, size, image, mask)
    light = 0.85 + 0.3 * S._smooth_noise(rng, size, 2)
    noise = rng.normal(0.0, rng.uniform(2.0, 10.0), size=image.shape)
    image = image * light[:, :, None] + noise
    return S.Sample(image=np.clip(np.rint(image), 0, 255).astype(np.uint8), mask=mask)


out = sys.argv[1]
seed = int(sys.argv[2]) if len(sys.argv) > 2 else 0
count = int(sys.argv[3]) if len(sys.argv) > 3 else 750
S.generate_dataset(out, seed=seed, size=128, train_count=count * 4 // 5, val_count=count // 5, overwrite=True,
                   render=render, generator_version="2-coarse (pilot)")
print("wrote", out)
