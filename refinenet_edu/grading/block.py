"""Checks of a RefineNet block (paper Sec. 3.2, Fig. 3(a)): one path's adaptive convolutions, and the block's
forward pass written from its parts (adaptive convolutions -> fusion -> CRP -> output RCUs).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from refinenet_edu.nn.components import (
    AdaptiveConv,
    ChainedResidualPooling,
    MultiResolutionFusion,
    RefineNetBlock,
    ResidualConvUnit,
)
from refinenet_edu.grading.harness import (IN_PLACE_RELU, CheckFailed, Submission, call_repr, close, conv_is,
                                           convs_of, fail, max_diff, ok, randomize_, seeded)

__all__ = ["check_adaptive_conv", "check_block_forward"]

_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
_CHAIN_FIX = ("`nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1, bias=False), "
              "*[ResidualConvUnit(width) for _ in range(num_rcus)])` with your ResidualConvUnit.")


def _parts(module: nn.Module) -> list[nn.Module]:
    """The module's layers in registration order, looking through plain containers (duplicates kept)."""
    out: list[nn.Module] = []
    for child in module._modules.values():
        if child is not None:
            out += _parts(child) if type(child) in _CONTAINERS else [child]
    return out


def check_adaptive_conv(factory: Any, *, in_channels: int = 10, width: int = 6, num_rcus: int = 2,
                        size: tuple[int, int] = (7, 9), seed: int = 0, allow_reference: bool = True) -> None:
    """Check the adaptive convolutions of one path (paper Sec. 3.2).

    ``factory(in_channels, width, num_rcus)`` must build a 3x3 convolution without bias from ``in_channels`` to
    ``width``, followed by ``num_rcus`` of the student's Residual Conv Units applied one after the other (a chain,
    e.g. an ``nn.Sequential``). The output is compared with that chain computed from the student's own conv and RCU
    modules, so only the wiring is judged here (a mistake inside the RCU costs the RCU's test, not this one); RCUs
    wired in parallel (each reading the convolution's output) are named. Holding or calling the library's
    ``ResidualConvUnit`` or ``AdaptiveConv`` is refused; with ``allow_reference=False`` (the graded assignments) so is
    the library's ``AdaptiveConv`` itself.
    """
    __tracebackhide__ = True
    student = Submission(factory, "check_adaptive_conv(adaptive_conv)", (AdaptiveConv, ResidualConvUnit),
                         allow_reference=allow_reference)
    what = student.what
    gen = torch.Generator().manual_seed(seed)
    call = call_repr(what, (in_channels, width, num_rcus))
    with seeded(seed):
        module = student.build((in_channels, width, num_rcus))
    parts = _parts(module)
    if not parts or not isinstance(parts[0], nn.Conv2d):
        first_name = type(parts[0]).__name__ if parts else "nothing"
        raise fail(what, f"{call} starts with {first_name}; the adaptive convolutions start with a 3x3 "
                   "convolution to the path's width.", _CHAIN_FIX)
    first, units = parts[0], parts[1:]
    if not conv_is(first, in_channels, width):
        raise fail(what, f"the first convolution is {first}.",
                   f"`nn.Conv2d({in_channels}, {width}, 3, padding=1, bias=False)`.",
                   "it is 3x3 from in_channels to width, padding 1, without bias; it sets the path's width "
                   "(the official code uses 512 for the 1/32 path and 256 for the others).")
    if len(units) != num_rcus:
        found = ", ".join(type(u).__name__ for u in units) or "nothing"
        raise fail(what, f"{call} has {len(units)} module(s) after the first convolution ({found}); expected "
                   f"{num_rcus} RCUs.", _CHAIN_FIX)
    if len({id(u) for u in units}) < len(units):
        raise fail(what, "the same RCU object is used more than once, so the RCUs share one set of weights.",
                   "create a new ResidualConvUnit(width) for every position: "
                   "`[ResidualConvUnit(width) for _ in range(num_rcus)]`, not `[rcu] * num_rcus`.")
    for i, u in enumerate(units, 1):
        if not convs_of(u):
            raise fail(what, f"module {i} after the first convolution is a {type(u).__name__}, not an RCU.",
                       _CHAIN_FIX)

    randomize_(convs_of(module), gen)
    x = torch.randn(2, in_channels, *size, generator=gen)
    with torch.no_grad():
        y = student.call(module, x, shape=(2, width, *size))
        try:
            y0 = chain = first(x)
            for u in units:
                chain = student.call(u, chain)
        except CheckFailed as err:
            raise fail(what, "your ResidualConvUnit fails on its own (see the RCU's test).",
                       "fix the ResidualConvUnit first; this test checks only how the RCUs are wired.",
                       str(err).splitlines()[0].removeprefix(f"{what}: ")) from None
    if y.shape != chain.shape:
        raise fail(what, f"the output has shape {list(y.shape)}; conv -> RCU -> RCU gives {list(chain.shape)}.",
                   "the first convolution sets the width; the RCUs keep the shape.")
    if not close(y, chain):
        with torch.no_grad():
            outs = [u(y0) for u in units]
        student.named_mistake(y, [
            (sum(outs), "the RCUs are wired in PARALLEL: each reads the convolution's output and their outputs are "
             "summed."),
            (y0 + sum(o - y0 for o in outs), "the RCUs are wired in PARALLEL: each reads the convolution's output "
             "and their residual branches are added to it."),
            (outs[-1] if outs else y0, "only the last RCU reaches the output: every RCU reads the convolution's "
             "output, so the earlier ones are computed and thrown away."),
        ], fix="apply them one after the other: `nn.Sequential(conv, ResidualConvUnit(width), "
               "ResidualConvUnit(width))`.", why="the RCUs form a chain: each refines the previous one's output "
               "(Sec. 3.2).")
        raise fail(what, "the output differs from conv -> RCU -> RCU built from your own layers (largest "
                   f"difference {max_diff(y, chain):.3g}).", _CHAIN_FIX)
    student.check_gradients(module, [x], ["the input"])
    student.refuse_reuse(fix="build the chain from your own ResidualConvUnit (Task 1), not from "
                         "refinenet_edu's ResidualConvUnit or AdaptiveConv.")
    own = "" if student.is_reference else " (your own)"
    ok(f"{what}: 3x3 conv {in_channels} -> {width} (no bias), then {num_rcus} chained RCUs{own}, gradients flow.")


