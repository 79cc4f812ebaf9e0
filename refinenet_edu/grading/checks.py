"""Checks that students call from the assignment notebooks, with targeted feedback.

Each ``check_*`` function builds the student's component on fixed inputs and
compares it with the library's reference (Lin et al., CVPR 2017: Sec. 3.2
for the components, Sec. 3.1 for the 4-cascade), copying the student's
weights into the reference so that the two must agree to rounding error.
When they do not, the check tries the mistakes that ports of RefineNet have
actually shipped and names the one it finds:

* :func:`check_rcu` - a ReLU in the wrong place in the Residual Conv Unit
  (on the shortcut, after the sum, missing, after instead of before a conv);
* :func:`check_adaptive_conv` - RCUs wired in parallel instead of one after
  the other;
* :func:`check_crp` - chained residual pooling wired as parallel pools (an
  impulse through identity convolutions spreads 4 px per chained block, but
  stays 5x5 with parallel pools), block outputs not summed, no input ReLU;
* :func:`check_fusion` - multi-resolution fusion upsampling the wrong branch
  (output at the low resolution, or the high-resolution path resampled);
* :func:`check_cascade` - the 4-cascade wired in the wrong order or with the
  wrong inputs;
* :func:`check_confusion_matrix`, :func:`check_iou`, :func:`check_miou` -
  transposed matrices, ignored pixels counted, NaN classes, other metrics
  mistaken for IoU;
* :func:`check_eval_mode` - prediction run with dropout (and batch norm)
  still in training mode.

A failed check raises :class:`CheckFailed`, a subclass of ``AssertionError``
(so nbgrader marks the test cell as failed), whose message says what is wrong
and how to fix it. A passed check prints one line starting with "✓".
``NotImplementedError`` from a part not written yet passes through untouched.
All checks run in well under a second on a CPU and leave the global random
state alone.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from refinenet_edu.components import (
    ChainedResidualPooling,
    MultiResolutionFusion,
    RefineNetBlock,
    ResidualConvUnit,
)
from refinenet_edu.engine.metrics import confusion_matrix, iou_from_confusion, miou_from_confusion

__all__ = [
    "CheckFailed",
    "check_adaptive_conv",
    "check_cascade",
    "check_confusion_matrix",
    "check_crp",
    "check_eval_mode",
    "check_fusion",
    "check_iou",
    "check_miou",
    "check_rcu",
]


class CheckFailed(AssertionError):
    """A check found a problem; the message says what is wrong and how to fix it."""


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def _fail(what: str, problem: str, fix: str | None = None) -> CheckFailed:
    msg = f"{what}: {problem}"
    if fix:
        msg += f"\n  How to fix: {fix}"
    return CheckFailed(msg)


def _ok(message: str) -> None:
    print(f"✓ {message}")


@contextlib.contextmanager
def _seeded(seed: int):
    """Run with a fixed torch seed, restoring the caller's random state afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _name(obj: Any, default: str) -> str:
    return getattr(obj, "__name__", None) or type(obj).__name__ or default


def _call_repr(name: str, args: Sequence[Any], kwargs: dict[str, Any]) -> str:
    parts = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()]
    return f"{name}({', '.join(parts)})"


def _build(factory: Any, what: str, args: Sequence[Any] = (), kwargs: dict[str, Any] | None = None, *, usage: str) -> nn.Module:
    """Instantiate the student's class; NotImplementedError passes through."""
    kwargs = kwargs or {}
    if isinstance(factory, nn.Module):
        raise _fail(what, "you passed an instance (an already built module).", f"pass the class itself: {usage}")
    if not callable(factory):
        raise _fail(what, f"expected a class, got {type(factory).__name__}.", f"call it as {usage}")
    call = _call_repr(_name(factory, what), args, kwargs)
    try:
        module = factory(*args, **kwargs)
    except NotImplementedError:
        raise
    except Exception as err:
        raise _fail(
            what,
            f"{call} raised {type(err).__name__}: {err}",
            "check the constructor's arguments (see the task), and that __init__ calls "
            "super().__init__() before it assigns any layer.",
        ) from err
    if not isinstance(module, nn.Module):
        raise _fail(what, f"{call} returned a {type(module).__name__}, not a torch.nn.Module.",
                    "make your class a subclass of nn.Module.")
    return module


def _forward(module: Callable, inputs: Sequence[Any], what: str, context: str = "") -> Any:
    """Call the student's forward; NotImplementedError and CheckFailed pass through."""
    try:
        return module(*inputs)
    except (NotImplementedError, CheckFailed):
        raise
    except Exception as err:
        shapes = ", ".join(str(list(t.shape)) if isinstance(t, torch.Tensor) else type(t).__name__ for t in inputs)
        raise _fail(
            what,
            f"forward raised {type(err).__name__} on input(s) of shape {shapes}{context}: {err}",
            "read the traceback above the message; compare the shapes in your forward with the task's formula.",
        ) from err


def _convs(module: nn.Module) -> list[nn.Conv2d]:
    """The module's distinct Conv2d layers in registration order."""
    return [m for m in module.modules() if isinstance(m, nn.Conv2d) and m is not module]


def _param_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _randomize_(convs: Sequence[nn.Conv2d], gen: torch.Generator) -> None:
    """Deterministic weights with both signs and ~unit gain, so that variants differ clearly."""
    with torch.no_grad():
        for c in convs:
            fan_in = c.weight[0].numel()
            c.weight.copy_(torch.randn(c.weight.shape, generator=gen) * (1.5 / math.sqrt(fan_in)))
            if c.bias is not None:
                c.bias.copy_(torch.randn(c.bias.shape, generator=gen) * 0.5)


def _identity_(conv: nn.Conv2d) -> None:
    """Make a square conv the identity map (a centred delta kernel, zero bias)."""
    with torch.no_grad():
        conv.weight.zero_()
        kh, kw = conv.weight.shape[-2] // 2, conv.weight.shape[-1] // 2
        for c in range(min(conv.out_channels, conv.in_channels)):
            conv.weight[c, c, kh, kw] = 1.0
        if conv.bias is not None:
            conv.bias.zero_()


def _close(a: Any, b: torch.Tensor, atol: float = 1e-5, rtol: float = 1e-4) -> bool:
    return (
        isinstance(a, torch.Tensor)
        and a.shape == b.shape
        and a.dtype.is_floating_point
        and bool(torch.allclose(a.detach().double(), b.detach().double(), atol=atol, rtol=rtol))
    )


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.detach().double() - b.detach().double()).abs().max())


def _require_tensor(y: Any, what: str, expected_shape: Sequence[int]) -> torch.Tensor:
    if isinstance(y, (tuple, list)) and len(y) == 1 and isinstance(y[0], torch.Tensor):
        y = y[0]
    if not isinstance(y, torch.Tensor):
        raise _fail(what, f"forward returned a {type(y).__name__}, expected one tensor of shape {list(expected_shape)}.",
                    "return the output tensor (did you forget the `return`?).")
    return y


def _check_unchanged(x: torch.Tensor, before: torch.Tensor, what: str) -> None:
    if not torch.equal(x, before):
        raise _fail(
            what,
            "forward changed its input tensor in place (an in-place ReLU on x: nn.ReLU(inplace=True), "
            "F.relu(x, inplace=True), F.relu_(x) or x.relu_()). The caller's tensor is destroyed and a "
            "shortcut that should carry x carries relu(x).",
            "use the out-of-place F.relu(x) (or nn.ReLU()) on the block's input.",
        )


def _check_gradients(module: nn.Module, inputs: Sequence[torch.Tensor], output: torch.Tensor, what: str,
                     input_names: Sequence[str] | None = None) -> None:
    """Backpropagate a fixed weighting of the output; every input and parameter must get a gradient."""
    if not output.requires_grad:
        raise _fail(what, "the output does not require a gradient: nothing can be trained through it.",
                    "do not use torch.no_grad(), .detach(), .data or numpy inside forward.")
    gen = torch.Generator().manual_seed(1234)
    weight = torch.randn(output.shape, generator=gen)
    (output * weight).sum().backward()
    names = list(input_names) if input_names is not None else [f"input {i}" for i in range(len(inputs))]
    for name, x in zip(names, inputs):
        if x.grad is None or not bool(x.grad.abs().sum() > 0):
            raise _fail(what, f"no gradient reaches {name}.",
                        "do not .detach() it, wrap it in torch.no_grad(), use .data, or leave it out of the sum.")
    for pname, p in module.named_parameters():
        if p.grad is None:
            raise _fail(what, f"parameter {pname!r} gets no gradient: forward does not use it.",
                        "every layer you create in __init__ must be used in forward (or not be created).")
        if not bool(torch.isfinite(p.grad).all()):
            raise _fail(what, f"parameter {pname!r} gets a non-finite gradient.", None)


