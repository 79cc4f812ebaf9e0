"""The public PyTorch port's RefineNet weights in this library's ``official`` network.

DrSleep/refinenet-pytorch (Nekrasov, 2018) converted the official MatConvNet ResNet-101 PASCAL VOC model to PyTorch and
reports 80.5% mIoU on VOC 2012 val, single scale, for it (the file is called ``rf101_voc`` / "refinenet101_voc"; its
original host is gone, copies circulate). Its network is the official architecture, the same one as the ``official``
preset: a torchvision-layout ResNet-101 encoder, widths 512 (1/32) / 256, two adaptive RCUs per path, 4-block chained
residual pooling (pool, then conv), three output RCUs per block, no RCUs before the classifier, dropout 0.5 on the 1/16
and 1/32 features and before the classifier, bilinear upsampling with ``align_corners=True``, input normalised with
ImageNet's mean and std. Only the parameter names differ (:func:`port_key_map`): the encoder's are ours without
``encoder.body.``, and the port's block ``g`` (1 = the 1/32 block) is our ``refinenet{5-g}``. The port's model
returns the class scores at 1/4 of the input, our ``scores_1_4``.

Usage::

    model = load_port_weights("rf101_voc.pth.tar")          # an official RefineNet, eval mode
    refinenet-edu evaluate --from-port rf101_voc.pth.tar --data voc2012 --data-root DIR
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

import torch

from refinenet_edu.files import read_torch_file
from refinenet_edu.nn.config import make_config

__all__ = ["PORT_LAYERS", "convert_port_state_dict", "load_port_weights", "port_key_map"]

#: ResNet blocks per stage -> backbone, to recognise the encoder of a port state dict.
PORT_LAYERS = {(3, 4, 6, 3): "resnet50", (3, 4, 23, 3): "resnet101", (3, 8, 36, 3): "resnet152"}
_ENCODER = re.compile(r"^(conv1|bn1|layer[1-4])\.")
_RCU = (("_conv", "conv1"), ("_conv_relu_varout_dimred", "conv2"))


def port_key_map() -> dict[str, str]:
    """Port parameter-name prefix -> ours, for the decoder and the classifier.

    Per block ``g``: the adaptive convolutions of path ``p`` (0 for RefineNet-4, whose only path is the encoder's, 1
    for the others, whose path 0 is the previous block's output), the fusion convolutions (the one of the previous
    block's output carries that block's ``g`` in the port), chained residual pooling, the output RCUs.
    """
    names: dict[str, str] = {"clf_conv": "classifier.1"}
    for g in range(1, 5):
        block = f"blocks.refinenet{5 - g}"
        path = 0 if g == 1 else 1
        names[f"p_ims1d2_outl{g}_dimred"] = f"{block}.adaptive.{path}.0"
        for i in (1, 2):
            for port, ours in _RCU:
                names[f"adapt_stage{g}_b.0.{i}{port}"] = f"{block}.adaptive.{path}.{i}.{ours}"
        if g >= 2:
            names[f"adapt_stage{g}_b2_joint_varout_dimred"] = f"{block}.fusion.convs.1"
        if g <= 3:
            names[f"mflow_conv_g{g}_b3_joint_varout_dimred"] = f"blocks.refinenet{4 - g}.fusion.convs.0"
        for k in range(1, 5):
            names[f"mflow_conv_g{g}_pool.0.{k}_outvar_dimred"] = f"{block}.crp.convs.{k - 1}"
        for i in (1, 2, 3):
            for port, ours in _RCU:
                names[f"mflow_conv_g{g}_b.0.{i}{port}"] = f"{block}.output.{i - 1}.{ours}"
    return names


def convert_port_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A port state dict with our parameter names (``module.`` prefixes of DataParallel are dropped).

    Raises ``ValueError`` naming the first key that is neither the port's encoder nor one of its decoder layers.
    """
    names = port_key_map()
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        key = key[len("module."):] if key.startswith("module.") else key
        if _ENCODER.match(key):
            out[f"encoder.body.{key}"] = value
            continue
        prefix, _, leaf = key.rpartition(".")
        if prefix not in names:
            raise ValueError(f"{key!r} is not a parameter of the refinenet-pytorch port's network")
        out[f"{names[prefix]}.{leaf}"] = value
    return out


def _backbone(state: Mapping[str, torch.Tensor], source: str) -> str:
    blocks = []
    for stage in range(1, 5):
        idx = {int(m.group(1)) for k in state if (m := re.match(rf"^(?:module\.)?layer{stage}\.(\d+)\.", k))}
        blocks.append(max(idx) + 1 if idx else 0)
    if tuple(blocks) not in PORT_LAYERS:
        raise ValueError(f"{source}: its encoder has {tuple(blocks)} blocks per stage, not a ResNet-50/101/152 "
                         "in the port's layout")
    return PORT_LAYERS[tuple(blocks)]


def load_port_weights(source: str | os.PathLike | Mapping[str, torch.Tensor], *, device=None):
    """An ``official`` RefineNet holding the port's weights, in eval mode.

    ``source``: the port's state-dict file (read with ``weights_only=True``) or the state dict itself. The backbone
    (ResNet-101 for ``rf101_voc``) and the number of classes (21) are read from the weights; ``align_corners`` is True,
    as in the port. Raises ``ValueError`` naming the file for anything that is not such a state dict.
    """
    from refinenet_edu.nn.model import RefineNet

    if isinstance(source, Mapping):
        name, state = "the state dict", source
    else:
        name, path = str(source), Path(source).expanduser()
        if not path.is_file():
            raise ValueError(f"{path}: no such file (the port's weights, e.g. rf101_voc.pth.tar)")
        state = read_torch_file(path, what="the port's weights")
    if isinstance(state, Mapping) and "model_config" in state:
        raise ValueError(f"{name}: a refinenet-edu checkpoint, not the port's weights; "
                         "pass it as the checkpoint (without --from-port)")
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]  # some copies wrap it
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{name}: expected a state dict (names -> tensors)")
    if not any(k.endswith("clf_conv.weight") for k in state):
        raise ValueError(f"{name}: has no clf_conv.weight; not a refinenet-pytorch state dict "
                         "(a checkpoint of this library loads with refinenet_edu.engine.checkpoints.load_model)")
    try:
        ours = convert_port_state_dict(state)
    except ValueError as err:
        raise ValueError(f"{name}: {err}") from None
    num_classes = int(ours["classifier.1.weight"].shape[0])
    config = make_config("official", backbone=_backbone(state, name), num_classes=num_classes, align_corners=True)
    with torch.device("meta"):  # no random initialisation of 118M weights that are overwritten anyway
        model = RefineNet(config)
    own = model.state_dict()
    for key, value in ours.items():
        if key not in own:
            raise ValueError(f"{name}: {key} has no place in the official network")
        if tuple(value.shape) != tuple(own[key].shape):
            raise ValueError(f"{name}: {key} has shape {tuple(value.shape)}, the official network "
                             f"{tuple(own[key].shape)}")
    missing = [k for k in own if k not in ours and not k.endswith("num_batches_tracked")]
    if missing:
        raise ValueError(f"{name}: lacks {len(missing)} tensors of the official network, e.g. {missing[0]}")
    for key in own:  # the batch-norm step counters (unused in eval and with frozen batch norm) may be absent
        ours.setdefault(key, torch.zeros((), dtype=torch.long))
    model.to_empty(device="cpu")
    model.load_state_dict(ours)  # copies: the model never shares memory with the given state dict
    model.eval()
    return model.to(device) if device is not None else model
