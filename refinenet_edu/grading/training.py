"""Check of one training step (notebook 07): loss, zero_grad, backward, optimizer step, schedule step.

:func:`reference_step` is the reference; its keyword arguments write out the classic mistakes
(:data:`TRAIN_STEP_VARIANTS`) that :func:`check_train_step` names.
"""

from __future__ import annotations

import copy
import functools
import math
import warnings
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from refinenet_edu.engine import loop
from refinenet_edu.grading.harness import Submission, fail, ok, seeded

__all__ = ["TRAIN_STEP_VARIANTS", "check_train_step", "reference_step"]

IGNORE = 255
_STEPS = 3


def reference_step(model, images, masks, optimizer, scheduler, *, zero_grad: str = "before", schedule: str = "after",
                   ignore: bool = True):
    """One step done right (keyword arguments at their defaults), and the variants students write instead.

    ``zero_grad``: "before" (the backward pass), "never", "after_backward" (between backward and step);
    ``schedule``: "after" (the optimizer step), "never", "before" (the optimizer step); ``ignore``: whether
    the loss ignores the label 255 (without it, the ignored pixels are counted as class 0).
    """
    scores = model(images)
    target = masks if ignore else masks.masked_fill(masks == IGNORE, 0)
    loss = F.cross_entropy(scores, target, ignore_index=IGNORE)
    if zero_grad == "before":
        optimizer.zero_grad()
    loss.backward()
    if zero_grad == "after_backward":
        optimizer.zero_grad()
    if schedule == "before":
        scheduler.step()
    optimizer.step()
    if schedule == "after":
        scheduler.step()
    return loss.item()


_LOSS = "`loss = F.cross_entropy(model(images), masks, ignore_index=255)`"

#: (name, keyword arguments of reference_step, mistake, fix)
TRAIN_STEP_VARIANTS: list[tuple[str, dict, str, str]] = [
    ("no_zero_grad", dict(zero_grad="never"),
     "the gradients pile up from step to step: `optimizer.zero_grad()` is missing, so every step adds the "
     "gradients of all the batches before it.",
     "call `optimizer.zero_grad()` before `loss.backward()`."),
    ("zero_grad_after_backward", dict(zero_grad="after_backward"),
     "`optimizer.zero_grad()` comes between `loss.backward()` and `optimizer.step()`: it wipes the gradients "
     "just computed, and the step changes nothing (or only by momentum and weight decay).",
     "clear the gradients before the backward pass: zero_grad, backward, step."),
    ("schedule_not_stepped", dict(schedule="never"),
     "the learning rate did not move: the schedule is not stepped in the training step (once per epoch, or "
     "never), but the poly schedule counts steps (batches).",
     "call `scheduler.step()` once per batch, after `optimizer.step()`."),
    ("schedule_before_optimizer", dict(schedule="before"),
     "`scheduler.step()` comes before `optimizer.step()`: every step uses the next step's learning rate, and "
     "the first rate of the schedule is never used (PyTorch warns about this order).",
     "call `optimizer.step()` first, then `scheduler.step()`."),
    ("ignored_pixels_counted", dict(ignore=False),
     "the pixels labelled 255 (ignore: padding and object outlines) are counted in the loss as class 0.",
     f"{_LOSS}: the ignored pixels take no part in the loss."),
]


def _run(step: Callable, model: nn.Module, batches):
    """Run ``step`` over ``batches`` with a fresh SGD (momentum) and a poly schedule; returns the losses, the
    learning rates seen by each step and the final weights."""
    model = copy.deepcopy(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    total = 2 * len(batches)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda t: max(0.0, 1 - t / total) ** 0.9)
    losses, rates = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the scheduler-before-optimizer variant warns; that is its point
        for images, masks in batches:
            rates.append(optimizer.param_groups[0]["lr"])
            losses.append(step(model, images.clone(), masks.clone(), optimizer, scheduler))
    rates.append(optimizer.param_groups[0]["lr"])
    return losses, rates, [p.detach().clone() for p in model.parameters()]


def _explain(err: BaseException) -> tuple[str, str] | None:
    """What an exception raised in a training step stands for (see ``Submission.call``)."""
    text = str(err)
    if "out of bounds" in text or "255" in text:
        return (": the loss does not ignore the label 255 (padding and object outlines), which is no class.",
                f"{_LOSS}.")
    if "does not require grad" in text:
        return (": the loss was computed without gradients (under `torch.no_grad()`, or detached).",
                "compute the loss with gradients, then call `loss.backward()`.")
    return None


