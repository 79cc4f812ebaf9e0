"""The building blocks of RefineNet (Lin et al., CVPR 2017, Sec. 3.2), one class per box of the paper's Fig. 3:
:class:`ResidualConvUnit` (RCU, Fig. 3(b)), :class:`AdaptiveConv` (the adaptive convolutions of Fig. 3(a)),
:class:`MultiResolutionFusion` (Fig. 3(c)), :class:`ChainedResidualPooling` (CRP, Fig. 3(d)) and the
:class:`RefineNetBlock` that chains them (Fig. 3(a)).

There is no batch norm anywhere in the decoder, as in the paper and the official code. Bias terms follow the public
PyTorch port of the official ResNet-101 VOC model (the first conv of an RCU has a bias, every other decoder conv has
none): the ``official`` ResNet-101 preset has exactly the port's parameter names, shapes and count, 118,052,437,
checked against a record read from the port's code (docs/paper.md, source ``port-layout``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["conv", "ResidualConvUnit", "AdaptiveConv", "MultiResolutionFusion", "ChainedResidualPooling", "RefineNetBlock"]


def conv(in_channels: int, out_channels: int, kernel_size: int = 3, *, bias: bool = False) -> nn.Conv2d:
    """A stride-1 'same' convolution, the only kind the decoder uses."""
    return nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias)


class ResidualConvUnit(nn.Module):
    """Residual Conv Unit (paper Sec. 3.2, Fig. 3(b)).

    ``out = x + conv2(relu(conv1(relu(x))))``

    The ReLU comes *first*, on the input of each convolution (pre-activation),
    and the identity shortcut carries the un-activated input. A public port
    shipped the first ReLU in place, so that the shortcut carries ``relu(x)``
    (thomasjpfan/pytorch_refinenet; docs/paper.md, source ``bug-rcu-relu``); a
    test in ``tests/nn/test_components.py`` guards against it.
    """

    def __init__(self, channels: int, kernel_size: int = 3):
        super().__init__()
        self.conv1 = conv(channels, channels, kernel_size, bias=True)  # the port's layout: bias on the first conv
        self.conv2 = conv(channels, channels, kernel_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x
        out = self.conv1(F.relu(x))
        out = self.conv2(F.relu(out))
        return out + residual


class AdaptiveConv(nn.Sequential):
    """Adaptive convolutions for one input path (paper Sec. 3.2, Fig. 3(a)).

    A convolution without bias sets the path's width (the official code uses 512 for the 1/32 path and 256 for the
    others), then ``num_rcus`` Residual Conv Units (2 in the paper) adapt the pretrained features to the task.
    """

    def __init__(self, in_channels: int, width: int, num_rcus: int = 2, kernel_size: int = 3):
        layers: list[nn.Module] = [conv(in_channels, width, kernel_size, bias=False)]
        layers += [ResidualConvUnit(width, kernel_size) for _ in range(num_rcus)]
        super().__init__(*layers)
        self.out_channels = width


class MultiResolutionFusion(nn.Module):
    """Multi-resolution fusion (paper Sec. 3.2, Fig. 3(c)).

    Every path gets a convolution to the *smallest* width among the paths, is
    upsampled (bilinear) to the *largest* resolution among them, and the paths
    are summed. The resolution is read from the tensors at run time, so the
    inputs may have any sizes (odd ones included). A block with a single path
    has nothing to fuse: the path passes through untouched.
    """

    def __init__(self, in_channels: Sequence[int], kernel_size: int = 3, *, align_corners: bool = False):
        super().__init__()
        in_channels = list(in_channels)
        if not in_channels:
            raise ValueError("MultiResolutionFusion needs at least one input path")
        self.out_channels = min(in_channels)
        self.align_corners = align_corners
        if len(in_channels) == 1:
            self.convs = nn.ModuleList()
        else:
            self.convs = nn.ModuleList(conv(c, self.out_channels, kernel_size) for c in in_channels)

    def forward(self, *paths: torch.Tensor) -> torch.Tensor:
        if len(paths) == 1 and len(self.convs) == 0:
            return paths[0]
        if len(paths) != len(self.convs):
            raise ValueError(f"MultiResolutionFusion was built for {len(self.convs)} paths, got {len(paths)}")
        # The largest resolution among the paths is the target (paper: "the largest resolution of the inputs").
        size = max((p.shape[-2:] for p in paths), key=lambda s: s[0] * s[1])
        out = None
        for path, layer in zip(paths, self.convs):
            y = layer(path)  # convolve at the path's own (cheaper) resolution, then upsample
            if y.shape[-2:] != size:
                y = F.interpolate(y, size=size, mode="bilinear", align_corners=self.align_corners)
            out = y if out is None else out + y
        return out


class ChainedResidualPooling(nn.Module):
    """Chained residual pooling (paper Sec. 3.2, Fig. 3(d)).

    One ReLU on the input, then a *chain* of ``num_blocks`` blocks, each a 5x5
    max-pool (stride 1, padding 2) followed by a convolution. Each block takes
    the previous block's output (not the CRP input: that would be the
    "parallel pools" port bug), and every block's output is added to the
    running sum that starts from the activated input::

        x = relu(x); out = x; top = x
        for block in blocks: top = block(top); out = out + top

    Each pool widens the receptive field by 4 pixels, so chaining reuses the
    previous pool's context instead of recomputing it. The paper's Fig. 3(d)
    draws 3 blocks; the first official release used 2, the later official
    code 4 (docs/paper.md, source ``official-crp-blocks``); ``num_blocks=0``
    turns CRP off (the block then only applies the ReLU). ``conv_first=True``
    is the "improved" CRP of the official code's released NYUDv2,
    Person-Parts, PASCAL-Context, SUN-RGBD and ADE20K models, with the
    convolution before the pool; its VOC and Cityscapes models pool first
    (source ``official-crp-improved``).
    """

    def __init__(self, channels: int, num_blocks: int = 4, kernel_size: int = 3, *, conv_first: bool = False):
        super().__init__()
        if num_blocks < 0:
            raise ValueError(f"ChainedResidualPooling: num_blocks must be >= 0, got {num_blocks}")
        self.num_blocks = num_blocks
        self.conv_first = conv_first
        self.pool = nn.MaxPool2d(kernel_size=5, stride=1, padding=2)
        self.convs = nn.ModuleList(conv(channels, channels, kernel_size) for _ in range(num_blocks))

    def block(self, i: int, x: torch.Tensor) -> torch.Tensor:
        """The i-th pool+conv block of the chain."""
        if self.conv_first:
            return self.pool(self.convs[i](x))
        return self.convs[i](self.pool(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(x)
        out = x
        top = x
        for i in range(self.num_blocks):
            top = self.block(i, top)  # chained: input is the previous block's output
            out = out + top
        return out


class RefineNetBlock(nn.Module):
    """One RefineNet block (paper Sec. 3.2, Fig. 3(a)).

    ``in_channels`` lists the channels of each input path, ordered as they are
    passed to :meth:`forward`. ``widths[i]`` is the width the adaptive
    convolutions give path ``i``; ``None`` means the path is the output of a
    previous RefineNet block, which enters as it is (in the official code its
    output RCUs already play that role), so only the fusion conv touches it.

    Output: ``min(widths)`` channels at the largest input resolution.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        widths: Sequence[int | None],
        *,
        adaptive_rcus: int = 2,
        crp_blocks: int = 4,
        crp_conv_first: bool = False,
        output_rcus: int = 3,
        kernel_size: int = 3,
        align_corners: bool = False,
    ):
        super().__init__()
        if len(in_channels) != len(widths) or not in_channels:
            raise ValueError(
                f"RefineNetBlock: in_channels ({list(in_channels)}) and widths ({list(widths)}) "
                "must be non-empty lists of the same length"
            )
        self.in_channels = list(in_channels)
        self.adaptive = nn.ModuleList(
            nn.Identity() if w is None else AdaptiveConv(c, w, adaptive_rcus, kernel_size)
            for c, w in zip(in_channels, widths)
        )
        path_widths = [c if w is None else w for c, w in zip(in_channels, widths)]
        self.fusion = MultiResolutionFusion(path_widths, kernel_size, align_corners=align_corners)
        self.out_channels = self.fusion.out_channels
        self.crp = ChainedResidualPooling(self.out_channels, crp_blocks, kernel_size, conv_first=crp_conv_first)
        self.output = nn.Sequential(*[ResidualConvUnit(self.out_channels, kernel_size) for _ in range(output_rcus)])

    def forward(self, *paths: torch.Tensor) -> torch.Tensor:
        if len(paths) != len(self.adaptive):
            raise ValueError(f"RefineNetBlock was built for {len(self.adaptive)} input paths, got {len(paths)}")
        adapted = [layer(p) for layer, p in zip(self.adaptive, paths)]
        fused = self.fusion(*adapted)
        return self.output(self.crp(fused))
