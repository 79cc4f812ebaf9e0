"""Pretraining an encoder before the decoders are compared: the paper's protocol.

Lin et al. (CVPR 2017, Sec. 4) never train RefineNet from scratch: every variant starts from one ResNet pretrained on
ImageNet and fine-tunes it end to end, the official code at an encoder learning rate ten times lower than the decoder's
(docs/paper.md, source ``paper-encoder-lr``). The decoder (the cascade and the chained residual pooling the ablation
compares) then has to do the refining and gather the context, since the slowly trained encoder changes less: the
expectation behind the protocol, which ``results/ablation-pretrained`` tests.

The course encoder (a half-width ResNet-18) has no ImageNet weights, and nothing can be downloaded here, so this module
makes the stand-in: an FCN-32s-style pretraining (Long et al., CVPR 2015: one 1x1 convolution on the 1/32 features,
scores upsampled x32) on a *different* labelled set. For the ablation that set is SynthScenes drawn with another seed,
with ``boat`` and ``car`` merged into one class (``merge``): the encoder learns textures, objects and thin structures,
but not the rule that only context tells a boat from a car, as ImageNet features know "boat" and "car" but not VOC's
scenes. ``refinenet-edu pretrain`` runs it; ``refinenet-edu ablate --encoder-weights FILE`` starts every variant from
the result, a plain ResNet state dict in torchvision's format (``conv1.weight``, ``layer1.0.conv1.weight``, ...) that
``RefineNet(config, weights=FILE)`` loads.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from torch.utils.data import DataLoader

from refinenet_edu import files
from refinenet_edu.engine.checkpoints import check_finite
from refinenet_edu.engine.criterion import SegmentationLoss
from refinenet_edu.engine.loop import TrainingDiverged, train_one_epoch
from refinenet_edu.engine.recipes import poly_lambda
from refinenet_edu.engine.runtime import grad_scaler, loader_start_method, resolve_device, resolve_precision

__all__ = ["PretrainConfig", "class_map", "pretrain_encoder", "save_encoder"]


@dataclass(frozen=True)
class PretrainConfig:
    """Budget of the FCN-32s pretraining (AdamW, poly decay, batch ``batch_size``)."""

    epochs: int = 30
    lr: float = 2e-3
    weight_decay: float = 1e-4
    batch_size: int = 16
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    num_workers: int = 0

    def __post_init__(self) -> None:
        for name, ok, want in (
            ("epochs", self.epochs >= 1, "an integer >= 1"),
            ("lr", math.isfinite(self.lr) and self.lr > 0, "a finite number > 0"),
            ("weight_decay", self.weight_decay >= 0, "a number >= 0"),
            ("batch_size", self.batch_size >= 1, "an integer >= 1"),
            ("num_workers", self.num_workers >= 0, "an integer >= 0"),
        ):
            if not ok:
                raise ValueError(f"PretrainConfig.{name}={getattr(self, name)!r}: expected {want}")


def class_map(class_names: list[str] | tuple[str, ...], merge: list[list[str]] | None) -> tuple[torch.Tensor, list[str]]:
    """A 256-entry label lookup table that merges groups of classes, and the new class names.

    ``merge=[["boat", "car"]]`` maps ``car`` onto ``boat``'s new index and names it ``boat+car``; the other classes keep
    their order; 255 (ignore) stays 255.
    """
    names = list(class_names)
    merged_name: dict[str, str] = {}
    for group in merge or []:
        if len(group) < 2:
            raise ValueError(f"merge: each group needs at least two class names, got {list(group)}")
        for name in group:
            if name not in names:
                raise ValueError(f"merge: {name!r} is not a class of this dataset (classes: {names})")
            if name in merged_name:
                raise ValueError(f"merge: {name!r} appears in more than one group")
            merged_name[name] = "+".join(group)
    new = [merged_name.get(name, name) for name in names]
    new_names = list(dict.fromkeys(new))  # in order, each once
    lut = torch.full((256,), 255, dtype=torch.long)
    for i, name in enumerate(new):
        lut[i] = new_names.index(name)
    return lut, new_names


class FCN32s(nn.Module):
    """An encoder with an FCN-32s head (Long et al., CVPR 2015): a 1x1 convolution on the 1/32
    features gives class scores, which the loss upsamples x32 to the labels' size."""

    def __init__(self, encoder: nn.Module, num_classes: int):
        super().__init__()
        self.encoder = encoder
        self.head = nn.Conv2d(encoder.channels[-1], num_classes, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(images)[-1])