# --------------------------------------------------------------------------
# Residual Conv Unit (Sec. 3.2)
# --------------------------------------------------------------------------

_RCU_VARIANTS: list[tuple[str, Callable, str, str]] = [
    # (name, formula(x, c1, c2), problem, fix)
    (
        "relu_on_shortcut",
        lambda x, c1, c2: F.relu(x) + c2(F.relu(c1(F.relu(x)))),
        "the shortcut carries relu(x) instead of x (the ReLU is applied to the shortcut as well).",
        "keep the un-activated input for the sum: `out = conv1(F.relu(x)); out = conv2(F.relu(out)); return x + out`. "
        "Do not write `x = F.relu(x)` before the sum.",
    ),
    (
        "relu_after_sum",
        lambda x, c1, c2: F.relu(x + c2(F.relu(c1(F.relu(x))))),
        "there is a ReLU after the sum. The RCU is a pre-activation unit: the output is the plain sum.",
        "remove the ReLU after `x + out`.",
    ),
    (
        "resnet_post_activation",
        lambda x, c1, c2: F.relu(x + c2(F.relu(c1(x)))),
        "you wrote the original ResNet unit (conv -> ReLU -> conv, add x, ReLU). RefineNet's RCU puts a ReLU "
        "*before* each convolution and none after the sum (paper Sec. 3.2).",
        "`out = conv1(F.relu(x)); out = conv2(F.relu(out)); return x + out`.",
    ),
    (
        "relu_after_each_conv",
        lambda x, c1, c2: x + F.relu(c2(F.relu(c1(x)))),
        "the ReLUs come *after* each convolution; in the RCU they come *before* each convolution "
        "(the first acts on the input x).",
        "`out = conv1(F.relu(x)); out = conv2(F.relu(out)); return x + out`.",
    ),
    (
        "missing_first_relu",
        lambda x, c1, c2: x + c2(F.relu(c1(x))),
        "the first ReLU (on the input, before conv1) is missing.",
        "apply F.relu to x before conv1 - but keep the un-activated x for the shortcut.",
    ),
    (
        "missing_second_relu",
        lambda x, c1, c2: x + c2(c1(F.relu(x))),
        "the second ReLU (between conv1 and conv2) is missing.",
        "apply F.relu to conv1's output before conv2.",
    ),
    (
        "second_relu_after_conv2",
        lambda x, c1, c2: x + F.relu(c2(c1(F.relu(x)))),
        "the second ReLU is applied after conv2 instead of before it.",
        "move it between the convolutions: `conv2(F.relu(conv1(F.relu(x))))`.",
    ),
    (
        "extra_relu_after_conv2",
        lambda x, c1, c2: x + F.relu(c2(F.relu(c1(F.relu(x))))),
        "there is an extra ReLU after conv2, on the residual branch before the sum.",
        "remove it: the residual branch ends with conv2.",
    ),
    (
        "second_relu_on_input",
        lambda x, c1, c2: x + c2(F.relu(x)),
        "conv2 receives relu(x), not relu(conv1(...)): the second ReLU is applied to the wrong tensor "
        "and conv1's output is thrown away.",
        "feed conv1's output through the ReLU into conv2: `out = conv1(F.relu(x)); out = conv2(F.relu(out))`.",
    ),
    (
        "no_relu",
        lambda x, c1, c2: x + c2(c1(x)),
        "there is no ReLU at all: two convolutions in a row are just one linear map.",
        "`out = conv1(F.relu(x)); out = conv2(F.relu(out)); return x + out`.",
    ),
    (
        "no_shortcut",
        lambda x, c1, c2: c2(F.relu(c1(F.relu(x)))),
        "the shortcut is missing: the unit must add its input to the residual branch.",
        "return `x + out`.",
    ),
    (
        "convs_swapped",
        lambda x, c1, c2: x + c1(F.relu(c2(F.relu(x)))),
        "conv2 is applied before conv1.",
        "apply conv1 first (it is the one with the bias), then conv2.",
    ),
]


def _rcu_convs(rcu: nn.Module, what: str, channels: int) -> tuple[nn.Conv2d, nn.Conv2d]:
    named = [getattr(rcu, n, None) for n in ("conv1", "conv2")]
    convs = named if all(isinstance(c, nn.Conv2d) for c in named) else _convs(rcu)
    if len(convs) != 2:
        raise _fail(
            what,
            f"expected exactly two convolutions (conv1 and conv2), found {len(convs)}.",
            f"create `self.conv1 = nn.Conv2d({channels}, {channels}, 3, padding=1, bias=True)` and "
            f"`self.conv2 = nn.Conv2d({channels}, {channels}, 3, padding=1, bias=False)` in __init__.",
        )
    for i, c in enumerate(convs, 1):
        if tuple(c.weight.shape) != (channels, channels, 3, 3) or c.stride != (1, 1) or c.padding != (1, 1) \
                or c.dilation != (1, 1) or c.groups != 1:
            raise _fail(
                what,
                f"conv{i} is {c} (weight {list(c.weight.shape)}); for channels={channels} it must be a 3x3 convolution "
                f"from {channels} to {channels} channels, stride 1, padding 1, so that the output has the input's shape.",
                f"`nn.Conv2d({channels}, {channels}, kernel_size=3, padding=1, ...)`.",
            )
    if convs[0].bias is None or convs[1].bias is not None:
        raise _fail(
            what,
            f"conv1 has {'a' if convs[0].bias is not None else 'no'} bias and conv2 has "
            f"{'a' if convs[1].bias is not None else 'no'} bias. The official code (and refinenet_edu) gives conv1 a "
            "bias and conv2 none, which is what makes the parameter counts match the published network.",
            "conv1: `bias=True`; conv2: `bias=False`.",
        )
    return convs[0], convs[1]


def check_rcu(rcu_class: Any, *, channels: int = 6, size: tuple[int, int] = (9, 11), seed: int = 0) -> None:
    """Check a Residual Conv Unit class (paper Sec. 3.2).

    ``rcu_class(channels)`` must build a module with two 3x3 convolutions
    ``conv1`` (with bias) and ``conv2`` (without) whose forward is
    ``x + conv2(relu(conv1(relu(x))))``. Checks the layers and parameter count,
    the output shape (odd sizes), that the input is not modified in place,
    numerical equality with :class:`refinenet_edu.components.ResidualConvUnit`
    holding the same weights, and that gradients reach the input and every
    parameter. A misplaced ReLU is named.
    """
    what = _name(rcu_class, "ResidualConvUnit")
    usage = "check_rcu(ResidualConvUnit)"
    gen = torch.Generator().manual_seed(seed)
    with _seeded(seed):
        rcu = _build(rcu_class, what, (channels,), usage=usage)
        conv1, conv2 = _rcu_convs(rcu, what, channels)
        ref = ResidualConvUnit(channels)
    n_ref, n_student = _param_count(ref), _param_count(rcu)
    if n_student != n_ref:
        raise _fail(what, f"{n_student} parameters, the reference has {n_ref} (two 3x3 convs, a bias on conv1 only).",
                    "create only conv1 and conv2 in __init__.")
    _randomize_([conv1, conv2], gen)
    with torch.no_grad():
        ref.conv1.weight.copy_(conv1.weight)
        ref.conv1.bias.copy_(conv1.bias)
        ref.conv2.weight.copy_(conv2.weight)

    x = torch.randn(2, channels, *size, generator=gen)
    before = x.clone()
    y = _require_tensor(_forward(rcu, [x], what), what, x.shape)
    _check_unchanged(x, before, what)
    if y.shape != x.shape:
        raise _fail(what, f"output shape {list(y.shape)} differs from the input shape {list(x.shape)}.",
                    "an RCU keeps the shape: 3x3 convolutions with padding=1 and the same number of channels.")
    with torch.no_grad():
        expected = ref(before)
    if not _close(y, expected):
        c1 = lambda t: F.conv2d(t, conv1.weight, conv1.bias, padding=1)  # noqa: E731
        c2 = lambda t: F.conv2d(t, conv2.weight, None, padding=1)  # noqa: E731
        with torch.no_grad():
            for _, formula, problem, fix in _RCU_VARIANTS:
                if _close(y, formula(before, c1, c2)):
                    raise _fail(what, problem, fix)
        raise _fail(
            what,
            f"the output differs from x + conv2(relu(conv1(relu(x)))) (largest difference {_max_diff(y, expected):.3g}) "
            "and matches none of the usual mistakes.",
            "write forward exactly as the formula: ReLU first, conv1, ReLU, conv2, then add the input.",
        )

    xg = before.clone().requires_grad_(True)
    rcu.zero_grad(set_to_none=True)
    yg = _forward(rcu, [xg], what)
    _check_gradients(rcu, [xg], yg, what, ["the input x"])
    _ok(f"{what}: 3x3 convs, {n_ref} parameters, shape kept, x + conv2(relu(conv1(relu(x)))) matches "
        "refinenet_edu's ResidualConvUnit, gradients flow.")


