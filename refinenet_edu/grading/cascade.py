"""Check of the 4-cascaded RefineNet decoder (paper Sec. 3.1, Fig. 2(c)): forward hooks record which tensors
each of the student's four blocks receives, by identity, so that a swapped or wrong path is named exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from refinenet_edu.nn.components import RefineNetBlock
from refinenet_edu.grading.harness import CheckFailed, Submission, close, fail, max_diff, ok, seeded

__all__ = ["check_cascade"]

_BLOCKS = ("refinenet4", "refinenet3", "refinenet2", "refinenet1")
_STRIDES = (4, 8, 16, 32)
_STAGE_OF = {"refinenet4": 3, "refinenet3": 2, "refinenet2": 1, "refinenet1": 0}
_ORDER_FIX = ("forward(features) gets the list [1/4, 1/8, 1/16, 1/32]: r4 = refinenet4(features[3]), "
              "r3 = refinenet3(r4, features[2]), and so on down to refinenet1.")


def _check_built(what: str, blocks: dict[str, nn.Module], enc_channels: list[int], widths: list[int],
                 crp_blocks: int, output_rcus: int) -> int:
    """Each block's paths and widths (paper Sec. 3.1); returns RefineNet-1's output width."""
    __tracebackhide__ = True
    prev_out = None
    for name, b in blocks.items():
        s = _STAGE_OF[name]
        if not isinstance(b, RefineNetBlock):
            prev_out = min(widths[s], prev_out or widths[s])
            continue
        want_in = ([] if prev_out is None else [prev_out]) + [enc_channels[s]]
        want_w = ([] if prev_out is None else [None]) + [widths[s]]
        got_w = [None if isinstance(a, nn.Identity) else getattr(a, "out_channels", "?") for a in b.adaptive]
        if list(b.in_channels) != want_in or got_w != want_w:
            prev_txt = "" if prev_out is None else (
                f"the previous block's output ({prev_out} channels, width None: it enters as it is), then ")
            raise fail(what, f"{name} is built for paths with in_channels={list(b.in_channels)} and "
                       f"widths={got_w}; expected in_channels={want_in}, widths={want_w}.",
                       f"`RefineNetBlock({want_in}, {want_w}, crp_blocks=crp_blocks, output_rcus=output_rcus)`.",
                       f"{name} takes {prev_txt}the 1/{_STRIDES[s]} features (enc_channels[{s}] = "
                       f"{enc_channels[s]} channels) reduced to widths[{s}] = {widths[s]}.")
        if b.crp.num_blocks != crp_blocks or len(b.output) != output_rcus:
            raise fail(what, f"{name} has {b.crp.num_blocks} CRP blocks and {len(b.output)} output RCUs; the "
                       f"cascade was asked for crp_blocks={crp_blocks}, output_rcus={output_rcus}.",
                       "pass crp_blocks=crp_blocks, output_rcus=output_rcus to every RefineNetBlock.")
        prev_out = b.out_channels
    return prev_out


def check_cascade(cascade_class: Any, *, enc_channels: Sequence[int] = (16, 32, 64, 128),
                  widths: Sequence[int] = (8, 8, 12, 16), crp_blocks: int = 2, output_rcus: int = 1,
                  image_size: tuple[int, int] = (76, 92), seed: int = 0, allow_reference: bool = True) -> None:
    """Check a 4-cascaded RefineNet decoder class (paper Sec. 3.1).

    ``cascade_class(enc_channels, widths, crp_blocks=..., output_rcus=...)`` must build four
    :class:`~refinenet_edu.nn.components.RefineNetBlock` s as attributes ``refinenet4`` .. ``refinenet1``;
    ``forward(features)`` takes the encoder's four feature maps ``[1/4, 1/8, 1/16, 1/32]`` and returns RefineNet-1's
    output at 1/4 resolution. RefineNet-4 takes the 1/32 path alone; RefineNet-k (k < 4) takes RefineNet-(k+1)'s
    output and the path of its own stage. Checks the blocks' inputs and widths, the order of the calls and what each
    block receives (by tensor identity), the output, and gradients into all four feature maps. A class that derives
    from, holds or calls the library's own cascade (the RefineNet model) is refused.
    """
    __tracebackhide__ = True
    from refinenet_edu.nn.model import RefineNet  # imported here: it pulls in torchvision, which takes seconds

    student = Submission(cascade_class, "check_cascade(FourCascadedDecoder)", (RefineNet,),
                         allowed=(RefineNetBlock,), allow_reference=allow_reference)
    what = student.what
    enc_channels, widths = list(enc_channels), list(widths)
    with seeded(seed):
        dec = student.build((enc_channels, widths), dict(crp_blocks=crp_blocks, output_rcus=output_rcus))
    blocks = {name: getattr(dec, name, None) for name in _BLOCKS}
    for name, b in blocks.items():
        if not isinstance(b, nn.Module):
            raise fail(what, f"has no block attribute {name!r}.",
                       "create the four blocks as self.refinenet4, self.refinenet3, self.refinenet2, self.refinenet1.")
    out_channels = _check_built(what, blocks, enc_channels, widths, crp_blocks, output_rcus)

    gen = torch.Generator().manual_seed(seed)
    sizes = [(math.ceil(image_size[0] / s), math.ceil(image_size[1] / s)) for s in _STRIDES]  # stride 2 rounds up
    feats = [torch.randn(2, c, *hw, generator=gen) for c, hw in zip(enc_channels, sizes)]
    labels = {id(f): f"features[{i}] (the 1/{_STRIDES[i]} path, {list(f.shape)})" for i, f in enumerate(feats)}
    calls: list[tuple[str, tuple]] = []
    outputs: dict[str, torch.Tensor] = {}

    def describe(t: Any) -> str:
        if isinstance(t, torch.Tensor):
            return labels.get(id(t), f"a tensor of shape {list(t.shape)}")
        return type(t).__name__

    handles = []
    for name, b in blocks.items():
        def pre(module, args, name=name):
            calls.append((name, args))

        def post(module, args, out, name=name):
            outputs[name] = out
            if isinstance(out, torch.Tensor):
                labels[id(out)] = f"{name}'s output ({list(out.shape)})"

        handles += [b.register_forward_pre_hook(pre), b.register_forward_hook(post)]

    def wiring_problem() -> CheckFailed | None:
        order = [n for n, _ in calls]
        for i, (name, args) in enumerate(calls):
            if i < len(_BLOCKS) and name != _BLOCKS[i]:
                return fail(what, f"the blocks run in the order {order}; RefineNet refines from the coarsest to "
                            f"the finest: {list(_BLOCKS)}, each once.",
                            "call refinenet4 first, then refinenet3, refinenet2, refinenet1.")
            s = _STAGE_OF[name]
            previous = None if name == "refinenet4" else _BLOCKS[_BLOCKS.index(name) - 1]
            want = [feats[s]] if previous is None else [outputs.get(previous), feats[s]]
            if len(args) != len(want) or any(a is not w for a, w in zip(args, want)):
                got = ", ".join(describe(a) for a in args) or "nothing"
                takes, passes = f"features[{s}] (the 1/{_STRIDES[s]} path)", f"features[{s}]"
                if previous:
                    takes, passes = f"{previous}'s output, then {takes}", f"r{int(name[-1]) + 1}, {passes}"
                return fail(what, f"{name} received [{got}]; it takes [{takes}].",
                            f"`{name}({passes})`, passing the tensors themselves, previous output first.",
                            "each block after RefineNet-4 fuses the previous block's output with one encoder "
                            "path (Sec. 3.1).")
        if len(calls) > len(_BLOCKS):
            return fail(what, f"the blocks were called {len(calls)} times ({order}); each runs exactly once.",
                        "call each block once, in the order refinenet4, refinenet3, refinenet2, refinenet1.")
        return None

    try:
        out = student.call(dec, feats, fix=_ORDER_FIX)
    except CheckFailed as err:  # a block that received the wrong tensors may have raised: name the wiring
        raise (wiring_problem() or err) from err.__cause__
    finally:
        for h in handles:
            h.remove()
    problem = wiring_problem()
    if problem:
        raise problem
    if len(calls) < len(_BLOCKS):
        missing = [n for n in _BLOCKS if n not in outputs]
        raise fail(what, f"{missing} never ran; all four blocks refine in turn.",
                   "call refinenet4, refinenet3, refinenet2 and refinenet1, each on the previous one's output.")
    want_shape = (2, out_channels, *sizes[0])
    if out is not outputs["refinenet1"] and any(out is o for o in outputs.values()):
        raise fail(what, f"forward returns {describe(out)}, not RefineNet-1's output at 1/4 resolution "
                   f"{list(want_shape)}.", "return the output of refinenet1, the last block.")
    y = student.one_tensor(out, want_shape)
    if tuple(y.shape) != want_shape:
        raise fail(what, f"the output has shape {list(y.shape)}; expected RefineNet-1's output {list(want_shape)} "
                   "(1/4 of the input).", "return the output of refinenet1.")
    with torch.no_grad():
        r = blocks["refinenet4"](feats[3])
        for name in _BLOCKS[1:]:
            r = blocks[name](r, feats[_STAGE_OF[name]])
    if not close(y, r):
        raise fail(what, "the output differs from the chain r4 = refinenet4(f4), r3 = refinenet3(r4, f3), ... "
                   f"(largest difference {max_diff(y, r):.3g}).", "return refinenet1's output unchanged.")

    student.check_gradients(dec, feats, [f"features[{i}] (1/{s})" for i, s in enumerate(_STRIDES)],
                            run=lambda grads: student.call(dec, grads))
    student.refuse_reuse(fix="wire the four RefineNetBlocks yourself in your own nn.Module, without the "
                         "library's RefineNet model.")
    ok(f"{what}: refinenet4(1/32) -> refinenet3(+1/16) -> refinenet2(+1/8) -> refinenet1(+1/4), each block "
       f"built for the right paths, output {list(want_shape)} at 1/4, gradients reach all four encoder paths.")
