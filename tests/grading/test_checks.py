"""The assignment checks (refinenet_edu.grading) pass a student's correct code and name each planted bug.

Every targeted diagnosis is fired here by a small buggy implementation of
the kind that ports of RefineNet have shipped (parallel CRP, misplaced ReLU
in the RCU, fusion upsampling the wrong branch, dropout left on at
evaluation). The correct implementations below are written the way a
student writes them, without the library; code that derives from, holds or
calls the library's reference is refused, each check judges only its own
part, and a failure reads as a short message: the mistake, then the fix.
"""

from __future__ import annotations

import math
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from refinenet_edu import grading as checks
from refinenet_edu.nn.components import (
    AdaptiveConv,
    ChainedResidualPooling,
    MultiResolutionFusion,
    RefineNetBlock,
    ResidualConvUnit,
)
from refinenet_edu.grading import CheckFailed
from refinenet_edu.grading.harness import WIDTH, randomize_
from refinenet_edu.grading.iou import CM_CASE, metric_variants
from refinenet_edu.grading.rcu import RCU_VARIANTS
from refinenet_edu.engine.metrics import confusion_matrix, iou_from_confusion, miou_from_confusion


def _fails(check, impl, *patterns: str, **kwargs) -> str:
    with pytest.raises(CheckFailed) as info:
        check(impl, **kwargs)
    message = str(info.value)
    flat = " ".join(message.split())  # the message is wrapped at 80 columns
    for pattern in patterns:
        assert pattern.lower() in flat.lower(), f"{pattern!r} not in:\n{message}"
    lines = message.splitlines()
    assert any(line.startswith("Fix: ") for line in lines[1:]), message
    return message


# ---------------------------------------------------------------- a student's correct code


class StudentRCU(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=True)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)

    def forward(self, x):
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


def student_adaptive_conv(in_channels, width, num_rcus=2, rcu=StudentRCU):
    return nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1, bias=False), *[rcu(width) for _ in range(num_rcus)])


class StudentCRP(nn.Module):
    def __init__(self, channels, num_blocks=4):
        super().__init__()
        self.pool = nn.MaxPool2d(5, stride=1, padding=2)
        self.convs = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1, bias=False) for _ in range(num_blocks))

    def forward(self, x):
        x = F.relu(x)
        out = top = x
        for conv in self.convs:
            top = conv(self.pool(top))
            out = out + top
        return out


class StudentFusion(nn.Module):
    def __init__(self, in_channels):
        super().__init__()
        width = min(in_channels)
        self.convs = nn.ModuleList(
            [] if len(in_channels) == 1 else [nn.Conv2d(c, width, 3, padding=1, bias=False) for c in in_channels])

    def forward(self, *paths):
        if len(self.convs) == 0:
            return paths[0]
        size = max((p.shape[-2:] for p in paths), key=lambda s: s[0] * s[1])
        out = 0
        for conv, p in zip(self.convs, paths):
            y = conv(p)
            if y.shape[-2:] != size:
                y = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
            out = out + y
        return out


def build_blocks(self, enc_channels, widths, crp_blocks, output_rcus):
    c1, c2, c3, c4 = enc_channels
    w1, w2, w3, w4 = widths
    opts = dict(crp_blocks=crp_blocks, output_rcus=output_rcus)
    self.refinenet4 = RefineNetBlock([c4], [w4], **opts)
    self.refinenet3 = RefineNetBlock([self.refinenet4.out_channels, c3], [None, w3], **opts)
    self.refinenet2 = RefineNetBlock([self.refinenet3.out_channels, c2], [None, w2], **opts)
    self.refinenet1 = RefineNetBlock([self.refinenet2.out_channels, c1], [None, w1], **opts)


class StudentCascade(nn.Module):
    """The task gives the student the library's RefineNetBlock; the wiring is theirs."""

    def __init__(self, enc_channels, widths, crp_blocks=4, output_rcus=3):
        super().__init__()
        build_blocks(self, enc_channels, widths, crp_blocks, output_rcus)

    def forward(self, features):
        f1, f2, f3, f4 = features
        r4 = self.refinenet4(f4)
        r3 = self.refinenet3(r4, f3)
        r2 = self.refinenet2(r3, f2)
        return self.refinenet1(r2, f1)


def student_block_forward(block, *paths):
    adapted = [layer(p) for layer, p in zip(block.adaptive, paths)]
    return block.output(block.crp(block.fusion(*adapted)))


def student_confusion_matrix(pred, target, num_classes, ignore_index=255):
    pred, target = torch.as_tensor(pred).flatten().long(), torch.as_tensor(target).flatten().long()
    keep = target != ignore_index
    return torch.bincount(target[keep] * num_classes + pred[keep], minlength=num_classes**2).reshape(
        num_classes, num_classes)


def student_iou(cm):
    cm = torch.as_tensor(cm).double()
    tp = cm.diagonal()
    union = cm.sum(0) + cm.sum(1) - tp
    return torch.where(union > 0, tp / union.clamp(min=1), torch.tensor(math.nan, dtype=torch.float64))


