"""SynthScenes: the embedded dataset, drawn so that each claim of the paper has a class that needs it
(``data/README.md`` gives the measured frequencies):

- 0 ``background``: blotchy random-colour texture; also 0-2 "occluder"
  patches per image laid over everything (occlusion).
- 1 ``water``: large region with wavy stripes. A big "stuff" class that
  texture, not colour, names (colours are random); the context for ``boat``.
- 2 ``pavement``: large region with a rotated checkerboard; the context
  for ``car``.
- 3 ``boat``: striped, outlined ellipse or rounded box, always inside water.
- 4 ``car``: drawn by the *same* code with the *same* random distributions
  as ``boat``, always inside pavement. Locally identical to a boat: only the
  region around it tells them apart, and for large objects (radius up to
  36 px) that cue lies further from the centre than a small receptive field
  reaches -- the case the design makes for chained residual pooling
  (a hypothesis that notebook 09 tests; on this data it does not hold).
- 5 ``wire``: curves 1-3 px wide across the image. They vanish at 1/32 and
  need the high-resolution paths of the cascade (paper, Fig. 2(c)).
- 6 ``dot``: specks 3 px wide; the smallest structures, same reason.

Colours of every class come from overlapping random distributions, each image gets a smooth illumination field and
pixel noise, and objects occur at radii from 4 to 36 px (at 128x128), so colour alone separates nothing.

Every sample is a pure function of ``(seed, split, index, size)``: :func:`render_sample` draws one,
:func:`generate_dataset` writes a whole folder in PASCAL VOC layout.
"""

from __future__ import annotations

import io
import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from refinenet_edu.datasets.palette import IGNORE_INDEX, write_mask_png

__all__ = ["CLASS_DESCRIPTIONS", "CLASS_NAMES", "DATASET_NAME", "GENERATOR_VERSION", "PALETTE", "Sample", "encode_jpeg",
           "generate_dataset", "render_sample"]

DATASET_NAME = "synthscenes"
#: Bump when the drawing code changes, so old folders can be told apart.
GENERATOR_VERSION = 2

CLASS_NAMES = ("background", "water", "pavement", "boat", "car", "wire", "dot")
CLASS_DESCRIPTIONS = {
    "background": "blotchy random-colour texture and occluder patches (occlusion)",
    "water": "large region with wavy stripes: texture, not colour, names it",
    "pavement": "large region with a rotated checkerboard: context cue for car",
    "boat": "object inside water; looks exactly like car (wide context needed)",
    "car": "object inside pavement; looks exactly like boat (wide context needed)",
    "wire": "1-3 px wide curves: lost at 1/32, need the high-resolution paths",
    "dot": "3 px specks: the smallest structures, need high resolution",
}
#: RGB colour of each class in the palette PNGs (index 255 gets palette.IGNORE_COLOUR).
PALETTE = ((0, 0, 0), (0, 114, 178), (150, 150, 150), (230, 159, 0), (220, 20, 60), (240, 228, 66), (0, 200, 120))

BACKGROUND, WATER, PAVEMENT, BOAT, CAR, WIRE, DOT = range(len(CLASS_NAMES))
_SPLIT_CODES = {"train": 0, "val": 1}

# Colour ranges: textures live in the middle, thin structures at the extremes,
# and the illumination field makes the two overlap.
_MID = (45.0, 210.0)
_DARK = (0.0, 25.0)
_BRIGHT = (230.0, 255.0)


