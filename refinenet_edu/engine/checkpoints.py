"""Checkpoints that rebuild their own model.

A checkpoint is a plain dict saved with ``torch.save`` and read back with ``torch.load(..., weights_only=True)`` (no
pickled code runs on load). It carries the model's :class:`~refinenet_edu.nn.config.RefineNetConfig`, so
:func:`load_model` needs nothing but the file. Files are written atomically
(:func:`refinenet_edu.files.atomic_write`), so an interrupted save never leaves a half-written checkpoint behind.

Keys: ``format``, ``version``, ``model_config``, ``model`` (state dict), ``dataset`` (name, class names, palette),
``epoch``, ``history``, ``metrics``, ``train_config``, ``provenance``; training checkpoints also hold ``optimizer``,
``scheduler`` and ``scaler`` for exact resume.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from refinenet_edu.nn.config import RefineNetConfig
from refinenet_edu.files import atomic_write, first_non_finite, read_torch_file

__all__ = ["FORMAT", "VERSION", "NonFiniteWeights", "check_finite", "save_checkpoint",
           "load_checkpoint", "load_model"]

FORMAT = "refinenet-edu-checkpoint"
VERSION = 1


class NonFiniteWeights(ValueError):
    """Weights holding inf or NaN: never written (they would load and predict garbage)."""


def check_finite(state: dict[str, torch.Tensor], path: str | os.PathLike) -> None:
    """Raise :class:`NonFiniteWeights` naming ``path`` and the first tensor of ``state`` with inf or NaN values."""
    key = first_non_finite(state)
    if key is not None:
        raise NonFiniteWeights(
            f"{path}: not written: {key!r} holds inf or NaN values (training diverged, or the weights are "
            "too large for float16); lower the learning rate and train again"
        )


def save_checkpoint(path: str | os.PathLike, model: torch.nn.Module, *, half: bool = False, **extra: Any) -> Path:
    """Save ``model`` (a RefineNet, or DDP/compiled wrapper of one) and ``extra`` keys. ``half=True`` stores
    floating-point weights as float16 (half the size; :func:`load_model` casts them back to float32), for shipped
    models."""
    module = unwrap(model)
    state = module.state_dict()
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    state = {k: v.detach().cpu() for k, v in state.items()}
    check_finite(state, path)
    payload = {"format": FORMAT, "version": VERSION, "model_config": module.config.to_dict(), "model": state, **extra}
    atomic_write(path, lambda f: torch.save(payload, f))
    return Path(path)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The RefineNet inside DDP and ``torch.compile`` wrappers."""
    while True:
        if hasattr(model, "module") and isinstance(model.module, torch.nn.Module):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read and validate a checkpoint, onto the CPU; clear ``ValueError`` for corrupt or foreign files (never loaded
    unsafely: :func:`refinenet_edu.files.read_torch_file`)."""
    path = Path(path)
    data = read_torch_file(path, what="checkpoint")
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(
            f"checkpoint {path}: not a refinenet-edu checkpoint (no format={FORMAT!r} key); "
            "to use plain ImageNet weights for the encoder, pass them as `weights=` instead"
        )
    if data.get("version", 0) > VERSION:
        raise ValueError(f"checkpoint {path}: format version {data['version']} is newer than this library ({VERSION})")
    for key in ("model_config", "model"):
        if key not in data:
            raise ValueError(f"checkpoint {path}: missing {key!r}")
    return data


def load_model(path: str | os.PathLike, *, device: str | torch.device = "cpu", num_classes: int | None = None,
               checkpoint: dict | None = None) -> torch.nn.Module:
    """Rebuild the model stored in ``path`` (or its already loaded ``checkpoint``) and load its weights, in eval
    mode. ``num_classes``: if given, the checkpoint must predict that many classes (e.g. the dataset's), else
    ``ValueError`` names both numbers."""
    from refinenet_edu.nn.model import RefineNet

    data = checkpoint if checkpoint is not None else load_checkpoint(path)
    config = RefineNetConfig.from_dict(data["model_config"])
    if num_classes is not None and config.num_classes != num_classes:
        raise ValueError(f"checkpoint {path}: predicts {config.num_classes} classes but the dataset has {num_classes}")
    model = RefineNet(config)
    state = {k: v.float() if v.is_floating_point() else v for k, v in data["model"].items()}
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(f"checkpoint {path}: weights do not fit its own model config: {err}") from err
    return model.to(device).eval()
