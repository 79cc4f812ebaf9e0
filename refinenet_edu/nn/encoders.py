"""ResNet encoders for RefineNet (paper Sec. 3.1, Fig. 2(c): the ResNet's four blocks, 1/4 .. 1/32).

The encoder is a torchvision ResNet without its pooling and classifier. Its four stages (``layer1`` .. ``layer4``) give
features at 1/4, 1/8, 1/16 and 1/32 of the input, tapped with torchvision's ``IntermediateLayerGetter``.

ImageNet weights come through torchvision's weights API, so users get the real download path (``weights="DEFAULT"``). A
local state-dict file works too, which is how the tests check loading without a network.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import nn
from torchvision.models._utils import IntermediateLayerGetter

# the backbones' names and shapes are data in config (which imports no torchvision); re-exported here
from refinenet_edu.nn.config import BACKBONES, STAGE_CHANNELS, STRIDES

__all__ = ["BACKBONES", "STAGE_CHANNELS", "STRIDES", "ResNetEncoder", "resolve_weights"]


#: torchvision's base width (channels of the stem and of layer1's blocks)
STANDARD_WIDTH = 64
_BASIC_LAYERS = {"resnet18": [2, 2, 2, 2], "resnet34": [3, 4, 6, 3]}


class NarrowResNet(torchvision.models.ResNet):
    """A torchvision ResNet-18/34 with a smaller base width (e.g. 32 instead of 64).

    The same ``BasicBlock`` s, stem and stage layout as torchvision's model, with every width scaled by ``width / 64``:
    a quarter of the FLOPs and parameters at half width. The course preset uses it so that training from scratch takes
    minutes on a CPU and its checkpoints stay a few MB. There are no ImageNet weights for it.
    """

    def __init__(self, layers: list[int], width: int):
        nn.Module.__init__(self)
        block = torchvision.models.resnet.BasicBlock
        self._norm_layer = nn.BatchNorm2d
        self.inplanes, self.dilation, self.groups, self.base_width = width, 1, 1, 64
        self.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, width, layers[0])
        self.layer2 = self._make_layer(block, width * 2, layers[1], stride=2)
        self.layer3 = self._make_layer(block, width * 4, layers[2], stride=2)
        self.layer4 = self._make_layer(block, width * 8, layers[3], stride=2)
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)


def resolve_weights(backbone: str, weights: Any):
    """Turn ``weights`` into what torchvision's builder takes.

    Accepts ``None`` (random init), a torchvision ``Weights`` enum member, or a string: ``"DEFAULT"`` /
    ``"IMAGENET1K_V1"`` / ``"IMAGENET1K_V2"`` (the enum member of that name) or the path of a local state-dict file.
    Returns ``(torchvision_weights_or_None, local_path_or_None)``.
    """
    if weights is None or isinstance(weights, torchvision.models.WeightsEnum):
        return weights, None
    if not isinstance(weights, (str, os.PathLike)):
        raise ValueError(f"weights: expected None, a string, a path or a torchvision Weights enum, got "
                         f"{type(weights).__name__}")
    text = os.fspath(weights)
    enum = getattr(torchvision.models, f"ResNet{backbone[len('resnet'):]}_Weights")  # e.g. ResNet18_Weights
    if text in enum.__members__:  # "DEFAULT" is one of them, an alias of the recommended weights
        return enum[text], None
    if Path(text).is_file():
        return None, Path(text)
    raise ValueError(f"weights={text!r} for {backbone}: expected None, one of {sorted(enum.__members__)}, "
                     "or the path of an existing state-dict file")


def _load_local_state_dict(resnet: nn.Module, path: Path) -> None:
    from refinenet_edu.files import first_non_finite, read_torch_file

    state = read_torch_file(path, what="encoder weights")
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state dict (a dict of tensors), got {type(state).__name__}")
    bad = first_non_finite(state)
    if bad is not None:  # else the first step's loss is NaN, blamed on the learning rate
        raise ValueError(f"encoder weights {path}: {bad!r} holds inf or NaN values; refused (a network started from "
                         "them computes NaN): use another file, e.g. pretrain again with a lower --lr")
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    own = resnet.state_dict()
    resized = [k for k, v in state.items() if k in own and hasattr(v, "shape") and v.shape != own[k].shape]
    if resized:  # another depth or width
        k = resized[0]
        raise ValueError(f"{path}: does not match this ResNet ({k}: {tuple(state[k].shape)} in the file, "
                         f"{tuple(own[k].shape)} here)")
    missing, unexpected = resnet.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("fc.")]
    if missing or unexpected:
        raise ValueError(
            f"{path}: does not match this ResNet (missing {missing[:3]}..., unexpected {unexpected[:3]}...)"
        )


class ResNetEncoder(nn.Module):
    """A torchvision ResNet that returns its four stages' features.

    ``forward(x)`` returns a list ``[f4, f8, f16, f32]`` (stride 4, 8, 16, 32) with ``self.channels`` channels.

    ``freeze_bn=True`` keeps every batch-norm layer in eval mode, so its running statistics stay as loaded (the official
    recipe, which trains with small batches on top of ImageNet statistics); the affine parameters are still trained, so
    the parameter count does not change.
    """

    def __init__(
        self, backbone: str = "resnet101", *, weights: Any = None, freeze_bn: bool = False, width: int = STANDARD_WIDTH
    ):
        super().__init__()
        if backbone not in STAGE_CHANNELS:
            raise ValueError(f"backbone={backbone!r}: expected one of {list(BACKBONES)}")
        if width != STANDARD_WIDTH and backbone not in _BASIC_LAYERS:
            raise ValueError(
                f"encoder_width={width}: only resnet18 and resnet34 can be narrowed; {backbone} needs {STANDARD_WIDTH}"
            )
        tv_weights, local = resolve_weights(backbone, weights)
        if width == STANDARD_WIDTH:
            resnet = getattr(torchvision.models, backbone)(weights=tv_weights)
        elif tv_weights is not None:
            raise ValueError(
                f"weights={weights!r}: there are no ImageNet weights for encoder_width={width}; "
                "pass the path of a state dict made for this width (refinenet-edu pretrain)"
            )
        else:
            resnet = NarrowResNet(_BASIC_LAYERS[backbone], width)
        if local is not None:
            _load_local_state_dict(resnet, local)
        self.backbone = backbone
        self.width = width
        self.channels = tuple(c * width // STANDARD_WIDTH for c in STAGE_CHANNELS[backbone])
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
