"""The full network: shapes, parameter counts, gradients, modes, bad input."""

from __future__ import annotations

import pytest
import torch
import torchvision

from refinenet_edu import CASCADES, BACKBONES, MIN_INPUT_SIZE, RefineNetConfig, build_refinenet, make_config
from refinenet_edu.nn.encoders import ResNetEncoder
from refinenet_edu.nn.cost import summarize

SMALL = dict(widths=(8, 8, 8, 16), num_classes=5)


def _count(module):
    return sum(p.numel() for p in module.parameters())


def _meta(preset, **kw):
    with torch.device("meta"):
        return build_refinenet(preset, **kw)


# ---------------------------------------------------------------- counts
def test_official_resnet101_has_the_official_parameter_count():
    model = _meta("official", backbone="resnet101", num_classes=21)
    assert _count(model) == 118_052_437
    assert _count(model.encoder) == 42_500_160


@pytest.mark.parametrize(
    "backbone, published_millions", [("resnet50", 27), ("resnet101", 46), ("resnet152", 62)]
)
def test_light_weight_matches_published_sizes(backbone, published_millions):
    model = _meta("light-weight", backbone=backbone, num_classes=21)
    assert abs(_count(model) / 1e6 - published_millions) < 0.5


def test_official_predicts_at_quarter_resolution():
    s = summarize(make_config("official", backbone="resnet101", num_classes=21), (512, 512))
    assert s.scores_1_4_shape == (1, 21, 128, 128)
    assert s.output_shape == (1, 21, 512, 512)
    assert s.parameters == 118_052_437
    assert [b.name for b in s.blocks] == ["refinenet4", "refinenet3", "refinenet2", "refinenet1"]


# ---------------------------------------------------------------- shapes
@pytest.mark.parametrize("cascade", list(CASCADES))
@pytest.mark.parametrize("size", [(32, 32), (45, 67), (64, 48)])
def test_every_cascade_returns_scores_at_the_input_size(cascade, size):
    model = build_refinenet("course", cascade=cascade, **SMALL).eval()
    x = torch.randn(2, 3, *size)
    out = model(x, return_intermediates=True)
    assert out["out"].shape == (2, 5, *size)
    assert list(out["blocks"])[-1] == "refinenet1"
    assert len(out["blocks"]) == len(CASCADES[cascade])
    if not cascade.endswith("2-scale"):
        assert out["scores_1_4"].shape[-2:] == out["features"][0].shape[-2:]  # 1/4 resolution


@pytest.mark.parametrize("backbone", BACKBONES)
def test_every_backbone(backbone):
    model = build_refinenet("course", backbone=backbone, encoder_width=64 if backbone not in ("resnet18", "resnet34") else 32, **SMALL).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 40, 36)).shape == (1, 5, 40, 36)


@pytest.mark.parametrize("preset", ["official", "paper", "light-weight", "course"])
def test_every_preset_runs(preset):
    model = build_refinenet(preset, backbone="resnet18", num_classes=3).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 33, 50)).shape == (1, 3, 33, 50)


@pytest.mark.parametrize("crp_blocks", [0, 2, 4])
@pytest.mark.parametrize("output_rcus", [1, 3])
def test_crp_and_rcu_counts(crp_blocks, output_rcus):
    model = build_refinenet("course", crp_blocks=crp_blocks, output_rcus=output_rcus, **SMALL)
    for block in model.blocks.values():
        assert len(block.crp.convs) == crp_blocks
        assert len(block.output) == output_rcus


# ---------------------------------------------------------------- training behaviour
@pytest.mark.parametrize("cascade", list(CASCADES))
def test_gradients_reach_every_parameter(cascade):
    torch.manual_seed(0)
    model = build_refinenet("course", cascade=cascade, encoder_dropout=0.0, classifier_dropout=0.0, **SMALL).train()
    x = torch.randn(2, 3, 64, 64)
    y = torch.randint(0, 5, (2, 64, 64))
    torch.nn.functional.cross_entropy(model(x), y).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert missing == []


