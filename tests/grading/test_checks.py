"""The assignment checks (refinenet_edu.grading.checks) pass the reference and name each planted bug.

Every targeted diagnosis is fired here by a small buggy implementation of
the kind that ports of RefineNet have shipped (parallel CRP, misplaced ReLU
in the RCU, fusion upsampling the wrong branch, dropout left on at
evaluation), and every check passes on the library's own components.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from refinenet_edu.grading import checks
from refinenet_edu.grading.checks import CheckFailed
from refinenet_edu.components import (
    AdaptiveConv,
    ChainedResidualPooling,
    MultiResolutionFusion,
    RefineNetBlock,
    ResidualConvUnit,
)
from refinenet_edu.engine.metrics import confusion_matrix, iou_from_confusion, miou_from_confusion


def _fails(check, impl, *patterns: str, **kwargs) -> str:
    with pytest.raises(CheckFailed) as info:
        check(impl, **kwargs)
    message = str(info.value)
    for pattern in patterns:
        assert pattern.lower() in message.lower(), f"{pattern!r} not in:\n{message}"
    assert "How to fix" in message or "fix" in message.lower()
    return message


def test_checkfailed_is_an_assertion_error():
    # nbgrader marks a test cell failed on any exception; AssertionError is the conventional one.
    assert issubclass(CheckFailed, AssertionError)


# ---------------------------------------------------------------- references pass


def test_reference_components_pass_every_check(capsys):
    checks.check_rcu(ResidualConvUnit)
    checks.check_adaptive_conv(AdaptiveConv)
    checks.check_crp(ChainedResidualPooling)
    checks.check_fusion(MultiResolutionFusion)
    checks.check_cascade(ReferenceCascade)
    checks.check_confusion_matrix(confusion_matrix)
    checks.check_iou(iou_from_confusion)
    checks.check_miou(miou_from_confusion)
    checks.check_eval_mode(reference_predict)
    out = capsys.readouterr().out
    assert out.count("✓") == 9


def test_checks_pass_other_sizes_and_seeds(capsys):
    checks.check_rcu(ResidualConvUnit, channels=3, size=(5, 8), seed=3)
    checks.check_crp(ChainedResidualPooling, channels=2, num_blocks=3, size=(9, 6), seed=2)
    checks.check_fusion(MultiResolutionFusion, seed=5)
    checks.check_cascade(ReferenceCascade, enc_channels=(8, 16, 24, 32), widths=(4, 6, 6, 8), crp_blocks=1,
                         output_rcus=0, image_size=(64, 40), seed=1)
    assert capsys.readouterr().out.count("✓") == 4


def test_checks_do_not_touch_the_global_random_state():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    checks.check_rcu(ResidualConvUnit)
    checks.check_crp(ChainedResidualPooling, num_blocks=2)
    checks.check_eval_mode(reference_predict)
    assert torch.equal(torch.rand(3), expected)


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

    for check in (checks.check_confusion_matrix, checks.check_iou, checks.check_miou, checks.check_eval_mode):
        with pytest.raises(NotImplementedError):
            check(stub)


# ---------------------------------------------------------------- Residual Conv Unit


def _rcu(formula):
    class BuggyRCU(ResidualConvUnit):
        def forward(self, x):
            return formula(self, x)

    return BuggyRCU


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
    "relus after the convs": (lambda m, x: x + F.relu(m.conv2(F.relu(m.conv1(x)))), ["*after* each convolution"]),
    "second relu on the input": (lambda m, x: x + m.conv2(F.relu(x)), ["wrong tensor"]),
    "no shortcut": (lambda m, x: m.conv2(F.relu(m.conv1(F.relu(x)))), ["shortcut is missing"]),
}


@pytest.mark.parametrize("bug", sorted(RCU_BUGS))
def test_rcu_misplaced_relu_is_named(bug):
    formula, patterns = RCU_BUGS[bug]
    _fails(checks.check_rcu, _rcu(formula), *patterns)


def test_rcu_inplace_relu_on_the_input_is_named():
    class InplaceRCU(ResidualConvUnit):
        def forward(self, x):
            out = self.conv1(F.relu(x, inplace=True))
            return x + self.conv2(F.relu(out))

    _fails(checks.check_rcu, InplaceRCU, "in place", "F.relu(x)")


def test_rcu_bias_layout_and_detached_branch():
    class BiasEverywhere(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.conv1 = nn.Conv2d(c, c, 3, padding=1)
            self.conv2 = nn.Conv2d(c, c, 3, padding=1)

        def forward(self, x):
            return x + self.conv2(F.relu(self.conv1(F.relu(x))))

    _fails(checks.check_rcu, BiasEverywhere, "conv2 has a bias", "bias=False")

    class Detached(ResidualConvUnit):
        def forward(self, x):
            return x + self.conv2(F.relu(self.conv1(F.relu(x)))).detach()

    _fails(checks.check_rcu, Detached, "gradient")


def test_rcu_variants_are_pairwise_distinguishable():
    # The diagnosis relies on every variant giving a different output on the check's inputs.
    gen = torch.Generator().manual_seed(0)
    rcu = ResidualConvUnit(6)
    checks._randomize_([rcu.conv1, rcu.conv2], gen)
    x = torch.randn(2, 6, 9, 11, generator=gen)
    c1 = lambda t: F.conv2d(t, rcu.conv1.weight, rcu.conv1.bias, padding=1)  # noqa: E731
    c2 = lambda t: F.conv2d(t, rcu.conv2.weight, None, padding=1)  # noqa: E731
    with torch.no_grad():
        outs = [rcu(x)] + [f(x, c1, c2) for _, f, _, _ in checks._RCU_VARIANTS]
    for i in range(len(outs)):
        for j in range(i + 1, len(outs)):
            assert not torch.allclose(outs[i], outs[j], atol=1e-3), (i, j)


class ParallelRCUs(nn.Module):
    """Shipped bug: both RCUs read the convolution's output."""

    def __init__(self, in_channels, width, num_rcus=2):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, width, 3, padding=1, bias=False)
        self.rcus = nn.ModuleList(ResidualConvUnit(width) for _ in range(num_rcus))

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
        rcu = ResidualConvUnit(width)
        return nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1, bias=False), *[rcu] * num_rcus)

    _fails(checks.check_adaptive_conv, shared, "shares its weights")


