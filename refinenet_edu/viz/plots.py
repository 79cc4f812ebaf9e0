"""Figures for the course: training curves (live and stored), samples, the ablation's charts, and the stored
diagrams of RefineNet's parts."""

from __future__ import annotations

import io
import math
from typing import Sequence

import numpy as np

from refinenet_edu.datasets.info import DatasetInfo, sample_ids
from refinenet_edu.datasets.palette import colorize
from refinenet_edu.datasets.transforms import to_uint8_image
from refinenet_edu.experiments.comparison import groups, is_fraction, metric_label, summarize
from refinenet_edu.resources import resource

__all__ = ["plot_history", "LiveTrainingPlot", "class_legend", "show_samples", "plot_bars", "plot_tradeoff",
           "plot_per_class", "plot_boundary", "plot_predictions", "figure_png", "new_figure", "show_figure"]


def plot_history(history: Sequence[dict], ax_loss=None, ax_miou=None, label: str | None = None):
    """Training loss and validation mIoU against the epoch, on two axes."""
    import matplotlib.pyplot as plt

    if ax_loss is None or ax_miou is None:
        fig, (ax_loss, ax_miou) = plt.subplots(1, 2, figsize=(9, 3.2))
    else:
        fig = ax_loss.figure
    epochs = [h["epoch"] for h in history]
    ax_loss.plot(epochs, [h["loss"] for h in history], marker=".", label=label)
    ax_loss.set(xlabel="epoch", ylabel="training loss", title="loss")
    scored = [(h["epoch"], h["miou"]) for h in history if h.get("miou") is not None]
    if scored:
        ax_miou.plot(*zip(*scored), marker=".", label=label)
    ax_miou.set(xlabel="epoch", ylabel="validation mIoU", title="mIoU", ylim=(0, 1))
    for ax in (ax_loss, ax_miou):
        ax.grid(alpha=0.3)
    if label:
        ax_miou.legend()
    fig.tight_layout()
    return fig


class LiveTrainingPlot:
    """Redraws :func:`plot_history` in place in a notebook after every epoch: pass it to the training loop,
    ``train(..., on_epoch=LiveTrainingPlot())``, which calls it with each epoch's record."""

    def __init__(self) -> None:
        from IPython.display import display

        self.history: list[dict] = []
        self._handle = display(display_id=True)  # None outside IPython: nothing is shown

    def __call__(self, record: dict) -> None:
        import matplotlib.pyplot as plt

        self.history.append(record)
        fig = plot_history(self.history)
        if self._handle is not None:
            self._handle.update(fig)
        plt.close(fig)


def class_legend(target, class_names: Sequence[str], palette: Sequence[Sequence[int]], *, fontsize: float = 10,
                 **legend_options):
    """A legend of the classes' colours (one patch per class) on ``target``, a matplotlib figure or axes.

    ``legend_options`` go to ``legend()`` (``loc``, ``ncol``, ...). Returns the legend.
    """
    from matplotlib.patches import Patch

    handles = [Patch(color=np.asarray(c) / 255, label=name) for name, c in zip(class_names, palette)]
    return target.legend(handles=handles, fontsize=fontsize, frameon=False, **legend_options)


def show_samples(dataset, n: int = 6, *, figsize_per_sample: float = 2.2, fontsize: float = 8):
    """A matplotlib figure: the first ``n`` samples' images above their masks overlaid in colour (60% opacity).

    Float images are assumed normalised with ImageNet statistics and are denormalised. ``fontsize`` (points) sets
    the titles and the legend; at 80 dpi 12 points are 13 pixels. Returns the figure (call ``plt.close(fig)`` when
    done outside notebooks).
    """
    import matplotlib.pyplot as plt

    n = min(n, len(dataset))
    info, ids = DatasetInfo.of(dataset), sample_ids(dataset)
    fig, axes = plt.subplots(2, n, figsize=(figsize_per_sample * n, figsize_per_sample * 2 + 0.6), squeeze=False)
    for i in range(n):
        image, mask = dataset[i]
        rgb = to_uint8_image(image).permute(1, 2, 0).numpy()
        overlay = rgb * 0.4 + colorize(mask, info.palette, info.ignore_index) * 0.6
        axes[0, i].imshow(rgb)
        axes[1, i].imshow(overlay.round().astype(np.uint8))
        axes[0, i].set_title(str(ids[i] if ids is not None else f"#{i}"), fontsize=fontsize)
        for ax in axes[:, i]:
            ax.set_axis_off()
    class_legend(fig, info.class_names, info.palette, fontsize=fontsize, loc="lower center",
                 ncol=min(len(info.class_names), 7))
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