def student_miou(cm):
    iou = student_iou(cm)
    valid = ~torch.isnan(iou)
    return float(iou[valid].mean()) if bool(valid.any()) else math.nan


def student_predict(model, images):
    model.eval()
    with torch.no_grad():
        return model(images).argmax(dim=1)


def test_checkfailed_is_an_assertion_error():
    # nbgrader marks a test cell failed on any exception; AssertionError is the conventional one.
    assert issubclass(CheckFailed, AssertionError)


def test_a_students_correct_code_passes_every_check(capsys):
    checks.check_rcu(StudentRCU)
    checks.check_adaptive_conv(student_adaptive_conv)
    checks.check_crp(StudentCRP)
    checks.check_fusion(StudentFusion)
    checks.check_cascade(StudentCascade)
    checks.check_confusion_matrix(student_confusion_matrix)
    checks.check_iou(student_iou)
    checks.check_miou(student_miou, student_iou)
    checks.check_eval_mode(student_predict)
    checks.check_block_forward(student_block_forward)
    assert capsys.readouterr().out.count("✓") == 10


def test_the_library_itself_passes_unless_graded(capsys):
    # The course notebooks show the library's components passing; the assignments' graded cells pass
    # allow_reference=False, so that `ResidualConvUnit = refinenet_edu.ResidualConvUnit` fails there.
    references = [(checks.check_rcu, ResidualConvUnit), (checks.check_adaptive_conv, AdaptiveConv),
                  (checks.check_crp, ChainedResidualPooling), (checks.check_fusion, MultiResolutionFusion),
                  (checks.check_confusion_matrix, confusion_matrix), (checks.check_iou, iou_from_confusion),
                  (checks.check_miou, miou_from_confusion)]
    for check, reference in references:
        check(reference)
    assert capsys.readouterr().out.count("✓") == len(references)
    for check, reference in references:
        _fails(check, reference, "refinenet_edu's", "itself", allow_reference=False)


def test_checks_pass_other_sizes_and_seeds(capsys):
    checks.check_rcu(StudentRCU, channels=3, size=(5, 8), seed=3)
    checks.check_crp(StudentCRP, channels=2, num_blocks=3, size=(9, 6), seed=2)
    checks.check_fusion(StudentFusion, seed=5)
    checks.check_cascade(StudentCascade, enc_channels=(8, 16, 24, 32), widths=(4, 6, 6, 8), crp_blocks=1,
                         output_rcus=0, image_size=(64, 40), seed=1)
    assert capsys.readouterr().out.count("✓") == 4


def test_checks_leave_the_random_state_and_the_profiler_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    profiler = sys.getprofile()
    checks.check_rcu(StudentRCU)
    checks.check_crp(StudentCRP, num_blocks=2)
    checks.check_eval_mode(student_predict)
    assert torch.equal(torch.rand(3), expected)
    assert sys.getprofile() is profiler


# ---------------------------------------------------------------- the reference is not the student's work


class Wrapper(nn.Module):
    """Holds the library's component and forwards to it."""

    def __init__(self, *args, reference=ResidualConvUnit):
        super().__init__()
        self.inner = reference(*args)

    def forward(self, *inputs):
        return self.inner(*inputs)


def _caller(reference):
    """Own layers, but forward runs the library's forward on them."""

    class Caller(nn.Module):
        def __init__(self, *args):
            super().__init__()
            donor = reference(*args)
            for name, child in donor.named_children():
                setattr(self, name, child)
            self.__dict__.update({k: v for k, v in vars(donor).items() if not k.startswith("_")})

        def forward(self, *inputs):
            return reference.forward(self, *inputs)

    for name, value in vars(reference).items():  # the reference's helper methods, as a copy-paste would have
        if callable(value) and not name.startswith("_") and name != "forward":
            setattr(Caller, name, value)
    return Caller


@pytest.mark.parametrize("check, reference", [
    (checks.check_rcu, ResidualConvUnit),
    (checks.check_crp, ChainedResidualPooling),
    (checks.check_fusion, MultiResolutionFusion),
])
def test_a_subclass_a_wrapper_a_caller_and_the_reference_itself_are_refused(check, reference):
    subclass = type("Mine", (reference,), {})
    _fails(check, subclass, "derives from refinenet_edu's", "reference this check compares")

    class Holder(Wrapper):
        def __init__(self, *args):
            super().__init__(*args, reference=reference)

    _fails(check, Holder, "holds refinenet_edu's", "self.inner")
    _fails(check, _caller(reference), "calls the library's reference code", f"{reference.__name__}.")