# ---------------------------------------------------------------- chained residual pooling


class ParallelCRP(ChainedResidualPooling):
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
    _fails(checks.check_crp, ParallelCRP, "PARALLEL", "13 px after 3", num_blocks=2)


def test_crp_other_wiring_bugs_are_named():
    class OnlyLast(ChainedResidualPooling):
        def forward(self, x):
            x = F.relu(x)
            top = x
            for conv in self.convs:
                top = conv(self.pool(top))
            return x + top

    class NoSum(ChainedResidualPooling):
        def forward(self, x):
            top = F.relu(x)
            for conv in self.convs:
                top = conv(self.pool(top))
            return top

    class NoReLU(ChainedResidualPooling):
        def forward(self, x):
            out = top = x
            for conv in self.convs:
                top = conv(self.pool(top))
                out = out + top
            return out

    class Avg(ChainedResidualPooling):
        def __init__(self, c, n=4):
            super().__init__(c, n)
            self.pool = nn.AvgPool2d(5, 1, 2)

    class Pool3(ChainedResidualPooling):
        def __init__(self, c, n=4):
            super().__init__(c, n)
            self.pool = nn.MaxPool2d(3, 1, 1)

    class SharedConv(ChainedResidualPooling):
        def __init__(self, c, n=4):
            super().__init__(c, n)
            self.convs = nn.ModuleList([self.convs[0]] * n) if n else self.convs

    _fails(checks.check_crp, OnlyLast, "only the last block")
    _fails(checks.check_crp, NoSum, "just the last block's output")
    _fails(checks.check_crp, NoReLU, "ReLU on its input")
    _fails(checks.check_crp, Avg, "averages")
    _fails(checks.check_crp, Pool3, "3x3")
    _fails(checks.check_crp, SharedConv, "one 3x3 convolution per block")
    _fails(checks.check_crp, lambda c, n=4: ChainedResidualPooling(c, n, conv_first=True), "'improved' CRP")


# ---------------------------------------------------------------- multi-resolution fusion


class WrongBranchFusion(MultiResolutionFusion):
    """Shipped bug: brings every path to the SMALLEST resolution."""

    def forward(self, *paths):
        if len(self.convs) == 0:
            return paths[0]
        size = min((p.shape[-2:] for p in paths), key=lambda s: s[0] * s[1])
        return sum(F.interpolate(c(p), size=size, mode="bilinear", align_corners=False) for c, p in zip(self.convs, paths))


class FirstPathIsLowFusion(MultiResolutionFusion):
    """Assumes the first path is the low-resolution one and upsamples it to the second's size."""

    def forward(self, *paths):
        if len(self.convs) == 0:
            return paths[0]
        size = paths[-1].shape[-2:]
        return sum(F.interpolate(c(p), size=size, mode="bilinear", align_corners=False) for c, p in zip(self.convs, paths))


class DownUpFusion(MultiResolutionFusion):
    """Downsamples the high-resolution path, sums at low resolution, upsamples the sum."""

    def forward(self, *paths):
        if len(self.convs) == 0:
            return paths[0]
        big = max((p.shape[-2:] for p in paths), key=lambda s: s[0] * s[1])
        small = min((p.shape[-2:] for p in paths), key=lambda s: s[0] * s[1])
        low = sum(F.interpolate(c(p), size=small, mode="bilinear", align_corners=False) for c, p in zip(self.convs, paths))
        return F.interpolate(low, size=big, mode="bilinear", align_corners=False)


class ScaleFactorFusion(MultiResolutionFusion):
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


class NearestFusion(MultiResolutionFusion):
    def forward(self, *paths):
        if len(self.convs) == 0:
            return paths[0]
        size = max((p.shape[-2:] for p in paths), key=lambda s: s[0] * s[1])
        return sum(F.interpolate(c(p), size=size, mode="nearest") for c, p in zip(self.convs, paths))