def test_eval_is_deterministic_and_train_uses_dropout():
    torch.manual_seed(0)
    model = build_refinenet("course", encoder_dropout=0.5, classifier_dropout=0.5, **SMALL)
    x = torch.randn(1, 3, 64, 64)
    model.eval()
    with torch.no_grad():
        a, b = model(x), model(x)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    model.train()
    with torch.no_grad():
        c, d = model(x), model(x)
    assert not torch.equal(c, d), "dropout should be active in train mode"


def test_frozen_batch_norm_keeps_running_statistics():
    model = build_refinenet("course", freeze_bn=True, **SMALL).train()
    bn = model.encoder.body.bn1
    before = bn.running_mean.clone()
    model(torch.randn(2, 3, 64, 64) * 5 + 3)
    assert not bn.training
    torch.testing.assert_close(bn.running_mean, before)
    assert bn.weight.requires_grad  # affine parameters still train
    unfrozen = build_refinenet("course", freeze_bn=False, **SMALL).train()
    unfrozen(torch.randn(2, 3, 64, 64) * 5 + 3)
    assert not torch.equal(unfrozen.encoder.body.bn1.running_mean, before)


def test_encoder_and_decoder_parameters_partition_the_model():
    model = build_refinenet("course", **SMALL)
    enc = {id(p) for p in model.encoder_parameters()}
    dec = {id(p) for p in model.decoder_parameters()}
    assert not enc & dec
    assert enc | dec == {id(p) for p in model.parameters()}


# ---------------------------------------------------------------- weights
def test_encoder_loads_a_local_state_dict(tmp_path):
    SMALL_FULL = dict(SMALL, encoder_width=64)
    torch.manual_seed(1)
    reference = torchvision.models.resnet18()
    path = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), path)
    model = build_refinenet("course", weights=str(path), **SMALL_FULL)
    torch.testing.assert_close(model.encoder.body.conv1.weight, reference.conv1.weight)
    torch.testing.assert_close(model.encoder.body.layer4[1].bn2.running_var, reference.layer4[1].bn2.running_var)


def test_imagenet_weights_go_through_torchvisions_weights_api(tmp_path, monkeypatch):
    # The real download path: torchvision's Weights.get_state_dict. Replace only
    # the download itself, with a state dict saved locally.
    torch.manual_seed(2)
    reference = torchvision.models.resnet18()
    calls = []

    def fake_get_state_dict(self, *args, **kwargs):
        calls.append(self)
        return reference.state_dict()

    monkeypatch.setattr(torchvision.models.WeightsEnum, "get_state_dict", fake_get_state_dict)
    for weights in ("DEFAULT", "IMAGENET1K_V1", torchvision.models.ResNet18_Weights.IMAGENET1K_V1):
        encoder = ResNetEncoder("resnet18", weights=weights)
        torch.testing.assert_close(encoder.body.conv1.weight, reference.conv1.weight)
    assert calls == [torchvision.models.ResNet18_Weights.IMAGENET1K_V1] * 3


def test_bad_weights(tmp_path):
    with pytest.raises(ValueError, match="weights='nope'"):
        ResNetEncoder("resnet18", weights="nope")
    bad = tmp_path / "corrupt.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="corrupt.pth"):
        ResNetEncoder("resnet18", weights=bad)
    foreign = tmp_path / "foreign.pth"
    torch.save({"something.else": torch.zeros(3)}, foreign)
    with pytest.raises(ValueError, match="foreign.pth: does not match"):
        ResNetEncoder("resnet18", weights=foreign)


# ---------------------------------------------------------------- bad input
@pytest.fixture(scope="module")
def small_model():
    return build_refinenet("course", **SMALL).eval()


