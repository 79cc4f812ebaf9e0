"""The official preset against the public port's own layout, recorded outside the library.

``tests/data/port_refinenet101_voc.json`` lists the names and shapes of the parameters and batch-norm
buffers of DrSleep/refinenet-pytorch's RefineNet-101 VOC network (models/resnet.py and
utils/layer_factory.py at commit 7e46948; tests/data/README.md says how it was made). Unlike
tests/nn/test_port_weights.py, which builds the port's state dict from this library, these tests compare
the library with that record: same names, same shapes, same parameter count.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from refinenet_edu import build_refinenet
from _port import to_port_state_dict

PORT = json.loads((Path(__file__).resolve().parents[1] / "data" / "port_refinenet101_voc.json").read_text())


@pytest.fixture(scope="module")
def official():
    return build_refinenet("official", backbone="resnet101", num_classes=21)


def _shapes(tensors) -> dict[str, list[int]]:
    return {name: list(t.shape) for name, t in tensors}


def test_the_record_is_consistent():
    assert len(PORT["parameters"]) == PORT["num_parameter_tensors"] == 400
    assert len(PORT["buffers"]) == PORT["num_buffer_tensors"] == 312  # 104 encoder batch norms x 3
    assert sum(math.prod(s) for s in PORT["parameters"].values()) == PORT["total_parameters"] == 118_052_437
    assert not set(PORT["parameters"]) & set(PORT["buffers"])


def test_our_parameters_in_the_ports_names_are_the_ports_parameters(official):
    ours = _shapes(to_port_state_dict(dict(official.named_parameters())).items())
    missing, extra = set(PORT["parameters"]) - set(ours), set(ours) - set(PORT["parameters"])
    assert not missing and not extra, f"the port has, we lack: {sorted(missing)}; we have, the port lacks: {sorted(extra)}"
    wrong = {k: (ours[k], s) for k, s in PORT["parameters"].items() if ours[k] != s}
    assert not wrong, f"ours vs the port's shape: {wrong}"
    assert sum(p.numel() for p in official.parameters()) == PORT["total_parameters"]


def test_our_buffers_in_the_ports_names_are_the_ports_buffers(official):
    ours = _shapes(to_port_state_dict(dict(official.named_buffers())).items())
    assert ours == PORT["buffers"]
    assert {k.rsplit(".", 1)[1] for k in ours} == {"running_mean", "running_var", "num_batches_tracked"}


def test_the_decoder_has_no_batch_norm_and_every_decoder_conv_is_3x3():
    # Facts of the port's layout that the preset shares: batch norm only in the encoder, 3x3 decoder convs,
    # biases only on the first conv of each RCU and on the classifier.
    decoder = {k: s for k, s in PORT["parameters"].items() if not k.startswith(("conv1", "bn1", "layer"))}
    assert all(s[-2:] == [3, 3] for k, s in decoder.items() if k.endswith(".weight"))
    biased = sorted(k[: -len(".bias")] for k in decoder if k.endswith(".bias"))
    assert all(k.endswith("_conv") or k == "clf_conv" for k in biased) and len(biased) == 4 * 5 + 1
    assert all(k.startswith(("bn1", "layer")) for k in PORT["buffers"])