def pretrain_encoder(
    encoder: nn.Module,
    train_set,
    *,
    num_classes: int,
    config: PretrainConfig = PretrainConfig(),
    label_map: torch.Tensor | None = None,
    log: Callable[[str], None] | None = partial(print, flush=True),
) -> list[dict]:
    """Train ``encoder`` (a :class:`~refinenet_edu.nn.encoders.ResNetEncoder`) with an FCN-32s head; returns the loss per epoch.

    ``label_map``: a lookup table applied to the targets (see :func:`class_map`); ``num_classes`` counts the classes
    after it. The head is thrown away. The steps are the library's (:func:`refinenet_edu.engine.loop.train_one_epoch`): autocast in
    ``config.precision``, a gradient scaler for float16.
    """
    device = resolve_device(config.device)
    dtype = resolve_precision(config.precision, device)
    torch.manual_seed(config.seed)
    encoder.to(device).train()
    model = FCN32s(encoder, num_classes).to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    generator = torch.Generator().manual_seed(config.seed)
    loader = DataLoader(
        train_set, batch_size=config.batch_size, shuffle=True, drop_last=True, generator=generator,
        num_workers=config.num_workers, multiprocessing_context=loader_start_method(config.num_workers),
    )
    if len(loader) == 0:
        raise ValueError(f"pretraining set: {len(train_set)} images, fewer than one batch of {config.batch_size}")
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, poly_lambda(config.epochs * len(loader)))
    criterion = SegmentationLoss(ignore_index=255, label_map=label_map).to(device)
    scaler = grad_scaler(device, dtype)
    history: list[dict] = []
    started = time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        # the loss is checked once per epoch, not per step: no device sync inside the epoch
        mean = train_one_epoch(model, loader, optimizer, criterion=criterion, device=device, dtype=dtype,
                               scaler=scaler, scheduler=scheduler, check_finite=False).mean_loss
        if not math.isfinite(mean):
            raise TrainingDiverged(f"pretraining diverged at epoch {epoch} (loss {mean}); nothing written; "
                                   f"lower --lr (now {config.lr})")
        seconds = time.perf_counter() - started
        history.append({"epoch": epoch, "loss": round(mean, 5), "seconds": round(seconds, 1)})
        if log is not None:
            log(f"pretrain epoch {epoch}/{config.epochs}: loss {mean:.4f} ({seconds:.0f} s)")
    encoder.eval()
    return history


def save_encoder(encoder: nn.Module, path: str | os.PathLike, info: dict) -> Path:
    """Write the encoder's ResNet state dict to ``path`` (atomically) and ``info`` beside it as ``PATH.json``.

    ``encoder``: a :class:`~refinenet_edu.nn.encoders.ResNetEncoder`; the keys are torchvision's (``conv1.weight``,
    ``layer4.1.bn2.running_var``, ...). Floating-point tensors are stored as float16, like the shipped checkpoints
    (half the size; loading casts them back to the model's dtype).
    """
    state = {k: v.detach().cpu().half() if v.is_floating_point() else v.detach().cpu().clone()
             for k, v in encoder.body.state_dict().items()}
    path = Path(path)
    check_finite(state, path)  # never write inf or NaN weights
    files.atomic_write(path, lambda f: torch.save(state, f))
    files.atomic_write_json(path.with_name(path.name + ".json"), info)
    return path