def check_adaptive_conv(factory: Any, *, in_channels: int = 10, width: int = 6, num_rcus: int = 2,
                        size: tuple[int, int] = (7, 9), seed: int = 0) -> None:
    """Check the adaptive convolutions of one path (paper Sec. 3.2).

    ``factory(in_channels, width, num_rcus)`` must build a 3x3 convolution
    without bias from ``in_channels`` to ``width``, followed by ``num_rcus``
    Residual Conv Units applied one after the other (a chain, e.g. an
    ``nn.Sequential``). Compared with :class:`refinenet_edu.components.AdaptiveConv`
    holding the same weights; RCUs wired in parallel (each reading the
    convolution's output) are named.
    """
    from refinenet_edu.components import AdaptiveConv

    what = _name(factory, "adaptive_conv")
    usage = "check_adaptive_conv(adaptive_conv)"
    gen = torch.Generator().manual_seed(seed)
    with _seeded(seed):
        module = _build(factory, what, (in_channels, width, num_rcus), usage=usage)
        ref = AdaptiveConv(in_channels, width, num_rcus)
    convs = _convs(module)
    want = 1 + 2 * num_rcus
    if len(convs) != want:
        raise _fail(what, f"{_call_repr(what, (in_channels, width, num_rcus), {})} has {len(convs)} distinct "
                    f"convolution(s); expected {want}: one 3x3 convolution to the width, then {num_rcus} RCUs of two "
                    "convolutions each (one RCU object per position: re-using one RCU shares its weights).",
                    "`nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1, bias=False), "
                    "*[ResidualConvUnit(width) for _ in range(num_rcus)])`.")
    first = convs[0]
    if tuple(first.weight.shape) != (width, in_channels, 3, 3) or first.bias is not None or first.padding != (1, 1):
        raise _fail(what, f"the first convolution is {first}; it must be 3x3 from {in_channels} to {width} channels, "
                    "padding 1, without bias (it sets the path's width; the official code uses 512 for the 1/32 "
                    "path and 256 for the others).", f"`nn.Conv2d({in_channels}, {width}, 3, padding=1, bias=False)`.")
    ref_convs = _convs(ref)
    for sc, rc in zip(convs, ref_convs):
        if sc.weight.shape != rc.weight.shape or (sc.bias is None) != (rc.bias is None):
            raise _fail(what, f"a convolution is {sc}, where the reference has {rc}.",
                        "use your ResidualConvUnit (conv1 with bias, conv2 without) after the first convolution.")
    _randomize_(convs, gen)
    with torch.no_grad():
        for sc, rc in zip(convs, ref_convs):
            rc.weight.copy_(sc.weight)
            if rc.bias is not None:
                rc.bias.copy_(sc.bias)
    x = torch.randn(2, in_channels, *size, generator=gen)
    with torch.no_grad():
        y = _require_tensor(_forward(module, [x], what), what, (2, width, *size))
        expected = ref(x)
    if y.shape != expected.shape:
        raise _fail(what, f"output shape {list(y.shape)}; expected {list(expected.shape)}.",
                    "the first convolution sets the width; RCUs keep the shape.")
    if not _close(y, expected):
        with torch.no_grad():
            y0 = ref[0](x)
            rcus = list(ref)[1:]
            outs = [r(y0) for r in rcus]
            variants = [
                (sum(outs), "the RCUs are wired in PARALLEL: each reads the convolution's output and their outputs "
                 "are summed."),
                (y0 + sum(o - y0 for o in outs), "the RCUs are wired in PARALLEL: each reads the convolution's output "
                 "and their residual branches are added to it."),
                (outs[-1] if outs else y0, "only the last RCU reaches the output: every RCU reads the convolution's "
                 "output, so the earlier ones are computed and thrown away."),
            ]
        for value, problem in variants:
            if _close(y, value):
                raise _fail(what, problem + " The RCUs form a chain: each refines the previous one's output.",
                            "apply them one after the other: `nn.Sequential(conv, ResidualConvUnit(width), "
                            "ResidualConvUnit(width))`.")
        raise _fail(what, f"the output differs from conv -> RCU -> RCU (largest difference {_max_diff(y, expected):.3g}).",
                    "`nn.Sequential(conv, *[ResidualConvUnit(width) for _ in range(num_rcus)])`; check your RCU first.")
    xg = x.clone().requires_grad_(True)
    module.zero_grad(set_to_none=True)
    _check_gradients(module, [xg], _forward(module, [xg], what), what, ["the input"])
    _ok(f"{what}: 3x3 conv {in_channels} -> {width} (no bias), then {num_rcus} chained RCUs; matches "
        "refinenet_edu's AdaptiveConv, gradients flow.")


# --------------------------------------------------------------------------
# Chained residual pooling (Sec. 3.2)
# --------------------------------------------------------------------------


def _support_width(y: torch.Tensor) -> int:
    cols = (y.detach().abs() > 1e-6).flatten(0, -2).any(dim=0).nonzero()
    return 0 if len(cols) == 0 else int(cols.max() - cols.min() + 1)


def _crp_reference(x: torch.Tensor, convs: Sequence[nn.Conv2d], *, conv_first: bool = False) -> torch.Tensor:
    top = out = F.relu(x)
    for c in convs:
        top = F.max_pool2d(c(top), 5, 1, 2) if conv_first else c(F.max_pool2d(top, 5, 1, 2))
        out = out + top
    return out


def _crp_probe(crp: nn.Module, convs: Sequence[nn.Conv2d], num_blocks: int, channels: int, what: str) -> None:
    """Identity convs + an impulse: the response of N chained 5x5 max-pools is 1 + 4N px wide."""
    for c in convs:
        _identity_(c)
    side = 8 * num_blocks + 9
    centre = side // 2
    x = torch.zeros(1, channels, side, side)
    x[:, :, centre, centre] = 1.0
    with torch.no_grad():
        y = _require_tensor(_forward(crp, [x], what, " (impulse probe)"), what, x.shape)
        expected = _crp_reference(x, convs)
    if y.shape != x.shape:
        return  # the shape test that follows explains this
    if _close(y, expected):
        x_neg = -x
        with torch.no_grad():
            y_neg = _forward(crp, [x_neg], what, " (negative impulse probe)")
        if isinstance(y_neg, torch.Tensor) and y_neg.shape == x.shape and float(y_neg.abs().max()) > 1e-6:
            raise _fail(
                what,
                "a negative input passes through: chained residual pooling starts with a ReLU on its input "
                "(Sec. 3.2), and both the running sum and the first pooling block use the activated input.",
                "begin forward with `x = F.relu(x)`.",
            )
        return
    width, want_width = _support_width(y), 1 + 4 * num_blocks
    peak = float(y[0, 0, centre, centre])
    if width == want_width and not bool(torch.allclose(y, y.round(), atol=1e-4)):
        raise _fail(
            what,
            "with identity convolutions and a unit impulse every value should be a whole number (a max-pool copies "
            f"values), but yours are fractions (centre {peak:.3g}): the pooling averages instead of taking the maximum.",
            "use 5x5 max-pooling with stride 1 and padding 2: `nn.MaxPool2d(5, stride=1, padding=2)`.",
        )
    if width == 5 and num_blocks >= 2:
        raise _fail(
            what,
            f"the blocks are wired in PARALLEL, not chained. With identity convolutions, an impulse should spread to "
            f"{want_width} px after {num_blocks} chained 5x5 pools (+4 px per block), but yours stays 5 px wide: "
            "every block pools the CRP's input x instead of the previous block's output, so the receptive field "
            "never grows (a bug that ports of RefineNet have shipped).",
            "keep a running tensor: `top = x; for conv in self.convs: top = conv(self.pool(top)); out = out + top`.",
        )
    if width == 1 + 2 * num_blocks:
        raise _fail(
            what,
            f"the response grows 2 px per block ({width} px after {num_blocks} blocks) instead of 4: the pooling "
            "window is 3x3.",
            "use a 5x5 window: `nn.MaxPool2d(5, stride=1, padding=2)`.",
        )
    if width == want_width and abs(peak - 2.0) < 1e-4 and num_blocks >= 2:
        raise _fail(
            what,
            f"only the last block's output is added to the input (centre value {peak:g}, expected {1 + num_blocks}): "
            "chained residual pooling sums the output of EVERY block.",
            "add inside the loop: `top = block(top); out = out + top`.",
        )
    if width == want_width and abs(peak - 1.0) < 1e-4:
        raise _fail(
            what,
            f"the output is just the last block's output (centre value {peak:g}, expected {1 + num_blocks}): the "
            "outputs of the blocks and the input must be summed.",
            "start the sum with the (activated) input, `out = x`, and add every block's output to it.",
        )
    if width == want_width and abs(peak - num_blocks) < 1e-4:
        raise _fail(
            what,
            f"the input is missing from the sum (centre value {peak:g}, expected {1 + num_blocks}): the sum starts "
            "from the ReLU-activated input.",
            "`x = F.relu(x); out = x; top = x; ...`.",
        )
    raise _fail(
        what,
        f"with identity convolutions an impulse should give a {want_width} px wide response with centre value "
        f"{1 + num_blocks}; yours is {width} px wide with centre value {peak:.3g}.",
        "x = relu(x); out = x; top = x; for each block: top = conv(pool(top)); out = out + top.",
    )