@pytest.mark.parametrize(
    "x, message",
    [
        (torch.randn(1, 1, 64, 64), "expected 3 channels"),
        (torch.randn(1, 4, 64, 64), "expected 3 channels"),
        (torch.randn(3, 64, 64), r"expected shape \[N, 3, H, W\]"),
        (torch.randn(1, 3, 31, 64), f"at least {MIN_INPUT_SIZE} pixels, got 31x64"),
        (torch.randn(1, 3, 64, 16), "at least 32 pixels, got 64x16"),
        (torch.zeros(1, 3, 64, 64, dtype=torch.uint8), "floating-point tensor"),
        ([[1.0]], "expected a torch.Tensor"),
    ],
)
def test_bad_input_gives_a_clear_error(small_model, x, message):
    with pytest.raises(ValueError, match=message):
        small_model(x)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(preset="resnet"), "preset='resnet': expected one of"),
        (dict(cascade="3-cascaded"), "cascade='3-cascaded': expected one of"),
        (dict(backbone="vgg16"), "backbone='vgg16': expected one of"),
        (dict(num_classes=0), "num_classes=0: must be an integer >= 1"),
        (dict(num_classes=-3), "num_classes=-3"),
        (dict(widths=(8, 8, 8)), "widths=.*expected 4 positive integers"),
        (dict(widths=(8, 0, 8, 8)), "widths=.*expected 4 positive integers"),
        (dict(crp_blocks=-1), "crp_blocks=-1: must be an integer >= 0"),
        (dict(output_rcus=-2), "output_rcus=-2"),
        (dict(kernel_size=5), "kernel_size=5"),
        (dict(encoder_dropout=1.5), "encoder_dropout=1.5"),
        (dict(colour="red"), r"unknown option\(s\) \['colour'\]"),
    ],
)
def test_bad_configuration_gives_a_clear_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_refinenet(**kwargs)


def test_config_round_trips_through_a_dict():
    config = make_config("course", num_classes=7, cascade="2-cascaded")
    again = RefineNetConfig.from_dict(config.to_dict())
    assert again == config
    with pytest.raises(ValueError, match="unknown RefineNetConfig fields"):
        RefineNetConfig.from_dict({**config.to_dict(), "bogus": 1})


def test_narrow_encoder_is_a_scaled_resnet18():
    model = build_refinenet("course", num_classes=8)
    assert model.encoder.channels == (32, 64, 128, 256)
    full = torchvision.models.resnet18()
    narrow_params = _count(model.encoder)
    full_params = sum(p.numel() for n, p in full.named_parameters() if not n.startswith("fc."))
    assert 0.2 < narrow_params / full_params < 0.3  # about a quarter at half width
    with pytest.raises(ValueError, match="encoder_width=32: only resnet18 and resnet34"):
        ResNetEncoder("resnet50", width=32)
    with pytest.raises(ValueError, match="encoder_width=32"):
        build_refinenet("course", backbone="resnet50")
    with pytest.raises(ValueError, match="no ImageNet weights for encoder_width=32"):
        build_refinenet("course", weights="DEFAULT")


# ---------------------------------------------------------------- the 2-scale cascade (Fig. 7(c))
def _block_inputs(model, x):
    """Each block's input tensors, and each encoder's four outputs, from one forward pass."""
    seen, feats = {}, {}
    hooks = [model.blocks[n].register_forward_pre_hook(lambda m, args, n=n: seen.__setitem__(n, args)) for n in model.block_names]
    for i, enc in enumerate(model.encoders):
        hooks.append(enc.register_forward_hook(lambda m, args, out, i=i: feats.__setitem__(i, out)))
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return seen, feats


