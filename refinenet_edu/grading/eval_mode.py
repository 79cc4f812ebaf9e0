"""Check of a prediction function in evaluation mode (dropout and batch norm at test time).

Evaluating without ``model.eval()`` is a bug a public port has shipped (markshih91/refinenet_pytorch, whose
batch norm stays in training mode: docs/paper.md, source ``bug-no-eval``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import torch
from torch import nn

from refinenet_edu.grading.harness import Submission, fail, ok, seeded

__all__ = ["TinySegNet", "check_eval_mode"]

_DROPOUT = (nn.Dropout, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout)
_NORM = (nn.modules.batchnorm._BatchNorm,)
_EVAL_FIX = "call `model.eval()` at the start of predict (and `model.train()` again before training)."


class TinySegNet(nn.Module):
    """The check's model: conv, batch norm and ReLU, dropout, a classifier conv, like RefineNet's parts."""

    def __init__(self, num_classes: int = 5):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, padding=1)
        self.batch_norm = nn.BatchNorm2d(16)
        self.dropout = nn.Dropout(0.5)
        self.classifier = nn.Conv2d(16, num_classes, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(torch.relu(self.batch_norm(self.conv(x)))))


def _layers(layers: list[nn.Module]) -> str:
    """'nn.Dropout (2 layers) and nn.BatchNorm2d (1 layer)': what ran, by kind, not by internal name."""
    kinds = Counter(f"nn.{type(layer).__name__}" for layer in layers)
    return " and ".join(f"{k} ({n} layer{'s' if n > 1 else ''})" for k, n in kinds.items())


def check_eval_mode(predict_fn: Callable, *, model: nn.Module | None = None, images: torch.Tensor | None = None,
                    seed: int = 0, allow_reference: bool = True) -> None:
    """Check ``predict_fn(model, images) -> labels [N, H, W]`` for evaluation-time behaviour.

    The model is handed over in training mode, as it is right after training. The prediction must run with
    dropout and batch norm in evaluation mode (``model.eval()``; with dropout still active two predictions of
    the same images differ), without building an autograd graph, and return the arg-max class per pixel. By
    default a small net with batch norm and dropout p=0.5 is used; pass your own ``model`` (and ``images``) to
    check a real one. Calling the library's prediction functions (``refinenet_edu.engine.inference``,
    ``refinenet_edu.engine.evaluation``) is refused.
    """
    __tracebackhide__ = True
    # Imported here: refinenet_edu.engine.evaluation pulls in torchvision (2 s), which the other checks do not need.
    from refinenet_edu.engine.evaluation import evaluate
    from refinenet_edu.engine.inference import predict_labels, predict_probabilities

    student = Submission(predict_fn, "check_eval_mode(predict)", (predict_labels, predict_probabilities, evaluate),
                         allow_reference=allow_reference)
    what = student.what
    with seeded(seed):
        net = model if model is not None else TinySegNet()
        if images is None:
            images = torch.randn(2, 3, 36, 44)
        net.train()
        if model is None:
            with torch.no_grad():  # give batch norm non-trivial running statistics
                for _ in range(3):
                    net(torch.randn(4, 3, 36, 44) * 2 + 0.5)
        trained: dict[int, nn.Module] = {}  # id(layer) -> layer, each dropout or batch norm run in training mode
        grad_enabled: list[bool] = []
        handles = [net.register_forward_pre_hook(lambda m, a: grad_enabled.append(torch.is_grad_enabled()))]

        def note(layer, args):  # returns None: a forward pre-hook that returns a value replaces the input
            if layer.training:
                trained[id(layer)] = layer

        handles += [m.register_forward_pre_hook(note) for m in net.modules() if isinstance(m, _DROPOUT + _NORM)]
        try:
            out1 = student.call(predict_fn, net, images, context=" (a model in training mode)", in_place=(
                "predict changed the images passed to it in place.", "work on a copy (or out of place)."))
            out2 = student.call(predict_fn, net, images, context=" (called a second time)")
        finally:
            for h in handles:
                h.remove()
    if not grad_enabled:
        raise fail(what, "never called the model.", "return `model(images).argmax(dim=1)` after `model.eval()`.")
    active = list(trained.values())
    differ = (isinstance(out1, torch.Tensor) and isinstance(out2, torch.Tensor) and out1.shape == out2.shape
              and not torch.equal(out1, out2))
    if active:
        detail = ""
        if differ:
            frac = float((out1 != out2).float().mean())
            detail = f" Two predictions of the same images differ on {100 * frac:.0f}% of the pixels."
        if any(isinstance(layer, _DROPOUT) for layer in active):
            raise fail(what, "dropout was ACTIVE during prediction: the model is still in training mode.",
                       _EVAL_FIX,
                       f"{_layers(active)} ran with model.training == True. In training mode dropout zeroes a "
                       f"random half of the features at every call, so predictions are noisy and change from "
                       f"call to call.{detail}")
        raise fail(what, "batch norm ran in training mode during prediction.", "call `model.eval()` at the "
                   "start of predict.", f"{_layers(active)} ran with model.training == True: it normalises with "
                   "the statistics of the test batch and overwrites its running statistics with test data.")
    if differ:
        raise fail(what, "two predictions of the same images differ although dropout and batch norm are in "
                   "evaluation mode; the prediction must be deterministic.",
                   "do not add randomness to predict (no F.dropout(..., training=True), no random augmentation).")
    if any(grad_enabled):
        raise fail(what, "the model ran with gradient tracking on: evaluation builds an autograd graph it never "
                   "uses.", "wrap the forward pass in `with torch.no_grad():` (or `torch.inference_mode()`).",
                   "the graph costs memory (on a GPU often more than the model itself).")
    n, _, h, w = images.shape
    if not isinstance(out1, torch.Tensor):
        raise fail(what, f"returned a {type(out1).__name__}; expected a tensor of class labels [N, H, W].",
                   "`return scores.argmax(dim=1)`.")
    if out1.dim() == 4:
        raise fail(what, f"returned shape {list(out1.shape)}: class scores, not labels.",
                   "take the arg-max over the class dimension: `scores.argmax(dim=1)` -> [N, H, W].")
    if tuple(out1.shape) != (n, h, w):
        raise fail(what, f"returned shape {list(out1.shape)}; expected one label per pixel, [{n}, {h}, {w}].",
                   "`model(images).argmax(dim=1)` (the model's output is already at the input size).")
    if out1.is_floating_point():
        raise fail(what, f"returned {out1.dtype} values; class labels are integers.", "`scores.argmax(dim=1)`.")
    with torch.no_grad():
        was_training = net.training
        net.eval()
        expected = net(images).argmax(1)
        net.train(was_training)
    if not torch.equal(out1.long().cpu(), expected.cpu()):
        raise fail(what, "the labels are not the arg-max of the model's scores over the class dimension (dim=1).",
                   "`return model(images).argmax(dim=1)`.")
    student.refuse_reuse(fix="write predict yourself: model.eval(), torch.no_grad(), model(images).argmax(dim=1).")
    ok(f"{what}: dropout and batch norm in evaluation mode, no autograd graph, deterministic, returns the arg-max "
       f"labels {list(out1.shape)}.")
