"""refinenet_edu: RefineNet (Lin et al., CVPR 2017), built step by step.

The library the course notebooks import. Data flows one way:
``datasets`` -> ``model`` -> ``training`` / ``evaluation`` -> experiments.
"""

from refinenet_edu.components import (
    AdaptiveConv,
    ChainedResidualPooling,
    MultiResolutionFusion,
    RefineNetBlock,
    ResidualConvUnit,
)
from refinenet_edu.config import CASCADES, MIN_INPUT_SIZE, PRESETS, RefineNetConfig, make_config
from refinenet_edu.encoders import BACKBONES, ResNetEncoder
from refinenet_edu.model import RefineNet, build_refinenet

__version__ = "0.1.0"

__all__ = [
    "AdaptiveConv",
    "BACKBONES",
    "CASCADES",
    "ChainedResidualPooling",
    "MIN_INPUT_SIZE",
    "MultiResolutionFusion",
    "PRESETS",
    "RefineNet",
    "RefineNetBlock",
    "RefineNetConfig",
    "ResNetEncoder",
    "ResidualConvUnit",
    "build_refinenet",
    "make_config",
]
