"""Check of a Residual Conv Unit (paper Sec. 3.2, Fig. 3(b)): ``x + conv2(relu(conv1(relu(x))))``; a misplaced
ReLU (a public port has shipped one: docs/paper.md, source ``bug-rcu-relu``) is named from :data:`RCU_VARIANTS`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from refinenet_edu.nn.components import ResidualConvUnit
from refinenet_edu.grading.harness import (Submission, close, conv_is, convs_of, fail, max_diff, ok, param_count,
                                           randomize_, seeded)

__all__ = ["RCU_VARIANTS", "check_rcu"]

_FORMULA = "out = conv1(F.relu(x)); out = conv2(F.relu(out)); return x + out"

#: (name, formula(x, conv1, conv2), mistake, fix): what students and ports write instead of the RCU.
RCU_VARIANTS: list[tuple[str, Callable, str, str]] = [
    ("relu_on_shortcut", lambda x, c1, c2: F.relu(x) + c2(F.relu(c1(F.relu(x)))),
     "the shortcut carries relu(x) instead of x (the ReLU reaches the shortcut too).",
     f"keep the un-activated input for the sum, no `x = F.relu(x)` before it: {_FORMULA}."),
    ("relu_after_sum", lambda x, c1, c2: F.relu(x + c2(F.relu(c1(F.relu(x))))),
     "there is a ReLU after the sum; the RCU is a pre-activation unit whose output is the plain sum.",
     "remove the ReLU after `x + out`."),
    ("resnet_post_activation", lambda x, c1, c2: F.relu(x + c2(F.relu(c1(x)))),
     "this is the original ResNet unit (conv, ReLU, conv, add x, ReLU), not RefineNet's RCU, which puts a "
     "ReLU before each convolution and none after the sum (Sec. 3.2).",
     f"{_FORMULA}."),
    ("relu_after_each_conv", lambda x, c1, c2: x + F.relu(c2(F.relu(c1(x)))),
     "the ReLUs come after each convolution; in the RCU they come before each one (the first acts on x).",
     f"{_FORMULA}."),
    ("missing_first_relu", lambda x, c1, c2: x + c2(F.relu(c1(x))),
     "the first ReLU (on the input, before conv1) is missing.",
     "apply F.relu to x before conv1, but keep the un-activated x for the shortcut."),
    ("missing_second_relu", lambda x, c1, c2: x + c2(c1(F.relu(x))),
     "the second ReLU (between conv1 and conv2) is missing.",
     "apply F.relu to conv1's output before conv2."),
    ("second_relu_after_conv2", lambda x, c1, c2: x + F.relu(c2(c1(F.relu(x)))),
     "the second ReLU is applied after conv2 instead of before it.",
     "move it between the convolutions: `conv2(F.relu(conv1(F.relu(x))))`."),
    ("extra_relu_after_conv2", lambda x, c1, c2: x + F.relu(c2(F.relu(c1(F.relu(x))))),
     "there is an extra ReLU after conv2, on the residual branch before the sum.",
     "remove it: the residual branch ends with conv2."),
    ("second_relu_on_input", lambda x, c1, c2: x + c2(F.relu(x)),
     "conv2 receives relu(x), not relu(conv1(...)): the second ReLU is applied to the wrong tensor and "
     "conv1's output is thrown away.",
     "feed conv1's output through the ReLU into conv2: `out = conv1(F.relu(x)); out = conv2(F.relu(out))`."),
    ("no_relu", lambda x, c1, c2: x + c2(c1(x)),
     "there is no ReLU at all, and two convolutions in a row are just one linear map.",
     f"{_FORMULA}."),
    ("no_shortcut", lambda x, c1, c2: c2(F.relu(c1(F.relu(x)))),
     "the shortcut is missing: the unit must add its input to the residual branch.",
     "return `x + out`."),
    ("convs_swapped", lambda x, c1, c2: x + c1(F.relu(c2(F.relu(x)))),
     "conv2 is applied before conv1.",
     "apply conv1 first (it is the one with the bias), then conv2."),
]

_OWN_FIX = ("write the unit yourself: `class ResidualConvUnit(nn.Module)` with its own conv1 and conv2 "
            "(nn.Conv2d) and a forward of your own, without refinenet_edu.")
_CONV_FIX = ("create `self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=True)` and "
             "`self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)` in __init__, with the "
             "`channels` your __init__ receives.")


def _rcu_convs(rcu: nn.Module, what: str, channels: int) -> tuple[nn.Conv2d, nn.Conv2d]:
    """``conv1`` and ``conv2`` of an RCU-like module, checked for shape and bias layout. The fixes name the
    constructor's argument (``channels``), never the test's own width, so that a hint cannot be pasted back as a
    hard-coded size."""
    __tracebackhide__ = True
    named = [getattr(rcu, n, None) for n in ("conv1", "conv2")]
    convs = named if all(isinstance(c, nn.Conv2d) for c in named) else convs_of(rcu)
    if len(convs) != 2:
        raise fail(what, f"expected exactly two convolutions (conv1 and conv2), found {len(convs)}.", _CONV_FIX)
    for i, c in enumerate(convs, 1):
        if (c.in_channels, c.out_channels) != (channels, channels) and c.kernel_size == (3, 3):
            raise fail(what, f"built with channels={channels}, conv{i} maps {c.in_channels} to {c.out_channels} "
                       "channels: a width is written into the code instead of read from the argument.",
                       "`nn.Conv2d(channels, channels, 3, padding=1, ...)`, where `channels` is the argument of "
                       "__init__.", "the same class must build an RCU of any width (RefineNet uses 256 and 512).")
        if not conv_is(c, channels, channels, bias=None):
            raise fail(what, f"built with channels={channels}, conv{i} is {c}.",
                       "`nn.Conv2d(channels, channels, kernel_size=3, padding=1, ...)`.",
                       "both convolutions are 3x3 from `channels` to `channels`, stride 1, padding 1, so that "
                       "the unit keeps the shape of its input.")
    if convs[0].bias is None or convs[1].bias is not None:
        raise fail(what, f"conv1 has {'a' if convs[0].bias is not None else 'no'} bias and conv2 has "
                   f"{'a' if convs[1].bias is not None else 'no'} bias.",
                   "conv1: `bias=True`; conv2: `bias=False`.",
                   "the official code (and refinenet_edu) gives conv1 a bias and conv2 none, which makes the "
                   "parameter counts match the published network.")
    return convs[0], convs[1]


def check_rcu(rcu_class: Any, *, channels: int = 6, size: tuple[int, int] = (9, 11), seed: int = 0,
              allow_reference: bool = True) -> None:
    """Check a Residual Conv Unit class (paper Sec. 3.2).

    ``rcu_class(channels)`` must build a module with two 3x3 convolutions ``conv1`` (with bias) and ``conv2``
    (without) whose forward is ``x + conv2(relu(conv1(relu(x))))``. Checks the layers and parameter count (also at a
    second width, so that a width written into the code fails), the output shape (odd sizes), that the input is not
    modified in place, numerical equality with :class:`refinenet_edu.nn.components.ResidualConvUnit` holding the same
    weights (a misplaced ReLU is named), and that gradients reach the input and every parameter.
    """
    __tracebackhide__ = True
    student = Submission(rcu_class, "check_rcu(ResidualConvUnit)", (ResidualConvUnit,),
                         allow_reference=allow_reference)
    what = student.what
    gen = torch.Generator().manual_seed(seed)
    with seeded(seed):
        rcu = student.build((channels,))
        conv1, conv2 = _rcu_convs(rcu, what, channels)
        ref = ResidualConvUnit(channels)
        other = channels + 3 if channels < 8 else channels - 3  # a width written into the code fails here
        _rcu_convs(student.build((other,)), what, other)
    n_ref, n_student = param_count(ref), param_count(rcu)
    if n_student != n_ref:
        raise fail(what, f"{n_student} parameters; an RCU of {channels} channels has {n_ref} (two 3x3 convs, a "
                   "bias on conv1 only).", "create only conv1 and conv2 in __init__.")
    randomize_([conv1, conv2], gen, copies=[ref.conv1, ref.conv2])

    x = torch.randn(2, channels, *size, generator=gen)
    y = student.call_keeping_shape(rcu, x, fix="keep the shape: 3x3 convolutions with padding=1 and the same "
                                   "number of channels.")
    with torch.no_grad():
        expected = ref(x)
    if not close(y, expected):
        student.named_mistake(y, [(lambda f=f: f(x, ref.conv1, ref.conv2), mistake, fix)
                                  for _, f, mistake, fix in RCU_VARIANTS])
        raise fail(what, "the output differs from x + conv2(relu(conv1(relu(x)))) (largest difference "
                   f"{max_diff(y, expected):.3g}) and matches none of the usual mistakes.",
                   f"write forward exactly as the formula: {_FORMULA}.")
    student.check_gradients(rcu, [x], ["the input x"])
    student.refuse_reuse(fix=_OWN_FIX)
    ok(f"{what}: 3x3 convs, {n_ref} parameters, shape kept, x + conv2(relu(conv1(relu(x)))) matches "
       "refinenet_edu's ResidualConvUnit, gradients flow.")
