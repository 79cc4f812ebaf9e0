"""The network: the first layer of the package, which imports no other layer.

- :mod:`.components`: the building blocks (paper Sec. 3.2, Fig. 3(a)-(d)): RCU, adaptive convolutions,
  multi-resolution fusion, chained residual pooling, the RefineNet block;
- :mod:`.encoders`: the ResNet encoders and their four taps (1/4 .. 1/32);
- :mod:`.config`: :class:`~.config.RefineNetConfig` and the named presets, as data (no torchvision);
- :mod:`.model`: :class:`~.model.RefineNet`, the cascades of Fig. 2(c) and Fig. 7, :func:`~.model.build_refinenet`;
- :mod:`.cost`: parameters, per-block table and FLOPs of a network;
- :mod:`.port_weights` loads the public PyTorch port's converted RefineNet-101 VOC weights.
"""

from typing import TYPE_CHECKING

from refinenet_edu._exports import exports_of, lazy_exports

if TYPE_CHECKING:  # what editors and type checkers read; at run time each name loads on first use
    from refinenet_edu.nn.components import (
        AdaptiveConv, ChainedResidualPooling, MultiResolutionFusion, RefineNetBlock, ResidualConvUnit,
    )
    from refinenet_edu.nn.config import (
        BACKBONES, CASCADES, MIN_INPUT_SIZE, PRESETS, STAGE_CHANNELS, STRIDES, RefineNetConfig, make_config,
    )
    from refinenet_edu.nn.cost import count_flops, count_parameters, summarize
    from refinenet_edu.nn.encoders import ResNetEncoder
    from refinenet_edu.nn.model import RefineNet, build_refinenet
    from refinenet_edu.nn.port_weights import load_port_weights

_EXPORTS = exports_of(__file__)  # name -> module: the TYPE_CHECKING block above, read at run time
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
