"""Test helper: the inverse of :func:`refinenet_edu.nn.port_weights.convert_port_state_dict`, which the tests use
to write an ``official`` network's weights in the refinenet-pytorch port's names (as the port's own files have them)."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from refinenet_edu.nn.port_weights import port_key_map


def to_port_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our ``official`` state dict in the port's names."""
    back = {ours: port for port, ours in port_key_map().items()}
    out = {}
    for key, value in state.items():
        if key.startswith("encoder.body."):
            out[key[len("encoder.body."):]] = value
            continue
        prefix, _, leaf = key.rpartition(".")
        if prefix not in back:
            raise ValueError(f"{key!r} has no counterpart in the refinenet-pytorch port's network")
        out[f"{back[prefix]}.{leaf}"] = value
    return out