# ---------------------------------------------------------------------------------------------------- the ablation
def new_figure(width: float, height: float):
    """A matplotlib figure at the course's 80 dpi, outside pyplot: no global figure state, nothing shown twice."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=80)


def _axes(ax, figsize):
    if ax is not None:
        return ax.figure, ax
    fig = new_figure(*figsize)
    return fig, fig.add_subplot()


def _finished(fig, ax, title: str, grid_axis: str = "both"):
    ax.set_title(title, fontsize=9)
    ax.grid(axis=grid_axis, alpha=0.3)
    fig.tight_layout()
    return fig


def _scaled(metric: str, x: float) -> float:
    return 100 * x if is_fraction(metric) else x


def plot_bars(results, variants: Sequence[str] | None = None, metric: str = "miou", ax=None):
    """Bars of the mean across seeds with error bars of one standard deviation, and every seed as a dot."""
    fig, ax = _axes(ax, (7, 3.6))
    stats = summarize(results, metric, variants)
    names = list(stats)
    means = [_scaled(metric, stats[n].mean) for n in names]
    errs = [_scaled(metric, stats[n].std) for n in names]
    live = [bool(results.variants.get(n, {}).get("live")) for n in names]
    colors = ["#c44e52" if is_live else "#4c72b0" for is_live in live]
    ax.bar(range(len(names)), means, yerr=errs, capsize=4, color=colors, alpha=0.85)
    for i, n in enumerate(names):
        vals = [_scaled(metric, v) for v in stats[n].values]
        ax.scatter([i] * len(vals), vals, color="black", s=10, zorder=3)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=25, ha="right", fontsize=8)
    unit = " (%)" if is_fraction(metric) else ""
    ax.set_ylabel(metric_label(metric) + unit)
    if means and is_fraction(metric):
        # The axis fits the shipped runs: a run trained now with a smaller budget must not squash the
        # 1-2 point differences between them. A bar below the axis gets its value written at the bottom.
        scaled = [(m, e) for (m, e), is_live in zip(zip(means, errs), live) if not is_live] or list(zip(means, errs))
        lo = min(m - e for m, e in scaled)
        hi = max(m + e for m, e in scaled)
        pad = max(2.0, 0.15 * (hi - lo))
        bottom, top = max(0.0, lo - pad), min(100.0, hi + pad)
        ax.set_ylim(bottom, top)
        for i, m in enumerate(means):
            if m < bottom:
                ax.annotate(f"{m:.1f} (below the axis)", (i, bottom), xytext=(0, 4), textcoords="offset points",
                            ha="center", fontsize=7, color="#c44e52")
    return _finished(fig, ax, f"{metric_label(metric)}: mean ± std over seeds (dots: single seeds)", "y")


def plot_tradeoff(results, variants: Sequence[str] | None = None, metric: str = "miou", x: str = "params", ax=None):
    """``metric`` (mean ± std) against a cost: ``params``, ``flops`` or ``inference_ms/<device>``."""
    fig, ax = _axes(ax, (5.5, 3.6))
    ys = summarize(results, metric, variants)
    xs = summarize(results, x, list(ys))
    points = []
    for name in ys:
        if name not in xs:
            continue
        xv = xs[name].mean / (1e6 if x == "params" else 1e9 if x == "flops" else 1)
        line = ax.errorbar(xv, _scaled(metric, ys[name].mean), yerr=_scaled(metric, ys[name].std), fmt="o", capsize=3)
        points.append((name, xv, _scaled(metric, ys[name].mean), line[0].get_color()))
    ax.margins(x=0.3)  # room for the names of the rightmost points
    _name_points(ax, points)
    xlabel = {"params": "parameters (M)", "flops": "GFLOPs (one forward pass)"}.get(x, metric_label(x))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(metric_label(metric) + (" (%)" if is_fraction(metric) else ""))
    return _finished(fig, ax, f"{metric_label(metric)} against {xlabel}")


def _name_points(ax, points, gap: float = 0.07) -> None:
    """Write each point's name to its right; a name that would cover another moves up, joined by a thin line.

    ``points``: ``(name, x, y, colour)`` in data coordinates. Positions are worked out in axes fractions.
    """
    ax.autoscale_view()  # the limits the points will be drawn with
    to_axes = ax.transData + ax.transAxes.inverted()
    placed: list[tuple[float, float]] = []
    for name, x, y, colour in sorted(points, key=lambda p: p[2]):
        px, py = to_axes.transform((x, y))
        ly = py
        for qx, qy in sorted(placed, key=lambda q: q[1]):
            if abs(qx - px) < 0.35 and abs(qy - ly) < gap:
                ly = qy + gap
        placed.append((px, ly))
        ax.annotate(name, (x, y), xytext=(px + 0.02, ly), textcoords="axes fraction", fontsize=7, va="center",
                    color=colour, arrowprops={"arrowstyle": "-", "lw": 0.5, "color": colour} if ly != py else None)


def plot_per_class(results, variants: Sequence[str] | None = None, ax=None):
    """Per-class IoU (mean ± std over seeds), grouped bars: one group per class, one bar per variant."""
    fig, ax = _axes(ax, (8, 3.6))
    names = list(variants) if variants is not None else groups(results)
    classes = results.class_names
    width = 0.8 / max(1, len(names))
    for j, name in enumerate(names):
        means, errs = [], []
        for c in classes:
            s = summarize(results, f"iou/{c}", [name]).get(name)
            means.append(100 * s.mean if s else math.nan)
            errs.append(100 * s.std if s else 0.0)
        pos = [i + (j - (len(names) - 1) / 2) * width for i in range(len(classes))]
        ax.bar(pos, means, width, yerr=errs, capsize=2, label=name)
    ax.set_xticks(range(len(classes)))
    ax.set_xticklabels(classes)
    ax.set_ylabel("IoU (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=9, ncol=2)
    return _finished(fig, ax, "per-class IoU, mean ± std over seeds", "y")


def plot_boundary(results, variants: Sequence[str] | None = None, kind: str = "boundary_miou", ax=None):
    """Boundary (trimap) mIoU or accuracy against the band width, mean ± std over seeds, one line per variant."""
    fig, ax = _axes(ax, (5.5, 3.4))
    names = list(variants) if variants is not None else groups(results)
    bands = sorted({int(k) for r in results.runs for k in r.get(kind, {})})
    for name in names:
        stats = [summarize(results, f"{kind}/{k}", [name]).get(name) for k in bands]
        xs = [k for k, st in zip(bands, stats) if st]
        if not xs:
            continue
        ax.errorbar(xs, [100 * st.mean for st in stats if st], yerr=[100 * st.std for st in stats if st],
                    marker="o", capsize=3, label=name)
    ax.set_xscale("log", base=2)
    ax.set_xticks(bands)
    ax.set_xticklabels([str(b) for b in bands])
    ax.set_xlabel("band: pixels within k px of a label boundary")
    ax.set_ylabel(("boundary mIoU" if kind == "boundary_miou" else "boundary accuracy") + " (%)")
    ax.legend(fontsize=9)
    return _finished(fig, ax, "accuracy near boundaries, mean ± std over seeds")


def plot_predictions(image, mask, predictions: dict, palette, class_names=None):
    """The image, its ground truth and each variant's prediction side by side.

    ``image``: normalised float ``[3, H, W]`` (as the datasets yield it) or
    uint8; ``mask``: ``[H, W]``; ``predictions``: ``{name: [H, W] mask}``
    (``None`` for a variant without stored predictions).
    """
    panels = [("image", to_uint8_image(image).permute(1, 2, 0).numpy()), ("ground truth", colorize(np.asarray(mask), palette))]
    for name, pred in predictions.items():
        panels.append((name, None if pred is None else colorize(np.asarray(pred), palette)))
    fig = new_figure(2.1 * len(panels), 2.6)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (title, arr) in zip(axes, panels):
        if arr is None:
            ax.text(0.5, 0.5, "no stored\npredictions", ha="center", va="center", fontsize=8)
        else:
            ax.imshow(arr, interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    if class_names:
        class_legend(fig, class_names, palette, fontsize=9, loc="lower center", ncol=len(class_names))
    fig.subplots_adjust(left=0.01, right=0.99, top=0.80, bottom=0.12, wspace=0.05)
    return fig


def figure_png(fig) -> bytes:
    """PNG bytes of a matplotlib figure at its own resolution; then the figure is released."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi="figure")
    plt.close(fig)
    return buffer.getvalue()


def show_figure(name: str):
    """One of the course's diagrams of RefineNet's parts, as an image that Jupyter shows: ``"rcu"`` (the Residual
    Conv Unit, the paper's Fig. 3(b)), ``"fusion"`` (Fig. 3(c)), ``"crp"`` (chained residual pooling, Fig. 3(d)),
    ``"refinenet_block"`` (Fig. 3(a)) or ``"cascades"`` (Fig. 2(c) and Fig. 7).

    The diagrams are PNG files of the course, ``notebooks/figures/<name>.png`` (a checkout's, or the copy a wheel
    carries), drawn with matplotlib by the maintainers' ``./course figures``.
    """
    from IPython.display import Image

    return Image(filename=resource("notebooks", "figures", f"{name}.png"))
