"""What a RefineNet is made of (``refinenet-edu summary`` prints it).

Parameter counts (total, encoder, decoder), a per-block table (input paths with their stride and channels, the fusion
width, output and parameters), the output shape and the FLOPs for a given input size. FLOPs are counted by
``torch.utils.flop_counter`` on the ``meta`` device, so even the ResNet-152 models are summarised in a second without
allocating their weights.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch

from refinenet_edu.nn.config import RefineNetConfig
from refinenet_edu.nn.encoders import STRIDES
from refinenet_edu.nn.model import RefineNet

__all__ = ["BlockSummary", "ModelSummary", "count_parameters", "count_flops", "summarize"]


def count_parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def count_flops(model: torch.nn.Module, input_size: tuple[int, int], batch: int = 1, device: str | None = None) -> int:
    """FLOPs of one forward pass (a multiply-add counts as 2), eval mode.

    The input is made on ``device`` (default: where the model's parameters are; a model built on the ``meta`` device is
    counted without any arithmetic).
    """
    if device is None:
        device = next(model.parameters()).device
    return _counted_forward(model, torch.zeros(batch, 3, *input_size, device=device))[1]


def _counted_forward(model: torch.nn.Module, x: torch.Tensor, **kwargs) -> tuple:
    """``model(x, **kwargs)`` in eval mode without gradients (the model's mode is restored), and its FLOPs."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        out = model(x, **kwargs)
    model.train(was_training)
    return out, int(counter.get_total_flops())


@dataclass
class BlockSummary:
    name: str
    inputs: list[str]  # e.g. "1/32 x2048 (ResNet stage 4)"
    fusion_width: int
    output: str  # e.g. "1/32 x512"
    parameters: int


@dataclass
class ModelSummary:
    config: dict
    input_size: tuple[int, int]
    parameters: int
    encoder_parameters: int
    decoder_parameters: int
    blocks: list[BlockSummary] = field(default_factory=list)
    classifier_parameters: int = 0
    output_shape: tuple[int, ...] = ()
    scores_1_4_shape: tuple[int, ...] = ()
    flops: int = 0

    def table(self) -> str:
        c = self.config
        lines = [
            f"RefineNet  preset={c.get('preset')}  backbone={c['backbone']}  cascade={c['cascade']}  "
            f"classes={c['num_classes']}",
            f"  widths={tuple(c['widths'])}  crp_blocks={c['crp_blocks']}  output_rcus={c['output_rcus']}  "
            f"kernel={c['kernel_size']}",
            "",
            f"{'block':<12} {'input paths (stride x channels)':<48} {'width':>6} {'output':>12} {'parameters':>13}",
        ]
        for b in self.blocks:
            lines.append(f"{b.name:<12} {', '.join(b.inputs):<48} {b.fusion_width:>6} {b.output:>12} {b.parameters:>13,}")
        lines += [
            f"{'classifier':<12} {'':<48} {'':>6} {'':>12} {self.classifier_parameters:>13,}",
            "",
            f"encoder parameters: {self.encoder_parameters:>13,}",
            f"decoder parameters: {self.decoder_parameters:>13,}",
            f"total parameters:   {self.parameters:>13,}",
            f"input:  1x3x{self.input_size[0]}x{self.input_size[1]}",
            f"scores at 1/4: {'x'.join(map(str, self.scores_1_4_shape))}",
            f"output: {'x'.join(map(str, self.output_shape))}",
            f"FLOPs (forward, 1 image): {self.flops / 1e9:,.2f} G",
        ]
        return "\n".join(lines)

    def as_dict(self) -> dict:
        return asdict(self)


def summarize(model_or_config: RefineNet | RefineNetConfig, input_size: tuple[int, int] = (512, 512)) -> ModelSummary:
    """Describe a model (or build one on the meta device from a config)."""
    if isinstance(model_or_config, RefineNetConfig):
        with torch.device("meta"):
            model = RefineNet(model_or_config)
        device = "meta"
    else:
        model = model_or_config
        device = next(model.parameters()).device.type
    cfg = model.config
    h, w = input_size
    out, flops = _counted_forward(model, torch.zeros(1, 3, h, w, device=device), return_intermediates=True)

    enc = sum(count_parameters(e) for e in model.encoders)
    total = count_parameters(model)
    blocks: list[BlockSummary] = []
    prev_name = None
    for name, paths in zip(model.block_names, model.block_paths):
        block = model.blocks[name]
        inputs = [] if prev_name is None else [f"{prev_name} x{block.in_channels[0]}"]
        channels = block.in_channels[1:] if prev_name else block.in_channels
        for (scale, stage), c in zip(paths, channels):
            tag = f"@x{cfg.scales[scale]:g}" if cfg.two_scale else ""
            inputs.append(f"1/{STRIDES[stage - 1]}{tag} x{c}")
        y = out["blocks"][name]
        stride = h / y.shape[-2]
        blocks.append(BlockSummary(name, inputs, block.out_channels, f"1/{stride:.3g} x{y.shape[1]}", count_parameters(block)))
        prev_name = name
    return ModelSummary(
        config=cfg.to_dict(),
        input_size=(h, w),
        parameters=total,
        encoder_parameters=enc,
        decoder_parameters=total - enc,
        blocks=blocks,
        classifier_parameters=count_parameters(model.classifier),
        output_shape=tuple(out["out"].shape),
        scores_1_4_shape=tuple(out["scores_1_4"].shape),
        flops=flops,
    )