def test_reuse_is_refused_by_the_other_checks_too():
    _fails(checks.check_adaptive_conv, lambda i, w, n=2: student_adaptive_conv(i, w, n, rcu=ResidualConvUnit),
           "holds refinenet_edu's ResidualConvUnit", "your own ResidualConvUnit")
    _fails(checks.check_adaptive_conv, lambda i, w, n=2: AdaptiveConv(i, w, n), "holds refinenet_edu's AdaptiveConv")
    for check, fn in ((checks.check_confusion_matrix, confusion_matrix), (checks.check_iou, iou_from_confusion),
                      (checks.check_miou, miou_from_confusion)):
        _fails(check, lambda *args, fn=fn: fn(*args), "calls the library's reference code")
    from refinenet_edu.engine.inference import predict_labels as predict

    def calls_predict(model, images):
        model.eval()
        return predict(model, images, precision="fp32", channels_last=False)

    _fails(checks.check_eval_mode, calls_predict, "calls the library's reference", "predict")


def test_the_cascade_may_use_refinenet_block_but_not_the_librarys_cascade():
    from refinenet_edu.nn.model import RefineNet

    class Subclass(RefineNet):
        def __init__(self, enc_channels, widths, crp_blocks=4, output_rcus=3):
            nn.Module.__init__(self)
            build_blocks(self, enc_channels, widths, crp_blocks, output_rcus)

        forward = StudentCascade.forward

    _fails(checks.check_cascade, Subclass, "derives from refinenet_edu's RefineNet")


# ---------------------------------------------------------------- each check judges its own part


def _rcu(formula):
    class BuggyRCU(StudentRCU):
        def forward(self, x):
            return formula(self, x)

    return BuggyRCU


def test_a_wrong_rcu_costs_only_the_rcu_test(capsys):
    bad_rcu = _rcu(lambda m, x: (lambda a: a + m.conv2(F.relu(m.conv1(a))))(F.relu(x)))
    _fails(checks.check_rcu, bad_rcu, "shortcut carries relu(x)")

    def adaptive_conv(in_channels, width, num_rcus=2):
        return student_adaptive_conv(in_channels, width, num_rcus, rcu=bad_rcu)

    checks.check_adaptive_conv(adaptive_conv)
    assert "✓ adaptive_conv" in capsys.readouterr().out


def test_a_wrong_iou_costs_only_the_iou_test(capsys):
    def recall(cm):
        cm = torch.as_tensor(cm).double()
        return cm.diagonal() / cm.sum(1)

    def miou(cm):
        return float(torch.nanmean(recall(cm)))

    _fails(checks.check_iou, recall, "recall")
    checks.check_miou(miou, recall)
    assert "your per-class IoUs" in capsys.readouterr().out
    # Without the student's IoU function, the mean of recall values is named as what it is.
    _fails(checks.check_miou, miou, "mean class accuracy (recall averaged over classes)")


# ---------------------------------------------------------------- what a student reads


def test_a_failure_reads_mistake_then_fix_in_short_lines():
    bad_rcu = _rcu(lambda m, x: F.relu(x + m.conv2(F.relu(m.conv1(F.relu(x))))))
    with pytest.raises(CheckFailed) as info:
        checks.check_rcu(bad_rcu)
    err = info.value
    lines = str(err).splitlines()
    assert lines[0].startswith("BuggyRCU: there is a ReLU after the sum")
    fix = next(i for i, line in enumerate(lines) if line.startswith("Fix: "))
    assert lines[fix].startswith("Fix: remove the ReLU") and fix <= 2  # the mistake and the fix come first
    assert all(len(line) <= WIDTH for line in lines[1:]) and len("CheckFailed: " + lines[0]) <= WIDTH
    # In Jupyter the traceback is the message itself, not the check's source code.
    shown = err._render_traceback_()
    assert shown[0].endswith(lines[0]) and "CheckFailed" in shown[0] and shown[1:] == lines[1:]


def test_an_error_in_the_students_code_names_the_students_line():
    class Broken(StudentRCU):
        def forward(self, x):
            return x + self.conv2(F.relu(self.conv1(F.relu(x)))).sum(dim=1)  # the line named

    msg = _fails(checks.check_rcu, Broken, "raised RuntimeError")
    assert "Where:" in msg
    where = next(line for line in msg.splitlines() if line.startswith("Where:"))
    assert "test_checks.py" in where and "in forward" in where


def test_the_eval_mode_check_names_layers_by_kind_not_by_internal_name():
    def forgets_eval(model, images):
        with torch.no_grad():
            return model(images).argmax(dim=1)

    msg = _fails(checks.check_eval_mode, forgets_eval, "dropout was ACTIVE", "model.eval()", "nn.Dropout (1 layer)")
    assert "features." not in msg and "differ on" in " ".join(msg.split())


# ---------------------------------------------------------------- not implemented passes through


class NotWritten(nn.Module):
    def __init__(self, *args, **kwargs):
        super().__init__()
        raise NotImplementedError()


@pytest.mark.parametrize(
    "check", [checks.check_rcu, checks.check_adaptive_conv, checks.check_crp, checks.check_fusion, checks.check_cascade]
)
def test_not_implemented_error_passes_through(check):
    with pytest.raises(NotImplementedError):
        check(NotWritten)