@dataclass(frozen=True)
class Sample:
    """One rendered sample: ``image`` uint8 [H, W, 3], ``mask`` uint8 [H, W]."""

    image: np.ndarray
    mask: np.ndarray


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Value noise in [0, 1]: a (cells+1)^2 random grid, smoothly interpolated."""
    grid = rng.random((cells + 1, cells + 1))
    t = np.arange(size) * (cells / size)
    i = t.astype(np.int64)
    f = t - i
    f = f * f * (3.0 - 2.0 * f)  # smoothstep: no visible grid lines
    rows = grid[i] + (grid[i + 1] - grid[i]) * f[:, None]
    return rows[:, i] + (rows[:, i + 1] - rows[:, i]) * f[None, :]


def _fractal_noise(rng: np.random.Generator, size: int, cells: tuple[int, ...]) -> np.ndarray:
    """Sum of value-noise octaves (amplitude halves per octave), scaled to [0, 1]."""
    total = sum(_smooth_noise(rng, size, c) * 0.5**k for k, c in enumerate(cells))
    lo, hi = total.min(), total.max()
    return (total - lo) / max(hi - lo, 1e-9)


def _quantile(values: np.ndarray, q: float) -> float:
    """The value below which a fraction ``q`` of ``values`` lies (no interpolation)."""
    k = min(int(q * values.size), values.size - 1)
    return float(np.partition(values, k, axis=None)[k])


def _colour_pair(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two random mid-range colours that differ clearly (contrast 40-90 per channel)."""
    a = rng.uniform(*_MID, size=3)
    step = rng.choice([-1.0, 1.0], size=3) * rng.uniform(40.0, 90.0, size=3)
    b = a + step
    b = np.where((b < _MID[0]) | (b > _MID[1]), a - step, b)  # reflect back into range
    return a, np.clip(b, *_MID)