def check_crp(crp_class: Any, *, channels: int = 4, num_blocks: int = 4, size: tuple[int, int] = (13, 17), seed: int = 0) -> None:
    """Check a chained residual pooling class (paper Sec. 3.2).

    ``crp_class(channels, num_blocks)`` must build a module with one 3x3
    convolution (no bias) per block whose forward is::

        x = relu(x); out = x; top = x
        for each block: top = conv(maxpool5x5(top)); out = out + top

    Checks the layers, an impulse probe with identity convolutions (the
    response must grow 4 px per chained block; parallel pools stay at 5 px),
    numerical equality with :class:`refinenet_edu.components.ChainedResidualPooling`
    holding the same weights, ``num_blocks=0`` (CRP off: just the ReLU), and
    gradients.
    """
    what = _name(crp_class, "ChainedResidualPooling")
    usage = "check_crp(ChainedResidualPooling)"
    gen = torch.Generator().manual_seed(seed)
    # Probe at least 3 blocks: with 2, parallel 5x5 pools and chained 3x3 pools both give a 5 px response.
    block_counts = sorted({3, num_blocks}, reverse=True) if num_blocks >= 2 else [num_blocks]
    for n in block_counts:
        with _seeded(seed):
            crp = _build(crp_class, what, (channels, n), usage=usage)
        convs = _convs(crp)
        if len(convs) != n:
            raise _fail(
                what,
                f"{_call_repr(what, (channels, n), {})} has {len(convs)} distinct convolution(s); a chain of {n} "
                "blocks needs one 3x3 convolution per block (a conv re-used in every block shares one set of weights).",
                "`self.convs = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1, bias=False) for _ in range(num_blocks))`.",
            )
        for c in convs:
            if tuple(c.weight.shape) != (channels, channels, 3, 3) or c.padding != (1, 1) or c.stride != (1, 1) \
                    or c.bias is not None:
                raise _fail(
                    what,
                    f"a block's convolution is {c}; it must be 3x3 from {channels} to {channels} channels, stride 1, "
                    "padding 1, without bias (as in the official code).",
                    f"`nn.Conv2d({channels}, {channels}, 3, padding=1, bias=False)`.",
                )
        _crp_probe(crp, convs, n, channels, what)

        _randomize_(convs, gen)
        x = torch.randn(2, channels, *size, generator=gen)
        before = x.clone()
        y = _require_tensor(_forward(crp, [x], what), what, x.shape)
        _check_unchanged(x, before, what)
        if y.shape != x.shape:
            raise _fail(what, f"output shape {list(y.shape)} differs from the input shape {list(x.shape)}.",
                        "pooling must keep the size: `nn.MaxPool2d(5, stride=1, padding=2)`; convs use padding=1.")
        with torch.no_grad():
            expected = _crp_reference(before, convs)
            if not _close(y, expected):
                if _close(y, _crp_reference(before, convs, conv_first=True)):
                    raise _fail(
                        what,
                        "each block convolves and then pools. That is the 'improved' CRP of the later official "
                        "models; this assignment (like the paper's CRP) pools first, then convolves.",
                        "`top = conv(pool(top))`.",
                    )
                raise _fail(
                    what,
                    f"the output differs from the reference chain (largest difference {_max_diff(y, expected):.3g}).",
                    "x = relu(x); out = x; top = x; for each block: top = conv(pool(top)); out = out + top.",
                )
        with _seeded(seed):
            ref = ChainedResidualPooling(channels, n)
        with torch.no_grad():
            for rc, sc in zip(ref.convs, convs):
                rc.weight.copy_(sc.weight)
            if not _close(y, ref(before)):  # pragma: no cover - the two references agree
                raise _fail(what, "the output differs from refinenet_edu's ChainedResidualPooling.", None)

        xg = before.clone().requires_grad_(True)
        crp.zero_grad(set_to_none=True)
        _check_gradients(crp, [xg], _forward(crp, [xg], what), what, ["the input x"])

    # CRP off: num_blocks=0 is just the ReLU (used by the experiment "CRP on vs off").
    with _seeded(seed):
        crp0 = _build(crp_class, what, (channels, 0), usage=usage)
    x = torch.randn(1, channels, *size, generator=gen)
    with torch.no_grad():
        y0 = _forward(crp0, [x.clone()], what, " with num_blocks=0")
    if _param_count(crp0) != 0 or not _close(y0, F.relu(x)):
        raise _fail(
            what,
            "with num_blocks=0 (CRP switched off) the module should have no parameters and return relu(x).",
            "build the convs with `range(num_blocks)` and let the loop run zero times.",
        )
    _ok(f"{what}: chained (impulse response grows 4 px per block), {num_blocks} pool+conv blocks, every block's "
        "output summed, matches refinenet_edu's ChainedResidualPooling, num_blocks=0 is relu(x), gradients flow.")


# --------------------------------------------------------------------------
# Multi-resolution fusion (Sec. 3.2)
# --------------------------------------------------------------------------


def _up(x: torch.Tensor, size, *, mode: str = "bilinear", align_corners: bool | None = False) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    if mode == "nearest":
        return F.interpolate(x, size=size, mode="nearest")
    return F.interpolate(x, size=size, mode=mode, align_corners=align_corners)


def _fusion_convs(fusion: nn.Module, in_channels: Sequence[int], what: str) -> list[nn.Conv2d]:
    convs = _convs(fusion)
    width = min(in_channels)
    fix = (f"`self.convs = nn.ModuleList(nn.Conv2d(c, {width}, 3, padding=1, bias=False) for c in in_channels)` "
           "(one per path, in the order of the paths, to the smallest width).")
    if len(convs) != len(in_channels):
        raise _fail(what, f"built for {len(in_channels)} paths it has {len(convs)} convolution(s); every path gets "
                    "its own 3x3 convolution.", fix)
    for c, ci in zip(convs, in_channels):
        if tuple(c.weight.shape) != (width, ci, 3, 3) or c.padding != (1, 1) or c.stride != (1, 1) or c.bias is not None:
            raise _fail(what, f"for a path with {ci} channels the convolution is {c}; it must be 3x3 from {ci} to the "
                        f"smallest width among the paths ({width}), stride 1, padding 1, without bias.", fix)
    return convs


def _fusion_reference(paths: Sequence[torch.Tensor], convs: Sequence[nn.Conv2d], *, mode="bilinear",
                      align_corners=False, conv_after_upsample=False) -> torch.Tensor:
    size = max((p.shape[-2:] for p in paths), key=lambda s: s[0] * s[1])
    out = 0
    for p, c in zip(paths, convs):
        y = c(_up(p, size, mode=mode, align_corners=align_corners)) if conv_after_upsample else \
            _up(c(p), size, mode=mode, align_corners=align_corners)
        out = out + y
    return out


