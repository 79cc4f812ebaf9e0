"""refinenet_edu: RefineNet (Lin et al., CVPR 2017), built step by step.

The library the course notebooks import. Data flows one way:
``datasets`` -> ``model`` -> ``training`` / ``evaluation`` -> experiments.

The names below are imported lazily (on first use), so that
``import refinenet_edu.engine.metrics`` does not pay for torchvision.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "AdaptiveConv": "refinenet_edu.nn.components",
    "ChainedResidualPooling": "refinenet_edu.nn.components",
    "MultiResolutionFusion": "refinenet_edu.nn.components",
    "RefineNetBlock": "refinenet_edu.nn.components",
    "ResidualConvUnit": "refinenet_edu.nn.components",
    "CASCADES": "refinenet_edu.nn.config",
    "MIN_INPUT_SIZE": "refinenet_edu.nn.config",
    "PRESETS": "refinenet_edu.nn.config",
    "RefineNetConfig": "refinenet_edu.nn.config",
    "make_config": "refinenet_edu.nn.config",
    "BACKBONES": "refinenet_edu.nn.encoders",
    "ResNetEncoder": "refinenet_edu.nn.encoders",
    "RefineNet": "refinenet_edu.nn.model",
    "build_refinenet": "refinenet_edu.nn.model",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'refinenet_edu' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
