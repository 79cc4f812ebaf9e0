"""ResNet encoders for RefineNet (paper Sec. 3.1, Fig. 2a: "ResNet blocks 1-4").

The encoder is a torchvision ResNet without its pooling and classifier. Its
four stages (``layer1`` .. ``layer4``) give features at 1/4, 1/8, 1/16 and
1/32 of the input, tapped with torchvision's ``IntermediateLayerGetter``.

ImageNet weights come through torchvision's weights API, so users get the
real download path (``weights="DEFAULT"``). A local state-dict file works too,
which is how the tests check loading without a network.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import nn
from torchvision.models._utils import IntermediateLayerGetter

__all__ = ["BACKBONES", "STAGE_CHANNELS", "STRIDES", "ResNetEncoder", "resolve_weights"]

#: channels of layer1..layer4 for each supported ResNet
STAGE_CHANNELS: dict[str, tuple[int, int, int, int]] = {
    "resnet18": (64, 128, 256, 512),
    "resnet34": (64, 128, 256, 512),
    "resnet50": (256, 512, 1024, 2048),
    "resnet101": (256, 512, 1024, 2048),
    "resnet152": (256, 512, 1024, 2048),
}
BACKBONES = tuple(STAGE_CHANNELS)
#: output stride of layer1..layer4
STRIDES = (4, 8, 16, 32)

_WEIGHT_ENUMS = {
    "resnet18": "ResNet18_Weights",
    "resnet34": "ResNet34_Weights",
    "resnet50": "ResNet50_Weights",
    "resnet101": "ResNet101_Weights",
    "resnet152": "ResNet152_Weights",
}


def resolve_weights(backbone: str, weights: Any):
    """Turn ``weights`` into what torchvision's builder takes.

    Accepts ``None`` (random init), a torchvision ``Weights`` enum member, or
    a string: ``"DEFAULT"`` / ``"IMAGENET1K_V1"`` / ``"IMAGENET1K_V2"`` (the
    enum member of that name) or the path of a local state-dict file.
    Returns ``(torchvision_weights_or_None, local_path_or_None)``.
    """
    if weights is None:
        return None, None
    if isinstance(weights, torchvision.models.WeightsEnum):
        return weights, None
    if isinstance(weights, (str, os.PathLike)):
        text = os.fspath(weights)
        enum = getattr(torchvision.models, _WEIGHT_ENUMS[backbone])
        if text in enum.__members__ or text == "DEFAULT":
            return enum[text] if text != "DEFAULT" else enum.DEFAULT, None
        path = Path(text)
        if path.is_file():
            return None, path
        raise ValueError(
            f"weights={text!r} for {backbone}: expected None, 'DEFAULT', one of "
            f"{sorted(enum.__members__)}, or the path of an existing state-dict file"
        )
    raise ValueError(f"weights: expected None, a string, a path or a torchvision Weights enum, got {type(weights).__name__}")


def _load_local_state_dict(resnet: nn.Module, path: Path) -> None:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # corrupt or foreign file
        raise ValueError(f"{path}: not a readable PyTorch state dict ({err})") from err
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state dict (a dict of tensors), got {type(state).__name__}")
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    missing, unexpected = resnet.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("fc.")]
    if missing or unexpected:
        raise ValueError(
            f"{path}: does not match this ResNet (missing {missing[:3]}..., unexpected {unexpected[:3]}...)"
        )


class ResNetEncoder(nn.Module):
    """A torchvision ResNet that returns its four stages' features.

    ``forward(x)`` returns a list ``[f4, f8, f16, f32]`` (stride 4, 8, 16, 32)
    with ``self.channels`` channels.

    ``freeze_bn=True`` keeps every batch-norm layer in eval mode, so its
    running statistics stay as loaded (the official recipe, which trains with
    small batches on top of ImageNet statistics); the affine parameters are
    still trained, so the parameter count does not change.
    """

    def __init__(self, backbone: str = "resnet101", *, weights: Any = None, freeze_bn: bool = False):
        super().__init__()
        if backbone not in STAGE_CHANNELS:
            raise ValueError(f"backbone={backbone!r}: expected one of {list(BACKBONES)}")
        tv_weights, local = resolve_weights(backbone, weights)
        resnet = getattr(torchvision.models, backbone)(weights=tv_weights)
        if local is not None:
            _load_local_state_dict(resnet, local)
        self.backbone = backbone
        self.channels = STAGE_CHANNELS[backbone]
        self.freeze_bn = freeze_bn
        self.body = IntermediateLayerGetter(
            resnet, return_layers={"layer1": "0", "layer2": "1", "layer3": "2", "layer4": "3"}
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = self.body(x)
        return [feats[k] for k in ("0", "1", "2", "3")]

    def train(self, mode: bool = True) -> "ResNetEncoder":
        super().train(mode)
        if self.freeze_bn:
            for m in self.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self