def check_fusion(fusion_class: Any, *, seed: int = 0) -> None:
    """Check a multi-resolution fusion class (paper Sec. 3.2).

    ``fusion_class(in_channels)`` (one entry per path) must build one 3x3
    convolution (no bias) per path to the smallest width; ``forward(*paths)``
    convolves each path, upsamples it (bilinear, ``align_corners=False``) to
    the largest resolution among the paths and sums them. With one path it
    returns the path unchanged. Checks: the output resolution for both
    orders of the paths (the bug "fusion upsamples the wrong branch" puts it
    at the low resolution), that the high-resolution path is not resampled,
    odd sizes (not an exact factor of 2), three paths, numerical equality
    with :class:`refinenet_edu.components.MultiResolutionFusion`, gradients.
    """
    what = _name(fusion_class, "MultiResolutionFusion")
    usage = "check_fusion(MultiResolutionFusion)"
    gen = torch.Generator().manual_seed(seed)
    wrong_branch = (
        "Fusion must UPSAMPLE every smaller path to the LARGEST resolution among its inputs (Sec. 3.2: the "
        "high-resolution path carries the fine detail that RefineNet recovers)."
    )
    wrong_branch_fix = (
        "find the target size at run time, `size = max((p.shape[-2:] for p in paths), key=lambda s: s[0] * s[1])`, "
        "and `F.interpolate(y, size=size, mode='bilinear', align_corners=False)` each path that is smaller; "
        "never resample the largest path."
    )

    # 1. Two paths of equal width, identity convs: the output should be high + up(low).
    for order in ("low, high", "high, low"):
        with _seeded(seed):
            fusion = _build(fusion_class, what, ([4, 4],), usage=usage)
        convs = _fusion_convs(fusion, [4, 4], what)
        for c in convs:
            _identity_(c)
        low = torch.randn(2, 4, 4, 5, generator=gen)
        high = torch.randn(2, 4, 8, 10, generator=gen)
        paths = [low, high] if order == "low, high" else [high, low]
        with torch.no_grad():
            y = _require_tensor(_forward(fusion, paths, what, f" (paths in the order {order})"), what, high.shape)
        if tuple(y.shape[-2:]) == tuple(low.shape[-2:]):
            raise _fail(
                what,
                f"with paths [{order}] of sizes 4x5 and 8x10 the output is at the LOW resolution 4x5: the "
                "high-resolution path was downsampled (or the wrong branch was upsampled). " + wrong_branch,
                wrong_branch_fix,
            )
        if y.shape != high.shape:
            raise _fail(what, f"with paths [{order}] of shapes {list(low.shape)} (low) and {list(high.shape)} (high) "
                        f"the output has shape {list(y.shape)}; expected {list(high.shape)}.", wrong_branch_fix)
        # The high-resolution path alone must come through unchanged (identity conv).
        with torch.no_grad():
            zero_low = [torch.zeros_like(low), high] if order == "low, high" else [high, torch.zeros_like(low)]
            y_high = _forward(fusion, zero_low, what)
        if not _close(y_high, high):
            raise _fail(
                what,
                "with the low-resolution path set to zero (and identity convolutions) the output should be the "
                "high-resolution path itself, but it differs: the high-resolution path is resampled (e.g. "
                "downsampled and upsampled again), which blurs away its detail. " + wrong_branch,
                wrong_branch_fix,
            )
        with torch.no_grad():
            zero_high = [low, torch.zeros_like(high)] if order == "low, high" else [torch.zeros_like(high), low]
            y_low = _forward(fusion, zero_high, what)
            target = _up(low, high.shape[-2:])
        if not _close(y_low, target):
            if _close(y_low, _up(low, high.shape[-2:], mode="nearest")):
                raise _fail(what, "the low-resolution path is upsampled with nearest-neighbour interpolation; the "
                            "paper (and refinenet_edu) upsample bilinearly.",
                            "`F.interpolate(y, size=size, mode='bilinear', align_corners=False)`.")
            if _close(y_low, _up(low, high.shape[-2:], align_corners=True)):
                raise _fail(what, "the low-resolution path is upsampled bilinearly with align_corners=True; this "
                            "assignment follows refinenet_edu's default, align_corners=False.",
                            "`F.interpolate(y, size=size, mode='bilinear', align_corners=False)`.")
            raise _fail(what, "with the high-resolution path set to zero (and identity convolutions) the output should "
                        "be the low-resolution path upsampled bilinearly to the high resolution "
                        f"(largest difference {_max_diff(y_low, target):.3g}).", wrong_branch_fix)
        if not _close(y, high + target):
            raise _fail(what, "the output is not the sum of the (convolved, upsampled) paths.",
                        "add the paths: `out = out + y` for each path.")

    # 2. Different widths, random weights: equality with the reference.
    in_channels = [6, 4]
    with _seeded(seed):
        fusion = _build(fusion_class, what, (in_channels,), usage=usage)
        ref = MultiResolutionFusion(in_channels)
    convs = _fusion_convs(fusion, in_channels, what)
    _randomize_(convs, gen)
    with torch.no_grad():
        for rc, sc in zip(ref.convs, convs):
            rc.weight.copy_(sc.weight)
    low = torch.randn(2, 6, 4, 5, generator=gen)
    high = torch.randn(2, 4, 8, 10, generator=gen)
    with torch.no_grad():
        y = _forward(fusion, [low, high], what)
        expected = ref(low, high)
    if not _close(y, expected):
        if _close(y, _fusion_reference([low, high], convs, conv_after_upsample=True), atol=1e-4):
            raise _fail(what, "each path is upsampled first and convolved afterwards. The paper convolves each path at its "
                        "own resolution and then upsamples (cheaper, and what the reference does; the two differ "
                        "near the borders).", "`y = F.interpolate(conv(path), size=size, mode='bilinear', align_corners=False)`.")
        raise _fail(what, f"the output differs from refinenet_edu's MultiResolutionFusion with the same weights "
                    f"(largest difference {_max_diff(y, expected) if isinstance(y, torch.Tensor) and y.shape == expected.shape else float('nan'):.3g}).",
                    "conv each path (to the smallest width), upsample to the largest resolution, sum.")

    # 3. Odd sizes: a 1/32 path of 5x6 under a 1/16 path of 9x11 is not an exact factor of 2.
    low, high = torch.randn(1, 6, 5, 6, generator=gen), torch.randn(1, 4, 9, 11, generator=gen)
    try:
        with torch.no_grad():
            y = fusion(low, high)
    except NotImplementedError:
        raise
    except Exception as err:
        raise _fail(
            what,
            f"forward fails on paths of sizes 5x6 and 9x11 ({type(err).__name__}: {err}). Feature maps of an image "
            "whose side is not a multiple of 32 are not exact factors of 2 apart.",
            "upsample with `size=` the largest path's size, not `scale_factor=2`.",
        ) from err
    with torch.no_grad():
        expected = ref(low, high)
    if not _close(y, expected):
        raise _fail(what, f"on paths of sizes 5x6 and 9x11 the output ({list(getattr(y, 'shape', []))}) differs from the "
                    f"reference ({list(expected.shape)}).", "upsample with `size=` the largest path's size, not `scale_factor=2`.")

    # 4. Three paths (a single-RefineNet / 2-cascade block), largest resolution in the middle.
    in3 = [8, 4, 6]
    with _seeded(seed):
        f3 = _build(fusion_class, what, (in3,), usage=usage)
        ref3 = MultiResolutionFusion(in3)
    convs3 = _fusion_convs(f3, in3, what)
    _randomize_(convs3, gen)
    with torch.no_grad():
        for rc, sc in zip(ref3.convs, convs3):
            rc.weight.copy_(sc.weight)
    paths3 = [torch.randn(1, 8, 3, 3, generator=gen), torch.randn(1, 4, 9, 11, generator=gen),
              torch.randn(1, 6, 5, 6, generator=gen)]
    with torch.no_grad():
        y3, e3 = _forward(f3, paths3, what, " (three paths)"), ref3(*paths3)
    if not _close(y3, e3):
        raise _fail(what, f"with three paths of widths {in3} and sizes 3x3, 9x11, 5x6 the output "
                    f"({list(getattr(y3, 'shape', []))}) differs from the reference ({list(e3.shape)}, smallest width, "
                    "largest resolution).", "loop over all paths; do not assume there are exactly two.")

    # 5. One path: nothing to fuse.
    with _seeded(seed):
        f1 = _build(fusion_class, what, ([5],), usage=usage)
    x1 = torch.randn(1, 5, 6, 7, generator=gen)
    with torch.no_grad():
        y1 = _forward(f1, [x1], what, " (one path)")
    if _param_count(f1) != 0 or not _close(y1, x1, atol=0, rtol=0):
        raise _fail(what, "a block with a single path has nothing to fuse: the module should have no parameters and "
                    "return the path unchanged (RefineNet-4 takes the 1/32 path alone).",
                    "if `len(in_channels) == 1`, create no convolution and return `paths[0]`.")

    # 6. Gradients reach every path and every conv.
    lg, hg = low.clone().requires_grad_(True), high.clone().requires_grad_(True)
    fusion.zero_grad(set_to_none=True)
    _check_gradients(fusion, [lg, hg], _forward(fusion, [lg, hg], what), what,
                     ["the low-resolution path", "the high-resolution path"])
    _ok(f"{what}: a 3x3 conv per path to the smallest width, bilinear upsampling to the LARGEST resolution "
        "(either order, odd sizes, 3 paths), single path passes through, matches refinenet_edu's "
        "MultiResolutionFusion, gradients flow.")


# --------------------------------------------------------------------------
# The 4-cascade (Sec. 3.1)
# --------------------------------------------------------------------------

_BLOCKS = ("refinenet4", "refinenet3", "refinenet2", "refinenet1")
_STRIDES = (4, 8, 16, 32)


def _feature_sizes(image_size: tuple[int, int]) -> list[tuple[int, int]]:
    """Spatial sizes of a ResNet's four stages (each stride-2 step rounds up)."""
    sizes = []
    h, w = image_size
    for k in range(5):
        h, w = (h + 1) // 2, (w + 1) // 2
        if k >= 1:
            sizes.append((h, w))
    return sizes