def test_not_implemented_functions_pass_through():
    def stub(*args):
        raise NotImplementedError()

    for check in (checks.check_confusion_matrix, checks.check_iou, checks.check_miou, checks.check_eval_mode,
                  checks.check_block_forward):
        with pytest.raises(NotImplementedError):
            check(stub)


# ---------------------------------------------------------------- Residual Conv Unit


RCU_BUGS = {
    "relu on the shortcut": (lambda m, x: F.relu(x) + m.conv2(F.relu(m.conv1(F.relu(x)))), ["shortcut carries relu(x)"]),
    "x = relu(x) first": (
        lambda m, x: (lambda a: a + m.conv2(F.relu(m.conv1(a))))(F.relu(x)),
        ["shortcut carries relu(x)"],
    ),
    "relu after the sum": (lambda m, x: F.relu(x + m.conv2(F.relu(m.conv1(F.relu(x))))), ["ReLU after the sum"]),
    "original ResNet unit": (lambda m, x: F.relu(x + m.conv2(F.relu(m.conv1(x)))), ["original ResNet unit"]),
    "missing first relu": (lambda m, x: x + m.conv2(F.relu(m.conv1(x))), ["first ReLU", "missing"]),
    "missing second relu": (lambda m, x: x + m.conv2(m.conv1(F.relu(x))), ["second ReLU", "missing"]),
    "second relu after conv2": (lambda m, x: x + F.relu(m.conv2(m.conv1(F.relu(x)))), ["after conv2 instead of before"]),
    "extra relu after conv2": (lambda m, x: x + F.relu(m.conv2(F.relu(m.conv1(F.relu(x))))), ["extra ReLU after conv2"]),
    "relus after the convs": (lambda m, x: x + F.relu(m.conv2(F.relu(m.conv1(x)))), ["after each convolution"]),
    "second relu on the input": (lambda m, x: x + m.conv2(F.relu(x)), ["wrong tensor"]),
    "no shortcut": (lambda m, x: m.conv2(F.relu(m.conv1(F.relu(x)))), ["shortcut is missing"]),
}


@pytest.mark.parametrize("bug", sorted(RCU_BUGS))
def test_rcu_misplaced_relu_is_named(bug):
    formula, patterns = RCU_BUGS[bug]
    _fails(checks.check_rcu, _rcu(formula), *patterns)


def test_rcu_inplace_relu_on_the_input_is_named():
    class InplaceRCU(StudentRCU):
        def forward(self, x):
            out = self.conv1(F.relu(x, inplace=True))
            return x + self.conv2(F.relu(out))

    _fails(checks.check_rcu, InplaceRCU, "in place", "F.relu(x)")

    # Notebook 01's version of this bug derives from the library's RCU: it is still named as the bug
    # (the checks judge the numbers first, reuse last).
    class InplaceReLURCU(ResidualConvUnit):
        def forward(self, x):
            residual = x
            out = self.conv1(F.relu_(x))
            return self.conv2(F.relu(out)) + residual

    _fails(checks.check_rcu, InplaceReLURCU, "in place")


def test_rcu_bias_layout_and_detached_branch():
    class BiasEverywhere(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.conv1 = nn.Conv2d(c, c, 3, padding=1)
            self.conv2 = nn.Conv2d(c, c, 3, padding=1)

        def forward(self, x):
            return x + self.conv2(F.relu(self.conv1(F.relu(x))))

    _fails(checks.check_rcu, BiasEverywhere, "conv2 has a bias", "bias=False")

    class Detached(StudentRCU):
        def forward(self, x):
            return x + self.conv2(F.relu(self.conv1(F.relu(x)))).detach()

    _fails(checks.check_rcu, Detached, "gradient")


def test_rcu_variants_are_pairwise_distinguishable():
    # The diagnosis relies on every variant giving a different output on the check's inputs.
    gen = torch.Generator().manual_seed(0)
    rcu = StudentRCU(6)
    randomize_([rcu.conv1, rcu.conv2], gen)
    x = torch.randn(2, 6, 9, 11, generator=gen)
    c1 = lambda t: F.conv2d(t, rcu.conv1.weight, rcu.conv1.bias, padding=1)  # noqa: E731
    c2 = lambda t: F.conv2d(t, rcu.conv2.weight, None, padding=1)  # noqa: E731
    with torch.no_grad():
        outs = [rcu(x)] + [f(x, c1, c2) for _, f, _, _ in RCU_VARIANTS]
    for i in range(len(outs)):
        for j in range(i + 1, len(outs)):
            assert not torch.allclose(outs[i], outs[j], atol=1e-3), (i, j)


class ParallelRCUs(nn.Module):
    """Shipped bug: both RCUs read the convolution's output."""

    def __init__(self, in_channels, width, num_rcus=2):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, width, 3, padding=1, bias=False)
        self.rcus = nn.ModuleList(StudentRCU(width) for _ in range(num_rcus))

    def forward(self, x):
        y = self.conv(x)
        return sum(rcu(y) for rcu in self.rcus)


