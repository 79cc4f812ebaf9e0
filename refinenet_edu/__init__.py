"""refinenet_edu: RefineNet (Lin et al., CVPR 2017), built step by step: the library the course notebooks import.

Its layers import only the layers before them: ``nn``, ``datasets``, ``engine``, ``experiments``, ``viz``,
``grading``, ``cli``. The names below are imported on first use, so ``import refinenet_edu.engine.metrics`` does
not pay for torchvision.
"""

from typing import TYPE_CHECKING

from refinenet_edu._exports import exports_of, lazy_exports

__version__ = "0.1.0"

if TYPE_CHECKING:  # what editors and type checkers read; at run time each name loads on first use
    from refinenet_edu.nn.components import (
        AdaptiveConv, ChainedResidualPooling, MultiResolutionFusion, RefineNetBlock, ResidualConvUnit,
    )
    from refinenet_edu.nn.config import BACKBONES, CASCADES, MIN_INPUT_SIZE, PRESETS, RefineNetConfig, make_config
    from refinenet_edu.nn.encoders import ResNetEncoder
    from refinenet_edu.nn.model import RefineNet, build_refinenet

_EXPORTS = exports_of(__file__)  # name -> module: the TYPE_CHECKING block above, read at run time
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
