"""The refinenet-pytorch port's weights (DrSleep/refinenet-pytorch, rf101_voc) in the official preset.

The port's file is not redistributable here, so the tests make a state dict in the port's naming
from a random official network, and check that (1) a forward pass written from the port's
published data flow, reading that state dict by the port's names, computes what our network
computes, and (2) loading it gives back exactly our network.
"""

from __future__ import annotations

import json
import re

import pytest
import torch
import torch.nn.functional as F
import torchvision

from refinenet_edu import build_refinenet
from refinenet_edu.cli import main
from refinenet_edu.nn.port_weights import convert_port_state_dict, load_port_weights

from _port import to_port_state_dict


@pytest.fixture(scope="module")
def official():
    torch.manual_seed(0)
    model = build_refinenet("official", backbone="resnet101", num_classes=21, align_corners=True).eval()
    with torch.no_grad():  # non-trivial batch-norm statistics, so that a mix-up of buffers shows
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
    return model


@pytest.fixture(scope="module")
def port_state(official):
    return to_port_state_dict(official.state_dict())


@pytest.fixture(scope="module")
def port_file(port_state, tmp_path_factory):
    """The state dict saved as the port's copies circulate: no batch-norm step counters (torch 0.4.0),
    a DataParallel ``module.`` prefix."""
    path = tmp_path_factory.mktemp("port") / "rf101_voc.pth.tar"
    torch.save({f"module.{k}": v for k, v in port_state.items() if "num_batches_tracked" not in k}, path)
    return path


def port_forward(sd: dict, x: torch.Tensor) -> torch.Tensor:
    """The port's network in eval mode, written from its models/resnet.py data flow, reading ``sd`` by the
    port's parameter names. Returns class scores at 1/4 of the input, as the port does."""
    resnet = torchvision.models.resnet101()
    encoder = {k: v for k, v in sd.items() if re.match(r"(conv1|bn1|layer\d)\.", k)}
    assert set(resnet.load_state_dict(encoder, strict=False).missing_keys) == {"fc.weight", "fc.bias"}
    resnet.eval()
    stem = resnet.maxpool(resnet.relu(resnet.bn1(resnet.conv1(x))))
    l1 = resnet.layer1(stem)
    l2 = resnet.layer2(l1)
    l3 = resnet.layer3(l2)
    l4 = resnet.layer4(l3)

    def conv(name, t):  # every decoder conv is 3x3, stride 1, padding 1
        return F.conv2d(t, sd[f"{name}.weight"], sd.get(f"{name}.bias"), padding=1)

    def rcus(name, t, n):  # n chained residual conv units: relu, conv (bias), relu, conv, + input
        for i in range(1, n + 1):
            t = t + conv(f"{name}.0.{i}_conv_relu_varout_dimred", F.relu(conv(f"{name}.0.{i}_conv", F.relu(t))))
        return t

    def crp(name, t):  # input already relu'd; chain of pool -> conv, each output added
        top, total = t, t
        for k in range(1, 5):
            top = conv(f"{name}.0.{k}_outvar_dimred", F.max_pool2d(top, 5, stride=1, padding=2))
            total = total + top
        return total

    def up(t, like):
        return F.interpolate(t, size=like.shape[-2:], mode="bilinear", align_corners=True)

    out = rcus("mflow_conv_g1_b", crp("mflow_conv_g1_pool", F.relu(
        rcus("adapt_stage1_b", conv("p_ims1d2_outl1_dimred", l4), 2))), 3)
    for g, feature in ((2, l3), (3, l2), (4, l1)):
        previous = up(conv(f"mflow_conv_g{g - 1}_b3_joint_varout_dimred", out), feature)
        path = conv(f"adapt_stage{g}_b2_joint_varout_dimred",
                    rcus(f"adapt_stage{g}_b", conv(f"p_ims1d2_outl{g}_dimred", feature), 2))
        out = rcus(f"mflow_conv_g{g}_b", crp(f"mflow_conv_g{g}_pool", F.relu(path + previous)), 3)
    return conv("clf_conv", out)


def test_the_ports_data_flow_on_its_names_computes_our_network(official, port_state):
    x = torch.randn(1, 3, 70, 90)  # 1/32 of it is 3x3: odd sizes at every stage
    with torch.inference_mode():
        ours = official(x, return_intermediates=True)["scores_1_4"]
        theirs = port_forward(port_state, x)
    assert theirs.shape == ours.shape == (1, 21, 18, 23)
    assert torch.allclose(theirs, ours, atol=1e-4, rtol=1e-4), (theirs - ours).abs().max()


def test_loading_the_port_state_dict_gives_back_the_network(official, port_state, port_file):
    assert len(port_state) == len(official.state_dict())
    assert "p_ims1d2_outl1_dimred.weight" in port_state and "mflow_conv_g4_pool.0.4_outvar_dimred.weight" in port_state
    loaded = load_port_weights(port_file)
    assert loaded.config == official.config and not loaded.training
    for key, value in official.state_dict().items():  # same config and same tensors: the same network
        if "num_batches_tracked" not in key:
            assert torch.equal(loaded.state_dict()[key], value), key
    assert convert_port_state_dict(port_state).keys() == official.state_dict().keys()


def test_files_that_are_not_the_ports_weights_say_so(official, port_state, tmp_path):
    from refinenet_edu.engine.checkpoints import save_checkpoint

    ours = tmp_path / "ours.pt"
    save_checkpoint(ours, build_refinenet("course", num_classes=21))
    with pytest.raises(ValueError, match="ours.pt: a refinenet-edu checkpoint"):
        load_port_weights(ours)
    with pytest.raises(ValueError, match="no clf_conv.weight"):
        load_port_weights({k: v for k, v in port_state.items() if not k.startswith("clf_conv")})
    (tmp_path / "junk.pth").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="junk.pth: refused, not a PyTorch checkpoint: it is a text file"):
        load_port_weights(tmp_path / "junk.pth")
    with pytest.raises(ValueError, match="extra_head.weight"):
        load_port_weights({**port_state, "extra_head.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match="lacks 1 tensors .*crp.convs.3"):
        load_port_weights({k: v for k, v in port_state.items() if k != "mflow_conv_g2_pool.0.4_outvar_dimred.weight"})
    bad = dict(port_state, **{"adapt_stage2_b2_joint_varout_dimred.weight": torch.zeros(256, 128, 3, 3)})
    with pytest.raises(ValueError, match="fusion.convs.1.weight has shape"):
        load_port_weights(bad)


def test_evaluate_from_port_on_a_voc_shaped_set(port_file, tmp_path, capsys):
    from tooling.voc_shaped import make_voc_shaped

    root = make_voc_shaped(tmp_path / "data", train=1, val=1, sizes=((41, 57),))
    weights = port_file
    code = main(["evaluate", "--from-port", str(weights), "--data", "voc2012", "--data-root", str(root),
                 "--device", "cpu", "--bands", "--quiet", "--out", str(tmp_path / "ev.json")])
    assert code == 0, capsys.readouterr().err
    result = json.loads((tmp_path / "ev.json").read_text())
    assert result["num_images"] == 1 and result["checkpoint"] == str(weights)
    assert result["dataset"]["num_classes"] == 21
    assert main(["evaluate", "--data", "voc2012"]) == 2  # neither a checkpoint nor --from-port
    assert "--from-port" in capsys.readouterr().err
