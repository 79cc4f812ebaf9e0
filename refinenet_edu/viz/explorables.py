"""Explorables for notebooks 01-05: move a control, watch a RefineNet component respond.

Each explorable has three layers, so that its numbers can be tested without a browser:

1. a pure function that computes what is drawn and returns it as a dict (:func:`rcu_response`,
   :func:`fusion_maps`, :func:`crp_impulse`, :func:`block_stages`, :func:`cascade_readout`); every argument is
   clamped to its range and each clamp is reported in the dict's ``"notes"``, so no value a slider can reach raises;
2. a figure function (``draw_*``) that draws that dict into a new matplotlib figure;
3. thin ipywidgets wiring (``explore_*``) that reads the controls, calls 1 and 2 and shows the figure as a PNG
   with a one-line read-out.

The components are the library's own, with the paper's figures: the RCU is Fig. 3(b), multi-resolution fusion
Fig. 3(c), chained residual pooling Fig. 3(d), the RefineNet block Fig. 3(a) and the 4-cascade Fig. 2(c).
"""

from __future__ import annotations

import base64
import html
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from refinenet_edu.viz.plots import class_legend, figure_png, new_figure

__all__ = [
    "Explorable", "RCU_PATTERNS", "FUSION_MODES", "CRP_CONVS",
    "rcu_response", "fusion_maps", "crp_impulse", "load_course_model", "block_stages", "class_prototypes",
    "cascade_readout", "draw_rcu_response", "draw_fusion_maps", "draw_crp_impulse", "draw_block_stages",
    "draw_cascade_readout", "explore_rcu", "explore_fusion", "explore_crp", "explore_block", "explore_cascade",
]

#: The inputs :func:`rcu_response` can feed an RCU.
RCU_PATTERNS = ("impulse", "negative impulse", "edge")
#: The upsampling modes :func:`fusion_maps` compares (``torch.nn.functional.interpolate``'s names).
FUSION_MODES = ("nearest", "bilinear", "bicubic")
#: The convolutions :func:`crp_impulse` puts between the pools.
CRP_CONVS = ("identity", "3x3 positive")

#: Ranges of the controls (inclusive); values outside are clamped and reported.
RCU_MAX_UNITS = 10
RCU_MAX_SCALE = 4.0
CRP_MAX_BLOCKS = 10
CRP_MAX_POOL = 15
FUSION_STRIDES = (4, 8, 16, 32, 64)


# ---------------------------------------------------------------------------------------------------- helpers
def _clamp(name: str, value: Any, lo: float, hi: float, notes: list[str], *, integer: bool = True):
    """``value`` forced into ``[lo, hi]`` (and to an int if ``integer``); a note says what changed."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = np.nan
    if not np.isfinite(v):
        notes.append(f"{name}={value!r} is not a finite number: using {lo:g}")
        v = lo
    clamped = min(max(v, lo), hi)
    if integer:
        clamped = int(round(clamped))
    if clamped != v:
        notes.append(f"{name}={value!r} is outside {lo:g}..{hi:g}: using {clamped:g}")
    return clamped


def _choice(name: str, value: Any, options: Sequence, notes: list[str]):
    if value in options:
        return value
    notes.append(f"{name}={value!r} is not one of {list(options)}: using {options[0]!r}")
    return options[0]


def _positive_kernel(seed: int, k: int = 3) -> torch.Tensor:
    """A fixed k x k kernel with positive entries summing to 1 (seeded): every ReLU after it stays open."""
    g = torch.Generator().manual_seed(seed)
    kernel = torch.rand(k, k, generator=g, dtype=torch.float64) + 0.5
    return kernel / kernel.sum()


def _support_width(y: torch.Tensor) -> int:
    """Width in pixels of the columns where ``y`` is non-zero (0 for an all-zero map)."""
    cols = (y != 0).any(0).nonzero()
    return 0 if len(cols) == 0 else int(cols.max() - cols.min() + 1)


def _imshow(ax, image, title: str, *, colourbar: bool = False, **kwargs) -> None:
    shown = ax.imshow(image, interpolation="nearest", **kwargs)
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    if colourbar:
        ax.figure.colorbar(shown, ax=ax, fraction=0.046, pad=0.03).ax.tick_params(labelsize=9)


def _readout(text: str, result: dict) -> str:
    """An explorable's read-out line: ``text``, then the notes on clamped values."""
    return " | ".join(filter(None, [text, "; ".join(result["notes"])]))