def test_adaptive_conv_parallel_rcus_are_diagnosed():
    _fails(checks.check_adaptive_conv, ParallelRCUs, "PARALLEL", "one after the other")

    class LastOnly(ParallelRCUs):
        def forward(self, x):
            y = self.conv(x)
            out = y
            for rcu in self.rcus:
                out = rcu(y)
            return out

    _fails(checks.check_adaptive_conv, LastOnly, "only the last RCU")

    def shared(in_channels, width, num_rcus=2):
        rcu = StudentRCU(width)
        return nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1, bias=False), *[rcu] * num_rcus)

    _fails(checks.check_adaptive_conv, shared, "share one set of weights")

    def biased(in_channels, width, num_rcus=2):
        return nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), *[StudentRCU(width) for _ in range(num_rcus)])

    _fails(checks.check_adaptive_conv, biased, "first convolution", "bias=False")


# ---------------------------------------------------------------- chained residual pooling


class ParallelCRP(StudentCRP):
    """The shipped bug: every block pools the CRP input."""

    def forward(self, x):
        x = F.relu(x)
        out = x
        for conv in self.convs:
            out = out + conv(self.pool(x))
        return out


def test_crp_parallel_pools_are_diagnosed():
    msg = _fails(checks.check_crp, ParallelCRP, "PARALLEL", "stays 5 px", "top = conv(self.pool(top))")
    assert "17 px" in msg  # 1 + 4 * 4 for the default 4 blocks


def test_crp_parallel_pools_diagnosed_with_two_blocks():
    _fails(checks.check_crp, ParallelCRP, "PARALLEL", "13 px", num_blocks=2)


def test_crp_other_wiring_bugs_are_named():
    class OnlyLast(StudentCRP):
        def forward(self, x):
            x = F.relu(x)
            top = x
            for conv in self.convs:
                top = conv(self.pool(top))
            return x + top

    class NoSum(StudentCRP):
        def forward(self, x):
            top = F.relu(x)
            for conv in self.convs:
                top = conv(self.pool(top))
            return top

    class NoReLU(StudentCRP):
        def forward(self, x):
            out = top = x
            for conv in self.convs:
                top = conv(self.pool(top))
                out = out + top
            return out

    class Avg(StudentCRP):
        def __init__(self, c, n=4):
            super().__init__(c, n)
            self.pool = nn.AvgPool2d(5, 1, 2)

    class Pool3(StudentCRP):
        def __init__(self, c, n=4):
            super().__init__(c, n)
            self.pool = nn.MaxPool2d(3, 1, 1)

    class SharedConv(StudentCRP):
        def __init__(self, c, n=4):
            super().__init__(c, n)
            self.convs = nn.ModuleList([self.convs[0]] * n) if n else self.convs

    class ConvFirst(StudentCRP):
        def forward(self, x):
            x = F.relu(x)
            out = top = x
            for conv in self.convs:
                top = self.pool(conv(top))
                out = out + top
            return out

    _fails(checks.check_crp, OnlyLast, "only the last block")
    _fails(checks.check_crp, NoSum, "just the last block's output")
    _fails(checks.check_crp, NoReLU, "ReLU on the input is missing")
    _fails(checks.check_crp, Avg, "averages")
    _fails(checks.check_crp, Pool3, "3x3")
    _fails(checks.check_crp, SharedConv, "one 3x3 convolution per block")
    _fails(checks.check_crp, ConvFirst, "'improved' CRP")


# ---------------------------------------------------------------- multi-resolution fusion


class WrongBranchFusion(StudentFusion):
    """Shipped bug: brings every path to the SMALLEST resolution."""

    def forward(self, *paths):
        if len(self.convs) == 0:
            return paths[0]
        size = min((p.shape[-2:] for p in paths), key=lambda s: s[0] * s[1])
        return sum(F.interpolate(c(p), size=size, mode="bilinear", align_corners=False) for c, p in zip(self.convs, paths))


class FirstPathIsLowFusion(StudentFusion):
    """Assumes the first path is the low-resolution one and upsamples it to the second's size."""

    def forward(self, *paths):
        if len(self.convs) == 0:
            return paths[0]
        size = paths[-1].shape[-2:]
        return sum(F.interpolate(c(p), size=size, mode="bilinear", align_corners=False) for c, p in zip(self.convs, paths))


class DownUpFusion(StudentFusion):
    """Downsamples the high-resolution path, sums at low resolution, upsamples the sum."""

    def forward(self, *paths):
        if len(self.convs) == 0:
            return paths[0]
        big = max((p.shape[-2:] for p in paths), key=lambda s: s[0] * s[1])
        small = min((p.shape[-2:] for p in paths), key=lambda s: s[0] * s[1])
        low = sum(F.interpolate(c(p), size=small, mode="bilinear", align_corners=False) for c, p in zip(self.convs, paths))
        return F.interpolate(low, size=big, mode="bilinear", align_corners=False)


