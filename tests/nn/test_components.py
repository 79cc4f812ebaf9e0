"""The RefineNet components do what the paper (Sec. 3.2, Fig. 2) says.

Several tests here are aimed at bugs that ports of RefineNet have shipped:
a chained residual pooling wired in parallel, an RCU with its ReLU on the
wrong tensor, fusion upsampling the wrong branch.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from refinenet_edu import (
    AdaptiveConv,
    ChainedResidualPooling,
    MultiResolutionFusion,
    RefineNetBlock,
    ResidualConvUnit,
)


def _identity_conv_(conv: torch.nn.Conv2d) -> None:
    """Make a square conv the identity map (a centred delta kernel)."""
    with torch.no_grad():
        conv.weight.zero_()
        k = conv.kernel_size[0] // 2
        for c in range(conv.out_channels):
            conv.weight[c, c, k, k] = 1.0
        if conv.bias is not None:
            conv.bias.zero_()


def test_rcu_matches_the_formula():
    torch.manual_seed(0)
    rcu = ResidualConvUnit(8)
    x = torch.randn(2, 8, 9, 11)
    expected = x + rcu.conv2(F.relu(rcu.conv1(F.relu(x))))
    torch.testing.assert_close(rcu(x), expected)


def test_rcu_shortcut_carries_the_unactivated_input():
    # With zero convolutions an RCU is the identity, negative values included.
    # A port that applies a ReLU to the shortcut (or in place on x) clips them.
    rcu = ResidualConvUnit(4)
    for p in rcu.parameters():
        torch.nn.init.zeros_(p)
    x = -torch.rand(1, 4, 6, 6) - 0.5
    torch.testing.assert_close(rcu(x), x)


def test_rcu_relu_comes_before_each_conv():
    # conv1 = identity, conv2 = identity: out = x + relu(relu(x)) = x + relu(x).
    # With the second ReLU misplaced after conv2 or missing, this differs.
    rcu = ResidualConvUnit(3)
    _identity_conv_(rcu.conv1)
    _identity_conv_(rcu.conv2)
    with torch.no_grad():
        rcu.conv1.bias.fill_(-0.25)  # makes the ReLU between the convs matter
    x = torch.randn(1, 3, 5, 5)
    torch.testing.assert_close(rcu(x), x + F.relu(F.relu(x) - 0.25))


def _support_width(y: torch.Tensor) -> int:
    cols = (y[0, 0].abs() > 0).any(dim=0).nonzero()
    return int(cols.max() - cols.min() + 1)


@pytest.mark.parametrize("num_blocks", [0, 1, 2, 3, 4])
def test_crp_is_a_chain_receptive_field_grows_by_4_per_block(num_blocks):
    # An impulse through N chained 5x5 pools spreads to width 1 + 4N.
    # Parallel pools (a shipped port bug) stop at 5 whatever N is.
    crp = ChainedResidualPooling(1, num_blocks)
    for c in crp.convs:
        _identity_conv_(c)
    x = torch.zeros(1, 1, 41, 41)
    x[0, 0, 20, 20] = 1.0
    assert _support_width(crp(x)) == 1 + 4 * num_blocks


def test_crp_sums_every_block_output():
    # With identity convs, block i's output at the impulse centre is 1, so the
    # centre of the sum is 1 + N.
    crp = ChainedResidualPooling(1, 4)
    for c in crp.convs:
        _identity_conv_(c)
    x = torch.zeros(1, 1, 21, 21)
    x[0, 0, 10, 10] = 1.0
    assert crp(x)[0, 0, 10, 10].item() == pytest.approx(5.0)


def test_crp_matches_reference_chain_and_improved_form():
    torch.manual_seed(0)
    x = torch.randn(2, 6, 12, 10)
    for conv_first in (False, True):
        crp = ChainedResidualPooling(6, 3, conv_first=conv_first)
        pool = lambda t: F.max_pool2d(t, 5, 1, 2)  # noqa: E731
        top = out = F.relu(x)
        for conv in crp.convs:
            top = pool(conv(top)) if conv_first else conv(pool(top))
            out = out + top
        torch.testing.assert_close(crp(x), out)


def test_crp_off_is_just_the_relu():
    crp = ChainedResidualPooling(3, 0)
    x = torch.randn(1, 3, 8, 8)
    torch.testing.assert_close(crp(x), F.relu(x))
    assert sum(p.numel() for p in crp.parameters()) == 0


def test_fusion_upsamples_the_low_resolution_path_and_sums():
    fusion = MultiResolutionFusion([4, 4])
    for c in fusion.convs:
        _identity_conv_(c)
    low = torch.randn(1, 4, 4, 5)   # e.g. 1/32
    high = torch.randn(1, 4, 8, 10)  # e.g. 1/16
    out = fusion(low, high)
    assert out.shape == high.shape
    expected = high + F.interpolate(low, size=(8, 10), mode="bilinear", align_corners=False)
    torch.testing.assert_close(out, expected)


def test_fusion_reduces_to_the_smallest_width_and_handles_odd_sizes():
    fusion = MultiResolutionFusion([64, 32, 48])
    out = fusion(torch.randn(2, 64, 3, 3), torch.randn(2, 32, 9, 11), torch.randn(2, 48, 5, 6))
    assert out.shape == (2, 32, 9, 11)
    assert fusion.out_channels == 32


def test_fusion_with_one_path_passes_through():
    fusion = MultiResolutionFusion([16])
    x = torch.randn(1, 16, 7, 7)
    assert fusion(x) is x
    assert sum(p.numel() for p in fusion.parameters()) == 0


def test_adaptive_conv_sets_width():
    ad = AdaptiveConv(2048, 512, num_rcus=2)
    assert ad(torch.randn(1, 2048, 2, 2)).shape == (1, 512, 2, 2)
    assert len(ad) == 3


def test_refinenet_block_shapes_and_previous_path_enters_unchanged():
    block = RefineNetBlock([64, 128], [None, 32], crp_blocks=2, output_rcus=1)
    assert isinstance(block.adaptive[0], torch.nn.Identity)
    out = block(torch.randn(2, 64, 4, 4), torch.randn(2, 128, 8, 8))
    assert out.shape == (2, 32, 8, 8)
    with pytest.raises(ValueError, match="2 input paths"):
        block(torch.randn(2, 64, 4, 4))


def test_component_bad_arguments():
    with pytest.raises(ValueError, match="num_blocks"):
        ChainedResidualPooling(4, -1)
    with pytest.raises(ValueError, match="at least one"):
        MultiResolutionFusion([])
    with pytest.raises(ValueError, match="same length"):
        RefineNetBlock([64, 128], [32])