# ---------------------------------------------------------------------------------------------------- 01: RCU
def rcu_response(num_rcus: int = 1, weight_scale: float = 1.0, pattern: str = "impulse", *, seed: int = 0) -> dict:
    """``num_rcus`` stacked RCUs (Fig. 3(b)) of one channel on a small test image.

    Both convolutions of every unit hold ``weight_scale`` times a fixed positive 3x3 kernel that sums to 1
    (biases 0), so the response is exact arithmetic: outside ``2 * num_rcus`` pixels of the input it is exactly
    0, inside it is positive wherever the input was positive. Returns the input, the output, the residual
    ``output - input``, ``reach`` (how far the residual extends beyond the input, in pixels), ``formula_reach``
    (``2 * num_rcus``: one pixel per 3x3 convolution) and ``gain`` (``|output - input| / |input|``).
    """
    from refinenet_edu import ResidualConvUnit

    notes: list[str] = []
    n = _clamp("num_rcus", num_rcus, 0, RCU_MAX_UNITS, notes)
    scale = _clamp("weight_scale", weight_scale, 0.0, RCU_MAX_SCALE, notes, integer=False)
    pattern = _choice("pattern", pattern, RCU_PATTERNS, notes)
    size = 4 * RCU_MAX_UNITS + 5  # room for the widest response, 1 + 4 * RCU_MAX_UNITS px, and a margin
    x = torch.zeros(1, 1, size, size, dtype=torch.float64)
    c = size // 2
    if pattern == "edge":  # 0 on the left half, 1 on the right half
        x[..., c:] = 1.0
    else:
        x[..., c, c] = -1.0 if pattern == "negative impulse" else 1.0
    units = nn.Sequential(*[ResidualConvUnit(1) for _ in range(n)]).double()
    with torch.no_grad():
        for i, unit in enumerate(units):
            unit.conv1.weight.copy_(scale * _positive_kernel(seed + 2 * i))
            unit.conv1.bias.zero_()
            unit.conv2.weight.copy_(scale * _positive_kernel(seed + 2 * i + 1))
        y = units(x)
    residual = (y - x)[0, 0]
    # each pixel's distance (Chebyshev: diagonal steps count 1) from the input's non-zero pixels
    rows, cols = np.indices((size, size))
    distance = np.maximum(c - cols, 0) if pattern == "edge" else np.maximum(abs(rows - c), abs(cols - c))
    return {
        "num_rcus": n, "weight_scale": scale, "pattern": pattern, "size": size,
        "input": x[0, 0].numpy(), "output": y[0, 0].numpy(), "residual": residual.numpy(),
        "reach": int(distance[residual.numpy() != 0].max(initial=0)), "formula_reach": 2 * n,
        "width": _support_width(y[0, 0]) if pattern != "edge" else None,
        "gain": float(residual.norm() / x.norm()),
        "identity": bool(torch.equal(y, x)),
        "notes": notes,
    }


def _rcu_summary(r: dict) -> str:
    if r["identity"]:
        why = ("there are no units" if r["num_rcus"] == 0 else "the weights are 0" if r["weight_scale"] == 0
               else "the first ReLU zeroes a negative input")
        return f"{r['num_rcus']} RCU(s): output == input exactly ({why})"
    width = f", response {r['width']} px wide" if r["width"] is not None else ""
    return (f"{r['num_rcus']} RCU(s), scale {r['weight_scale']:g}: the residual reaches {r['reach']} px beyond the "
            f"input (2 per RCU: {r['formula_reach']}){width}; |RCU(x) - x| / |x| = {r['gain']:.3g}")


def draw_rcu_response(result: dict | None = None):
    """Input, output and residual of :func:`rcu_response` (its default values when ``result`` is None)."""
    r = rcu_response() if result is None else result
    fig = new_figure(10.5, 3.6)
    axes = fig.subplots(1, 3)
    c = r["size"] // 2
    shown = min(c, max(8, 2 * r["num_rcus"] + 4))  # the central part, with a margin around the response
    crop = (slice(c - shown, c + shown + 1),) * 2
    lim = max(float(np.abs(r["input"]).max()), float(np.abs(r["output"]).max()), 1e-12)
    for ax, key, title in zip(axes[:2], ("input", "output"), ("input x", f"output of {r['num_rcus']} RCU(s)")):
        _imshow(ax, r[key][crop], title, colourbar=True, cmap="cividis",
                vmin=-lim if r["pattern"] == "negative impulse" else 0, vmax=lim)
    res = r["residual"][crop]
    rl = max(float(np.abs(res).max()), 1e-12)
    _imshow(axes[2], res, "residual: output - input", colourbar=True, cmap="cividis",
            vmin=0 if res.min() >= 0 else -rl, vmax=rl)
    half = r["reach"]  # dashed: how far the residual reaches, around the crop's centre
    if half and r["pattern"] == "edge":
        axes[2].axvline(shown - half - 0.5, color="white", lw=2, ls="--")
    elif half:
        from matplotlib.patches import Rectangle

        axes[2].add_patch(Rectangle((shown - half - 0.5, shown - half - 0.5), 2 * half + 1, 2 * half + 1,
                                    fill=False, edgecolor="white", lw=2, ls="--"))
    fig.suptitle(_rcu_summary(r), fontsize=10)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------------- 02: fusion
