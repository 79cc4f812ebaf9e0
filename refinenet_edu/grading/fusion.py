"""Check of multi-resolution fusion (paper Sec. 3.2, Fig. 3(c)).

The easy mistake of upsampling the wrong branch (output at the low resolution, or the high-resolution path
resampled) is named; no public port was found to ship it (docs/paper.md, source ``bug-fusion-branch``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from refinenet_edu.nn.components import MultiResolutionFusion
from refinenet_edu.grading.harness import (Submission, close, conv_is, convs_of, fail, identity_, max_diff, ok,
                                           param_count, randomize_, seeded)

__all__ = ["check_fusion"]

_OWN_FIX = ("write the module yourself: `class MultiResolutionFusion(nn.Module)` with its own convs and "
            "forward, without refinenet_edu.")
_WRONG_BRANCH_FIX = (
    "upsample each smaller path to the largest size, read at run time: `size = max((p.shape[-2:] for p in paths), "
    "key=lambda s: s[0] * s[1])`, then `F.interpolate(y, size=size, mode='bilinear', align_corners=False)`; leave "
    "the largest path as it is."
)
_WRONG_BRANCH_WHY = (
    "Fusion upsamples every smaller path to the LARGEST resolution among its inputs (Sec. 3.2): the "
    "high-resolution path carries the fine detail that RefineNet recovers."
)
#: The further cases compared with the reference: (in_channels, sizes of the paths, the case, fix, why).
_MORE_CASES = (
    ((6, 4), ((5, 6), (9, 11)), "paths of sizes 5x6 and 9x11, not a factor 2 apart",
     "upsample with `size=` the largest path's size, not `scale_factor=2`.",
     "the feature maps of an image whose side is not a multiple of 32 are not exact factors of 2 apart."),
    ((8, 5, 6), ((3, 3), (9, 11), (5, 6)), "three paths of widths [8, 5, 6] and sizes 3x3, 9x11, 5x6",
     "loop over all paths; do not assume there are exactly two.", None),
)


def _up(x: torch.Tensor, size, *, mode: str = "bilinear", align_corners: bool | None = False) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode=mode, align_corners=None if mode == "nearest" else align_corners)


def _fusion_convs(fusion: nn.Module, in_channels: Sequence[int], what: str) -> list[nn.Conv2d]:
    """The fusion's convolutions, one per path; the fixes name the constructor's argument (``in_channels``),
    never the test's own widths, so that a hint cannot be pasted back as hard-coded sizes."""
    __tracebackhide__ = True
    convs, width = convs_of(fusion), min(in_channels)
    fix = ("`width = min(in_channels)`, then `self.convs = nn.ModuleList(nn.Conv2d(c, width, 3, padding=1, "
           "bias=False) for c in in_channels)` (one per path, in the order of the paths).")
    if len(convs) != len(in_channels):
        raise fail(what, f"built for {len(in_channels)} paths it has {len(convs)} convolution(s); every path gets "
                   "its own 3x3 convolution.", fix)
    for c, ci in zip(convs, in_channels):
        if (c.in_channels, c.out_channels) != (ci, width) and c.kernel_size == (3, 3):
            raise fail(what, f"built with in_channels={list(in_channels)}, the convolution of a path with {ci} "
                       f"channels maps {c.in_channels} to {c.out_channels} channels; it should map the path's own "
                       "channels to the smallest width among the paths.", fix,
                       "the same class must fuse paths of any widths: read them from `in_channels`, do not write "
                       "numbers into the code.")
        if not conv_is(c, ci, width):
            raise fail(what, f"for a path with {ci} channels the convolution is {c}.", fix,
                       "it is 3x3 from the path's channels to the smallest width among the paths, stride 1, "
                       "padding 1, without bias.")
    return convs


