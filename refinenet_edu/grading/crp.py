"""Check of chained residual pooling (paper Sec. 3.2, Fig. 3(d)).

:func:`check_crp` probes the student's module with identity convolutions and a single bright pixel: N
chained 5x5 max-pools spread it to 1 + 4N pixels, while pools wired in parallel (a bug a public port has
shipped: docs/paper.md, source ``bug-crp-parallel``) stay at 5.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from refinenet_edu.nn.components import ChainedResidualPooling
from refinenet_edu.grading.harness import (Submission, call_repr, close, conv_is, convs_of, fail, identity_, max_diff,
                                           ok, param_count, randomize_, seeded)

__all__ = ["check_crp"]

_LOOP = "x = relu(x); out = x; top = x; for each block: top = conv(pool(top)); out = out + top"
_OWN_FIX = ("write the module yourself: `class ChainedResidualPooling(nn.Module)` with its own pool, convs and "
            "forward, without refinenet_edu.")


def _probe(student: Submission, crp: nn.Module, ref: ChainedResidualPooling, channels: int) -> None:
    """Identity convs + an impulse: the response of N chained 5x5 max-pools is 1 + 4N px wide."""
    __tracebackhide__ = True
    what, num_blocks = student.what, ref.num_blocks
    for c in [*convs_of(crp), *ref.convs]:
        identity_(c)
    side = 8 * num_blocks + 9
    centre = side // 2
    x = torch.zeros(1, channels, side, side)
    x[:, :, centre, centre] = 1.0
    with torch.no_grad():
        y = student.call(crp, x, context=" (a single bright pixel)", shape=x.shape)
        expected = ref(x)
    if y.shape != x.shape:
        return  # the shape test that follows explains this
    if close(y, expected):
        with torch.no_grad():
            y_neg = student.call(crp, -x, context=" (a single negative pixel)")
        if isinstance(y_neg, torch.Tensor) and y_neg.shape == x.shape and float(y_neg.abs().max()) > 1e-6:
            raise fail(what, "a negative input passes through: the ReLU on the input is missing.",
                       "begin forward with `x = F.relu(x)`; the running sum and the first block both use it.",
                       "chained residual pooling starts with a ReLU on its input (Sec. 3.2).")
        return
    cols = (y.detach().abs() > 1e-6).flatten(0, -2).any(dim=0).nonzero()
    width = 0 if len(cols) == 0 else int(cols.max() - cols.min() + 1)
    want_width, peak = 1 + 4 * num_blocks, float(y[0, 0, centre, centre])
    probe = (f"with identity convolutions, one bright pixel should spread to {want_width} px after {num_blocks} "
             f"chained 5x5 pools (+4 px per block) with centre value {1 + num_blocks}")
    if width == want_width and not bool(torch.allclose(y, y.round(), atol=1e-4)):
        raise fail(what, "the pooling averages instead of taking the maximum.",
                   "use 5x5 max-pooling with stride 1 and padding 2: `nn.MaxPool2d(5, stride=1, padding=2)`.",
                   f"{probe}; a max-pool copies values, so every value is a whole number, but yours are "
                   f"fractions (centre {peak:.3g}).")
    if width == 5 and num_blocks >= 2:
        raise fail(what, f"the blocks are wired in PARALLEL, not chained: the response stays 5 px wide instead "
                   f"of {want_width} px.",
                   "keep a running tensor: `top = x; for conv in self.convs: top = conv(self.pool(top)); "
                   "out = out + top`.",
                   f"{probe}. Every block pools the CRP's input x instead of the previous block's output, so "
                   "the receptive field never grows (a bug a public port has shipped: docs/paper.md, source "
                   "bug-crp-parallel).")
    if width == 1 + 2 * num_blocks:
        raise fail(what, "the pooling window is 3x3: the response grows 2 px per block "
                   f"({width} px after {num_blocks} blocks) instead of 4.",
                   "use a 5x5 window: `nn.MaxPool2d(5, stride=1, padding=2)`.")
    if width == want_width and abs(peak - 2.0) < 1e-4 and num_blocks >= 2:
        raise fail(what, "only the last block's output is added to the input; chained residual pooling sums "
                   "the output of EVERY block.", "add inside the loop: `top = block(top); out = out + top`.",
                   f"{probe}, yours has {peak:g}.")
    if width == want_width and abs(peak - 1.0) < 1e-4:
        raise fail(what, "the output is just the last block's output: the input and the outputs of all blocks "
                   "must be summed.", "start the sum with the (activated) input, `out = x`, and add every "
                   "block's output to it.", f"{probe}, yours has {peak:g}.")
    if width == want_width and abs(peak - num_blocks) < 1e-4:
        raise fail(what, "the input is missing from the sum, which starts from the ReLU-activated input.",
                   "`x = F.relu(x); out = x; top = x; ...`.", f"{probe}, yours has {peak:g}.")
    raise fail(what, f"one bright pixel gives a response {width} px wide with centre value {peak:.3g}.",
               f"{_LOOP}.", f"{probe}.")


def check_crp(crp_class: Any, *, channels: int = 4, num_blocks: int = 4, size: tuple[int, int] = (13, 17),
              seed: int = 0, allow_reference: bool = True) -> None:
    """Check a chained residual pooling class (paper Sec. 3.2).

    ``crp_class(channels, num_blocks)`` must build one 3x3 convolution (no bias) per block, and its forward
    is ``x = relu(x); out = x; top = x``, then for each block ``top = conv(maxpool5x5(top)); out = out + top``.
    Checks the layers, an impulse probe with identity convolutions (the response must grow 4 px per chained
    block), equality with :class:`refinenet_edu.nn.components.ChainedResidualPooling` holding the same
    weights, ``num_blocks=0`` (CRP off: just the ReLU), and gradients.
    """
    __tracebackhide__ = True
    student = Submission(crp_class, "check_crp(ChainedResidualPooling)", (ChainedResidualPooling,),
                         allow_reference=allow_reference)
    what = student.what
    gen = torch.Generator().manual_seed(seed)
    # Probe at least 3 blocks: with 2, parallel 5x5 pools and chained 3x3 pools both give a 5 px response.
    for n in sorted({3, num_blocks}, reverse=True) if num_blocks >= 2 else [num_blocks]:
        with seeded(seed):
            crp, ref = student.build((channels, n)), ChainedResidualPooling(channels, n)
        convs = convs_of(crp)
        if len(convs) != n:
            raise fail(what, f"{call_repr(what, (channels, n))} has {len(convs)} distinct convolution(s); a chain "
                       f"of {n} blocks needs one 3x3 convolution per block.",
                       "`self.convs = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1, bias=False) "
                       "for _ in range(num_blocks))`.", "a convolution re-used in every block shares one set of "
                       "weights.")
        for c in convs:
            if not conv_is(c, channels, channels):
                raise fail(what, f"a block's convolution is {c}.", f"`nn.Conv2d({channels}, {channels}, 3, "
                           "padding=1, bias=False)`.", "each is 3x3 from channels to channels, stride 1, "
                           "padding 1, without bias (as in the official code).")
        _probe(student, crp, ref, channels)

        randomize_(convs, gen, copies=ref.convs)
        x = torch.randn(2, channels, *size, generator=gen)
        y = student.call_keeping_shape(crp, x, fix="keep the size: `nn.MaxPool2d(5, stride=1, padding=2)`, "
                                       "convs with padding=1.")
        with torch.no_grad():
            expected = ref(x)
        if not close(y, expected):
            ref.conv_first = True
            student.named_mistake(y, [(lambda: ref(x), "each block convolves and then pools; this assignment (like "
                                       "the paper's CRP) pools first, then convolves.", "`top = conv(pool(top))`.",
                                       "conv-then-pool is the 'improved' CRP of the later official models.")])
            raise fail(what, "the output differs from the chain of pool+conv blocks (largest difference "
                       f"{max_diff(y, expected):.3g}).", f"{_LOOP}.")
        student.check_gradients(crp, [x], ["the input x"])

    # CRP off: num_blocks=0 is just the ReLU (used by the experiment "CRP on vs off").
    with seeded(seed):
        crp0 = student.build((channels, 0))
    x = torch.randn(1, channels, *size, generator=gen)
    with torch.no_grad():
        y0 = student.call(crp0, x.clone(), context=" with num_blocks=0")
    if param_count(crp0) != 0 or not close(y0, F.relu(x)):
        raise fail(what, "with num_blocks=0 (CRP switched off) the module should have no parameters and return "
                   "relu(x).", "build the convs with `range(num_blocks)` and let the loop run zero times.")
    student.refuse_reuse(fix=_OWN_FIX)
    ok(f"{what}: chained (impulse response grows 4 px per block), {num_blocks} pool+conv blocks, every block's "
       "output summed, matches refinenet_edu's ChainedResidualPooling, num_blocks=0 is relu(x), gradients flow.")