def check_cascade(cascade_class: Any, *, enc_channels: Sequence[int] = (16, 32, 64, 128),
                  widths: Sequence[int] = (8, 8, 12, 16), crp_blocks: int = 2, output_rcus: int = 1,
                  image_size: tuple[int, int] = (76, 92), seed: int = 0) -> None:
    """Check a 4-cascaded RefineNet decoder class (paper Sec. 3.1).

    ``cascade_class(enc_channels, widths, crp_blocks=..., output_rcus=...)``
    must build four :class:`~refinenet_edu.components.RefineNetBlock` s as
    attributes ``refinenet4`` .. ``refinenet1``; ``forward(features)`` takes
    the encoder's four feature maps ``[1/4, 1/8, 1/16, 1/32]`` and returns
    RefineNet-1's output at 1/4 resolution. RefineNet-4 takes the 1/32 path
    alone; RefineNet-k (k < 4) takes RefineNet-(k+1)'s output and the path of
    its own stage. Checks the blocks' inputs and widths, the order of the
    calls and what each block receives (by tensor identity), the output, and
    gradients into all four feature maps.
    """
    what = _name(cascade_class, "the cascade")
    usage = "check_cascade(FourCascadedDecoder)"
    enc_channels, widths = list(enc_channels), list(widths)
    with _seeded(seed):
        dec = _build(cascade_class, what, (enc_channels, widths), dict(crp_blocks=crp_blocks, output_rcus=output_rcus),
                     usage=usage)
    blocks = {}
    for name in _BLOCKS:
        b = getattr(dec, name, None)
        if not isinstance(b, nn.Module):
            raise _fail(what, f"has no block attribute {name!r}.",
                        "create the four blocks as self.refinenet4, self.refinenet3, self.refinenet2, self.refinenet1.")
        blocks[name] = b

    # Expected inputs of each block (paper Sec. 3.1; the previous block's output enters as it is: width None).
    stage_of = {"refinenet4": 3, "refinenet3": 2, "refinenet2": 1, "refinenet1": 0}
    prev_out = None
    expected_out = {}
    for name in _BLOCKS:
        s = stage_of[name]
        want_in = ([] if prev_out is None else [prev_out]) + [enc_channels[s]]
        want_w = ([] if prev_out is None else [None]) + [widths[s]]
        b = blocks[name]
        if isinstance(b, RefineNetBlock):
            got_w = [None if isinstance(a, nn.Identity) else getattr(a, "out_channels", "?") for a in b.adaptive]
            if list(b.in_channels) != want_in or got_w != want_w:
                prev_txt = "" if prev_out is None else (
                    f"the previous block's output ({prev_out} channels, width None: it enters as it is), then ")
                raise _fail(
                    what,
                    f"{name} is built for paths with in_channels={list(b.in_channels)} and widths={got_w}; "
                    f"expected in_channels={want_in}, widths={want_w}: {prev_txt}the 1/{_STRIDES[s]} features "
                    f"(enc_channels[{s}] = {enc_channels[s]} channels) reduced to widths[{s}] = {widths[s]}.",
                    f"`RefineNetBlock({want_in}, {want_w}, crp_blocks=crp_blocks, output_rcus=output_rcus)`.",
                )
            if b.crp.num_blocks != crp_blocks or len(b.output) != output_rcus:
                raise _fail(what, f"{name} has {b.crp.num_blocks} CRP blocks and {len(b.output)} output RCUs; the "
                            f"cascade was asked for crp_blocks={crp_blocks}, output_rcus={output_rcus}.",
                            "pass crp_blocks=crp_blocks, output_rcus=output_rcus to every RefineNetBlock.")
            prev_out = b.out_channels
        else:
            prev_out = min(w for w in ([prev_out] if prev_out else []) + [widths[s]])
        expected_out[name] = prev_out

    gen = torch.Generator().manual_seed(seed)
    sizes = _feature_sizes(image_size)
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

    def expected_args(name: str) -> str:
        s = stage_of[name]
        own = f"features[{s}] (the 1/{_STRIDES[s]} path)"
        if name == "refinenet4":
            return own
        prev = _BLOCKS[_BLOCKS.index(name) - 1]
        return f"{prev}'s output, then {own}"

    def wiring_problem() -> CheckFailed | None:
        order = [n for n, _ in calls]
        for i, (name, args) in enumerate(calls):
            if i < len(_BLOCKS) and name != _BLOCKS[i]:
                return _fail(what, f"the blocks run in the order {order}; RefineNet refines from the coarsest to "
                             f"the finest: {list(_BLOCKS)}, each once.",
                             "call refinenet4 first, then refinenet3, refinenet2, refinenet1.")
            s = stage_of[name]
            want = [feats[s]] if name == "refinenet4" else [outputs.get(_BLOCKS[_BLOCKS.index(name) - 1]), feats[s]]
            if len(args) != len(want) or any(a is not w for a, w in zip(args, want)):
                got = ", ".join(describe(a) for a in args) or "nothing"
                return _fail(what, f"{name} received [{got}]; it takes [{expected_args(name)}] (Sec. 3.1: each block "
                             "after RefineNet-4 fuses the previous block's output with one encoder path).",
                             f"`{name}({'r' + str(int(name[-1]) + 1) + ', ' if name != 'refinenet4' else ''}"
                             f"features[{s}])`, passing the tensors themselves, previous output first.")
        if len(calls) > len(_BLOCKS):
            return _fail(what, f"the blocks were called {len(calls)} times ({order}); each runs exactly once.",
                         "call each block once, in the order refinenet4, refinenet3, refinenet2, refinenet1.")
        return None

    try:
        try:
            out = dec(feats)
        except NotImplementedError:
            raise
        except Exception as err:
            problem = wiring_problem()
            if problem is not None:
                raise problem from err
            running = calls[-1][0] if calls and calls[-1][0] not in outputs else None
            where = f" while running {running}" if running else ""
            raise _fail(what, f"forward raised {type(err).__name__}{where}: {err}",
                        "forward(features) gets the list [1/4, 1/8, 1/16, 1/32]; RefineNet-4 takes features[3], "
                        "RefineNet-3 takes (RefineNet-4's output, features[2]), and so on.") from err
    finally:
        for h in handles:
            h.remove()
    problem = wiring_problem()
    if problem is not None:
        raise problem
    if len(calls) < len(_BLOCKS):
        missing = [n for n in _BLOCKS if n not in outputs]
        raise _fail(what, f"{missing} never ran; all four blocks refine in turn.",
                    "call refinenet4, refinenet3, refinenet2 and refinenet1, each on the previous one's output.")
    want_shape = (2, expected_out["refinenet1"], *sizes[0])
    if isinstance(out, torch.Tensor) and out is not outputs["refinenet1"]:
        if any(out is o for o in outputs.values()):
            raise _fail(what, f"forward returns {describe(out)}, not RefineNet-1's output at 1/4 resolution "
                        f"{list(want_shape)}.", "return the output of refinenet1, the last block.")
    y = _require_tensor(out, what, want_shape)
    if tuple(y.shape) != want_shape:
        raise _fail(what, f"the output has shape {list(y.shape)}; expected RefineNet-1's output {list(want_shape)} "
                    "(1/4 of the input).", "return the output of refinenet1.")
    with torch.no_grad():
        r = blocks["refinenet4"](feats[3])
        for name in _BLOCKS[1:]:
            r = blocks[name](r, feats[stage_of[name]])
    if not _close(y, r):
        raise _fail(what, f"the output differs from the chain r4 = refinenet4(f4), r3 = refinenet3(r4, f3), ... "
                    f"(largest difference {_max_diff(y, r):.3g}).", "return refinenet1's output unchanged.")

    fg = [f.clone().requires_grad_(True) for f in feats]
    dec.zero_grad(set_to_none=True)
    yg = _forward(dec, [fg], what)
    _check_gradients(dec, fg, yg, what, [f"features[{i}] (1/{s})" for i, s in enumerate(_STRIDES)])
    _ok(f"{what}: refinenet4(1/32) -> refinenet3(+1/16) -> refinenet2(+1/8) -> refinenet1(+1/4), each block "
        f"built for the right paths, output {list(want_shape)} at 1/4, gradients reach all four encoder paths.")


# --------------------------------------------------------------------------
# Metrics: confusion matrix, IoU, mIoU
# --------------------------------------------------------------------------


def _as_tensor(value: Any, what: str) -> torch.Tensor:
    try:
        return torch.as_tensor(value)
    except Exception as err:  # noqa: BLE001
        raise _fail(what, f"returned a {type(value).__name__}, which is not a tensor/array of numbers.",
                    "return a torch tensor.") from err


def _call(fn: Callable, args: Sequence[Any], what: str, context: str) -> Any:
    try:
        return fn(*args)
    except (NotImplementedError, CheckFailed):
        raise
    except Exception as err:
        raise _fail(what, f"raised {type(err).__name__} {context}: {err}", None) from err


def check_confusion_matrix(fn: Callable, *, seed: int = 0) -> None:
    """Check ``fn(pred, target, num_classes, ignore_index=255) -> [C, C]`` counts.

    Rows are the ground truth, columns the prediction; pixels whose target is
    ``ignore_index`` are skipped; the matrix is ``C x C`` even when some
    classes do not occur. Compared with :func:`refinenet_edu.engine.metrics.confusion_matrix`.
    """
    what = _name(fn, "confusion_matrix")
    pred = torch.tensor([0, 1, 1, 2, 2, 0])
    target = torch.tensor([0, 1, 2, 2, 0, 0])
    expected = confusion_matrix(pred, target, 3)
    got = _as_tensor(_call(fn, (pred, target, 3), what, "on pred [0,1,1,2,2,0], target [0,1,2,2,0,0]"), what)
    if got.shape != (3, 3):
        raise _fail(what, f"returned shape {list(got.shape)} for 3 classes; expected [3, 3].",
                    "count `target * C + pred` with `torch.bincount(..., minlength=C * C)` and reshape to (C, C).")
    if got.is_floating_point():
        raise _fail(what, f"returned a {got.dtype} matrix; a confusion matrix holds counts (int64).",
                    "`torch.bincount` returns int64; do not convert to float.")
    if torch.equal(got, expected.T):
        raise _fail(what, "the matrix is transposed: rows must be the ground truth (target) and columns the "
                    "prediction, cm[i, j] = pixels of class i predicted as j.", "use the index `target * C + pred`.")
    if not torch.equal(got, expected):
        raise _fail(what, f"got {got.tolist()} for pred [0,1,1,2,2,0] and target [0,1,2,2,0,0]; expected "
                    f"{expected.tolist()} (rows = target, columns = prediction).", "count `target * C + pred`.")

    # Missing classes: labels only up to 1 with C = 4.
    got = _as_tensor(_call(fn, (torch.tensor([0, 1, 1]), torch.tensor([0, 0, 1]), 4), what, "with 4 classes but labels 0-1"), what)
    if got.shape != (4, 4):
        raise _fail(what, f"with num_classes=4 and labels only 0 and 1 the result has shape {list(got.shape)}; it must "
                    "be [4, 4] whatever labels occur.", "`torch.bincount(index, minlength=C * C).reshape(C, C)`.")

    # The ignore label.
    gen = torch.Generator().manual_seed(seed)
    p = torch.randint(0, 5, (2, 7, 9), generator=gen)
    t = torch.randint(0, 5, (2, 7, 9), generator=gen)
    t[torch.rand(t.shape, generator=gen) < 0.2] = 255
    expected = confusion_matrix(p, t, 5, ignore_index=255)
    try:
        got = fn(p, t, 5, 255)
    except NotImplementedError:
        raise
    except Exception as err:
        raise _fail(what, f"fails when the target contains the ignore label 255 ({type(err).__name__}: {err}).",
                    "keep only the pixels with `target != ignore_index` before counting.") from err
    got = _as_tensor(got, what)
    if got.shape == expected.shape and int(got.sum()) > int(expected.sum()):
        raise _fail(what, f"counts {int(got.sum())} pixels of which {int(got.sum()) - int(expected.sum())} are labelled "
                    "255 (ignore): pixels with the ignore label must not be counted.",
                    "`keep = target != ignore_index; pred, target = pred[keep], target[keep]`.")
    if got.shape != expected.shape or not torch.equal(got.long(), expected):
        raise _fail(what, "on a batch [2, 7, 9] with 5 classes and some ignored pixels the counts differ from "
                    "refinenet_edu.engine.metrics.confusion_matrix.", "flatten pred and target (any shape), drop ignored pixels, count.")
    _ok(f"{what}: rows = ground truth, columns = prediction, C x C for absent classes, ignore label skipped, any "
        "input shape; matches refinenet_edu.engine.metrics.confusion_matrix.")


_CM_CASE = torch.tensor(
    [
        [50, 5, 0, 3, 0],
        [4, 30, 0, 2, 0],
        [0, 0, 0, 0, 0],  # class 2: absent from ground truth and prediction -> NaN
        [0, 0, 0, 0, 0],  # class 3: only predicted (false positives) -> IoU 0
        [6, 0, 0, 1, 0],  # class 4: only in the ground truth, never predicted -> IoU 0
    ]
)


def _metric_variants(cm: torch.Tensor) -> dict[str, tuple[torch.Tensor, str, str]]:
    """Per-class quantities that students mistake for IoU, with the diagnosis."""
    cm = cm.double()
    tp, g, p = cm.diagonal(), cm.sum(1), cm.sum(0)
    nan = torch.tensor(math.nan, dtype=torch.float64)
    union = g + p - tp

    def safe(num, den, absent=nan):
        return torch.where(den > 0, num / den.clamp(min=1e-300), absent)

    return {
        "no_minus_tp": (safe(tp, g + p), "the denominator is G + P, which counts the true positives twice.",
                        "IoU = TP / (TP + FP + FN) = TP / (G + P - TP): subtract TP once."),
        "recall": (safe(tp, g), "that is the class accuracy (recall, TP / (TP + FN)); IoU also counts the false "
                   "positives in the denominator.", "IoU = TP / (row sum + column sum - TP)."),
        "precision": (safe(tp, p), "that is the precision (TP / (TP + FP)); IoU also counts the false negatives in the "
                      "denominator.", "IoU = TP / (row sum + column sum - TP)."),
        "dice": (safe(2 * tp, g + p), "that is the Dice / F1 score 2TP / (G + P), not the IoU.",
                 "IoU = TP / (G + P - TP)."),
        "absent_zero": (safe(tp, union, torch.tensor(0.0, dtype=torch.float64)),
                        "a class absent from both the ground truth and the prediction gets IoU 0; it is 0/0, "
                        "undefined, and must be NaN so that it takes no part in the mean.",
                        "`torch.where(union > 0, tp / union, torch.nan)`."),
        "integer_division": (torch.where(union > 0, torch.div(tp, union.clamp(min=1), rounding_mode="floor"), nan),
                             "the IoUs are rounded down to integers (integer division).",
                             "convert the counts to float first: `cm = cm.double()`."),
    }


def check_iou(fn: Callable) -> None:
    """Check ``fn(cm) -> [C]`` per-class IoU ``TP / (TP + FP + FN)``, NaN for absent classes."""
    what = _name(fn, "iou_from_confusion")
    cm = _CM_CASE.clone()
    got = _as_tensor(_call(fn, (cm.clone(),), what, f"on the confusion matrix {cm.tolist()}"), what)
    expected = iou_from_confusion(cm)
    if got.shape != expected.shape:
        raise _fail(what, f"returned shape {list(got.shape)} for a {list(cm.shape)} matrix; expected one IoU per "
                    f"class, shape {list(expected.shape)}.", "compute TP, G (row sums) and P (column sums) per class.")
    if not got.is_floating_point():
        raise _fail(what, f"returned {got.dtype} values; IoUs are fractions.", "convert the counts: `cm = cm.double()`.")
    got = got.double()

    def same(a, b):
        return bool(torch.allclose(a, b, rtol=1e-6, atol=1e-9, equal_nan=True))

    if same(got, expected):
        _ok(f"{what}: TP / (TP + FP + FN) per class, NaN for a class absent from both, 0 for a class only predicted "
            "or only in the ground truth; matches refinenet_edu.engine.metrics.iou_from_confusion.")
        return
    for _, (variant, problem, fix) in _metric_variants(cm).items():
        if same(got, variant):
            raise _fail(what, problem, fix)
    if bool(torch.isnan(got[:2]).any()) or bool(torch.isnan(got[3:]).any()):
        raise _fail(what, f"NaN for a class that occurs (got {got.tolist()}); only a class absent from both the ground "
                    "truth and the prediction (union 0) is NaN.", "`torch.where(union > 0, tp / union, torch.nan)`.")
    raise _fail(what, f"got {[round(v, 4) for v in got.tolist()]}, expected {[round(v, 4) for v in expected.tolist()]} "
                f"for the matrix {cm.tolist()} (rows = ground truth).", "IoU_c = cm[c, c] / (row_c + col_c - cm[c, c]).")