class ScaleFactorFusion(StudentFusion):
    def forward(self, *paths):
        if len(self.convs) == 0:
            return paths[0]
        big = max(p.shape[-1] for p in paths)
        out = 0
        for c, p in zip(self.convs, paths):
            y = c(p)
            if p.shape[-1] != big:
                y = F.interpolate(y, scale_factor=2, mode="bilinear", align_corners=False)
            out = out + y
        return out


class NearestFusion(StudentFusion):
    def forward(self, *paths):
        if len(self.convs) == 0:
            return paths[0]
        size = max((p.shape[-2:] for p in paths), key=lambda s: s[0] * s[1])
        return sum(F.interpolate(c(p), size=size, mode="nearest") for c, p in zip(self.convs, paths))


class UpsampleThenConvFusion(StudentFusion):
    def forward(self, *paths):
        if len(self.convs) == 0:
            return paths[0]
        size = max((p.shape[-2:] for p in paths), key=lambda s: s[0] * s[1])
        return sum(c(F.interpolate(p, size=size, mode="bilinear", align_corners=False)) for c, p in zip(self.convs, paths))


def test_fusion_wrong_branch_is_diagnosed():
    _fails(checks.check_fusion, WrongBranchFusion, "LOW resolution", "LARGEST resolution")
    msg = _fails(checks.check_fusion, FirstPathIsLowFusion, "LOW resolution")
    assert "high, low" in msg  # fails only when the high-resolution path comes first
    _fails(checks.check_fusion, DownUpFusion, "high-resolution path is resampled", "LARGEST resolution")


def test_fusion_other_bugs_are_named():
    _fails(checks.check_fusion, ScaleFactorFusion, "5x6 and 9x11", "scale_factor=2")
    _fails(checks.check_fusion, NearestFusion, "nearest")
    _fails(checks.check_fusion, UpsampleThenConvFusion, "upsampled first and convolved afterwards")

    class ConvOnSinglePath(nn.Module):
        def __init__(self, in_channels):
            super().__init__()
            self.inner = StudentFusion(in_channels if len(in_channels) > 1 else in_channels * 2)

        def forward(self, *paths):
            return self.inner(*paths) if len(paths) > 1 else self.inner(paths[0], paths[0])

    _fails(checks.check_fusion, ConvOnSinglePath, "single path")


# ---------------------------------------------------------------- the 4-cascade


def _cascade(forward):
    return type("BuggyCascade", (StudentCascade,), {"forward": forward})


def test_cascade_wiring_bugs_are_named():
    def swapped(self, features):
        f1, f2, f3, f4 = features
        r4 = self.refinenet4(f4)
        r3 = self.refinenet3(f3, r4)
        r2 = self.refinenet2(r3, f2)
        return self.refinenet1(r2, f1)

    def not_chained(self, features):
        f1, f2, f3, f4 = features
        self.refinenet4(f4)  # runs, but its output is not passed on
        r3 = self.refinenet3(f4, f3)
        r2 = self.refinenet2(r3, f2)
        return self.refinenet1(r2, f1)

    def returns_r2(self, features):
        f1, f2, f3, f4 = features
        r4 = self.refinenet4(f4)
        r3 = self.refinenet3(r4, f3)
        r2 = self.refinenet2(r3, f2)
        self.refinenet1(r2, f1)
        return r2

    def skips_refinenet1(self, features):
        f1, f2, f3, f4 = features
        return self.refinenet2(self.refinenet3(self.refinenet4(f4), f3), f2)

    def reversed_features(self, features):
        f4, f3, f2, f1 = features
        r4 = self.refinenet4(f4)
        return r4

    msg = _fails(checks.check_cascade, _cascade(swapped), "refinenet3 received", "previous output first")
    assert "features[2]" in msg
    _fails(checks.check_cascade, _cascade(not_chained), "refinenet3 received", "features[3]", "refinenet4's output")
    _fails(checks.check_cascade, _cascade(returns_r2), "refinenet2's output", "return the output of refinenet1")
    _fails(checks.check_cascade, _cascade(skips_refinenet1), "['refinenet1'] never ran")
    _fails(checks.check_cascade, _cascade(reversed_features), "refinenet4 received", "features[0]")


def test_cascade_wrongly_built_blocks_are_named():
    class WidthsShifted(StudentCascade):
        def __init__(self, enc_channels, widths, crp_blocks=4, output_rcus=3):
            super().__init__(enc_channels, widths, crp_blocks, output_rcus)
            self.refinenet3 = RefineNetBlock([self.refinenet4.out_channels, enc_channels[2]], [widths[3], widths[2]],
                                             crp_blocks=crp_blocks, output_rcus=output_rcus)

    _fails(checks.check_cascade, WidthsShifted, "refinenet3 is built", "width None")

    class Defaults(StudentCascade):
        def __init__(self, enc_channels, widths, crp_blocks=4, output_rcus=3):
            super().__init__(enc_channels, widths)

    _fails(checks.check_cascade, Defaults, "crp_blocks=crp_blocks")


