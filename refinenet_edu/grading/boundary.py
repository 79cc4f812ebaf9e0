"""Check of the trimap boundary band (notebook 08, section 4): the pixels within ``k`` pixels of a label
boundary, against :func:`refinenet_edu.engine.metrics.boundary_band`; :data:`BAND_VARIANTS` are the classic
mistakes it names.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from refinenet_edu.engine import metrics as reference_metrics
from refinenet_edu.grading.harness import Submission, as_tensor, fail, ok

__all__ = ["BAND_VARIANTS", "band_variant", "check_boundary_band"]

IGNORE = 255


def band_variant(mask: torch.Tensor, k: int, *, shape: str = "square", border: int | None = None, side: str = "both",
                 keep_ignored: bool = False) -> torch.Tensor:
    """The band written out pixel offset by pixel offset (the reference with the defaults), and the variants.

    ``shape``: "square" (``max(|dy|, |dx|) <= k``) or "diamond" (``|dy| + |dx| <= k``); ``border``: a label the
    padding beyond the image border is taken for (None: the border is no boundary); ``side``: "both", or "below" (only the pixels next to a larger label);
    ``keep_ignored``: ignored pixels may be in the band.
    """
    h, w = mask.shape
    sentinel = -2
    padded = torch.full((h + 2 * k, w + 2 * k), sentinel if border is None else border, dtype=torch.int64)
    padded[k:k + h, k:k + w] = mask
    band = torch.zeros(h, w, dtype=torch.bool)
    for dy in range(-k, k + 1):
        for dx in range(-k, k + 1):
            if shape == "diamond" and abs(dy) + abs(dx) > k:
                continue
            other = padded[k + dy:k + dy + h, k + dx:k + dx + w]
            outside = other == sentinel
            differs = other > mask if side == "below" else other != mask
            band |= differs & ~outside
    return band if keep_ignored else band & (mask != IGNORE)


#: (name, function of (mask, k), mistake, fix)
BAND_VARIANTS: list[tuple[str, Callable, str, str]] = [
    ("one_side", lambda m, k: band_variant(m, k, side="below"),
     "the band holds only one side of each boundary (the pixels next to a larger label, as `max_pool(mask) != "
     "mask` finds them).",
     "compare the largest and the smallest label in the window: `max_pool(mask) != -max_pool(-mask)` marks "
     "both sides."),
    ("diamond", lambda m, k: band_variant(m, k, shape="diamond"),
     "the neighbourhood is a diamond (|dy| + |dx| <= k); the trimap band uses the square max(|dy|, |dx|) <= k.",
     "look at the whole (2k+1) x (2k+1) square: `F.max_pool2d(x, 2 * k + 1, stride=1, padding=k)`."),
    ("too_narrow", lambda m, k: band_variant(m, k - 1),
     "the band is one pixel too narrow on each side: the window reaches k - 1 pixels, not k.",
     "a window of side 2 * k + 1 centred on the pixel: `kernel_size=2 * k + 1, padding=k`."),
    ("too_wide", lambda m, k: band_variant(m, k + 1),
     "the band is one pixel too wide on each side: the window reaches k + 1 pixels, not k.",
     "a window of side 2 * k + 1 centred on the pixel: `kernel_size=2 * k + 1, padding=k`."),
    ("k_as_side", lambda m, k: band_variant(m, k // 2),
     "`k` was used as the window's side; it is the distance from the pixel, so the side is 2 * k + 1.",
     "`kernel_size=2 * k + 1, padding=k`."),
    ("border_is_boundary", lambda m, k: band_variant(m, k, border=-1),
     "pixels near the image border are in the band: the padding was taken for another label (zero padding, "
     "or a constant that differs from the pixel's).",
     "pad so that the border never differs: max-pooling pads with -inf, so `F.max_pool2d(x, 2 * k + 1, "
     "stride=1, padding=k)` on x and on -x needs nothing else."),
    ("border_is_label_0", lambda m, k: band_variant(m, k, border=0),
     "pixels of other classes near the image border are in the band: the mask was padded with 0, which reads "
     "as a border of background.",
     "pad with nothing that can differ: `F.max_pool2d(x, 2 * k + 1, stride=1, padding=k)` on x and on -x pads "
     "with -inf, which never wins a max."),
    ("ignored_in_band", lambda m, k: band_variant(m, k, keep_ignored=True),
     "ignored pixels (label 255) are in the band; they are never scored, so they must not be in it.",
     "`band & (mask != 255)` at the end (255 still counts as a label when finding boundaries)."),
]


def _masks(gen: torch.Generator) -> list[torch.Tensor]:
    """Two masks of different sizes: regions of 3 classes, a void outline (255) round one of them."""
    out = []
    for h, w in ((12, 15), (9, 17)):
        yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        mask = torch.zeros(h, w, dtype=torch.int64)
        mask[:, w // 2:] = 2
        cy, cx = int(torch.randint(3, h - 3, (1,), generator=gen)), int(torch.randint(3, w // 2, (1,), generator=gen))
        d2 = (yy - cy) ** 2 + (xx - cx) ** 2
        mask[d2 <= 8] = IGNORE
        mask[d2 <= 4] = 1
        out.append(mask)
    return out


def check_boundary_band(fn: Callable, *, seed: int = 0) -> None:
    """Check ``fn(mask, k) -> bool [H, W]``, the pixels within ``k`` pixels of a label boundary.

    ``mask``: int64 ``[H, W]`` of class ids and the ignore label 255. A pixel is in the band when a pixel of
    another label (255 included) lies in the ``(2k+1) x (2k+1)`` square around it, clipped at the image
    border (the border is no boundary); ignored pixels are never in it. Compared with
    :func:`refinenet_edu.engine.metrics.boundary_band` at ``k`` = 1, 2, 3 on two mask sizes.
    """
    __tracebackhide__ = True
    student = Submission(fn, "check_boundary_band(boundary_band)", (reference_metrics.boundary_band,))
    what = student.what
    gen = torch.Generator().manual_seed(seed)
    for mask in _masks(gen):
        for k in (3, 1, 2):  # k = 3 first: there a window of side k and a band of k - 1 differ
            case = f"a {mask.shape[0]}x{mask.shape[1]} mask of labels 0, 1, 2 and 255, k={k}"
            got = as_tensor(student.call(fn, mask, k, context=f" ({case})", in_place=(
                "the mask was changed in place.", "work on a copy (`mask.float()` makes one).")), what)
            expected = reference_metrics.boundary_band(mask, k)
            if got.shape != expected.shape:
                raise fail(what, f"returned shape {list(got.shape)} for a mask {list(mask.shape)}; the band has the "
                           "mask's shape.", "pool with `stride=1, padding=k` and remove the batch and channel "
                           "dimensions you added: `[0, 0]`.", case=case)
            if got.dtype != torch.bool:
                values = set(got.unique().tolist())
                if not values <= {0, 1}:
                    raise fail(what, f"returned {got.dtype} values {sorted(values)[:5]}; the band is a True/False "
                               "mask.", "return the comparison itself (a bool tensor).", case=case)
                got = got.bool()
            if torch.equal(got, expected):
                continue
            student.named_mistake(got, [(lambda v=v: v(mask, k), mistake, fix) for _, v, mistake, fix in BAND_VARIANTS],
                                  same=torch.equal, case=case)
            missing, extra = int((expected & ~got).sum()), int((got & ~expected).sum())
            raise fail(what, f"{missing} pixel(s) of the band are missing and {extra} pixel(s) outside it are in "
                       "it, and that matches none of the usual mistakes.",
                       "in the band: some pixel of another label within max(|dy|, |dx|) <= k, inside the image; "
                       "never an ignored pixel.", case=case)
    student.refuse_reuse(fix="write it yourself with torch (max-pooling, comparisons), without "
                         "refinenet_edu.engine.metrics.boundary_band.")
    ok(f"{what}: both sides of every boundary within the (2k+1) x (2k+1) square, the border no boundary, 255 a "
       "label but never in the band; matches refinenet_edu's boundary_band at k = 1, 2, 3 on two mask sizes.")
