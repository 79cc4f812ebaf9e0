"""Check of the adaptive convolutions of one path of a RefineNet block (paper Sec. 3.2, Fig. 3(a)).

:func:`check_adaptive_conv` judges the wiring only: a 3x3 convolution to the
path's width, then the student's own RCUs one after the other. The
reference it compares with is that chain built from the student's RCU
modules (conv -> the student's RCU -> RCU), so a mistake inside the RCU costs
the RCU's test (:func:`~refinenet_edu.grading.rcu.check_rcu`), not this one.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from refinenet_edu.nn.components import AdaptiveConv, ResidualConvUnit
from refinenet_edu.grading.harness import (
    CheckFailed,
    Reference,
    Submission,
    call_repr,
    check_gradients,
    close,
    convs_of,
    fail,
    max_diff,
    name_of,
    ok,
    randomize_,
    require_tensor,
    seeded,
)

__all__ = ["check_adaptive_conv"]

_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
_CHAIN_FIX = ("`nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1, bias=False), "
              "*[ResidualConvUnit(width) for _ in range(num_rcus)])` with your ResidualConvUnit.")


def _parts(module: nn.Module) -> list[nn.Module]:
    """The module's layers in registration order, looking through plain containers (duplicates kept)."""
    out: list[nn.Module] = []
    for child in module._modules.values():
        if child is None:
            continue
        if type(child) in _CONTAINERS:
            out += _parts(child)
        else:
            out.append(child)
    return out


def check_adaptive_conv(factory: Any, *, in_channels: int = 10, width: int = 6, num_rcus: int = 2,
                        size: tuple[int, int] = (7, 9), seed: int = 0, allow_reference: bool = True) -> None:
    """Check the adaptive convolutions of one path (paper Sec. 3.2).

    ``factory(in_channels, width, num_rcus)`` must build a 3x3 convolution
    without bias from ``in_channels`` to ``width``, followed by ``num_rcus``
    of the student's Residual Conv Units applied one after the other (a
    chain, e.g. an ``nn.Sequential``). The output is compared with that chain
    computed from the student's own conv and RCU modules, so only the wiring
    is judged here; RCUs wired in parallel (each reading the convolution's
    output) are named. Holding or calling the library's ``ResidualConvUnit``
    or ``AdaptiveConv`` is refused; with ``allow_reference=False`` (the
    graded assignments) so is the library's ``AdaptiveConv`` itself.
    """
    __tracebackhide__ = True
    what = name_of(factory, "adaptive_conv")
    student = Submission(factory, what, Reference((AdaptiveConv, ResidualConvUnit)),
                         allow_reference=allow_reference)
    gen = torch.Generator().manual_seed(seed)
    call = call_repr(what, (in_channels, width, num_rcus))
    with seeded(seed):
        module = student.build((in_channels, width, num_rcus), usage="check_adaptive_conv(adaptive_conv)")
    parts = _parts(module)
    if not parts or not isinstance(parts[0], nn.Conv2d):
        first_name = type(parts[0]).__name__ if parts else "nothing"
        raise fail(what, f"{call} starts with {first_name}; the adaptive convolutions start with a 3x3 "
                   "convolution to the path's width.", _CHAIN_FIX)
    first, units = parts[0], parts[1:]
    if tuple(first.weight.shape) != (width, in_channels, 3, 3) or first.bias is not None \
            or first.padding != (1, 1) or first.stride != (1, 1):
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
        y = require_tensor(student.call(module, x), what, (2, width, *size))
        try:
            y0 = first(x)
            chain = y0
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
            variants = [
                (sum(outs), "the RCUs are wired in PARALLEL: each reads the convolution's output and their "
                 "outputs are summed."),
                (y0 + sum(o - y0 for o in outs), "the RCUs are wired in PARALLEL: each reads the convolution's "
                 "output and their residual branches are added to it."),
                (outs[-1] if outs else y0, "only the last RCU reaches the output: every RCU reads the "
                 "convolution's output, so the earlier ones are computed and thrown away."),
            ]
        for value, mistake in variants:
            if close(y, value):
                raise fail(what, mistake, "apply them one after the other: `nn.Sequential(conv, "
                           "ResidualConvUnit(width), ResidualConvUnit(width))`.",
                           "the RCUs form a chain: each refines the previous one's output (Sec. 3.2).")
        raise fail(what, "the output differs from conv -> RCU -> RCU built from your own layers (largest "
                   f"difference {max_diff(y, chain):.3g}).", _CHAIN_FIX)
    xg = x.clone().requires_grad_(True)
    module.zero_grad(set_to_none=True)
    check_gradients(module, [xg], student.call(module, xg), what, ["the input"])
    student.refuse_reuse(module, fix="build the chain from your own ResidualConvUnit (Task 1), not from "
                         "refinenet_edu's ResidualConvUnit or AdaptiveConv.")
    own = "" if student.is_reference else " (your own)"
    ok(f"{what}: 3x3 conv {in_channels} -> {width} (no bias), then {num_rcus} chained RCUs{own}, gradients flow.")