def test_two_scale_has_two_independent_encoders_and_the_seven_path_wiring():
    torch.manual_seed(0)
    model = build_refinenet("course", cascade="4-cascaded-2-scale", encoder_dropout=0.0, **SMALL).eval()
    assert model.config.scales == (1.2, 0.6)
    first, second = model.encoders
    assert first is not second
    assert not {id(p) for p in first.parameters()} & {id(p) for p in second.parameters()}  # no shared weights
    assert not torch.equal(first.body.conv1.weight, second.body.conv1.weight)  # two random initialisations

    x = torch.randn(1, 3, 100, 100)
    seen, feats = _block_inputs(model, x)
    assert feats[0][0].shape[-2:] == (30, 30)  # 1.2x image (120 px) at 1/4
    assert feats[1][0].shape[-2:] == (15, 15)  # 0.6x image (60 px) at 1/4
    hi, lo = feats[0], feats[1]
    expected = {  # PAPER.md / Sec. 4.3: which stage of which scale enters which block
        "refinenet4": [hi[3], lo[2], lo[3]],
        "refinenet3": [hi[2], lo[1]],
        "refinenet2": [hi[1]],
        "refinenet1": [hi[0]],
    }
    for name, tensors in expected.items():
        inputs = seen[name] if name == "refinenet4" else seen[name][1:]  # after the previous block's output
        assert len(inputs) == len(tensors), name
        for got, want in zip(inputs, tensors):
            assert got is want or torch.equal(got, want), name
    assert sum(len(p) for p in model.block_paths) == 7
    # 0.6x stage k has the resolution of 1.2x stage k+1
    for k in range(3):
        assert lo[k].shape[-2:] == hi[k + 1].shape[-2:]


def test_two_scale_encoders_are_in_the_encoder_parameter_group_and_count():
    model = build_refinenet("course", cascade="4-cascaded-2-scale", **SMALL)
    one = build_refinenet("course", **SMALL)
    enc = {id(p) for p in model.encoder_parameters()}
    assert enc == {id(p) for e in model.encoders for p in e.parameters()}
    assert not enc & {id(p) for p in model.decoder_parameters()}
    assert summarize(model, (64, 64)).encoder_parameters == 2 * _count(one.encoder)


def test_two_scale_blocks_keep_the_widths_of_the_4_cascade():
    two = build_refinenet("course", cascade="4-cascaded-2-scale", **SMALL)
    four = build_refinenet("course", **SMALL)
    assert [b.out_channels for b in two.blocks.values()] == [b.out_channels for b in four.blocks.values()]


def test_both_2_scale_encoders_start_from_the_given_weights(tmp_path):
    torch.manual_seed(1)
    reference = torchvision.models.resnet18()
    path = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), path)
    model = build_refinenet("course", cascade="4-cascaded-2-scale", weights=str(path), encoder_width=64, **SMALL)
    for enc in model.encoders:
        torch.testing.assert_close(enc.body.conv1.weight, reference.conv1.weight)


# ---------------------------------------------------------------- upsampling
def test_official_and_light_weight_upsample_with_align_corners_like_their_public_ports():
    assert make_config("official").align_corners is True
    assert make_config("light-weight").align_corners is True
    assert make_config("course").align_corners is False
    model = build_refinenet("official", backbone="resnet18", num_classes=3).eval()
    assert all(b.fusion.align_corners for b in model.blocks.values())


# ---------------------------------------------------------------- the input-size guard
def test_the_network_itself_computes_at_any_size_the_32_pixel_guard_is_a_choice(monkeypatch):
    import refinenet_edu.nn.model as model_module

    monkeypatch.setattr(model_module, "MIN_INPUT_SIZE", 1)
    model = build_refinenet("course", **SMALL).eval()
    with torch.no_grad():
        for size in (1, 5, 17, 31):
            assert model(torch.randn(1, 3, size, size)).shape == (1, 5, size, size)
    # What does fail below 33 px: training a batch of one with batch norm that is not frozen,
    # because the 1/32 map has one value per channel.
    model.train()
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        model(torch.randn(1, 3, 32, 32))
    assert model(torch.randn(1, 3, 33, 33)).shape == (1, 5, 33, 33)