# ---------------------------------------------------------------- the block's forward pass (notebook 04)


def test_block_forward_mistakes_are_named():
    def adapted(block, paths):
        return [layer(p) for layer, p in zip(block.adaptive, paths)]

    bugs = {
        "the paths skip the adaptive convolutions": lambda b, *p: b.output(b.crp(b.fusion(*p))),
        "block.crp) is skipped": lambda b, *p: b.output(b.fusion(*adapted(b, p))),
        "block.output) are skipped": lambda b, *p: b.crp(b.fusion(*adapted(b, p))),
        "both CRP and the output RCUs are skipped": lambda b, *p: b.fusion(*adapted(b, p)),
        "the output RCUs run before CRP": lambda b, *p: b.crp(b.output(b.fusion(*adapted(b, p)))),
        "CRP runs on every path before fusion": lambda b, *p: b.output(b.fusion(*[b.crp(a) for a in adapted(b, p)])),
        "only path 1 reaches the output": lambda b, *p: b.output(b.crp(b.adaptive[1](p[1]))),
        "summed without fusion's convolutions": lambda b, *p: b.output(b.crp(sum(
            F.interpolate(a, size=p[-1].shape[-2:], mode="bilinear", align_corners=False) for a in adapted(b, p)))),
    }
    for mistake, forward in bugs.items():
        msg = _fails(checks.check_block_forward, forward, mistake, "a block of 2 paths")
        assert "block.output(block.crp(block.fusion(*adapted)))" in " ".join(msg.split())


def test_block_forward_that_calls_the_block_or_breaks_the_graph_is_refused():
    _fails(checks.check_block_forward, lambda block, *paths: block(*paths), "RefineNetBlock.forward",
           "not block(*paths)")
    _fails(checks.check_block_forward, lambda block, *paths: block.forward(*paths), "RefineNetBlock.forward")
    _fails(checks.check_block_forward, lambda block, *paths: student_block_forward(block, *paths).detach(),
           "does not require a gradient")

    def two_paths_only(block, low, high):
        return student_block_forward(block, low, high)

    msg = _fails(checks.check_block_forward, two_paths_only, "missing 1 required positional argument",
                 "a block of 1 path")
    assert "two_paths_only" in msg

    def in_place(block, *paths):
        paths[0].relu_()
        return student_block_forward(block, *paths)

    _fails(checks.check_block_forward, in_place, "changed its input tensor in place")


# ---------------------------------------------------------------- metrics


def test_metric_checks_name_the_mistakes():
    def transposed(pred, target, num_classes, ignore_index=255):
        return student_confusion_matrix(target, pred, num_classes, ignore_index=-1)

    def counts_ignored(pred, target, num_classes, ignore_index=255):
        keep = target != 255
        cm = student_confusion_matrix(pred[keep], target[keep], num_classes)
        return cm + torch.eye(num_classes, dtype=torch.int64) * int((~keep).sum()) // num_classes + \
            (torch.arange(num_classes) < int((~keep).sum()) % num_classes).long().diag()

    def no_minlength(pred, target, num_classes, ignore_index=255):
        k = int(max(pred.max(), target.max())) + 1
        return torch.bincount(target.flatten() * k + pred.flatten()).reshape(k, k)

    _fails(checks.check_confusion_matrix, transposed, "transposed")
    _fails(checks.check_confusion_matrix, counts_ignored, "labelled 255")
    _fails(checks.check_confusion_matrix, no_minlength, "[4, 4]")

    def raw_bincount(pred, target, num_classes, ignore_index=255):
        return torch.bincount(target.flatten() * num_classes + pred.flatten(), minlength=num_classes**2).reshape(
            num_classes, num_classes)

    _fails(checks.check_confusion_matrix, raw_bincount, "ignore label 255")

    def recall(cm):
        cm = torch.as_tensor(cm).double()
        return cm.diagonal() / cm.sum(1)

    def zero_for_absent(cm):
        return student_iou(cm).nan_to_num(0.0)

    def int_div(cm):
        cm = torch.as_tensor(cm)
        union = cm.sum(0) + cm.sum(1) - cm.diagonal()
        return torch.where(union > 0, (cm.diagonal() // union.clamp(min=1)).double(), torch.nan)

    _fails(checks.check_iou, recall, "recall")
    _fails(checks.check_iou, zero_for_absent, "must be NaN")
    _fails(checks.check_iou, int_div, "integer division")

    _fails(checks.check_miou, lambda cm: float(student_iou(cm).mean()), "NaN", "nanmean")
    _fails(checks.check_miou, lambda cm: float(student_iou(cm).nan_to_num(0).mean()), "counted as IoU 0")
    _fails(checks.check_miou, lambda cm: float(torch.as_tensor(cm).diagonal().sum() / torch.as_tensor(cm).sum()),
           "pixel accuracy")

    def gt_only(cm):
        cm = torch.as_tensor(cm)
        return float(student_iou(cm)[cm.sum(1) > 0].mean())

    _fails(checks.check_miou, gt_only, "present in the ground truth")

    def no_nan_when_empty(cm):
        value = student_miou(cm)
        return 0.0 if math.isnan(value) else value

    _fails(checks.check_miou, no_nan_when_empty, "all-zero matrix")


def test_miou_candidates_are_distinct():
    values = [miou_from_confusion(CM_CASE)] + [float(torch.nanmean(v)) for v, _, _ in metric_variants(CM_CASE).values()]
    assert len({round(v, 6) for v in values}) == len(values)


# ---------------------------------------------------------------- evaluation mode


def test_dropout_left_on_at_evaluation_is_diagnosed():
    def forgets_eval(model, images):
        with torch.no_grad():
            return model(images).argmax(dim=1)

    msg = _fails(checks.check_eval_mode, forgets_eval, "dropout was ACTIVE", "model.eval()")
    assert "differ on" in msg  # the two calls disagree, and the message says by how much


def test_eval_mode_other_mistakes():
    def no_grad_missing(model, images):
        model.eval()
        return model(images).argmax(dim=1)

    def scores(model, images):
        model.eval()
        with torch.no_grad():
            return model(images)

    def bn_only_eval(model, images):
        model.train()
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eval()
        with torch.no_grad():
            return model(images).argmax(1)

    _fails(checks.check_eval_mode, no_grad_missing, "torch.no_grad()")
    _fails(checks.check_eval_mode, scores, "argmax(dim=1)")
    _fails(checks.check_eval_mode, bn_only_eval, "dropout was ACTIVE")


def test_eval_mode_on_a_real_refinenet():
    from refinenet_edu.nn.model import build_refinenet

    torch.manual_seed(0)
    model = build_refinenet("course", num_classes=4, encoder_dropout=0.5, classifier_dropout=0.5)
    checks.check_eval_mode(student_predict, model=model, images=torch.randn(1, 3, 64, 64))

    def forgets_eval(model, images):
        with torch.no_grad():
            return model(images).argmax(dim=1)

    model.train()
    with pytest.raises(CheckFailed, match="dropout was ACTIVE"):
        checks.check_eval_mode(forgets_eval, model=model, images=torch.randn(1, 3, 64, 64))


# ---------------------------------------------------------------- hints that teach, not dictate (issue 30, item 4)


class HardCodedRCU(StudentRCU):
    """The hint's sizes pasted back: a unit of 6 channels whatever it is asked for."""

    def __init__(self, channels):
        super().__init__(6)


class HardCodedFusion(nn.Module):
    """Fusion whose convolutions map every path to 4 channels, the smallest width of the check's first cases."""

    def __init__(self, in_channels):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(c, 4, 3, padding=1, bias=False) for c in in_channels) \
            if len(in_channels) > 1 else nn.ModuleList()

    def forward(self, *paths):
        if len(paths) == 1:
            return paths[0]
        size = max((p.shape[-2:] for p in paths), key=lambda s: s[0] * s[1])
        return sum(F.interpolate(c(p), size=size, mode="bilinear", align_corners=False)
                   for c, p in zip(self.convs, paths))


class ConcatFusion(StudentFusion):
    def forward(self, *paths):
        if len(paths) == 1:
            return paths[0]
        size = max((p.shape[-2:] for p in paths), key=lambda s: s[0] * s[1])
        return torch.cat([F.interpolate(c(p), size=size, mode="bilinear", align_corners=False)
                          for c, p in zip(self.convs, paths)], dim=1)


def test_hard_coded_sizes_fail_and_the_fixes_name_the_arguments():
    message = _fails(checks.check_rcu, HardCodedRCU, "written into the code", "nn.Conv2d(channels, channels")
    assert "Conv2d(6, 6" not in message.split("Fix:")[1]
    message = _fails(checks.check_fusion, HardCodedFusion, "maps 8 to 4 channels", "min(in_channels)",
                     "nn.Conv2d(c, width")
    assert "Conv2d(c, 4" not in message


def test_fusion_concatenation_is_named():
    _fails(checks.check_fusion, ConcatFusion, "concatenated", "instead of summed", "out = out + y")


def test_integer_division_in_the_miou_is_named():
    def floor_miou(cm):
        tp = cm.diag()
        iou = tp // (cm.sum(0) + cm.sum(1) - tp)   # int64: rounds down, and 0 // 0 fails
        return float(iou.mean())

    def int_mean_miou(cm):
        tp = cm.diag()
        union = cm.sum(0) + cm.sum(1) - tp
        return float(tp[union > 0].mean())         # mean() of int64 counts

    for impl in (floor_miou, int_mean_miou):
        _fails(checks.check_miou, impl, "integer arithmetic", ".double()")