def _same(a, b) -> bool:
    return len(a) == len(b) and all(torch.allclose(x, y, rtol=1e-4, atol=1e-6) for x, y in zip(a, b))


def check_train_step(fn: Callable, *, seed: int = 0) -> None:
    """Check ``fn(model, images, masks, optimizer, scheduler) -> loss`` (a Python float), one step as
    :func:`reference_step` takes it (the cross-entropy with ``ignore_index=255``, ``optimizer.zero_grad()``,
    ``loss.backward()``, ``optimizer.step()``, ``scheduler.step()``). Run for three batches from the same weights
    as the reference, on two sizes (3 classes, batch 2, 6x7 images; 5 classes, batch 3, 5x9), comparing the
    losses, the learning rates and the final weights.
    """
    __tracebackhide__ = True
    student = Submission(fn, "check_train_step(train_step)", (loop.train_step,))
    what = student.what

    def student_step(*args):
        __tracebackhide__ = True
        value = student.call(fn, *args, explain=_explain, fix="zero_grad, forward, loss, backward, step, scheduler "
                             "step; compare the shapes at the line below with the task.")
        try:
            return float(value)
        except Exception as err:  # noqa: BLE001
            raise fail(what, f"returned {type(value).__name__} {value!r}; expected the loss, one number.",
                       "`return loss.item()`.") from err

    for num_classes, batch, size in ((3, 2, (6, 7)), (5, 3, (5, 9))):
        # A 2-layer network with fixed weights, its scores at the input's resolution (the loss needs no resizing).
        gen = torch.Generator().manual_seed(seed)
        with seeded(seed):  # the layers' default initialisation draws from the global generator: leave it alone
            model = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, num_classes, 1))
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
        batches = []
        for _ in range(_STEPS):
            images = torch.randn(batch, 3, *size, generator=gen)
            masks = torch.randint(0, num_classes, (batch, *size), generator=gen)
            masks[torch.rand(masks.shape, generator=gen) < 0.2] = IGNORE
            batches.append((images, masks))
        case = f"{num_classes} classes, {_STEPS} batches of {batch} images {size[0]}x{size[1]}, SGD with momentum"
        losses, rates, weights = _run(student_step, model, batches)
        e_losses, e_rates, e_weights = _run(reference_step, model, batches)
        losses_match = all(math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-6) for a, b in zip(losses, e_losses))
        if _same(weights, e_weights) and rates == e_rates and losses_match:
            continue
        if rates != e_rates and _same(weights, [p.detach() for p in model.parameters()]):  # a step without gradients
            raise fail(what, "the weights did not change over three steps: no gradient reached them (the "
                       "loss computed under `torch.no_grad()`, or detached, or `backward` never called).",
                       "compute the loss with gradients, then `loss.backward()` and `optimizer.step()`.", case=case)
        for _, kwargs, mistake, fix in TRAIN_STEP_VARIANTS:
            v_losses, v_rates, v_weights = _run(functools.partial(reference_step, **kwargs), model, batches)
            if _same(weights, v_weights) and rates == v_rates:
                raise fail(what, mistake, fix, case=case)
        if rates != e_rates:
            raise fail(what, f"the learning rates at the start of each step were {[round(r, 4) for r in rates]}; "
                       f"expected {[round(r, 4) for r in e_rates]} (one scheduler step per batch).",
                       "call `scheduler.step()` exactly once per batch, after `optimizer.step()`.", case=case)
        if not losses_match:
            raise fail(what, f"the losses returned were {[round(v, 4) for v in losses]}; expected "
                       f"{[round(v, 4) for v in e_losses]}.", f"{_LOSS}, and `return loss.item()`.", case=case)
        raise fail(what, "after three steps the weights differ from those of zero_grad, backward, step.",
                   "`optimizer.zero_grad()`, `loss.backward()`, `optimizer.step()`, `scheduler.step()`, once "
                   "each, in that order.", case=case)
    student.refuse_reuse(fix="write the step yourself with torch (F.cross_entropy, backward, the optimizer's and "
                         "the scheduler's step), without refinenet_edu.engine.loop.train_step.")
    ok(f"{what}: cross-entropy ignoring 255, gradients cleared before backward, one optimizer and one schedule "
       "step per batch, in that order; weights, losses and learning rates match the reference over three "
       "batches at two sizes.")
