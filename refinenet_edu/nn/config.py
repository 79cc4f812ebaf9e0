"""Configuration of a RefineNet as data: one dataclass and named presets.

Widgets, the command line, the ablation runner and checkpoints all select a model by a :class:`RefineNetConfig` (or a
preset name plus overrides), so the same variant has the same name everywhere.

Presets
-------
``official``      the official code's architecture (Lin et al.'s release): 4-cascaded, 4 CRP blocks, 3 output RCUs per
                  block, widths 512 (1/32 path) / 256 (others), frozen batch norm, bilinear upsampling with
                  ``align_corners=True`` (as the public PyTorch port, whose weights were converted from the official
                  models, so that those weights give the same scores). ResNet-101, 21 classes: 118,052,437 parameters.
``paper``         the paper's description (Sec. 3.2, Fig. 3(a)-(d)): 3 CRP blocks as Fig. 3(d) draws them (the first
                  official release used 2, the later official code 4), 1 output RCU per block (source ``paper-block``
                  in docs/paper.md) and 2 more before the classifier, as thomasjpfan's port has them: that the paper's
                  text asks for these 2 is not verified (source ``paper-classifier-rcus``).
``light-weight``  Light-Weight RefineNet (Nekrasov et al., BMVC 2018): 1x1 decoder convolutions, no RCUs. 21 classes:
                  about 27M / 46M / 62M parameters on ResNet-50 / 101 / 152, as its README lists them (source
                  ``lw-sizes``). Upsamples with ``align_corners=True``, as its public code (``lw-align``).
``course``        a small 4-cascaded RefineNet on a half-width ResNet-18 (same layout, 32 base channels instead of 64)
                  and narrow decoder widths, trained from scratch on the embedded dataset in minutes on a 2-core CPU.
                  It has 1 output RCU per block (the official code has 3) and keeps ``align_corners=False``
                  (PyTorch's default, which the course's own check functions and assignments follow; the course
                  trains from scratch, so no converted weights depend on it).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "BACKBONES", "CASCADES", "PRESETS", "STAGE_CHANNELS", "STRIDES",
    "RefineNetConfig", "make_config",
]

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

#: The cascades the paper compares (Fig. 2(c) and Fig. 7; Table 9): which encoder outputs each RefineNet block
#: takes, from the deepest block to RefineNet-1. A path is ``(scale, stage)``: ``scale`` indexes
#: ``RefineNetConfig.scales`` (always 0 for a single-scale cascade) and ``stage`` is the ResNet stage
#: (1 = 1/4 ... 4 = 1/32 of that scale's image). Every block after the first also takes the previous block's output.
CASCADES: dict[str, tuple[tuple[tuple[int, int], ...], ...]] = {
    "4-cascaded": (((0, 4),), ((0, 3),), ((0, 2),), ((0, 1),)),  # Fig. 2(c)
    "2-cascaded": (((0, 4), (0, 3)), ((0, 2), (0, 1))),  # Fig. 7(b)
    "single": (((0, 4), (0, 3), (0, 2), (0, 1)),),  # Fig. 7(a)
    # Fig. 7(c), Sec. 4.3: the image at 1.2x (scale 0) and 0.6x (scale 1) goes into two independent ResNets; 7 paths,
    # each entering the block whose resolution it matches (0.6x stage k has the resolution of 1.2x stage k+1).
    "4-cascaded-2-scale": (((0, 4), (1, 3), (1, 4)), ((0, 3), (1, 2)), ((0, 2),), ((0, 1),)),
}

#: The smallest input height/width: the 1/32 stage must keep at least 1 pixel.
MIN_INPUT_SIZE = 32


@dataclass(frozen=True)
class RefineNetConfig:
    """Everything that defines a RefineNet's architecture.

    ``widths`` are the adaptive-conv widths of the 1/4, 1/8, 1/16 and 1/32 paths. ``kernel_size`` is that of every
    decoder conv (3 in RefineNet, 1 in Light-Weight RefineNet); the classifier is always 3x3.
    """

    num_classes: int = 21
    backbone: str = "resnet101"
    encoder_width: int = 64
    cascade: str = "4-cascaded"
    widths: tuple[int, int, int, int] = (256, 256, 256, 512)
    crp_blocks: int = 4
    crp_conv_first: bool = False
    adaptive_rcus: int = 2
    output_rcus: int = 3
    classifier_rcus: int = 0
    kernel_size: int = 3
    encoder_dropout: float = 0.5
    classifier_dropout: float = 0.5
    scales: tuple[float, float] = (1.2, 0.6)
    freeze_bn: bool = True
    align_corners: bool = False
    preset: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "widths", tuple(self.widths))
        object.__setattr__(self, "scales", tuple(self.scales))
        # a ValueError names the bad field and what is allowed
        if not isinstance(self.num_classes, int) or self.num_classes < 1:
            raise ValueError(f"num_classes={self.num_classes!r}: must be an integer >= 1")
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone={self.backbone!r}: expected one of {list(BACKBONES)}")
        narrow = self.encoder_width in (8, 16, 32) and self.backbone in ("resnet18", "resnet34")
        if self.encoder_width != 64 and not narrow:
            raise ValueError(f"encoder_width={self.encoder_width!r}: expected 64 (torchvision's ResNet), or 8/16/32 "
                             "for a narrow resnet18/resnet34")
        if self.cascade not in CASCADES:
            raise ValueError(f"cascade={self.cascade!r}: expected one of {list(CASCADES)}")
        if len(self.widths) != 4 or any(not isinstance(w, int) or w < 1 for w in self.widths):
            raise ValueError(f"widths={self.widths!r}: expected 4 positive integers (1/4, 1/8, 1/16, 1/32 paths)")
        for name in ("crp_blocks", "adaptive_rcus", "output_rcus", "classifier_rcus"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"{name}={value!r}: must be an integer >= 0")
        if self.kernel_size not in (1, 3):
            raise ValueError(f"kernel_size={self.kernel_size!r}: expected 1 (light-weight) or 3")
        for name in ("encoder_dropout", "classifier_dropout"):
            p = getattr(self, name)
            if not 0.0 <= p < 1.0:
                raise ValueError(f"{name}={p!r}: must be in [0, 1)")
        if len(self.scales) != 2 or any(s <= 0 for s in self.scales):
            raise ValueError(f"scales={self.scales!r}: expected two positive factors, e.g. (1.2, 0.6)")

    @property
    def two_scale(self) -> bool:
        """Whether the image enters two independent ResNets at the two ``scales`` (Fig. 7(c))."""
        return any(scale > 0 for paths in CASCADES[self.cascade] for scale, _ in paths)

    def path_width(self, scale: int, stage: int) -> int:
        """Adaptive-conv width of the path from ``stage`` of the image at ``scales[scale]``.

        The first scale's stage k gets ``widths[k - 1]``. In Fig. 7(c) a path of the second scale gets the width of the
        resolution it matches (0.6x stage k = 1.2x stage k + 1; the 1/64 path takes the 1/32 width), so that every block
        keeps the width it has in the 4-cascade; the paper does not state these widths.
        """
        return self.widths[min(stage + scale, 4) - 1]

    def replace(self, **changes: Any) -> "RefineNetConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "widths": list(self.widths), "scales": list(self.scales)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RefineNetConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown RefineNetConfig fields {unknown}; allowed: {sorted(known)}")
        return cls(**data)


PRESETS: dict[str, dict[str, Any]] = {
    "official": dict(align_corners=True),
    "paper": dict(crp_blocks=3, output_rcus=1, classifier_rcus=2),
    "light-weight": dict(
        kernel_size=1, adaptive_rcus=0, output_rcus=0, classifier_dropout=0.0, freeze_bn=True,
        align_corners=True,
    ),
    "course": dict(
        backbone="resnet18",
        encoder_width=32,
        widths=(32, 32, 48, 64),
        crp_blocks=4,
        output_rcus=1,
        encoder_dropout=0.1,
        classifier_dropout=0.1,
        freeze_bn=False,
    ),
}


def make_config(preset: str = "official", **overrides: Any) -> RefineNetConfig:
    """A :class:`RefineNetConfig` from a preset name plus keyword overrides.

    ``overrides`` whose value is ``None`` are ignored, so a command line can pass every option through.
    """
    if preset not in PRESETS:
        raise ValueError(f"preset={preset!r}: expected one of {list(PRESETS)}")
    known = {f.name for f in dataclasses.fields(RefineNetConfig)} - {"preset"}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown option(s) {unknown}; allowed: {sorted(known)}")
    values = dict(PRESETS[preset])
    values.update({k: v for k, v in overrides.items() if v is not None})
    return RefineNetConfig(**values, preset=preset)