def _mix(t: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a[None, None, :] + (b - a)[None, None, :] * t[:, :, None]


def _blotch_texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """Background: two colours blended by multi-octave noise (clouds, clutter)."""
    a, b = _colour_pair(rng)
    t = _fractal_noise(rng, size, (4, 9, 21))
    t = np.clip((t - 0.5) * rng.uniform(1.5, 3.0) + 0.5, 0.0, 1.0)
    return _mix(t, a, b)


def _ripple_texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """Water: wavy stripes, period 5-9 px, random direction, warped by noise."""
    a, b = _colour_pair(rng)
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    theta = rng.uniform(0.0, np.pi)
    period = rng.uniform(5.0, 9.0)
    warp = _smooth_noise(rng, size, 5) * rng.uniform(4.0, 10.0)
    phase = (x * np.cos(theta) + y * np.sin(theta) + warp) / period
    return _mix(0.5 + 0.5 * np.sin(2.0 * np.pi * phase), a, b)


def _checker_texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """Pavement: a rotated checkerboard, tile size 5-9 px."""
    a, b = _colour_pair(rng)
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    theta = rng.uniform(0.0, np.pi / 2)
    period = rng.uniform(5.0, 9.0)
    u = np.floor((x * np.cos(theta) + y * np.sin(theta)) / period)
    v = np.floor((-x * np.sin(theta) + y * np.cos(theta)) / period)
    return _mix(np.mod(u + v, 2.0), a, b)


def _regions(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Boolean water and pavement masks: large smooth blobs, never overlapping. Half the scenes hold both;
    which is laid first (and so cut by the other) is random, so the two have the same shape distribution."""
    kind = rng.choice(4, p=[0.5, 0.2, 0.2, 0.1])  # both, water, pavement, none
    want_water, want_pavement = kind in (0, 1), kind in (0, 2)
    masks = {}
    for name, wanted in (("water", want_water), ("pavement", want_pavement)):
        field = _fractal_noise(rng, size, (1, 3))
        cover = rng.uniform(0.3, 0.6)
        masks[name] = field > _quantile(field, 1.0 - cover) if wanted else np.zeros((size, size), bool)
    if rng.random() < 0.5:
        masks["pavement"] &= ~masks["water"]
    else:
        masks["water"] &= ~masks["pavement"]
    return masks["water"], masks["pavement"]


def _object_shape(rng: np.random.Generator, radius: float) -> dict:
    """Shape parameters of one boat/car: the SAME draw for both classes."""
    return {
        "a": radius,
        "b": radius * rng.uniform(0.45, 0.8),
        "angle": rng.uniform(0.0, np.pi),
        "power": rng.choice([2.0, 4.0]),  # ellipse or rounded box
        "band": rng.uniform(0.2, 0.4),  # half-width of the stripe, relative to b
    }


def _object_level(shape: dict, size: int, cy: float, cx: float):
    """Superellipse level (<= 1 inside) in a bounding box: (box slices, level, v/b)."""
    r = int(np.ceil(shape["a"])) + 1
    y0, y1 = max(int(cy) - r, 0), min(int(cy) + r + 1, size)
    x0, x1 = max(int(cx) - r, 0), min(int(cx) + r + 1, size)
    y, x = np.mgrid[y0:y1, x0:x1].astype(np.float64)
    dy, dx = y - cy, x - cx
    c, s = np.cos(shape["angle"]), np.sin(shape["angle"])
    u = (dx * c + dy * s) / shape["a"]
    v = (-dx * s + dy * c) / shape["b"]
    p = shape["power"]
    level = (np.abs(u) ** p + np.abs(v) ** p) ** (1.0 / p)
    return (slice(y0, y1), slice(x0, x1)), level, v


def _room(region: np.ndarray, half: int) -> np.ndarray:
    """Pixels whose (2*half+1)^2 window (clipped to the image) lies in ``region`` (an integral image of the
    pixels outside it makes this O(1) per pixel for any window size)."""
    size = region.shape[0]
    ii = np.zeros((size + 1, size + 1), np.int64)
    ii[1:, 1:] = np.cumsum(np.cumsum(~region, axis=0), axis=1)
    lo = np.clip(np.arange(size) - half, 0, size)
    hi = np.clip(np.arange(size) + half + 1, 0, size)
    outside = ii[hi][:, hi] - ii[lo][:, hi] - ii[hi][:, lo] + ii[lo][:, lo]
    return region & (outside == 0)


def _place_objects(rng, size, image, mask, region, label) -> None:
    """Paint 1-4 objects inside ``region`` (bool), 1 px from its edge, as ``label``. Radii are drawn from
    the same distribution for boats and cars; a radius that finds no room is shrunk and tried again. Objects
    may overlap (the later one occludes the earlier)."""
    region = _room(region, 1)  # keep a 1 px margin: every object is ringed by its region
    if region.sum() < 30:
        return
    scale = size / 128.0
    for _ in range(rng.integers(1, 5)):
        shape = _object_shape(rng, rng.uniform(4.0, 36.0) * scale)
        placed = None
        while placed is None and shape["a"] >= 3.0 * scale:
            ys, xs = np.nonzero(_room(region, int(0.6 * shape["b"] + 0.4 * shape["a"])))
            for _attempt in range(min(len(ys), 6)):
                k = rng.integers(len(ys))
                cy, cx = ys[k] + rng.uniform(-0.5, 0.5), xs[k] + rng.uniform(-0.5, 0.5)
                box, level, v = _object_level(shape, size, cy, cx)
                inside = level <= 1.0
                if inside.any() and region[box][inside].all():
                    placed = box, level, v, inside
                    break
            else:  # no room for this size: try a smaller object
                shape = _object_shape(rng, shape["a"] * 0.75)
        if placed is None:
            continue
        box, level, v, inside = placed
        body, stripe = _colour_pair(rng)
        colour = np.where((np.abs(v) < shape["band"])[:, :, None], stripe, body)
        edge = level > 1.0 - 1.2 / shape["b"]
        colour = np.where(edge[:, :, None], body * 0.55, colour)  # darker outline
        image[box][inside] = colour[inside]
        mask[box][inside] = label


def _paint_occluders(rng, size, image, mask, background) -> None:
    """0-2 background-textured blobs laid over everything (occlusion)."""
    for _ in range(rng.choice(3, p=[0.4, 0.4, 0.2])):
        field = _fractal_noise(rng, size, (3, 7))
        blob = field > _quantile(field, 1.0 - rng.uniform(0.03, 0.1))
        image[blob] = background[blob]
        mask[blob] = BACKGROUND


def _paint_wires(rng, size, image, mask) -> None:
    """0-3 curves, 1-3 px wide, from one border to another (thin structures)."""
    n = rng.choice(4, p=[0.15, 0.35, 0.3, 0.2])
    for _ in range(n):
        p0, p1 = rng.uniform(0, size, 2), rng.uniform(0, size, 2)
        # Push the end points onto opposite or adjacent borders.
        axis = rng.integers(2)
        p0[axis], p1[axis] = -2.0, size + 1.0
        if rng.random() < 0.5:
            p0, p1 = p1, p0
        d = p1 - p0
        normal = np.array([-d[1], d[0]]) / np.hypot(*d)
        steps = int(3 * np.hypot(*d)) + 2
        t = np.linspace(0.0, 1.0, steps)
        sag = rng.uniform(-0.25, 0.25) * size
        wiggle = rng.uniform(0.0, 3.0) * np.sin(2 * np.pi * rng.uniform(1, 4) * t + rng.uniform(0, 6.3))
        pts = p0[None, :] + t[:, None] * d[None, :] + ((sag * np.sin(np.pi * t) + wiggle)[:, None] * normal[None, :])
        brush = (_PIXEL, _SQUARE2, _PLUS)[rng.choice(3, p=[0.4, 0.4, 0.2])]  # 1, 2 or 3 px wide
        colour = rng.uniform(*(_DARK if rng.random() < 0.5 else _BRIGHT), size=3)  # dark or bright
        _stamp(image, mask, np.rint(pts).astype(np.int64), brush, colour, WIRE)


# Brushes: pixel offsets stamped at each point of a wire or dot.
_PIXEL = ((0, 0),)
_SQUARE2 = ((0, 0), (0, 1), (1, 0), (1, 1))
_PLUS = ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1))
_SQUARE3 = tuple((dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1))


def _stamp(image, mask, pts: np.ndarray, brush, colour: np.ndarray, label: int) -> None:
    """Paint ``brush`` (pixel offsets) at each integer point of ``pts`` [N, 2]; ``colour``: one RGB triple or
    one per point."""
    size = mask.shape[0]
    for oy, ox in brush:
        y, x = pts[:, 0] + oy, pts[:, 1] + ox
        ok = (y >= 0) & (y < size) & (x >= 0) & (x < size)
        image[y[ok], x[ok]] = colour if colour.ndim == 1 else colour[ok]
        mask[y[ok], x[ok]] = label


def _paint_dots(rng, size, image, mask) -> None:
    """5-30 specks 3 px wide (3x3 squares or pluses) anywhere, each its own extreme colour."""
    n = max(int(rng.integers(5, 31) * (size / 128.0) ** 2), 1)
    pts = rng.integers(1, size - 2, size=(n, 2))
    dark = rng.random(n) < 0.5
    colours = np.where(dark[:, None], rng.uniform(*_DARK, (n, 3)), rng.uniform(*_BRIGHT, (n, 3)))
    square = rng.random(n) < 0.5
    _stamp(image, mask, pts[square], _SQUARE3, colours[square], DOT)
    _stamp(image, mask, pts[~square], _PLUS, colours[~square], DOT)


def render_sample(seed: int, split: str, index: int, size: int = 128) -> Sample:
    """Draw sample ``index`` of ``split`` ('train' or 'val'). The random stream is ``SeedSequence([seed,
    split_code, index])``, so a sample does not depend on how many others are generated."""
    if split not in _SPLIT_CODES:
        raise ValueError(f"split must be one of {sorted(_SPLIT_CODES)}, got {split!r}")
    if size < 32:
        raise ValueError(f"size must be at least 32 (the model needs 1/32 >= 1 px), got {size}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), _SPLIT_CODES[split], int(index)]))

    background = _blotch_texture(rng, size)
    image = background.copy()
    mask = np.zeros((size, size), np.uint8)
    water, pavement = _regions(rng, size)
    if water.any():
        image[water] = _ripple_texture(rng, size)[water]
        mask[water] = WATER
    if pavement.any():
        image[pavement] = _checker_texture(rng, size)[pavement]
        mask[pavement] = PAVEMENT
    _place_objects(rng, size, image, mask, water, BOAT)
    _place_objects(rng, size, image, mask, pavement, CAR)
    _paint_occluders(rng, size, image, mask, background)
    _paint_wires(rng, size, image, mask)
    _paint_dots(rng, size, image, mask)

    # Illumination and sensor noise: the same colour reads differently across
    # the image, so a pixel's colour alone does not give its class.
    light = 0.85 + 0.3 * _smooth_noise(rng, size, 2)
    noise = rng.normal(0.0, rng.uniform(2.0, 10.0), size=image.shape)
    image = image * light[:, :, None] + noise
    return Sample(image=np.clip(np.rint(image), 0, 255).astype(np.uint8), mask=mask)


def encode_jpeg(image: np.ndarray, quality: int = 92) -> bytes:
    """JPEG bytes of an RGB uint8 image, without chroma subsampling (4:4:4)."""
    buffer = io.BytesIO()
    Image.fromarray(image, mode="RGB").save(buffer, format="JPEG", quality=quality, subsampling=0)
    return buffer.getvalue()


#: what :func:`generate_dataset` writes, relative to its folder (glob patterns)
GENERATED_FILES = ("meta.json", "ImageSets/Segmentation/*.txt", "JPEGImages/*.jpg", "SegmentationClass/*.png")


def refuse_to_replace(folder: Path) -> None:
    """Raise ``FileExistsError`` unless ``folder`` holds this generator's ``meta.json`` and nothing but what
    the generator writes: any other file (a thesis.tex, a user's notes) keeps the folder from being replaced."""
    try:
        meta = json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError):
        meta = {}
    if not isinstance(meta, dict) or meta.get("generator") != __name__:
        raise FileExistsError(
            f"{folder}: not made by refinenet-edu data (no meta.json of {__name__}); "
            "--force replaces only a SynthScenes set it generated: choose another --out"
        )
    expected = {p for pattern in GENERATED_FILES for p in folder.glob(pattern)}
    expected |= {folder / d for d in ("ImageSets", "ImageSets/Segmentation", "JPEGImages", "SegmentationClass")}
    others = sorted(p for p in folder.rglob("*") if p not in expected or p.is_symlink())
    if others:
        listed = ", ".join(str(p.relative_to(folder)) for p in others[:3]) + (" ..." if len(others) > 3 else "")
        raise FileExistsError(
            f"{folder}: holds files refinenet-edu data did not make ({listed}); "
            "--force replaces only what it generated: move them out or choose another --out"
        )


def generate_dataset(out_dir: str | Path, *, seed: int = 0, size: int = 128, train_count: int = 600,
                     val_count: int = 150, jpeg_quality: int = 92, overwrite: bool = False,
                     render: Callable[[int, str, int, int], Sample] | None = None,
                     generator_version: int | str = GENERATOR_VERSION) -> Path:
    """Write SynthScenes to ``out_dir`` in PASCAL VOC layout and return its path.

    ``JPEGImages/<id>.jpg`` (no chroma subsampling, so 1 px wires keep their colour),
    ``SegmentationClass/<id>.png`` (palette PNG), ``ImageSets/Segmentation/{train,val}.txt``, ``meta.json``;
    ids ``train_00000``, ``val_00000``, ... The folder is written under a temporary name and renamed into
    place at the end, so an interrupted run leaves nothing half-written; an existing ``out_dir`` is replaced
    only with ``overwrite`` and only when this generator made it (:func:`refuse_to_replace`). The same
    arguments give byte-identical files (same numpy / Pillow build). A variant of the generator passes its own
    ``render(seed, split, index, size)`` and the ``generator_version`` that ``meta.json`` records.
    """
    out_dir = Path(out_dir)
    if train_count < 1 or val_count < 1:
        raise ValueError(f"train_count and val_count must be >= 1, got {train_count}, {val_count}")
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"{out_dir} is a file; a folder was expected (nothing is replaced)")
    if out_dir.exists() and not overwrite:
        raise FileExistsError(f"{out_dir} already exists (pass overwrite=True to replace it)")
    if out_dir.exists():
        refuse_to_replace(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    try:
        for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
            (tmp / sub).mkdir(parents=True)
        for split, count in (("train", train_count), ("val", val_count)):
            ids = [f"{split}_{i:05d}" for i in range(count)]
            for i, sample_id in enumerate(ids):
                sample = (render or render_sample)(seed, split, i, size)
                (tmp / "JPEGImages" / f"{sample_id}.jpg").write_bytes(encode_jpeg(sample.image, jpeg_quality))
                write_mask_png(sample.mask, tmp / "SegmentationClass" / f"{sample_id}.png", PALETTE)
            (tmp / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(ids) + "\n")
        meta = {
            "name": DATASET_NAME,
            "generator": "refinenet_edu.datasets.synthetic",
            "generator_version": generator_version,
            "seed": seed,
            "image_size": [size, size],
            "counts": {"train": train_count, "val": val_count},
            "image_format": "jpg",
            "jpeg_quality": jpeg_quality,
            "class_names": list(CLASS_NAMES),
            "class_descriptions": [CLASS_DESCRIPTIONS[c] for c in CLASS_NAMES],
            "palette": [list(c) for c in PALETTE],
            "ignore_index": IGNORE_INDEX,
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
        if out_dir.exists():  # overwrite: move the old folder aside, then swap
            old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
            out_dir.rename(old / "data")
            tmp.rename(out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir
