"""What the judge asks of each graded cell of the six assignments, and how it scores the answers.

One :class:`Test` per graded code cell (its nbgrader ``grade_id``). A test
draws new inputs and weights from the random generator it is given (the judge
seeds it at grading time, so that no answer can be prepared for them), says
what the student's code must build or call with them, and compares what came
back with the library's reference, computed here. The comparison code never
runs student code: it gets tensors and numbers.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from refinenet_edu.engine import metrics
from refinenet_edu.grading.eval_mode import TinySegNet
from refinenet_edu.nn import components
from refinenet_edu.nn.components import ChainedResidualPooling, MultiResolutionFusion, RefineNetBlock, \
    ResidualConvUnit
from refinenet_edu.nn.config import make_config

__all__ = ["ASSIGNMENTS", "Assignment", "Test"]

PRELUDE = "import math\nimport torch\nimport torch.nn.functional as F\nfrom torch import nn\n"


@dataclass
class Test:
    """The judge's test of one graded cell.

    ``make(gen)`` returns the cases (dicts for the runner, see ``runner.py``) and,
    for each, what :meth:`score` needs to compare (kept here, never sent);
    ``compare(case, expected, result)`` returns ``None`` when the answer is right,
    else one sentence saying what is wrong.
    """

    grade_id: str
    what: str
    make: Callable[[torch.Generator], list[tuple[dict, Any]]]
    compare: Callable[[dict, Any, dict], str | None]
    #: grade_id of another test -> (label, source, names): the reference run in place of the student's part
    #: when that test failed, so that its mistake is not counted here again
    substitutes: dict[str, tuple[str, str, list[str]]] = field(default_factory=dict)


@dataclass
class Assignment:
    tests: list[Test]
    given: list[tuple[str, str, list[str]]] = field(default_factory=list)
    prelude: str = PRELUDE
    #: seconds for the whole runner process of one test (torch's start-up included)
    limit: float = 90.0


# --------------------------------------------------------------------------
# drawing inputs
# --------------------------------------------------------------------------


def _int(gen: torch.Generator, low: int, high: int) -> int:
    """A whole number in [low, high]."""
    return int(torch.randint(low, high + 1, (1,), generator=gen))


def _randn(gen: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=gen)


def _weights(reference: nn.Module, gen: torch.Generator) -> tuple[list[str], list[torch.Tensor]]:
    """New weights for every parameter of ``reference``: both signs, about unit gain, so that mistakes show."""
    names, values = [], []
    for name, p in reference.named_parameters():
        if p.dim() > 1:
            value = _randn(gen, *p.shape) * (1.5 / math.sqrt(p[0].numel()))
        else:
            value = _randn(gen, *p.shape) * 0.5
        names.append(name)
        values.append(value)
    with torch.no_grad():
        for p, v in zip(reference.parameters(), values):
            p.copy_(v)
    return names, values


def module_case(name: str, args: list, reference: nn.Module, inputs: list, gen: torch.Generator,
                kwargs: dict | None = None) -> tuple[dict, Any]:
    """Build ``name(*args, **kwargs)``, give it the reference's (new) weights, run it forward and backward."""
    names, values = _weights(reference, gen)
    x = [_grad_copy(t) for t in inputs]
    y = reference(*x)
    grad = _randn(gen, *y.shape)
    (y * grad).sum().backward()
    expected = {"value": y.detach(), "input_grads": [t.grad for t in _flat(x)],
                "weight_grads": [p.grad for p in reference.parameters()]}
    case = {"op": "module", "name": name, "args": args, "kwargs": kwargs or {}, "weight_names": names,
            "weights": values, "inputs": inputs, "grad": grad}
    return case, expected


def _grad_copy(x):
    if isinstance(x, list):
        return [_grad_copy(t) for t in x]
    return x.clone().requires_grad_(True)


def _flat(x) -> list:
    return [t for item in x for t in _flat(item)] if isinstance(x, list) else [x]


def _shape(x: Any) -> str:
    if isinstance(x, torch.Tensor):
        return str(list(x.shape))
    if isinstance(x, list):
        return "[" + ", ".join(_shape(t) for t in x) + "]"
    return repr(x)


# --------------------------------------------------------------------------
# comparing
# --------------------------------------------------------------------------