class UpsampleThenConvFusion(MultiResolutionFusion):
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
            self.inner = MultiResolutionFusion(in_channels if len(in_channels) > 1 else in_channels * 2)

        def forward(self, *paths):
            return self.inner(*paths) if len(paths) > 1 else self.inner(paths[0], paths[0])

    _fails(checks.check_fusion, ConvOnSinglePath, "single path")


# ---------------------------------------------------------------- the 4-cascade


class ReferenceCascade(nn.Module):
    def __init__(self, enc_channels, widths, crp_blocks=4, output_rcus=3):
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
        r4 = self.refinenet4(f4)
        r3 = self.refinenet3(r4, f3)
        r2 = self.refinenet2(r3, f2)
        return self.refinenet1(r2, f1)


def _cascade(forward):
    return type("BuggyCascade", (ReferenceCascade,), {"forward": forward})


def test_cascade_wiring_bugs_are_named():
    def swapped(self, features):
        f1, f2, f3, f4 = features
        r4 = self.refinenet4(f4)
        r3 = self.refinenet3(f3, r4)
        r2 = self.refinenet2(r3, f2)
        return self.refinenet1(r2, f1)

    def not_chained(self, features):
        f1, f2, f3, f4 = features
        r4 = self.refinenet4(f4)
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
    class WidthsShifted(ReferenceCascade):
        def __init__(self, enc_channels, widths, crp_blocks=4, output_rcus=3):
            super().__init__(enc_channels, widths, crp_blocks, output_rcus)
            self.refinenet3 = RefineNetBlock([self.refinenet4.out_channels, enc_channels[2]], [widths[3], widths[2]],
                                             crp_blocks=crp_blocks, output_rcus=output_rcus)

    _fails(checks.check_cascade, WidthsShifted, "refinenet3 is built", "width None")

    class Defaults(ReferenceCascade):
        def __init__(self, enc_channels, widths, crp_blocks=4, output_rcus=3):
            super().__init__(enc_channels, widths)

    _fails(checks.check_cascade, Defaults, "crp_blocks=crp_blocks")


# ---------------------------------------------------------------- metrics


def test_metric_checks_name_the_mistakes():
    def transposed(pred, target, num_classes, ignore_index=255):
        return confusion_matrix(target, pred, num_classes, ignore_index=None)

    def counts_ignored(pred, target, num_classes, ignore_index=255):
        keep = target != 255
        cm = confusion_matrix(pred[keep], target[keep], num_classes)
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
        return iou_from_confusion(cm).nan_to_num(0.0)

    def int_div(cm):
        cm = torch.as_tensor(cm)
        union = cm.sum(0) + cm.sum(1) - cm.diagonal()
        return torch.where(union > 0, (cm.diagonal() // union.clamp(min=1)).double(), torch.nan)

    _fails(checks.check_iou, recall, "recall")
    _fails(checks.check_iou, zero_for_absent, "must be NaN")
    _fails(checks.check_iou, int_div, "integer division")

    _fails(checks.check_miou, lambda cm: float(iou_from_confusion(cm).mean()), "NaN", "nanmean")
    _fails(checks.check_miou, lambda cm: float(iou_from_confusion(cm).nan_to_num(0).mean()), "counted as IoU 0")
    _fails(checks.check_miou, lambda cm: float(torch.as_tensor(cm).diagonal().sum() / torch.as_tensor(cm).sum()),
           "pixel accuracy")

    def gt_only(cm):
        cm = torch.as_tensor(cm)
        return float(iou_from_confusion(cm)[cm.sum(1) > 0].mean())

    _fails(checks.check_miou, gt_only, "present in the ground truth")

    def no_nan_when_empty(cm):
        value = miou_from_confusion(cm)
        return 0.0 if math.isnan(value) else value

    _fails(checks.check_miou, no_nan_when_empty, "all-zero matrix")


def test_miou_candidates_are_distinct():
    cm = checks._CM_CASE
    values = [miou_from_confusion(cm)] + [float(torch.nanmean(v)) for v, _, _ in checks._metric_variants(cm).values()]
    assert len({round(v, 6) for v in values}) == len(values)


# ---------------------------------------------------------------- evaluation mode


def reference_predict(model, images):
    model.eval()
    with torch.no_grad():
        return model(images).argmax(dim=1)


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
    from refinenet_edu.model import build_refinenet

    torch.manual_seed(0)
    model = build_refinenet("course", num_classes=4, encoder_dropout=0.5, classifier_dropout=0.5)
    checks.check_eval_mode(reference_predict, model=model, images=torch.randn(1, 3, 64, 64))

    def forgets_eval(model, images):
        with torch.no_grad():
            return model(images).argmax(dim=1)

    model.train()
    with pytest.raises(CheckFailed, match="dropout was ACTIVE"):
        checks.check_eval_mode(forgets_eval, model=model, images=torch.randn(1, 3, 64, 64))