#: The blocks :func:`check_block_forward` runs: (what the case is, in_channels, widths, sizes of the paths).
_BLOCK_CASES = (
    ("a block of 2 paths (the previous block's output, then an encoder path)", (8, 8), (None, 8), ((5, 7), (10, 14))),
    ("a block of 1 path (RefineNet-4 on the 1/32 features)", (12,), (8,), ((4, 5),)),
    ("a block of 3 paths", (8, 12, 6), (None, 8, 8), ((3, 4), (6, 8), (12, 16))),
)
_FORWARD_FIX = ("`adapted = [layer(p) for layer, p in zip(block.adaptive, paths)]`, then "
                "`block.output(block.crp(block.fusion(*adapted)))`.")


def _block_mistakes(block: RefineNetBlock, paths: tuple[torch.Tensor, ...]) -> list[tuple[Any, str]]:
    """What common wrong forward passes compute on ``paths``: (a function giving its output, the mistake)."""
    def adapted():
        return [layer(p) for layer, p in zip(block.adaptive, paths)]

    def summed():  # the paths upsampled and added, without fusion's convolutions
        a = adapted()
        size = max((t.shape[-2:] for t in a), key=lambda hw: hw[0] * hw[1])
        return sum(F.interpolate(t, size=size, mode="bilinear", align_corners=False) for t in a)

    return [
        (lambda: block.output(block.crp(block.fusion(*paths))),
         "the paths skip the adaptive convolutions (block.adaptive)."),
        (lambda: block.output(block.fusion(*adapted())), "chained residual pooling (block.crp) is skipped."),
        (lambda: block.crp(block.fusion(*adapted())), "the output RCUs (block.output) are skipped."),
        (lambda: block.fusion(*adapted()), "both CRP and the output RCUs are skipped."),
        (lambda: block.crp(block.output(block.fusion(*adapted()))), "the output RCUs run before CRP."),
        (lambda: block.output(block.fusion(*[block.crp(a) for a in adapted()])),
         "CRP runs on every path before fusion, instead of once on the fused map."),
        (lambda: block.output(block.crp(summed())),
         "the paths are upsampled and summed without fusion's convolutions (block.fusion)."),
    ] + [(lambda i=i: block.output(block.crp(adapted()[i])),
          f"only path {i} reaches the output; the other paths are dropped instead of fused.")
         for i in range(len(paths))]