def check_miou(fn: Callable) -> None:
    """Check ``fn(cm) -> float``: the mean IoU over the classes whose IoU is not NaN.

    Names the usual confusions: a NaN result, absent classes counted as 0,
    classes averaged only over the ground truth's, pixel accuracy, mean class
    accuracy, frequency-weighted IoU, and IoU formulas that are off.
    """
    what = _name(fn, "miou_from_confusion")
    cm = _CM_CASE.clone()
    raw = _call(fn, (cm.clone(),), what, f"on the confusion matrix {cm.tolist()}")
    try:
        got = float(raw)
    except Exception as err:  # noqa: BLE001
        raise _fail(what, f"returned {type(raw).__name__} {raw!r}; expected one number (a Python float).",
                    "average the per-class IoUs into a single value and return `float(...)`.") from err
    expected = miou_from_confusion(cm)
    if math.isclose(got, expected, rel_tol=1e-6, abs_tol=1e-9):
        # Edge case: nothing counted at all.
        empty = _call(fn, (torch.zeros(3, 3, dtype=torch.int64),), what, "on an all-zero confusion matrix")
        try:
            empty = float(empty)
        except Exception:  # noqa: BLE001
            empty = 0.0
        if not math.isnan(empty):
            raise _fail(what, f"returned {empty} for an all-zero matrix (no pixel counted): no class has an IoU, so "
                        "the mean is undefined and should be NaN.",
                        "take the mean over the non-NaN IoUs only; with none left, return NaN.")
        _ok(f"{what}: mean of the per-class IoUs over the classes that occur (NaN left out), {expected:.4f} on the "
            "test matrix; matches refinenet_edu.engine.metrics.miou_from_confusion.")
        return
    c = cm.double()
    tp, g, p, n = c.diagonal(), c.sum(1), c.sum(0), c.sum()
    iou = iou_from_confusion(c)
    acc = torch.where(g > 0, tp / g.clamp(min=1), torch.tensor(math.nan, dtype=torch.float64))
    candidates = [
        (float(iou.nan_to_num(0).mean()), "classes absent from both the ground truth and the prediction are "
         "counted as IoU 0 in the mean; their IoU is NaN (undefined) and they must be left out.",
         "average only the non-NaN IoUs: `torch.nanmean(iou)`."),
        (float(iou[g > 0].mean()), "the mean only runs over the classes present in the ground truth; a class that is "
         "only predicted (all false positives) has IoU 0 and counts too. Leave out only the classes with IoU NaN "
         "(absent from both).", "`torch.nanmean(iou)`."),
        (float(tp.sum() / n), "that is the pixel accuracy (correct pixels / all pixels), not the mean IoU.",
         "compute the IoU per class, then average over classes."),
        (float(torch.nanmean(acc)), "that is the mean class accuracy (recall averaged over classes), not the mean IoU.",
         "IoU divides by TP + FP + FN, not TP + FN."),
        (float(((g / n) * iou.nan_to_num(0)).sum()), "that is the frequency-weighted IoU; the mIoU gives every class "
         "the same weight.", "a plain mean of the per-class IoUs over the classes that are not NaN."),
    ]
    for variant, (values, problem, fix) in _metric_variants(cm).items():
        if variant != "absent_zero":
            candidates.append((float(torch.nanmean(values)), "your per-class IoU is off: " + problem, fix))
    if math.isnan(got):
        raise _fail(what, "returned NaN although several classes occur: a plain mean over IoUs that include NaN "
                    "(a class absent from both ground truth and prediction) is NaN.",
                    "`torch.nanmean(iou)` (or average `iou[~torch.isnan(iou)]`).")
    for value, problem, fix in candidates:
        if math.isclose(got, value, rel_tol=1e-6, abs_tol=1e-9):
            raise _fail(what, problem, fix)
    raise _fail(what, f"got {got:.6f}, expected {expected:.6f} for the matrix {cm.tolist()} (rows = ground truth).",
                "per-class IoU = TP / (G + P - TP), NaN when G + P - TP = 0; mIoU = mean of the non-NaN IoUs.")


# --------------------------------------------------------------------------
# Evaluation mode (dropout / batch norm at test time)
# --------------------------------------------------------------------------


class _TinySegNet(nn.Module):
    """A small segmentation net with batch norm and dropout, like RefineNet's encoder and classifier."""

    def __init__(self, num_classes: int = 5):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.dropout = nn.Dropout(0.5)
        self.classifier = nn.Conv2d(16, num_classes, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.features(x)))


def check_eval_mode(predict_fn: Callable, *, model: nn.Module | None = None, images: torch.Tensor | None = None,
                    seed: int = 0) -> None:
    """Check ``predict_fn(model, images) -> labels [N, H, W]`` for evaluation-time behaviour.

    The model is handed over in training mode, as it is right after training.
    The prediction must run with dropout and batch norm in evaluation mode
    (``model.eval()``; a port bug is predicting with dropout still active, so
    two predictions of the same images differ), without building an autograd
    graph, and return the arg-max class per pixel. By default a small net with
    batch norm and dropout p=0.5 is used; pass your own ``model`` (and
    ``images``) to check a real one.
    """
    what = _name(predict_fn, "predict")
    if not callable(predict_fn):
        raise _fail(what, f"expected a function predict(model, images), got {type(predict_fn).__name__}.", None)
    with _seeded(seed):
        net = model if model is not None else _TinySegNet()
        if images is None:
            images = torch.randn(2, 3, 36, 44)
        with torch.no_grad():  # give batch norm non-trivial running statistics
            if model is None:
                net.train()
                for _ in range(3):
                    net(torch.randn(4, 3, 36, 44) * 2 + 0.5)
        net.train()
        seen: list[tuple[str, bool]] = []
        grad_enabled: list[bool] = []
        handles = [net.register_forward_pre_hook(lambda m, a: grad_enabled.append(torch.is_grad_enabled()))]
        for name, m in net.named_modules():
            if isinstance(m, (nn.Dropout, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.modules.batchnorm._BatchNorm)):
                handles.append(m.register_forward_pre_hook(lambda mod, a, name=name: seen.append((name, mod.training))))
        before = images.clone()
        try:
            out1 = _call(predict_fn, (net, images), what, "on a model in training mode")
            out2 = _call(predict_fn, (net, images), what, "when called a second time")
        finally:
            for h in handles:
                h.remove()
    if not grad_enabled:
        raise _fail(what, "never called the model.", "return `model(images).argmax(1)` after `model.eval()`.")
    active = sorted({name for name, training in seen if training})
    differ = (isinstance(out1, torch.Tensor) and isinstance(out2, torch.Tensor) and out1.shape == out2.shape
              and not torch.equal(out1, out2))
    if active:
        drop = [n for n in active if isinstance(net.get_submodule(n), (nn.Dropout, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout))]
        detail = ""
        if differ:
            frac = float((out1 != out2).float().mean())
            detail = f" Two predictions of the same images differ on {100 * frac:.0f}% of the pixels."
        layers = ", ".join(active[:4]) + (", ..." if len(active) > 4 else "")
        if drop:
            raise _fail(what, f"dropout was ACTIVE during prediction ({layers} ran with model.training == True). "
                        "In training mode dropout zeroes a random half of the features at every call, so predictions "
                        f"are noisy and change from call to call.{detail}",
                        "call `model.eval()` at the start of predict (and `model.train()` again before training).")
        raise _fail(what, f"batch norm ran in training mode during prediction ({layers}): it normalises with the "
                    "statistics of the test batch and overwrites its running statistics with test data.",
                    "call `model.eval()` at the start of predict.")
    if differ:
        raise _fail(what, "two predictions of the same images differ although dropout and batch norm are in "
                    "evaluation mode; the prediction must be deterministic.",
                    "do not add randomness to predict (no F.dropout(..., training=True), no random augmentation).")
    if any(grad_enabled):
        raise _fail(what, "the model ran with gradient tracking on: evaluation builds an autograd graph it never "
                    "uses, which costs memory (on a GPU, often more than the model itself).",
                    "wrap the forward pass in `with torch.no_grad():` (or `torch.inference_mode()`).")
    if not torch.equal(images, before):
        raise _fail(what, "predict changed the images passed to it in place.", "work on a copy (or out of place).")
    n, _, h, w = images.shape
    if not isinstance(out1, torch.Tensor):
        raise _fail(what, f"returned a {type(out1).__name__}; expected a tensor of class labels [N, H, W].",
                    "`return scores.argmax(dim=1)`.")
    if out1.dim() == 4:
        raise _fail(what, f"returned shape {list(out1.shape)}: class scores, not labels.",
                    "take the arg-max over the class dimension: `scores.argmax(dim=1)` -> [N, H, W].")
    if tuple(out1.shape) != (n, h, w):
        raise _fail(what, f"returned shape {list(out1.shape)}; expected one label per pixel, [{n}, {h}, {w}].",
                    "`model(images).argmax(dim=1)` (the model's output is already at the input size).")
    if out1.is_floating_point():
        raise _fail(what, f"returned {out1.dtype} values; class labels are integers.", "`scores.argmax(dim=1)`.")
    with torch.no_grad():
        was_training = net.training
        net.eval()
        expected = net(images).argmax(1)
        net.train(was_training)
    if not torch.equal(out1.long().cpu(), expected.cpu()):
        raise _fail(what, "the labels are not the arg-max of the model's scores over the class dimension (dim=1).",
                    "`return model(images).argmax(dim=1)`.")
    _ok(f"{what}: dropout and batch norm in evaluation mode, no autograd graph, deterministic, returns the arg-max "
        f"labels {list(out1.shape)}.")
