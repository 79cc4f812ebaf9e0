"""How to train: the training options as data, and the published recipes.

The recipe of the official code: SGD with momentum 0.9 and weight decay 5e-4, a learning rate for the decoder (5e-4)
and a 10x lower one for the pretrained encoder, frozen batch-norm statistics, random scale, crop and flip, and the
ignore label 255. The official code lowered its rate by hand, in steps, to 5e-5, with batches of one image; the
library's recipes use DeepLab's "poly" schedule ``lr * (1 - step/steps) ** 0.9`` and batches of 16 instead (and add
colour jitter, which the official code has not). ``schedule="step"`` with ``batch_size=1`` and ``jitter=False``
(``refinenet-edu train --schedule step --batch-size 1 --no-jitter``) is the official code's way: both rates 10x
lower after ``step_at`` (3/4) of the steps, so the decoder ends at 5e-5. When the official code stepped and how long
it trained are not published; 3/4 and the epoch count are the course's choices.
:func:`refinenet_edu.engine.loop.train` runs a :class:`TrainConfig`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import torch

from refinenet_edu.engine.checkpoints import unwrap
from refinenet_edu.engine.criterion import LOSSES

__all__ = ["TrainConfig", "RECIPES", "RESUME_FIXED", "option", "resume_conflicts", "make_optimizer", "poly_lambda",
           "step_lambda", "lr_lambda"]


def option(default: Any, help: str = "", *, choices: tuple[str, ...] | None = None, always: bool = False):
    """A :class:`TrainConfig` field that ``refinenet-edu train`` offers as ``--name-with-dashes``.

    ``help`` and ``choices`` are the option's; without ``always`` the command leaves an option it is not
    given to the preset's recipe (or, with ``--resume``, to the run), with ``always`` it passes ``default``.
    """
    return field(default=default, metadata={"help": help, "choices": choices, "always": always})


@dataclass
class TrainConfig:
    """How to train (the model's architecture lives in ``RefineNetConfig``)."""

    epochs: int = option(40)
    batch_size: int = option(16)
    optimizer: str = option("sgd", choices=("sgd", "adam"))  # sgd: the official code's
    lr: float = option(5e-4, "decoder learning rate")
    encoder_lr_ratio: float = option(0.1, "encoder lr = lr x ratio (official: 0.1)")
    momentum: float = 0.9
    weight_decay: float = option(5e-4)
    schedule: str = option("poly", "learning-rate schedule: poly (DeepLab's, the recipes' default) or step (the "
                           "official code's: 10x lower for the last quarter of the steps)", choices=("poly", "step"))
    poly_power: float = 0.9
    step_at: float = 0.75  # "step": the fraction of the steps after which both rates are 10x lower
    warmup_epochs: float = 0.0  # linear warm-up before the decay (helps Adam from scratch)
    crop_size: int = option(400)
    scale_range: tuple[float, float] = (0.7, 1.3)
    hflip: bool = True
    jitter: bool = option(True, "colour jitter in training (the library's recipes: on; the official code: off)")
    device: str = option("auto", "auto (cuda, then mps, then cpu), cpu, cuda, cuda:N, mps", always=True)
    precision: str = option("auto", choices=("auto", "fp32", "bf16", "fp16"), always=True)
    channels_last: bool = option(True, "the channels_last memory layout (NHWC), which fast convolutions want")
    compile: bool = option(False, "torch.compile the model")
    seed: int = option(0)
    num_workers: int = option(0, "data-loading processes (default 0). Like --seed it fixes the run: each worker "
                              "draws its own augmentations, so another value gives other losses; --resume keeps "
                              "the run's value")
    eval_every: int = 1
    target_miou: float | None = option(None, "stop once validation mIoU reaches this")
    max_minutes: float | None = option(None, "stop after the epoch that passes this wall time")
    ignore_index: int = 255
    loss: str = option("cross-entropy", "cross-entropy (the paper's, the default: docs/paper.md, paper-loss); "
                       "weighted-cross-entropy (median-frequency class weights from the training set's pixel "
                       "counts) or focal (gamma 2): remedies for classes that cover few pixels "
                       "(refinenet_edu.engine.criterion)", choices=LOSSES)
    focal_gamma: float = 2.0  # loss="focal" only (Lin et al., ICCV 2017, use 2)

    def __post_init__(self) -> None:
        self.scale_range = tuple(self.scale_range)
        checks = [
            ("epochs", self.epochs >= 1, "an integer >= 1"),
            ("batch_size", self.batch_size >= 1, "an integer >= 1"),
            ("optimizer", self.optimizer in ("sgd", "adam"), "'sgd' or 'adam'"),
            ("schedule", self.schedule in ("poly", "step"), "'poly' or 'step'"),
            ("step_at", 0 < self.step_at <= 1, "a fraction in (0, 1]"),
            ("lr", math.isfinite(self.lr) and self.lr > 0, "a finite number > 0"),
            ("encoder_lr_ratio", math.isfinite(self.encoder_lr_ratio) and self.encoder_lr_ratio >= 0,
             "a finite number >= 0"),
            ("weight_decay", math.isfinite(self.weight_decay) and self.weight_decay >= 0, "a finite number >= 0"),
            ("max_minutes", self.max_minutes is None or (math.isfinite(self.max_minutes) and self.max_minutes >= 0),
             "a finite number of minutes >= 0 (0: stop after the first epoch)"),
            ("target_miou", self.target_miou is None or 0 < self.target_miou <= 1, "a number in (0, 1]"),
            ("crop_size", self.crop_size >= 32, "an integer >= 32"),
            ("num_workers", self.num_workers >= 0, "an integer >= 0"),
            ("eval_every", self.eval_every >= 1, "an integer >= 1"),
            ("loss", self.loss in LOSSES, " or ".join(repr(name) for name in LOSSES)),
            ("focal_gamma", math.isfinite(self.focal_gamma) and self.focal_gamma >= 0, "a finite number >= 0"),
        ]
        for name, ok, allowed in checks:
            if not ok:
                raise ValueError(f"{name}={getattr(self, name)!r}: expected {allowed}")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["scale_range"] = list(self.scale_range)
        return d

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


#: the options that shape the optimizer and the schedule, or the random draws (``num_workers``: each loader
#: worker draws its own augmentations): a resumed run keeps its checkpoint's
RESUME_FIXED = ("epochs", "batch_size", "optimizer", "schedule", "step_at", "lr", "encoder_lr_ratio", "momentum",
                "weight_decay", "poly_power", "warmup_epochs", "crop_size", "scale_range", "jitter", "seed", "loss",
                "focal_gamma", "num_workers")


def resume_conflicts(values: dict[str, Any], saved: dict[str, Any]) -> list[str]:
    """The :data:`RESUME_FIXED` names whose value in ``values`` (None: not given) differs from the checkpoint's."""
    def plain(v):
        return list(v) if isinstance(v, tuple) else v

    return [k for k in RESUME_FIXED if values.get(k) is not None and k in saved and plain(values[k]) != plain(saved[k])]


#: Training recipes by model preset. ``official`` and ``light-weight`` take the rates, momentum, weight decay, crops
#: and scales of the official code and of Light-Weight RefineNet's released training script (docs/paper.md, sources
#: ``official-recipe`` and ``lw-recipe``; they assume ImageNet weights), with batch 16 and the poly schedule in place
#: of the official code's batch 1 and manual steps; ``course`` trains the small course model from scratch on the
#: embedded dataset, so its encoder learns at the full rate.
RECIPES: dict[str, TrainConfig] = {
    "official": TrainConfig(),
    "paper": TrainConfig(),
    "light-weight": TrainConfig(lr=5e-3, encoder_lr_ratio=0.1, crop_size=500, scale_range=(0.5, 2.0)),
    "course": TrainConfig(
        epochs=30,
        batch_size=16,
        optimizer="adam",
        lr=2e-3,
        encoder_lr_ratio=1.0,
        weight_decay=1e-4,
        warmup_epochs=1.0,
        crop_size=128,
        scale_range=(0.75, 1.25),
    ),
}


def poly_lambda(total_steps: int, power: float = 0.9, warmup_steps: int = 0):
    """The "poly" learning-rate factor ``(1 - step / total) ** power``.

    With ``warmup_steps`` the factor first rises linearly from ~0 to 1.
    """

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        return max(0.0, 1.0 - step / max(1, total_steps)) ** power

    return factor


def step_lambda(total_steps: int, at: float = 0.75, warmup_steps: int = 0):
    """The step schedule's factor: 1 until ``at * total_steps``, then 0.1.

    With the official rates (5e-4 decoder, 5e-5 encoder) the decoder ends at 5e-5, where the official code's
    hand-made steps ended. With ``warmup_steps`` the factor first rises linearly to 1.
    """
    boundary = round(at * total_steps)

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        return 1.0 if step < boundary else 0.1

    return factor


def lr_lambda(cfg: "TrainConfig", total_steps: int, warmup_steps: int = 0):
    """The learning-rate factor of ``cfg.schedule`` (:func:`poly_lambda` or :func:`step_lambda`)."""
    if cfg.schedule == "step":
        return step_lambda(total_steps, cfg.step_at, warmup_steps)
    return poly_lambda(total_steps, cfg.poly_power, warmup_steps)


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Two parameter groups: encoder at ``lr * encoder_lr_ratio``, decoder at ``lr``.

    On a CPU or a CUDA GPU the update runs ``fused``: one pass over all the weights instead of one per
    operation of the rule (the same update rule, in fewer passes over memory).
    """
    module = unwrap(model)
    groups = [
        {"params": list(module.encoder_parameters()), "lr": cfg.lr * cfg.encoder_lr_ratio, "name": "encoder"},
        {"params": list(module.decoder_parameters()), "lr": cfg.lr, "name": "decoder"},
    ]
    fused = next(module.parameters()).device.type in ("cpu", "cuda")
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, fused=fused)
    return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused)
