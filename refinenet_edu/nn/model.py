"""The RefineNet network (Lin et al., CVPR 2017, Sec. 3; Fig. 2(c) and Fig. 7).

A ResNet encoder gives four paths (1/4 .. 1/32). A cascade of :class:`~refinenet_edu.nn.components.RefineNetBlock` s
(Fig. 3(a)) refines them from the coarsest to the finest, and a classifier predicts class scores at 1/4 of the
input, which are upsampled (bilinear) to the input size.

Cascades, chosen by ``RefineNetConfig.cascade`` (wiring in :data:`refinenet_edu.nn.config.CASCADES`):

* ``4-cascaded`` (default, Fig. 2(c)): RefineNet-4 takes the 1/32 path alone, RefineNet-3 takes RefineNet-4's
  output and the 1/16 path, and so on down to 1/4.
* ``2-cascaded`` (Fig. 7(b)): RefineNet-2 takes the 1/32 and 1/16 paths, RefineNet-1 takes its output and the 1/8
  and 1/4 paths.
* ``single`` (Fig. 7(a)): one RefineNet takes all four paths at once.
* ``4-cascaded-2-scale`` (Fig. 7(c), Sec. 4.3): the image at ``config.scales`` (1.2x and 0.6x) goes into two
  independent ResNets (``encoder`` and ``encoder_2``, no shared weights), whose 7 paths enter the blocks by
  resolution.

Usage::

    model = build_refinenet("course", num_classes=8)
    scores = model(images)                        # [N, C, H, W]
    out = model(images, return_intermediates=True)
    out["scores_1_4"], out["blocks"]["refinenet1"]
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from refinenet_edu.nn.components import RefineNetBlock, ResidualConvUnit
from refinenet_edu.nn.config import CASCADES, MIN_INPUT_SIZE, RefineNetConfig, make_config
from refinenet_edu.nn.encoders import ResNetEncoder

__all__ = ["RefineNet", "build_refinenet", "MIN_INPUT_SIZE"]


class RefineNet(nn.Module):
    """Multi-path refinement network for semantic segmentation."""

    def __init__(self, config: RefineNetConfig, *, weights: Any = None):
        super().__init__()
        self.config = config
        resnet = dict(backbone=config.backbone, weights=weights, freeze_bn=config.freeze_bn, width=config.encoder_width)
        self.encoder = ResNetEncoder(**resnet)
        if config.two_scale:  # Fig. 7(c): the second scale has a ResNet of its own, started from the same weights
            self.encoder_2 = ResNetEncoder(**resnet)
        # Dropout on the two deepest encoder outputs (official code).
        self.encoder_dropout = nn.Dropout(config.encoder_dropout)

        enc_channels = self.encoder.channels
        groups = CASCADES[config.cascade]
        self.block_names = [f"refinenet{len(groups) - i}" for i in range(len(groups))]
        #: per block, its encoder paths as ``(scale, stage)`` pairs
        self.block_paths = list(groups)
        blocks = []
        prev_channels = None
        for paths in groups:
            first = [] if prev_channels is None else [prev_channels]  # the previous block's output enters as it is
            in_channels = first + [enc_channels[stage - 1] for _, stage in paths]
            widths = [None] * len(first) + [config.path_width(scale, stage) for scale, stage in paths]
            block = RefineNetBlock(
                in_channels, widths, adaptive_rcus=config.adaptive_rcus, crp_blocks=config.crp_blocks,
                crp_conv_first=config.crp_conv_first, output_rcus=config.output_rcus, kernel_size=config.kernel_size,
                align_corners=config.align_corners,
            )
            blocks.append(block)
            prev_channels = block.out_channels
        self.blocks = nn.ModuleDict(zip(self.block_names, blocks))

        # "paper" preset: two extra RCUs before the classifier (as thomasjpfan's port; not verified in the paper's
        # text, docs/paper.md source paper-classifier-rcus; the official code has none); dropout; 3x3 conv to scores.
        head: list[nn.Module] = [ResidualConvUnit(prev_channels, config.kernel_size) for _ in range(config.classifier_rcus)]
        head += [nn.Dropout(config.classifier_dropout), nn.Conv2d(prev_channels, config.num_classes, 3, padding=1)]
        self.classifier = nn.Sequential(*head)

    # ------------------------------------------------------------------ helpers
    @property
    def encoders(self) -> list[ResNetEncoder]:
        """The ResNet of each scale: one, or two for Fig. 7(c)'s independent ResNets."""
        return [self.encoder, self.encoder_2] if self.config.two_scale else [self.encoder]

    def encoder_parameters(self):
        """Parameters of the ResNet(s) (trained with a 10x lower rate in the official recipe)."""
        for encoder in self.encoders:
            yield from encoder.parameters()

    def decoder_parameters(self):
        """Parameters of the RefineNet blocks and the classifier."""
        encoder_ids = {id(p) for p in self.encoder_parameters()}
        for p in self.parameters():
            if id(p) not in encoder_ids:
                yield p

    def check_input(self, x: torch.Tensor) -> None:
        """Raise ``ValueError`` for input the network cannot take."""
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"RefineNet input: expected a torch.Tensor, got {type(x).__name__}")
        if x.dim() != 4:
            raise ValueError(f"RefineNet input: expected shape [N, 3, H, W], got {list(x.shape)}")
        if x.shape[1] != 3:
            raise ValueError(f"RefineNet input: expected 3 channels (RGB), got {x.shape[1]} (shape {list(x.shape)})")
        if not x.is_floating_point():
            raise ValueError(f"RefineNet input: expected a floating-point tensor (float32/float16/bfloat16), got "
                             f"{x.dtype}; convert uint8 images with .float() / 255 and normalise them first")
        h, w = x.shape[-2:]
        if h < MIN_INPUT_SIZE or w < MIN_INPUT_SIZE:
            raise ValueError(f"RefineNet input: height and width must be at least {MIN_INPUT_SIZE} pixels, got {h}x{w}")

    # ------------------------------------------------------------------ forward
    def _encode(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        """Per input scale, the feature maps of the four encoder stages: ``feats[scale][stage - 1]``."""
        images = []
        for s in self.config.scales if self.config.two_scale else (1.0,):
            im = x if s == 1.0 else F.interpolate(x, scale_factor=s, mode="bilinear", align_corners=False,
                                                  recompute_scale_factor=False)
            if min(im.shape[-2:]) < MIN_INPUT_SIZE:  # keep every rescaled image at or above the minimum size
                size = tuple(max(MIN_INPUT_SIZE, d) for d in im.shape[-2:])
                im = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
            images.append(im)
        feats = [list(encoder(image)) for encoder, image in zip(self.encoders, images)]
        for f in feats:
            # Dropout on the two deepest stages, 1/32 before 1/16: each call draws its mask from the global random
            # generator, so this order is part of what a seeded training produces (the shipped checkpoint's too).
            f[3] = self.encoder_dropout(f[3])
            f[2] = self.encoder_dropout(f[2])
        return feats

    def forward(self, x: torch.Tensor, *, return_intermediates: bool = False):
        """Class scores at the input size, ``[N, num_classes, H, W]``.

        With ``return_intermediates=True`` returns a dict with ``"out"`` (the
        same scores), ``"scores_1_4"`` (the classifier's scores at 1/4 of the
        input, before upsampling), ``"blocks"`` (each RefineNet block's
        output, from the coarsest to RefineNet-1) and ``"features"`` (the
        encoder's four stages, first scale).
        """
        self.check_input(x)
        feats = self._encode(x)
        block_outputs: dict[str, torch.Tensor] = {}
        prev = None
        for name, block_paths in zip(self.block_names, self.block_paths):
            paths = [] if prev is None else [prev]
            paths += [feats[scale][stage - 1] for scale, stage in block_paths]
            prev = self.blocks[name](*paths)
            block_outputs[name] = prev
        scores_1_4 = self.classifier(prev)
        out = F.interpolate(scores_1_4, size=x.shape[-2:], mode="bilinear", align_corners=self.config.align_corners)
        if not return_intermediates:
            return out
        return {
            "out": out,
            "scores_1_4": scores_1_4,
            "blocks": block_outputs,
            "features": feats[0],
        }


def build_refinenet(preset: str | RefineNetConfig = "official", *, weights: Any = None, **overrides: Any) -> RefineNet:
    """Build a RefineNet from a preset name (plus overrides) or a config.

    ``weights`` are the encoder's ImageNet weights: ``None`` (random), a torchvision ``Weights`` enum, ``"DEFAULT"`` /
    ``"IMAGENET1K_V1"`` (the real download through torchvision), or a local state-dict path.

    >>> build_refinenet("official", backbone="resnet101", num_classes=21)  # doctest: +SKIP
    """
    if isinstance(preset, RefineNetConfig):
        config = preset.replace(**{k: v for k, v in overrides.items() if v is not None}) if overrides else preset
    else:
        config = make_config(preset, **overrides)
    return RefineNet(config, weights=weights)
