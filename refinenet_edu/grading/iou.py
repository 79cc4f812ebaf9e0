"""Checks of the segmentation metrics: confusion matrix, per-class IoU, mean IoU (paper Sec. 4 reports mIoU).

Each check judges its own function: :func:`check_miou` accepts the mean of the student's own per-class IoUs, so a
wrong IoU costs the IoU's test, not the mean's. The reference is :mod:`refinenet_edu.engine.metrics`.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable

import torch

from refinenet_edu.engine import metrics as reference_metrics
from refinenet_edu.grading.harness import Submission, as_tensor, fail, ok

__all__ = ["CM_CASE", "check_confusion_matrix", "check_iou", "check_miou", "metric_variants"]

_REFERENCE = (reference_metrics.confusion_matrix, reference_metrics.iou_from_confusion,
              reference_metrics.miou_from_confusion)
_OWN_FIX = "compute it yourself with torch (bincount, sum, diagonal), without refinenet_edu.engine.metrics."
_IOU_FIX = "IoU_c = cm[c, c] / (row_c + col_c - cm[c, c]), NaN where the union is 0."

#: The test matrix (rows = ground truth): two ordinary classes, one absent from both (IoU NaN), one only
#: predicted and one only in the ground truth (IoU 0 each).
CM_CASE = torch.tensor([
    [50, 5, 0, 3, 0],
    [4, 30, 0, 2, 0],
    [0, 0, 0, 0, 0],  # class 2: absent from ground truth and prediction -> NaN
    [0, 0, 0, 0, 0],  # class 3: only predicted (false positives) -> IoU 0
    [6, 0, 0, 1, 0],  # class 4: only in the ground truth, never predicted -> IoU 0
])


def check_confusion_matrix(fn: Callable, *, seed: int = 0, allow_reference: bool = True) -> None:
    """Check ``fn(pred, target, num_classes, ignore_index=255) -> [C, C]`` counts: rows are the ground truth,
    columns the prediction; pixels whose target is ``ignore_index`` are skipped; the matrix is ``C x C`` even when
    some classes do not occur. Compared with :func:`refinenet_edu.engine.metrics.confusion_matrix`.
    """
    __tracebackhide__ = True
    student = Submission(fn, "check_confusion_matrix(confusion_matrix)", _REFERENCE,
                         allow_reference=allow_reference)
    what, confusion_matrix = student.what, reference_metrics.confusion_matrix
    pred = torch.tensor([0, 1, 1, 2, 2, 0])
    target = torch.tensor([0, 1, 2, 2, 0, 0])
    case = "pred [0,1,1,2,2,0], target [0,1,2,2,0,0]"
    expected = confusion_matrix(pred, target, 3)
    got = as_tensor(student.call(fn, pred, target, 3, context=f" ({case})"), what)
    if got.shape != (3, 3):
        raise fail(what, f"returned shape {list(got.shape)} for 3 classes; expected [3, 3].",
                   "count `target * C + pred` with `torch.bincount(..., minlength=C * C)` and reshape to (C, C).")
    if got.is_floating_point():
        raise fail(what, f"returned a {got.dtype} matrix; a confusion matrix holds counts (int64).",
                   "`torch.bincount` returns int64; do not convert to float.")
    if torch.equal(got, expected.T):
        raise fail(what, "the matrix is transposed: rows must be the ground truth (target), columns the "
                   "prediction.", "use the index `target * C + pred`.",
                   "cm[i, j] counts the pixels of class i predicted as class j.")
    if not torch.equal(got, expected):
        raise fail(what, f"got {got.tolist()} for {case}; expected {expected.tolist()} (rows = target, columns "
                   "= prediction).", "count `target * C + pred`.")

    # Missing classes: labels only up to 1 with C = 4.
    got = as_tensor(student.call(fn, torch.tensor([0, 1, 1]), torch.tensor([0, 0, 1]), 4,
                                 context=" (4 classes, labels 0 and 1 only)"), what)
    if got.shape != (4, 4):
        raise fail(what, f"with num_classes=4 and labels only 0 and 1 the result has shape {list(got.shape)}; it "
                   "must be [4, 4] whatever labels occur.", "`torch.bincount(index, minlength=C * C).reshape(C, C)`.")

    # The ignore label.
    gen = torch.Generator().manual_seed(seed)
    p = torch.randint(0, 5, (2, 7, 9), generator=gen)
    t = torch.randint(0, 5, (2, 7, 9), generator=gen)
    t[torch.rand(t.shape, generator=gen) < 0.2] = 255
    expected = confusion_matrix(p, t, 5, ignore_index=255)
    keep_fix = "keep only the pixels with `target != ignore_index` before counting."
    got = as_tensor(student.call(fn, p, t, 5, 255, context=" (a target with the ignore label 255)",
                                 fix=keep_fix), what)
    if got.shape == expected.shape and int(got.sum()) > int(expected.sum()):
        raise fail(what, f"pixels labelled 255 (ignore) are counted: {int(got.sum()) - int(expected.sum())} of "
                   f"the {int(got.sum())} pixels counted.", f"{keep_fix} `keep = target != ignore_index; "
                   "pred, target = pred[keep], target[keep]`.")
    if not torch.equal(got.long(), expected):
        raise fail(what, "on a batch [2, 7, 9] with 5 classes and some ignored pixels the counts are wrong.",
                   "flatten pred and target (any shape), drop the ignored pixels, count.")
    student.refuse_reuse(fix=_OWN_FIX)
    ok(f"{what}: rows = ground truth, columns = prediction, C x C for absent classes, ignore label skipped, any "
       "input shape; matches refinenet_edu.engine.metrics.confusion_matrix.")


def metric_variants(cm: torch.Tensor) -> dict[str, tuple[torch.Tensor, str, str]]:
    """Per-class quantities that students mistake for IoU: ``name -> (values, mistake, fix)``."""
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
        "precision": (safe(tp, p), "that is the precision (TP / (TP + FP)); IoU also counts the false negatives "
                      "in the denominator.", "IoU = TP / (row sum + column sum - TP)."),
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


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and bool(torch.allclose(a, b, rtol=1e-6, atol=1e-9, equal_nan=True))


_same_number = functools.partial(math.isclose, rel_tol=1e-6, abs_tol=1e-9)


def check_iou(fn: Callable, *, allow_reference: bool = True) -> None:
    """Check ``fn(cm) -> [C]`` per-class IoU ``TP / (TP + FP + FN)``, NaN for absent classes."""
    __tracebackhide__ = True
    student = Submission(fn, "check_iou(iou_from_confusion)", _REFERENCE, allow_reference=allow_reference)
    what = student.what
    cm = CM_CASE.clone()
    got = as_tensor(student.call(fn, cm.clone(), context=f" (the confusion matrix {cm.tolist()})"), what)
    expected = reference_metrics.iou_from_confusion(cm)
    if got.shape != expected.shape:
        raise fail(what, f"returned shape {list(got.shape)} for a {list(cm.shape)} matrix; expected one IoU per "
                   f"class, shape {list(expected.shape)}.", "compute TP, G (row sums) and P (column sums) per class.")
    if not got.is_floating_point():
        raise fail(what, f"returned {got.dtype} values; IoUs are fractions.", "convert the counts: `cm = cm.double()`.")
    got = got.double()
    if not _same(got, expected):
        student.named_mistake(got, metric_variants(cm).values(), same=_same,
                              case=f"the matrix {cm.tolist()} (rows = ground truth).")
        if bool(torch.isnan(got[:2]).any()) or bool(torch.isnan(got[3:]).any()):
            raise fail(what, f"NaN for a class that occurs (got {got.tolist()}); only a class absent from both the "
                       "ground truth and the prediction (union 0) is NaN.",
                       "`torch.where(union > 0, tp / union, torch.nan)`.")
        raise fail(what, f"got {[round(v, 4) for v in got.tolist()]}, expected "
                   f"{[round(v, 4) for v in expected.tolist()]} for the matrix {cm.tolist()} (rows = ground "
                   "truth).", _IOU_FIX)
    student.refuse_reuse(fix=_OWN_FIX)
    ok(f"{what}: TP / (TP + FP + FN) per class, NaN for a class absent from both, 0 for a class only predicted "
       "or only in the ground truth; matches refinenet_edu.engine.metrics.iou_from_confusion.")


def check_miou(fn: Callable, iou_fn: Callable | None = None, *, allow_reference: bool = True) -> None:
    """Check ``fn(cm) -> float``: the mean IoU over the classes whose IoU is not NaN.

    ``iou_fn`` is the student's own per-class IoU function: a mean of its values (NaN left out) passes, so that a
    wrong IoU is judged by the IoU's test alone; so does the library's mIoU. Names the usual confusions: a NaN result,
    absent classes counted as 0, classes averaged only over the ground truth's, pixel accuracy, mean class accuracy,
    frequency-weighted IoU, and IoU formulas that are off.
    """
    __tracebackhide__ = True
    student = Submission(fn, "check_miou(miou_from_confusion)", _REFERENCE, allow_reference=allow_reference)
    what = student.what
    cm = CM_CASE.clone()
    raw = student.call(fn, cm.clone(), context=f" (the confusion matrix {cm.tolist()})")
    try:
        got = float(raw)
    except Exception as err:  # noqa: BLE001
        raise fail(what, f"returned {type(raw).__name__} {raw!r}; expected one number (a Python float).",
                   "average the per-class IoUs into a single value and return `float(...)`.") from err
    expected = reference_metrics.miou_from_confusion(cm)
    accepted = [expected]
    with contextlib.suppress(Exception):  # no IoU function, or a broken one: that is the IoU test's business
        own = torch.as_tensor(iou_fn(cm.clone())).double()
        if own.shape == (cm.shape[0],) and bool((~torch.isnan(own)).any()):
            accepted.append(float(torch.nanmean(own)))
    if any(_same_number(got, value) for value in accepted):
        empty = student.call(fn, torch.zeros(3, 3, dtype=torch.int64), context=" (an all-zero confusion matrix)")
        try:
            empty = float(empty)
        except Exception:  # noqa: BLE001
            empty = 0.0
        if not math.isnan(empty):
            raise fail(what, f"returned {empty} for an all-zero matrix (no pixel counted); no class has an IoU, "
                       "so the mean is undefined and should be NaN.",
                       "take the mean over the non-NaN IoUs only; with none left, return NaN.")
        student.refuse_reuse(fix=_OWN_FIX)
        basis = "your per-class IoUs" if len(accepted) > 1 and not math.isclose(got, expected, rel_tol=1e-6) \
            else "the per-class IoUs"
        ok(f"{what}: mean of {basis} over the classes that occur (NaN left out), {got:.4f} on the test matrix; "
           "NaN when nothing was counted.")
        return
    c = cm.double()
    tp, g, n = c.diagonal(), c.sum(1), c.sum()
    iou = reference_metrics.iou_from_confusion(c)
    acc = torch.where(g > 0, tp / g.clamp(min=1), torch.tensor(math.nan, dtype=torch.float64))
    candidates = [
        (float(iou.nan_to_num(0).mean()), "classes absent from both the ground truth and the prediction are "
         "counted as IoU 0 in the mean; their IoU is NaN (undefined) and they must be left out.",
         "average only the non-NaN IoUs: `torch.nanmean(iou)`."),
        (float(iou[g > 0].mean()), "the mean only runs over the classes present in the ground truth; a class "
         "that is only predicted (all false positives) has IoU 0 and counts too.",
         "leave out only the classes whose IoU is NaN (absent from both): `torch.nanmean(iou)`."),
        (float(tp.sum() / n), "that is the pixel accuracy (correct pixels / all pixels), not the mean IoU.",
         "compute the IoU per class, then average over the classes."),
        (float(torch.nanmean(acc)), "that is the mean class accuracy (recall averaged over classes), not the "
         "mean IoU.", "IoU divides by TP + FP + FN, not TP + FN."),
        (float(((g / n) * iou.nan_to_num(0)).sum()), "that is the frequency-weighted IoU; the mIoU gives every "
         "class the same weight.", "a plain mean of the per-class IoUs that are not NaN."),
    ]
    for name, (values, mistake, fix) in metric_variants(cm).items():
        if name != "absent_zero":
            candidates.append((float(torch.nanmean(values)), "the per-class IoU in it is off: " + mistake, fix))
    if math.isnan(got):
        raise fail(what, "returned NaN although several classes occur: a plain mean over IoUs that include NaN "
                   "(a class absent from both ground truth and prediction) is NaN.",
                   "`torch.nanmean(iou)` (or average `iou[~torch.isnan(iou)]`).")
    student.named_mistake(got, candidates, same=_same_number, case=f"the matrix {cm.tolist()} (rows = ground truth).")
    mean_of = f"{accepted[-1]:.6f} (the mean of your IoUs)" if len(accepted) > 1 else f"{expected:.6f}"
    raise fail(what, f"got {got:.6f}, expected {mean_of} for the matrix {cm.tolist()} (rows = ground truth).",
               "mIoU = the mean of the per-class IoUs that are not NaN: `torch.nanmean(iou_from_confusion(cm))`.")