def check_block_forward(forward_fn: Any, *, seed: int = 0) -> None:
    """Check a RefineNet block's forward pass written from its parts (paper Sec. 3.2, Fig. 3(a)).

    ``forward_fn(block, *paths)`` gets a built :class:`~refinenet_edu.nn.components.RefineNetBlock` and its input
    paths (lowest resolution first) and must return what the block computes: every path through its adaptive
    convolutions (``block.adaptive[i]``), the adapted paths fused into one map at the largest resolution
    (``block.fusion``), then chained residual pooling (``block.crp``) and the output RCUs (``block.output``). It runs
    on blocks of 1, 2 and 3 paths with random weights; a skipped, reordered or per-path stage is named. Calling the
    block itself (``block(*paths)``, ``block.forward``) is refused: it matches by construction.
    """
    __tracebackhide__ = True
    student = Submission(forward_fn, "check_block_forward(my_forward)", (RefineNetBlock,),
                         allowed=(AdaptiveConv, MultiResolutionFusion, ChainedResidualPooling, ResidualConvUnit))
    what = student.what
    gen = torch.Generator().manual_seed(seed)
    for name, in_channels, widths, sizes in _BLOCK_CASES:
        with seeded(seed):
            block = RefineNetBlock(list(in_channels), list(widths), crp_blocks=2, output_rcus=2)
        randomize_(convs_of(block), gen)
        paths = tuple(torch.randn(2, c, *hw, generator=gen) for c, hw in zip(in_channels, sizes))
        case = f"{name}, paths " + ", ".join(str(list(p.shape)) for p in paths)
        expected_shape = (2, block.out_channels, *max(sizes, key=lambda hw: hw[0] * hw[1]))
        with torch.no_grad():
            y = student.call(forward_fn, block, *paths, context=f" ({name})", fix=_FORWARD_FIX,
                             shape=expected_shape, in_place=IN_PLACE_RELU)
            expected = block.output(block.crp(block.fusion(*[a(p) for a, p in zip(block.adaptive, paths)])))
        if tuple(y.shape) != expected_shape:
            raise fail(what, f"returned shape {list(y.shape)}; the block gives {list(expected_shape)}.",
                       _FORWARD_FIX, "a block's output has the fused width (block.out_channels) at the largest "
                       "input resolution.", case=case)
        if not close(y, expected):
            student.named_mistake(y, _block_mistakes(block, paths), fix=_FORWARD_FIX, case=case,
                                  why="Sec. 3.2: adaptive convolutions per path, then one fused map, refined by CRP, "
                                  "then the output RCUs.")
            raise fail(what, f"the output differs from the block's (largest difference {max_diff(y, expected):.3g}).",
                       _FORWARD_FIX, case=case)
        student.check_gradients(block, paths, [f"path {i}" for i in range(len(paths))],
                                run=lambda grads: student.call(forward_fn, block, *grads, context=f" ({name})"))
    student.refuse_reuse(fix="call the parts yourself: block.adaptive, block.fusion, block.crp and block.output, "
                         "not block(*paths) or block.forward(*paths).")
    ok(f"{what}: adaptive convolutions -> fusion -> CRP -> output RCUs, on blocks of 1, 2 and 3 paths; "
       "gradients reach every path and layer.")
