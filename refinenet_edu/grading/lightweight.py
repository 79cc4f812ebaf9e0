"""Check of a Light-Weight RefineNet block built from the library's parts (notebook 10, section 1).

Light-Weight RefineNet (Nekrasov et al., BMVC 2018) as the library's ``light-weight`` preset builds it:
every path adapted to ``width`` by a 1x1 convolution without RCUs, fusion and chained residual pooling
(4 blocks) with 1x1 convolutions, no output RCUs, upsampling with ``align_corners=True``. Using the
library's parts is the point here, so nothing is refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from refinenet_edu.grading.harness import (Submission, close, convs_of, fail, max_diff, ok, param_count, randomize_,
                                           seeded)
from refinenet_edu.nn.components import ChainedResidualPooling, RefineNetBlock, ResidualConvUnit

__all__ = ["check_lw_block", "lw_block"]

_FIX = ("`RefineNetBlock(in_channels, [width] * len(in_channels), adaptive_rcus=0, output_rcus=0, kernel_size=1, "
        "align_corners=True)` (the light-weight preset's settings: `PRESETS['light-weight']`).")


def lw_block(in_channels: Sequence[int], width: int) -> RefineNetBlock:
    """The reference: the block the ``light-weight`` preset builds for paths that are all encoder paths."""
    return RefineNetBlock(list(in_channels), [width] * len(in_channels), adaptive_rcus=0, crp_blocks=4,
                          output_rcus=0, kernel_size=1, align_corners=True)


def _structure(block: nn.Module, ref: nn.Module, in_channels: Sequence[int], width: int, what: str) -> None:
    """Name what differs in the layers: RCUs, kernel sizes, missing adaptation convs, the CRP's length."""
    __tracebackhide__ = True
    sizes = f"in_channels={list(in_channels)}, width={width}"
    rcus = sum(isinstance(m, ResidualConvUnit) or type(m).__name__.endswith("ResidualConvUnit")
               for m in block.modules())
    if rcus:
        raise fail(what, f"built with {sizes}, the block holds {rcus} Residual Conv Unit(s); Light-Weight "
                   "RefineNet removes every RCU (adaptive and output).", "`adaptive_rcus=0, output_rcus=0`.",
                   "the light-weight preset sets both to 0 (`PRESETS['light-weight']`).")
    convs = convs_of(block)
    big = [c for c in convs if c.kernel_size != (1, 1)]
    if big:
        raise fail(what, f"built with {sizes}, {len(big)} of its {len(convs)} convolutions are "
                   f"{big[0].kernel_size[0]}x{big[0].kernel_size[1]}; Light-Weight RefineNet's decoder uses 1x1 "
                   "convolutions only.", "`kernel_size=1` for every part.")
    crps = [m for m in block.modules() if isinstance(m, ChainedResidualPooling)]
    if crps and len(crps[0].convs) != 4:
        raise fail(what, f"its chained residual pooling has {len(crps[0].convs)} pool+conv blocks; the "
                   "light-weight preset keeps the library's 4.", "`crp_blocks=4` (the default).")
    expected = convs_of(ref)
    shapes = [tuple(c.weight.shape) for c in convs]
    if shapes != [tuple(c.weight.shape) for c in expected]:
        outs = sorted({s[0] for s in shapes})
        if outs and outs != [width]:
            raise fail(what, f"built with {sizes}, its convolutions give {outs} channels; every one should give "
                       "`width`.", f"read the sizes from the arguments: {_FIX}",
                       "the same function must build blocks of any widths.")
        raise fail(what, f"built with {sizes}, it has {len(convs)} convolutions of shapes {shapes[:6]}; the "
                   f"light-weight block has {len(expected)}: one 1x1 adaptation conv per path (to `width`), one "
                   "1x1 fusion conv per path, one per CRP block.", _FIX)


def check_lw_block(factory: Any, *, seed: int = 0) -> None:
    """Check ``factory(in_channels, width)``: a Light-Weight RefineNet block whose paths all come from the encoder.

    ``forward(*paths)`` takes one feature map per entry of ``in_channels`` (the first the coarsest) and
    returns ``width`` channels at the finest path's resolution. Compared with :func:`lw_block` holding the same
    weights, at ``in_channels=[12, 6], width=4`` and ``[10, 7], 6``; the ✓ line gives its parameter count
    next to a block of the same widths with 3x3 convolutions and RCUs (the library's defaults).
    """
    __tracebackhide__ = True
    student = Submission(factory, "check_lw_block(make_lw_block)", ())
    what = student.what
    gen = torch.Generator().manual_seed(seed)
    for in_channels, width in (([12, 6], 4), ([10, 7], 6)):
        with seeded(seed):
            block = student.build((list(in_channels), width))
            ref = lw_block(in_channels, width)
            official = RefineNetBlock(list(in_channels), [width] * len(in_channels))
        _structure(block, ref, in_channels, width, what)
        if param_count(block) != param_count(ref):
            raise fail(what, f"{param_count(block)} parameters; the light-weight block of in_channels="
                       f"{list(in_channels)}, width={width} has {param_count(ref)}.", _FIX)
        randomize_(convs_of(ref), gen, copies=convs_of(block))
        block.eval()
        low = torch.randn(2, in_channels[0], 3, 4, generator=gen)
        high = torch.randn(2, in_channels[1], 5, 7, generator=gen)  # not a factor 2: the corners matter
        with torch.no_grad():
            y = student.call(block, low, high, context=f" (in_channels={list(in_channels)}, width={width})",
                             shape=(2, width, 5, 7))
            expected = ref(low, high)
            if not close(y, expected):
                ref.fusion.align_corners = False
                if close(y, ref(low, high)):
                    raise fail(what, "the block upsamples with align_corners=False; the light-weight preset "
                               "upsamples as Light-Weight RefineNet's public code does, align_corners=True.",
                               "`align_corners=True` (source `lw-align` in docs/paper.md).")
                raise fail(what, f"its output ({list(y.shape)}) differs from the light-weight block's "
                           f"({list(expected.shape)}) with the same weights"
                           + (f" (largest difference {max_diff(y, expected):.3g})." if y.shape == expected.shape
                              else "."), _FIX)
    mine, full = param_count(block), param_count(official)  # the last widths, [10, 7] and 6
    ok(f"{what}: 1x1 convolutions, no RCUs, 4-block CRP, align_corners=True; matches the light-weight block at two "
       f"sets of widths. At in_channels=[10, 7], width=6: {mine:,} parameters against {full:,} for the block with "
       f"3x3 convolutions and RCUs ({full / mine:.1f}x).")