def _close(a: Any, b: torch.Tensor, tol: float = 1e-4) -> bool:
    """Equal up to float rounding, measured against the tensor's scale (deep chains amplify the rounding of
    another thread count), NaN where ``b`` has NaN."""
    if not isinstance(a, torch.Tensor) or a.shape != b.shape:
        return False
    a, b = a.double(), b.double()
    if not torch.equal(torch.isnan(a), torch.isnan(b)):
        return False
    a, b = a.nan_to_num(0.0), b.nan_to_num(0.0)
    scale = 1.0 + float(b.abs().max()) if b.numel() else 1.0
    return bool((a - b).abs().max() <= tol * scale) if b.numel() else True


def compare_module(case: dict, expected: dict, result: dict) -> str | None:
    """The student's module against the reference: output, input left alone, gradients to inputs and weights."""
    y = result.get("value")
    if isinstance(y, list) and len(y) == 1:
        y = y[0]
    if not isinstance(y, torch.Tensor):
        return f"forward returned {_kind(y)}, not a tensor"
    if y.shape != expected["value"].shape:
        return f"forward returned a tensor of shape {list(y.shape)} for inputs of shape {_shape(case['inputs'])}"
    if result.get("inputs_changed"):
        return "forward changed its input tensor in place"
    if not _close(y, expected["value"]):
        return "the output differs from the reference's"
    if not result.get("requires_grad"):
        return "the output does not require a gradient (nothing could be trained through it)"
    grads = result.get("input_grads", []) + result.get("weight_grads", [])
    want = expected["input_grads"] + expected["weight_grads"]
    if len(grads) != len(want) or not all(_close(g, w) for g, w in zip(grads, want) if w is not None):
        return "the gradients differ from the reference's (an input or a weight is not used, or is detached)"
    return None


def _kind(value: Any) -> str:
    if value is None:
        return "None"
    if isinstance(value, dict) and "unsupported" in value:
        return f"a {value['unsupported']}"
    return f"a {type(value).__name__}"


# --------------------------------------------------------------------------
# the assignments
# --------------------------------------------------------------------------


def _library(module, *names: str, label: str) -> tuple[str, str, list[str]]:
    """The library module's source, from which the runner takes ``names`` (the reference, or what a task gives)."""
    return (label, inspect.getsource(module), list(names))


def _rcu_cases(gen):
    out = []
    for _ in range(3):
        c, h, w = _int(gen, 2, 9), _int(gen, 4, 13), _int(gen, 4, 13)
        out.append(module_case("ResidualConvUnit", [c], ResidualConvUnit(c), [_randn(gen, 2, c, h, w)], gen))
    return out


def _adaptive_cases(gen):
    out = []
    for num_rcus in (_int(gen, 1, 3), 0, 2):
        cin, width, h, w = _int(gen, 2, 8), _int(gen, 2, 8), _int(gen, 4, 11), _int(gen, 4, 11)
        reference = components.AdaptiveConv(cin, width, num_rcus)
        out.append(module_case("adaptive_conv", [cin, width, num_rcus], reference, [_randn(gen, 1, cin, h, w)], gen))
    return out


def _crp_cases(gen):
    out = []
    for blocks in (_int(gen, 1, 3), 4, _int(gen, 5, 6), 0):
        c, h, w = _int(gen, 2, 6), _int(gen, 6, 25), _int(gen, 6, 25)
        reference = ChainedResidualPooling(c, blocks)
        out.append(module_case("ChainedResidualPooling", [c, blocks], reference, [_randn(gen, 1, c, h, w)], gen))
    return out


def _fusion_cases(gen):
    out = []
    for paths in (2, 2, 3, 1):
        channels = [_int(gen, 2, 8) for _ in range(paths)]
        h, w = _int(gen, 9, 25), _int(gen, 9, 25)
        sizes = [(h, w)] + [((h + 1) // 2 ** i, (w + 1) // 2 ** i) for i in range(1, paths)]
        order = torch.randperm(paths, generator=gen).tolist()  # the high-resolution path is not always first
        inputs = [_randn(gen, 1, channels[i], *sizes[i]) for i in order]
        reference = MultiResolutionFusion([channels[i] for i in order])
        out.append(module_case("MultiResolutionFusion", [[channels[i] for i in order]], reference, inputs, gen))
    return out


class _ReferenceCascade(nn.Module):
    """The 4-cascade from the library's blocks (paper Sec. 3.1): what FourCascadedDecoder must compute."""

    def __init__(self, enc_channels, widths, crp_blocks, output_rcus):
        super().__init__()
        c1, c2, c3, c4 = enc_channels
        w1, w2, w3, w4 = widths
        opts = dict(crp_blocks=crp_blocks, output_rcus=output_rcus)
        self.refinenet4 = RefineNetBlock([c4], [w4], **opts)
        self.refinenet3 = RefineNetBlock([self.refinenet4.out_channels, c3], [None, w3], **opts)
        self.refinenet2 = RefineNetBlock([self.refinenet3.out_channels, c2], [None, w2], **opts)
        self.refinenet1 = RefineNetBlock([self.refinenet2.out_channels, c1], [None, w1], **opts)

    def forward(self, features):
        f1, f2, f3, f4 = features
        return self.refinenet1(self.refinenet2(self.refinenet3(self.refinenet4(f4), f3), f2), f1)


def _cascade_cases(gen):
    out = []
    for crp_blocks, output_rcus in ((_int(gen, 1, 2), _int(gen, 0, 1)), (0, 1)):
        enc = [_int(gen, 3, 8) for _ in range(4)]
        widths = [_int(gen, 2, 6) for _ in range(4)]
        h, w = _int(gen, 33, 80), _int(gen, 33, 80)
        sizes = [(h, w)]
        for _ in range(3):
            sizes.append(((sizes[-1][0] + 1) // 2, (sizes[-1][1] + 1) // 2))
        features = [_randn(gen, 1, c, *s) for c, s in zip(enc, sizes)]
        opts = dict(crp_blocks=crp_blocks, output_rcus=output_rcus)
        reference = _ReferenceCascade(enc, widths, **opts)
        out.append(module_case("FourCascadedDecoder", [enc, widths], reference, [features], gen, kwargs=opts))
    return out


def _labels(gen, k: int, shape: tuple[int, ...], ignore: bool) -> torch.Tensor:
    t = torch.randint(0, k, shape, generator=gen)
    if ignore:
        t[torch.rand(shape, generator=gen) < 0.1] = 255
    return t


def _cm_cases(gen):
    out = []
    for _ in range(3):
        k = _int(gen, 2, 7)
        shape = (_int(gen, 1, 3), _int(gen, 3, 9), _int(gen, 3, 9))
        pred, target = _labels(gen, k, shape, False), _labels(gen, k, shape, True)
        case = {"op": "call", "name": "confusion_matrix", "args": [pred, target, k, 255]}
        out.append((case, metrics.confusion_matrix(pred, target, k, 255)))
    return out


def _random_cm(gen, k: int) -> torch.Tensor:
    cm = torch.randint(0, 9, (k, k), generator=gen)
    absent = _int(gen, 0, k - 1)
    cm[absent, :] = 0
    cm[:, absent] = 0  # a class in neither ground truth nor prediction: its IoU is undefined (NaN)
    return cm


def _iou_cases(gen):
    cms = [_random_cm(gen, _int(gen, 3, 6)) for _ in range(3)]
    return [({"op": "call", "name": "iou_from_confusion", "args": [cm]}, metrics.iou_from_confusion(cm))
            for cm in cms]


def _miou_cases(gen):
    cms = [_random_cm(gen, _int(gen, 3, 6)) for _ in range(3)]
    return [({"op": "call", "name": "miou_from_confusion", "args": [cm]}, metrics.miou_from_confusion(cm))
            for cm in cms]


def compare_values(case: dict, expected: Any, result: dict) -> str | None:
    """A returned tensor or number against the reference (NaN where the reference has NaN)."""
    value = result.get("value")
    if isinstance(expected, torch.Tensor):
        if not isinstance(value, torch.Tensor):
            return f"{case['name']} returned {_kind(value)}, expected a tensor"
        if value.shape != expected.shape:
            return f"{case['name']} returned shape {list(value.shape)}, expected {list(expected.shape)}"
        if not _close(value, expected, tol=1e-6):
            return f"{case['name']} returned other values than the reference"
        return None
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = float(value)
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return f"{case['name']} returned {_kind(value)}, expected a number"
    if math.isnan(expected) != math.isnan(value) or (not math.isnan(expected) and abs(value - expected) > 1e-6):
        return f"{case['name']} returned another value than the reference"
    return None


def _predict_cases(gen):
    out = []
    for k in (_int(gen, 3, 6), _int(gen, 2, 8)):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=gen)))
            model = TinySegNet(k)
            with torch.no_grad():  # batch-norm statistics unlike a batch's, so training mode shows
                model.batch_norm.running_mean.copy_(_randn(gen, 16))
                model.batch_norm.running_var.copy_(torch.rand(16, generator=gen) + 0.5)
        images = _randn(gen, 2, 3, _int(gen, 8, 20), _int(gen, 8, 20))
        state = {n: t.clone() for n, t in model.state_dict().items()}
        with torch.no_grad():
            expected = model.eval()(images).argmax(dim=1)
        spec = {"__build__": "TinySegNet", "args": [k], "state": state, "train": True}
        out.append(({"op": "call", "name": "predict", "args": [spec, images]}, expected))
    return out


def compare_labels(case: dict, expected: torch.Tensor, result: dict) -> str | None:
    value = result.get("value")
    if not isinstance(value, torch.Tensor):
        return f"predict returned {_kind(value)}, expected a tensor of class labels"
    if value.shape != expected.shape:
        return (f"predict returned shape {list(value.shape)}; the labels of {case['args'][1].shape[0]} images "
                f"are {list(expected.shape)} (the arg-max over the class scores)")
    if value.dtype.is_floating_point or not torch.equal(value.long(), expected):
        return "the labels differ from the model's in evaluation mode (dropout or batch norm still training?)"
    if result.get("requires_grad"):
        return "the labels come with an autograd graph (predict under torch.no_grad())"
    return None


def _value_case(name: str) -> Callable:
    return lambda gen: [({"op": "value", "name": name}, None)]


def compare_receptive_field(case: dict, expected: Any, result: dict) -> str | None:
    right = {"chained_width": 17, "parallel_width": 5}[case["name"]]
    value = result.get("value")
    if not isinstance(value, int) or isinstance(value, bool):
        return f"{case['name']} is {_kind(value)}, expected a whole number of pixels"
    return None if value == right else f"{case['name']} = {value} is not the receptive field"


def compare_variants(case: dict, expected: Any, result: dict) -> str | None:
    variants = result.get("value")
    if not isinstance(variants, dict) or set(variants) != {"CRP on", "CRP off"}:
        return "VARIANTS must be a dict with the keys 'CRP on' and 'CRP off'"
    try:
        on = make_config("course", **variants["CRP on"])
        off = make_config("course", **variants["CRP off"])
    except (TypeError, ValueError) as err:
        return f"a variant is not a valid set of options of the course preset ({err})"
    if on != make_config("course"):
        return "'CRP on' must be the course model as it is"
    if off.crp_blocks != 0 or on.replace(crp_blocks=0) != off:
        return "'CRP off' must differ from 'CRP on' in crp_blocks=0 only"
    return None


ASSIGNMENTS: dict[str, Assignment] = {
    "01_residual_conv_unit": Assignment([
        Test("rcu_tests", "ResidualConvUnit", _rcu_cases, compare_module),
        Test("adaptive_tests", "adaptive_conv", _adaptive_cases, compare_module,
             substitutes={"rcu_tests": _library(components, "ResidualConvUnit", label="reference_rcu")}),
    ]),
    "02_chained_residual_pooling": Assignment([
        Test("crp_tests", "ChainedResidualPooling", _crp_cases, compare_module),
        Test("rf_tests", "the receptive fields",
             lambda gen: [({"op": "value", "name": n}, None) for n in ("chained_width", "parallel_width")],
             compare_receptive_field),
    ]),
    "03_multi_resolution_fusion": Assignment([
        Test("fusion_tests", "MultiResolutionFusion", _fusion_cases, compare_module),
    ]),
    "04_four_cascade": Assignment(
        [Test("cascade_tests", "FourCascadedDecoder", _cascade_cases, compare_module)],
        given=[_library(components, "RefineNetBlock", label="given_block")],
    ),
    "05_miou": Assignment([
        Test("cm_tests", "confusion_matrix", _cm_cases, compare_values),
        Test("iou_tests", "iou_from_confusion", _iou_cases, compare_values),
        Test("miou_tests", "miou_from_confusion", _miou_cases, compare_values,
             substitutes={"iou_tests": _library(metrics, "iou_from_confusion", label="reference_iou")}),
    ]),
    "06_experiment_crp": Assignment(
        [Test("predict_tests", "predict", _predict_cases, compare_labels),
         Test("variants_tests", "VARIANTS", _value_case("VARIANTS"), compare_variants)],
        given=[("given_model", "import torch\nfrom torch import nn\n\n\n" + inspect.getsource(TinySegNet),
                ["TinySegNet"])],
    ),
}