def check_fusion(fusion_class: Any, *, seed: int = 0, allow_reference: bool = True) -> None:
    """Check a multi-resolution fusion class (paper Sec. 3.2).

    ``fusion_class(in_channels)`` (one entry per path) must build one 3x3 convolution (no bias) per path to the
    smallest width; ``forward(*paths)`` convolves each path, upsamples it (bilinear, ``align_corners=False``) to the
    largest resolution among the paths and sums them; one path comes back unchanged. Checks the output resolution for
    both orders of the paths, that the high-resolution path is not resampled, odd sizes, three paths, equality with
    :class:`refinenet_edu.nn.components.MultiResolutionFusion`, gradients.
    """
    __tracebackhide__ = True
    student = Submission(fusion_class, "check_fusion(MultiResolutionFusion)", (MultiResolutionFusion,),
                         allow_reference=allow_reference)
    what = student.what
    gen = torch.Generator().manual_seed(seed)

    # 1. Two paths of equal width, identity convs: the output should be high + up(low).
    for order in ("low, high", "high, low"):
        with seeded(seed):
            fusion = student.build(([4, 4],))
        for c in _fusion_convs(fusion, [4, 4], what):
            identity_(c)
        low = torch.randn(2, 4, 4, 5, generator=gen)
        high = torch.randn(2, 4, 8, 10, generator=gen)

        def fuse(low, high, **kwargs):
            with torch.no_grad():
                return student.call(fusion, *([low, high] if order == "low, high" else [high, low]), **kwargs)

        y = fuse(low, high, context=f" (paths in the order {order})", shape=high.shape)
        if tuple(y.shape[-2:]) == tuple(low.shape[-2:]):
            raise fail(what, f"the output is at the LOW resolution (4x5 for paths [{order}] of 4x5 and 8x10): the "
                       "high-resolution path was downsampled, or the wrong branch upsampled.",
                       _WRONG_BRANCH_FIX, _WRONG_BRANCH_WHY)
        if y.dim() == 4 and tuple(y.shape[-2:]) == tuple(high.shape[-2:]) and y.shape[1] == 2 * high.shape[1]:
            raise fail(what, f"the output has {y.shape[1]} channels for two paths of {high.shape[1]}: the paths are "
                       "concatenated (torch.cat) instead of summed.",
                       "add the convolved, upsampled paths: `out = out + y` for each path (or `sum(...)`).",
                       "multi-resolution fusion sums its paths (Sec. 3.2), so its output has the smallest width "
                       "among the paths whatever their number.")
        if y.shape != high.shape:
            raise fail(what, f"with paths [{order}] of shapes {list(low.shape)} (low) and {list(high.shape)} "
                       f"(high) the output has shape {list(y.shape)}; expected {list(high.shape)}.",
                       _WRONG_BRANCH_FIX)
        # The high-resolution path alone must come through unchanged (identity conv).
        if not close(fuse(torch.zeros_like(low), high), high):
            raise fail(what, "the high-resolution path is resampled (e.g. downsampled and upsampled again), "
                       "which blurs away its detail.", _WRONG_BRANCH_FIX,
                       "with the low-resolution path set to zero and identity convolutions, the output should "
                       "be the high-resolution path itself. " + _WRONG_BRANCH_WHY)
        y_low, target = fuse(low, torch.zeros_like(high)), _up(low, high.shape[-2:])
        if not close(y_low, target):
            bilinear = "`F.interpolate(y, size=size, mode='bilinear', align_corners=False)`."
            student.named_mistake(y_low, [
                (_up(low, high.shape[-2:], mode="nearest"), "the low-resolution path is upsampled with "
                 "nearest-neighbour interpolation; the paper (and refinenet_edu) upsample bilinearly.", bilinear),
                (_up(low, high.shape[-2:], align_corners=True), "the low-resolution path is upsampled with "
                 "align_corners=True; this assignment follows refinenet_edu's default, align_corners=False.",
                 bilinear)])
            raise fail(what, "the low-resolution path does not come out upsampled bilinearly to the high "
                       f"resolution (largest difference {max_diff(y_low, target):.3g}).", _WRONG_BRANCH_FIX,
                       "with the high-resolution path set to zero and identity convolutions, the output should "
                       "be the low-resolution path, upsampled.")
        if not close(y, high + target):
            raise fail(what, "the output is not the sum of the (convolved, upsampled) paths.",
                       "add the paths: `out = out + y` for each path.")

    def built_with_reference(in_channels):
        with seeded(seed):
            fusion, ref = student.build((in_channels,)), MultiResolutionFusion(in_channels)
        convs = _fusion_convs(fusion, in_channels, what)
        randomize_(convs, gen, copies=ref.convs)
        return fusion, ref, convs

    # 2. Different widths, random weights: equality with the reference.
    fusion, ref, convs = built_with_reference([6, 4])
    low = torch.randn(2, 6, 4, 5, generator=gen)
    high = torch.randn(2, 4, 8, 10, generator=gen)
    with torch.no_grad():
        y, expected = student.call(fusion, low, high), ref(low, high)
    if not close(y, expected):
        student.named_mistake(y, [(lambda: sum(c(_up(p, high.shape[-2:])) for p, c in zip([low, high], convs)),
                                   "each path is upsampled first and convolved afterwards.",
                                   "`y = F.interpolate(conv(path), size=size, mode='bilinear', align_corners=False)`.",
                                   "the paper convolves each path at its own resolution, then upsamples: cheaper, "
                                   "and what the reference does (the two differ near the borders).")],
                              same=lambda a, b: close(a, b, atol=1e-4))
        diff = max_diff(y, expected) if isinstance(y, torch.Tensor) and y.shape == expected.shape else float("nan")
        raise fail(what, "the output differs from refinenet_edu's MultiResolutionFusion with the same weights "
                   f"(largest difference {diff:.3g}).",
                   "conv each path (to the smallest width), upsample to the largest resolution, sum.")

    # 3. Odd sizes (a 1/32 path of 5x6 under a 1/16 path of 9x11 is not an exact factor of 2), then three paths (a
    # single-RefineNet / 2-cascade block) with the largest resolution in the middle.
    for in_channels, sizes, case, fix, why in _MORE_CASES:
        fused, fused_ref, _ = built_with_reference(list(in_channels))
        paths = [torch.randn(1, c, *hw, generator=gen) for c, hw in zip(in_channels, sizes)]
        with torch.no_grad():
            y, expected = student.call(fused, *paths, context=f" ({case})", fix=fix), fused_ref(*paths)
        if not close(y, expected):
            raise fail(what, f"on {case} the output ({list(getattr(y, 'shape', []))}) differs from the reference "
                       f"({list(expected.shape)}: smallest width, largest resolution).", fix, why)

    # 4. One path: nothing to fuse.
    with seeded(seed):
        f1 = student.build(([5],))
    x1 = torch.randn(1, 5, 6, 7, generator=gen)
    with torch.no_grad():
        y1 = student.call(f1, x1, context=" (one path)")
    if param_count(f1) != 0 or not close(y1, x1, atol=0, rtol=0):
        raise fail(what, "a block with a single path has nothing to fuse: the module should have no parameters "
                   "and return the path unchanged.", "if `len(in_channels) == 1`, create no convolution and "
                   "return `paths[0]`.", "RefineNet-4 takes the 1/32 path alone.")

    # 5. Gradients reach every path and every conv.
    student.check_gradients(fusion, [low, high], ["the low-resolution path", "the high-resolution path"])
    student.refuse_reuse(fix=_OWN_FIX)
    ok(f"{what}: a 3x3 conv per path to the smallest width, bilinear upsampling to the LARGEST resolution "
       "(either order, odd sizes, 3 paths), single path passes through, matches refinenet_edu's "
       "MultiResolutionFusion, gradients flow.")