def _edges_quarter(image: torch.Tensor) -> torch.Tensor:
    """Edge strength (Sobel) of the image at 1/4, scaled to a maximum of 1: notebook 02's fine path."""
    grey = F.avg_pool2d(image.mean(0)[None, None], 4, ceil_mode=True)
    sobel = torch.tensor([[1.0, 0, -1], [2, 0, -2], [1, 0, -1]])
    grey = F.pad(grey, (1, 1, 1, 1), mode="replicate")
    gx = F.conv2d(grey, sobel.view(1, 1, 3, 3))
    gy = F.conv2d(grey, sobel.t().reshape(1, 1, 3, 3))
    edges = torch.sqrt(gx**2 + gy**2)
    return edges / edges.amax().clamp(min=1e-12)


def fusion_maps(coarse_stride: int = 16, mode: str = "bilinear", index: int = 8, *, seed: int = 0) -> dict:
    """Multi-resolution fusion (Fig. 3(c)) played by hand on a SynthScenes image, as in notebook 02.

    The coarse path is the exact fraction of water pixels per ``coarse_stride`` cell (the best a
    1/``coarse_stride`` map could know); it is upsampled with ``mode`` to the fine path's resolution (1/4) and
    added to the fine path (the image's edge strength at 1/4), with identity fusion convolutions. Returns the
    maps and two measures of how well the upsampled coarse path alone places the water: ``iou`` of
    ``upsampled > 0.5`` against the water fraction at 1/4 ``> 0.5``, and ``mae``, their mean absolute difference.
    """
    from refinenet_edu.datasets import CLASS_NAMES, render_sample

    notes: list[str] = []
    stride = _clamp("coarse_stride", coarse_stride, FUSION_STRIDES[0], FUSION_STRIDES[-1], notes)
    if stride not in FUSION_STRIDES:
        snapped = min(FUSION_STRIDES, key=lambda s: abs(s - stride))
        notes.append(f"coarse_stride={coarse_stride!r} is not one of {list(FUSION_STRIDES)}: using {snapped}")
        stride = snapped
    mode = _choice("mode", mode, FUSION_MODES, notes)
    index = _clamp("index", index, 0, 10_000, notes)
    sample = render_sample(seed, "train", index)  # 128 x 128, as in SynthScenes
    image = torch.from_numpy(sample.image).permute(2, 0, 1).float() / 255
    water = (torch.from_numpy(sample.mask).long() == CLASS_NAMES.index("water")).float()[None, None]
    h, w = water.shape[-2:]
    coarse = F.adaptive_avg_pool2d(water, (-(-h // stride), -(-w // stride)))
    truth = F.adaptive_avg_pool2d(water, (-(-h // 4), -(-w // 4)))  # water fraction at 1/4
    fine = _edges_quarter(image)
    kwargs = {} if mode == "nearest" else {"align_corners": False}
    up = F.interpolate(coarse, size=fine.shape[-2:], mode=mode, **kwargs)
    fused = up + fine
    pred, target = up[0, 0] > 0.5, truth[0, 0] > 0.5
    union = int((pred | target).sum())
    iou = float((pred & target).sum()) / union if union else 1.0
    return {
        "coarse_stride": stride, "mode": mode, "index": index,
        "image": sample.image, "water": water[0, 0].numpy(), "coarse": coarse[0, 0].numpy(),
        "upsampled": up[0, 0].numpy(), "fine": fine[0, 0].numpy(), "fused": fused[0, 0].numpy(),
        "truth": truth[0, 0].numpy(), "iou": iou, "mae": float((up - truth).abs().mean()),
        "range": (float(up.min()), float(up.max())),
        "notes": notes,
    }


def draw_fusion_maps(result: dict | None = None):
    """The image, the coarse path, its upsampling, the fine path and their sum (default values if None)."""
    r = fusion_maps() if result is None else result
    fig = new_figure(12.5, 3.5)
    axes = fig.subplots(1, 5)
    s = r["coarse_stride"]
    ch, cw = r["coarse"].shape
    _imshow(axes[0], r["image"], f"training image {r['index']}")
    axes[0].contour(r["water"], levels=[0.5], colors="white", linewidths=2)
    panels = [
        (r["coarse"], f"coarse: water at 1/{s} ({cw}x{ch})"),
        (r["upsampled"], f"{r['mode']} upsampling to 1/4"),
        (r["fine"], "fine: edges at 1/4"),
        (r["fused"], "fused = up(coarse) + fine"),
    ]
    for ax, (img, title) in zip(axes[1:], panels):
        _imshow(ax, img, title, cmap="viridis", vmin=0, vmax=2 if img is r["fused"] else 1)
    # the true water outline at 1/4 on the upsampled coarse path: where the 0.5 level should be
    axes[2].contour(r["truth"], levels=[0.5], colors="white", linewidths=2)
    axes[2].contour(r["upsampled"], levels=[0.5], colors="black", linewidths=2, linestyles="--")
    fig.suptitle(f"{r['mode']} from 1/{s}: water IoU {r['iou']:.3f} (upsampled > 0.5 vs true water at 1/4; "
                 f"white: true outline, dashed: 0.5 level), mean |error| {r['mae']:.3f}", fontsize=10)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------------- 03: CRP
def crp_impulse(num_blocks: int = 4, pool_size: int = 5, convs: str = "identity", *, seed: int = 0) -> dict:
    """The library's chained residual pooling (Fig. 3(d)) on a single-pixel input.

    One channel; every block's max-pool is ``pool_size`` x ``pool_size`` (stride 1, 'same' padding; the
    library's CRP uses 5) and its 3x3 convolution is the identity (``convs="identity"``) or a fixed positive
    kernel (``"3x3 positive"``). Returns the response, its measured ``width`` and the formula:
    ``1 + num_blocks * (pool_size - 1)`` with identity convolutions, ``1 + num_blocks * (pool_size + 1)`` when
    each 3x3 convolution adds its 2 pixels. Even pool sizes have no centred 'same' window and are rounded up to
    the next odd size.
    """
    from refinenet_edu import ChainedResidualPooling

    notes: list[str] = []
    n = _clamp("num_blocks", num_blocks, 0, CRP_MAX_BLOCKS, notes)
    p = _clamp("pool_size", pool_size, 1, CRP_MAX_POOL, notes)
    if p % 2 == 0:
        notes.append(f"pool_size={p} is even (no centred window): using {p + 1}")
        p += 1
    convs = _choice("convs", convs, CRP_CONVS, notes)
    per_block = p - 1 + (2 if convs == "3x3 positive" else 0)
    formula = 1 + n * per_block
    size = formula + 20 + (formula + 1) % 2  # odd, with a 10-pixel margin on each side
    crp = ChainedResidualPooling(1, n).double()
    crp.pool = nn.MaxPool2d(p, stride=1, padding=p // 2)  # the window under study; the chain is the library's
    with torch.no_grad():
        for i, conv in enumerate(crp.convs):
            conv.weight.zero_()
            if convs == "identity":
                conv.weight[0, 0, 1, 1] = 1.0
            else:
                conv.weight[0, 0] = _positive_kernel(seed + i)
        x = torch.zeros(1, 1, size, size, dtype=torch.float64)
        x[..., size // 2, size // 2] = 1.0
        y = crp(x)[0, 0]
    return {
        "num_blocks": n, "pool_size": p, "convs": convs, "size": size,
        "response": y.numpy(), "width": _support_width(y), "formula_width": formula,
        "formula": f"1 + {n}·({p} - 1{' + 2' if convs != 'identity' else ''}) = {formula}",
        "centre": float(y[size // 2, size // 2]), "notes": notes,
    }


def draw_crp_impulse(result: dict | None = None):
    """The CRP's impulse response and its profile through the centre (default values if None)."""
    r = crp_impulse() if result is None else result
    y, size = r["response"], r["size"]
    fig = new_figure(10.5, 3.9)
    ax_map, ax_line = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.5]})
    _imshow(ax_map, y, f"CRP output, {r['num_blocks']} blocks, pool {r['pool_size']}x{r['pool_size']}",
            colourbar=True, cmap="viridis", vmin=0)
    xs = np.arange(size) - size // 2
    ax_line.step(xs, y[size // 2], where="mid", color="#21918c", lw=2, label="centre row of the output")
    half = (r["formula_width"] - 1) / 2
    ax_line.axvspan(-half - 0.5, half + 0.5, color="#fde725", alpha=0.35, label=f"formula: {r['formula_width']} px")
    ax_line.set_xlabel("pixels from the impulse", fontsize=10)
    ax_line.set_ylabel("output value", fontsize=10)
    ax_line.tick_params(labelsize=9)
    ax_line.legend(fontsize=10, loc="upper right")
    ax_line.grid(alpha=0.3)
    fig.suptitle(f"measured width {r['width']} px; formula {r['formula']} ({r['convs']} convolutions)", fontsize=10)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------------- shipped model
def load_course_model():
    """``(model, val_set)``: the shipped course model (``data/checkpoints/course-synthscenes.pt``) on the CPU, in
    eval mode, and its validation set (normalised images and masks)."""
    from refinenet_edu.datasets import eval_transforms, load_dataset
    from refinenet_edu.engine.checkpoints import load_model
    from refinenet_edu.resources import resource

    model = load_model(resource("data", "checkpoints", "course-synthscenes.pt"))
    return model, load_dataset("synthscenes", "val", eval_transforms())


def _block_inputs(model, image: torch.Tensor, name: str) -> list[torch.Tensor]:
    """The paths the model passes to block ``name`` for ``image`` (recorded with a forward pre-hook)."""
    seen: list[torch.Tensor] = []
    hook = model.blocks[name].register_forward_pre_hook(lambda m, args: seen.extend(a.detach() for a in args))
    try:
        with torch.inference_mode():
            model(image[None].to(next(model.parameters()).device))
    finally:
        hook.remove()
    return seen


def _pca_rgb(f: torch.Tensor, reference: torch.Tensor) -> np.ndarray:
    """A feature map ``[C, h, w]`` as colours: each pixel's vector projected on the 3 principal directions of
    ``reference`` (a map of the same channels, pixels as samples), scaled so that reference's 1%..99% range
    of each direction spans 0..1."""
    pixels = reference.permute(1, 2, 0).reshape(-1, reference.shape[0]).double()
    mean = pixels.mean(0)
    _, _, v = torch.linalg.svd(pixels - mean, full_matrices=False)
    v = F.pad(v[:3], (0, 0, 0, 3 - len(v[:3])))  # zero rows where the map has fewer than 3 components
    projected = (pixels - mean) @ v.T
    lo, hi = projected.quantile(0.01, 0), projected.quantile(0.99, 0)
    y = (f.permute(1, 2, 0).reshape(-1, f.shape[0]).double() - mean) @ v.T
    return ((y - lo) / (hi - lo).clamp(min=1e-9)).clamp(0, 1).reshape(f.shape[1], f.shape[2], 3).numpy()


# ---------------------------------------------------------------------------------------------------- 04: block
def _path_names(model, name: str) -> list[str]:
    """What enters block ``name``: the previous block's output (not in the first block), then encoder stages."""
    i = model.block_names.index(name)
    names = [] if i == 0 else [f"RefineNet-{model.block_names[i - 1][-1]} output"]
    return names + [f"encoder 1/{2 ** (stage + 1)}" + (" (second scale)" if scale else "")
                    for scale, stage in model.block_paths[i]]


def block_stages(model, dataset, index: int = 0, block: str = "refinenet1",
                 paths_on: Sequence[bool] | None = None) -> dict:
    """What each stage of one RefineNet block (Fig. 3(a)) of ``model`` does to validation image ``index``.

    The block's real inputs are recorded from a forward pass; then its stages run by hand: adaptive
    convolutions per path, fusion, CRP, output convolutions. ``paths_on[i] = False`` switches path ``i`` off:
    its term in the fusion's sum becomes 0 (the fusion convolutions have no bias). Each stage's map is returned
    with its colours (3 principal components of the same stage with all paths on, so colours compare between
    settings) and ``change``, the relative L2 change ``|y - y_all| / |y_all|`` against all paths on.
    ``crp_share`` is ``|CRP(x) - relu(x)| / |CRP(x)|``, the part of CRP's output that the pooled context adds;
    ``output_share`` the same for the output RCUs.
    """
    notes: list[str] = []
    name = _choice("block", block, list(model.blocks), notes)
    index = _clamp("index", index, 0, len(dataset) - 1, notes)
    image, mask = dataset[index]
    inputs = _block_inputs(model, image, name)
    names = _path_names(model, name)
    b = model.blocks[name]
    on = [True] * len(inputs) if paths_on is None else [bool(v) for v in list(paths_on)[: len(inputs)]]
    on += [True] * (len(inputs) - len(on))
    if not any(on):
        notes.append("a block needs at least one path: switched the last one back on")
        on[-1] = True

    def run(switch) -> dict[str, torch.Tensor]:  # stage -> its map
        with torch.inference_mode():
            adapted = [layer(p) for layer, p in zip(b.adaptive, inputs)]
            adapted = [a if keep else torch.zeros_like(a) for a, keep in zip(adapted, switch)]
            fused = b.fusion(*adapted)
            crp = b.crp(fused)
            out = b.output(crp)
        labels = [f"adaptive: {n}" for n in names] + ["fusion", "CRP", "output RCUs"]
        return {label: y[0].float().cpu() for label, y in zip(labels, [*adapted, fused, crp, out])}

    reference, maps = run([True] * len(inputs)), run(on)
    with torch.inference_mode():
        model_out = b(*inputs)[0].float().cpu()
    rows = [{"stage": label, "shape": tuple(y.shape), "map": y, "rgb": _pca_rgb(y, reference[label]),
             "change": float((y - reference[label]).norm() / reference[label].norm().clamp(min=1e-12))}
            for label, y in maps.items()]
    fused, crp, out = maps["fusion"], maps["CRP"], maps["output RCUs"]
    return {
        "block": name, "index": index, "paths_on": on, "path_names": names,
        "image": image, "mask": mask, "stages": rows,
        "crp_share": float((crp - F.relu(fused)).norm() / crp.norm().clamp(min=1e-12)),
        "output_share": float((out - crp).norm() / out.norm().clamp(min=1e-12)),
        "matches_model": bool(torch.allclose(reference["output RCUs"], model_out, atol=1e-5)),
        "single_path": len(inputs) == 1,
        "notes": notes,
    }


def draw_block_stages(result: dict):
    """The image and each stage's map of :func:`block_stages` as PCA colours."""
    from refinenet_edu.datasets import denormalize

    r = result
    stages = r["stages"]
    fig = new_figure(2.3 * (len(stages) + 1), 3.3)
    axes = fig.subplots(1, len(stages) + 1)
    _imshow(axes[0], denormalize(r["image"]).permute(1, 2, 0).numpy(), f"validation image {r['index']}")
    for ax, row in zip(axes[1:], stages):
        _imshow(ax, row["rgb"], f"{row['stage']}\n{row['shape'][2]}x{row['shape'][1]}, "
                f"change {row['change']:.0%}")
    off = [n for n, keep in zip(r["path_names"], r["paths_on"]) if not keep]
    fig.suptitle(f"{r['block']}: " + (f"path off: {', '.join(off)}; " if off else "all paths on; ")
                 + f"CRP adds {r['crp_share']:.0%} of its output, the output RCUs {r['output_share']:.0%} "
                 "(colours: 3 principal components of each stage with all paths on)", fontsize=10)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------------- 05: cascade
def class_prototypes(model, dataset, num_images: int = 32, *, batch_size: int = 16) -> dict[str, torch.Tensor]:
    """Per block, the mean unit-length feature vector of every class over ``num_images`` images of ``dataset``.

    The nearest-prototype read-out of :func:`cascade_readout` compares each pixel's feature vector with these
    (cosine similarity). Trains nothing. Returns ``{block name: [num_classes, C]}``.
    """
    from torch.utils.data import DataLoader, Subset

    num_classes = model.config.num_classes
    device = next(model.parameters()).device
    subset = Subset(dataset, range(min(max(1, int(num_images)), len(dataset))))
    sums: dict[str, torch.Tensor] = {}
    counts = torch.zeros(num_classes, dtype=torch.float64)
    with torch.inference_mode():
        for images, masks in DataLoader(subset, batch_size=batch_size):
            blocks = model(images.to(device), return_intermediates=True)["blocks"]
            valid = masks != 255
            onehot = F.one_hot(masks.clamp(max=num_classes - 1), num_classes).permute(0, 3, 1, 2).double()
            onehot = onehot * valid[:, None]
            counts += onehot.sum((0, 2, 3))
            for name, f in blocks.items():
                u = _unit_features(f.cpu(), masks.shape[-2:])
                sums[name] = sums.get(name, 0) + torch.einsum("nchw,nkhw->kc", u, onehot)
    return {name: F.normalize(s / counts.clamp(min=1)[:, None], dim=1) for name, s in sums.items()}


def _unit_features(f: torch.Tensor, size) -> torch.Tensor:
    """Block features upsampled (bilinear) to ``size``, each pixel's vector scaled to unit length."""
    return F.normalize(F.interpolate(f.double(), size=tuple(size), mode="bilinear", align_corners=False), dim=1)


def _ceiling_map(mask: torch.Tensor, stride: int, num_classes: int) -> torch.Tensor:
    """The best map at 1/stride: each cell's majority label, blown up again (ignored pixels left out)."""
    valid = mask != 255
    onehot = F.one_hot(mask.clamp(max=num_classes - 1), num_classes).permute(2, 0, 1).float() * valid
    pooled = F.avg_pool2d(onehot[None], stride, ceil_mode=True)[0].argmax(0)
    return pooled.repeat_interleave(stride, 0).repeat_interleave(stride, 1)[: mask.shape[0], : mask.shape[1]]


def cascade_readout(model, dataset, prototypes: dict[str, torch.Tensor], index: int = 0,
                    stage: str = "refinenet4") -> dict:
    """A nearest-prototype read-out of one block of the 4-cascade (Fig. 2(c)) on validation image ``index``.

    Every pixel gets the class whose prototype (:func:`class_prototypes`) is most similar to the block's feature
    vector there. It is a measuring instrument, not the network's prediction (only RefineNet-1's output feeds
    the classifier). Returned beside it: the network's own prediction and the ``ceiling``, the best any map at
    the block's resolution could do (each cell's majority label). ``readout_accuracy`` / ``ceiling_accuracy`` /
    ``prediction_accuracy``: their pixel accuracy on this image.
    """
    notes: list[str] = []
    names = [n for n in model.blocks if n in prototypes]
    stage = _choice("stage", stage, names, notes)
    index = _clamp("index", index, 0, len(dataset) - 1, notes)
    image, mask = dataset[index]
    with torch.inference_mode():
        out = model(image[None].to(next(model.parameters()).device), return_intermediates=True)
    f = out["blocks"][stage].cpu()
    similarity = torch.einsum("nchw,kc->nkhw", _unit_features(f, mask.shape[-2:]), prototypes[stage])
    readout = similarity.argmax(1)[0]
    prediction = out["out"].argmax(1)[0].cpu()
    stride = max(1, round(mask.shape[-1] / f.shape[-1]))
    ceiling = _ceiling_map(mask, stride, model.config.num_classes)
    valid = mask != 255

    def accuracy(p):
        return float((p[valid] == mask[valid]).double().mean()) if bool(valid.any()) else float("nan")

    return {
        "stage": stage, "index": index, "stride": stride, "feature_size": tuple(f.shape[-2:]),
        "image": image, "mask": mask, "readout": readout, "ceiling": ceiling, "prediction": prediction,
        "readout_accuracy": accuracy(readout), "ceiling_accuracy": accuracy(ceiling),
        "prediction_accuracy": accuracy(prediction),
        "classes_in_readout": sorted(int(c) for c in readout.unique()),
        "notes": notes,
    }


def draw_cascade_readout(result: dict, palette, class_names):
    """Image, labels, the ceiling, the read-out and the prediction of :func:`cascade_readout`."""
    from refinenet_edu.datasets import colorize, denormalize

    r = result
    fig = new_figure(12.5, 3.7)
    axes = fig.subplots(1, 5)
    h, w = r["feature_size"]
    _imshow(axes[0], denormalize(r["image"]).permute(1, 2, 0).numpy(), f"validation image {r['index']}")
    _imshow(axes[1], colorize(r["mask"], palette), "ground truth")
    _imshow(axes[2], colorize(r["ceiling"], palette),
            f"best map at 1/{r['stride']}\n(pixel acc. {r['ceiling_accuracy']:.2f})")
    _imshow(axes[3], colorize(r["readout"], palette),
            f"{r['stage']} ({w}x{h}) read-out\n(pixel acc. {r['readout_accuracy']:.2f})")
    _imshow(axes[4], colorize(r["prediction"], palette),
            f"network's prediction\n(pixel acc. {r['prediction_accuracy']:.2f})")
    class_legend(fig, class_names, palette, fontsize=10, loc="lower center", ncol=len(class_names))
    fig.suptitle("nearest-prototype read-out of one block (a measuring instrument, not the network's prediction)",
                 fontsize=10)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


# ---------------------------------------------------------------------------------------------------- widgets
class Explorable:
    """Controls, a figure and a read-out line, wired to one compute + draw function.

    ``update(**values)`` must return ``(figure, readout_text)``. Every change of a control redraws; an error in
    the callback is shown in the read-out (with its last traceback line), never swallowed. Displayed in a
    notebook, the output carries the widget view and a PNG of the current figure: a stored notebook keeps the PNG
    (``./course execute`` strips the widget view), so a reader who does not run the cell sees it.
    """

    def __init__(self, controls: dict[str, Any], update: Callable[..., tuple[Any, str]], *, name: str):
        import ipywidgets as w

        self.name = name
        self.controls = controls
        self._update = update
        self.image = w.Image(format="png", layout=w.Layout(max_width="100%"))
        self.readout = w.HTML()
        self.readout.add_class("explorable-readout")
        self.widget = w.VBox([w.HBox(list(controls.values()), layout=w.Layout(flex_flow="row wrap")),
                              self.image, self.readout])
        self.widget.add_class("refinenet-explorable")
        self.widget.add_class(f"explorable-{name}")
        for control in controls.values():
            control.observe(self.refresh, names="value")
        self.text = ""
        self.png = b""
        self.refresh()

    def refresh(self, change=None) -> None:
        try:
            fig, text = self._update(**{key: control.value for key, control in self.controls.items()})
            self.png = figure_png(fig)
            self.text = text
            self.image.value = self.png
            self.readout.value = f"<span>{html.escape(text)}</span>"
        except Exception as err:  # shown, not swallowed: the student sees what failed
            last = traceback.format_exception_only(type(err), err)[-1].strip()
            self.text = f"error in the {self.name} explorable: {last}"
            self.readout.value = f"<span style='color:#b00'>{html.escape(self.text)}</span>"

    def _repr_mimebundle_(self, include=None, exclude=None):
        bundle = dict(self.widget._repr_mimebundle_(include=include, exclude=exclude) or {})
        if self.png:
            bundle["image/png"] = base64.b64encode(self.png).decode("ascii")
        bundle["text/plain"] = (f"[{self.name} explorable; the figure shows its default values: run the cell to "
                                f"move the controls] {self.text}")
        return bundle


def _slider(description: str, value, lo, hi, step=1, *, floating: bool = False):
    import ipywidgets as w

    cls = w.FloatSlider if floating else w.IntSlider
    return cls(value=value, min=lo, max=hi, step=step, description=description, continuous_update=False,
               style={"description_width": "initial"})


def _dropdown(description: str, options, value):
    import ipywidgets as w

    return w.Dropdown(options=list(options), value=value, description=description,
                      style={"description_width": "initial"})


def explore_rcu() -> Explorable:
    """Notebook 01: stacked RCUs on an impulse, a negative impulse or an edge."""
    def update(num_rcus, weight_scale, pattern):
        r = rcu_response(num_rcus, weight_scale, pattern)
        return draw_rcu_response(r), _readout(_rcu_summary(r), r)

    return Explorable({
        "num_rcus": _slider("RCUs stacked", 1, 0, RCU_MAX_UNITS),
        "weight_scale": _slider("weight scale", 1.0, 0.0, RCU_MAX_SCALE, 0.05, floating=True),
        "pattern": _dropdown("input", RCU_PATTERNS, "impulse"),
    }, update, name="rcu")


def explore_fusion() -> Explorable:
    """Notebook 02: the coarse path's resolution and upsampling mode -> the fused map."""
    def update(coarse_stride, mode, index):
        r = fusion_maps(coarse_stride, mode, index)
        lo, hi = r["range"]
        text = (f"{mode} from 1/{r['coarse_stride']}: water IoU {r['iou']:.3f}, mean |error| {r['mae']:.3f}, "
                f"upsampled values in [{lo:.2f}, {hi:.2f}]")
        return draw_fusion_maps(r), _readout(text, r)

    return Explorable({
        "coarse_stride": _dropdown("coarse path at 1/", FUSION_STRIDES, 16),
        "mode": _dropdown("upsampling", FUSION_MODES, "bilinear"),
        "index": _slider("training image", 8, 0, 199),
    }, update, name="fusion")


def explore_crp() -> Explorable:
    """Notebook 03: CRP blocks and pool size -> receptive field on an impulse."""
    def update(num_blocks, pool_size, convs):
        r = crp_impulse(num_blocks, pool_size, convs)
        text = f"measured width {r['width']} px, formula {r['formula']}, centre value {r['centre']:.3g}"
        return draw_crp_impulse(r), _readout(text, r)

    return Explorable({
        "num_blocks": _slider("CRP blocks", 4, 0, CRP_MAX_BLOCKS),
        "pool_size": _slider("pool size", 5, 1, CRP_MAX_POOL, 2),
        "convs": _dropdown("convolutions", CRP_CONVS, "identity"),
    }, update, name="crp")


def explore_block() -> Explorable:
    """Notebook 04: one block of the shipped model, its paths on/off -> each stage's map."""
    import ipywidgets as w

    model, dataset = load_course_model()
    names = list(model.blocks)
    switches = [w.Checkbox(value=True, description=f"path {i}", indent=False) for i in range(2)]

    def update(block, index, path_0, path_1):
        r = block_stages(model, dataset, index, block, [path_0, path_1])
        for i, s in enumerate(switches):  # label the switches with the block's real paths
            s.description = r["path_names"][i] if i < len(r["path_names"]) else "(no such path)"
            s.disabled = i >= len(r["path_names"])
        rows = ", ".join(f"{row['stage']} {row['change']:.0%}" for row in r["stages"])
        text = (f"{r['block']}, image {r['index']}: change against all paths on: {rows}; CRP adds "
                f"{r['crp_share']:.0%}, output RCUs {r['output_share']:.0%}"
                + ("; one path: fusion passes it through" if r["single_path"] else ""))
        return draw_block_stages(r), _readout(text, r)

    return Explorable({
        "block": _dropdown("block", names, names[-1]),
        "index": _slider("validation image", 0, 0, len(dataset) - 1),
        "path_0": switches[0], "path_1": switches[1],
    }, update, name="block")


def explore_cascade(model, dataset, prototypes: dict[str, torch.Tensor]) -> Explorable:
    """Notebook 05: RefineNet-4 ... RefineNet-1 of ``model`` (:func:`load_course_model`) on any image of its
    validation set ``dataset``, read out with ``prototypes`` (:func:`class_prototypes`)."""
    names = [n for n in model.blocks if n in prototypes]
    palette, class_names = dataset.palette, dataset.class_names

    def update(stage, index):
        r = cascade_readout(model, dataset, prototypes, index, stage)
        text = (f"{r['stage']} at 1/{r['stride']}: read-out pixel accuracy {r['readout_accuracy']:.3f} "
                f"(best map at 1/{r['stride']}: {r['ceiling_accuracy']:.3f}; network's prediction "
                f"{r['prediction_accuracy']:.3f}); classes in the read-out: "
                + ", ".join(class_names[c] for c in r["classes_in_readout"]))
        return draw_cascade_readout(r, palette, class_names), _readout(text, r)

    return Explorable({
        "stage": _dropdown("block", names, names[0]),
        "index": _slider("validation image", 0, 0, len(dataset) - 1),
    }, update, name="cascade")
