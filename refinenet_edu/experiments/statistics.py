"""Comparing the variants of an ablation: plain functions, no widgets.

:mod:`refinenet_edu.ablation` writes a results file; these functions read it
and answer the questions the course asks (the dashboard in
:mod:`refinenet_edu.viz.dashboard` is a thin layer over them):

* :func:`summarize` - mean, standard deviation and values across seeds of one
  metric, per variant (``"miou"``, ``"iou/boat"``, ``"boundary_miou/2"``,
  ``"params"``, ``"inference_ms/<device>"``, ... see :func:`metric_names`);
* :func:`compare` - is variant A better than B by more than the seed spread,
  and what do a confidence interval and a t-test (Welch's, or paired by seed)
  say about the difference? :func:`holm` corrects a family of such tests,
  :func:`seeds_needed` says how many seeds a difference of a given size needs;
* :func:`findings` - the paper's two claims, checked on these results;
* :func:`format_table` - a text table of mean +- std;
* :func:`plot_bars`, :func:`plot_tradeoff`, :func:`plot_per_class`,
  :func:`plot_boundary`, :func:`plot_predictions` - the figures; :func:`figure_png` turns one into PNG bytes.

Runs trained "now" (from the dashboard, with a smaller budget) are added with
:func:`add_live_run` under their own group name, so they are never averaged
with the shipped runs.
"""

from __future__ import annotations

import copy
import io
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from refinenet_edu.resources import resource

__all__ = [
    "Stat",
    "Comparison",
    "load_results",
    "run_group",
    "groups",
    "metric_names",
    "metric_label",
    "metric_value",
    "summarize",
    "compare",
    "TestResult",
    "holm",
    "seeds_needed",
    "findings",
    "format_table",
    "add_live_run",
    "load_predictions",
    "plot_bars",
    "plot_tradeoff",
    "plot_per_class",
    "plot_boundary",
    "plot_predictions",
    "figure_png",
]

#: Classes whose only cue is the wide context around them (data/README.md).
CONTEXT_CLASSES = ("boat", "car")
#: Thin and small structures, which need the high-resolution paths.
THIN_CLASSES = ("wire", "dot")


def load_results(path: str | Path | None = None):
    """The :class:`~refinenet_edu.ablation.AblationResults` in ``path`` (a folder or results.json;
    default: the shipped ``results/ablation``)."""
    from refinenet_edu.ablation import AblationResults

    return AblationResults.load(path if path is not None else resource("results", "ablation"))


@dataclass(frozen=True)
class Stat:
    """A metric across the seeds of one variant."""

    mean: float
    std: float  # sample standard deviation (n - 1); 0 for a single run
    n: int
    values: tuple[float, ...]
    seeds: tuple = ()  # the seed of each value, where the runs record it

    @property
    def low(self) -> float:
        return min(self.values) if self.values else math.nan

    @property
    def high(self) -> float:
        return max(self.values) if self.values else math.nan


@dataclass(frozen=True)
class Comparison:
    """``a`` against ``b`` on one metric."""

    metric: str
    a: str
    b: str
    stat_a: Stat
    stat_b: Stat

    @property
    def difference(self) -> float:
        return self.stat_a.mean - self.stat_b.mean

    @property
    def spread(self) -> float:
        """The seed spread the difference must beat: std(a) + std(b)."""
        return self.stat_a.std + self.stat_b.std

    @property
    def beyond_spread(self) -> bool:
        """Mean +- std intervals do not overlap (and both variants have >= 2 seeds)."""
        return self.stat_a.n >= 2 and self.stat_b.n >= 2 and abs(self.difference) > self.spread

    @property
    def ranges_overlap(self) -> bool:
        """Whether any seed of the lower variant beats a seed of the higher one."""
        return not (self.stat_a.low > self.stat_b.high or self.stat_b.low > self.stat_a.high)

    @property
    def welch_t(self) -> float:
        va, vb = self.stat_a.std**2 / max(1, self.stat_a.n), self.stat_b.std**2 / max(1, self.stat_b.n)
        se = math.sqrt(va + vb)
        return self.difference / se if se > 0 else math.copysign(math.inf, self.difference) if self.difference else 0.0

    @property
    def paired(self) -> bool:
        """Whether both variants ran the same seeds, so that their runs pair up seed by seed."""
        sa, sb = self.stat_a.seeds, self.stat_b.seeds
        return bool(sa) and len(sa) == self.stat_a.n and len(sb) == self.stat_b.n and sorted(sa) == sorted(sb) \
            and len(set(sa)) == len(sa)

    def _paired_differences(self) -> list[float]:
        b = dict(zip(self.stat_b.seeds, self.stat_b.values))
        return [va - b[seed] for seed, va in zip(self.stat_a.seeds, self.stat_a.values)]

    def test(self, *, paired: bool = False, level: float = 0.95) -> "TestResult":
        """A two-sided t-test of "no difference" and a ``level`` confidence interval of the difference.

        By default Welch's test, which assumes nothing about how the seeds of
        the two variants relate: one seed draws different initial weights for
        two different architectures. ``paired=True`` pairs the runs seed by
        seed (both variants must have run the same seeds); that is justified
        only where a seed makes the two runs alike (the same batch order and
        augmentation, a shared pretrained encoder), and with 3 seeds it has 2
        degrees of freedom.
        """
        from scipy import stats as st

        if paired:
            if not self.paired:
                raise ValueError(f"{self.a} and {self.b}: a paired test needs the same seeds in both")
            d = self._paired_differences()
            n = len(d)
            if n < 2:
                return TestResult(self.difference, math.nan, math.nan, math.nan, n - 1, "paired t", level)
            sd = statistics.stdev(d)
            se, df = sd / math.sqrt(n), n - 1
            name = "paired t"
        else:
            na, nb = self.stat_a.n, self.stat_b.n
            if na < 2 or nb < 2:
                return TestResult(self.difference, math.nan, math.nan, math.nan, math.nan, "Welch t", level)
            va, vb = self.stat_a.std**2 / na, self.stat_b.std**2 / nb
            se = math.sqrt(va + vb)
            df = (va + vb) ** 2 / (va**2 / (na - 1) + vb**2 / (nb - 1)) if se > 0 else na + nb - 2
            name = "Welch t"
        diff = self.difference
        if se == 0:
            p = 1.0 if diff == 0 else 0.0
            return TestResult(diff, diff, diff, p, df, name, level)
        half = float(st.t.ppf(0.5 + level / 2, df)) * se
        p = float(2 * st.t.sf(abs(diff) / se, df))
        return TestResult(diff, diff - half, diff + half, p, df, name, level)

    def sentence(self, scale: float = 100.0, unit: str = " points") -> str:
        verdict = (
            "more than the seed spread" if self.beyond_spread
            else "within the seed spread" if self.stat_a.n >= 2 and self.stat_b.n >= 2
            else "too few seeds to tell"
        )
        return (
            f"{self.a} - {self.b} on {metric_label(self.metric)}: {self.difference * scale:+.1f}{unit} "
            f"(seed spread {self.spread * scale:.1f}; {verdict}; seed ranges "
            f"{'overlap' if self.ranges_overlap else 'do not overlap'})"
        )


@dataclass(frozen=True)
class TestResult:
    """A t-test of one comparison: the difference a - b, its confidence interval and p-value."""

    difference: float
    low: float
    high: float
    p: float
    df: float
    test: str  # "Welch t" or "paired t"
    level: float = 0.95

    @property
    def excludes_zero(self) -> bool:
        """Whether the confidence interval leaves out "no difference"."""
        return self.low > 0 or self.high < 0


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment of a family of p-values (controls the family-wise error rate).

    Compare each adjusted value with the level (0.05) as if it were the only
    test: with 20 comparisons, one p of 0.03 is no longer a finding.
    """
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted = [1.0] * len(p_values)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def seeds_needed(difference: float, std: float, *, alpha: float = 0.05, power: float = 0.8,
                 paired: bool = False, max_seeds: int = 1000) -> int:
    """Seeds per variant for a two-sided t-test at ``alpha`` to detect ``difference`` with ``power``.

    ``std`` is the seed-to-seed standard deviation of one variant (or, with
    ``paired=True``, of the per-seed differences). Computed with the
    noncentral t distribution, so it is exact for normal seed noise, not a
    normal approximation.
    """
    from scipy import stats as st

    if std <= 0 or difference == 0:
        raise ValueError("seeds_needed: std must be > 0 and difference non-zero")
    for n in range(2, max_seeds + 1):
        df = n - 1 if paired else 2 * n - 2
        se = std / math.sqrt(n) if paired else std * math.sqrt(2 / n)
        crit = st.t.ppf(1 - alpha / 2, df)
        nc = abs(difference) / se
        achieved = st.nct.sf(crit, df, nc) + st.nct.cdf(-crit, df, nc)
        if achieved >= power:
            return n
    return max_seeds


# --------------------------------------------------------------------------
# runs, groups, metrics
# --------------------------------------------------------------------------


def run_group(run: dict) -> str:
    """The name runs are grouped (averaged) under: the variant, or a live run's own group."""
    return run.get("group") or run["variant"]


def groups(results) -> list[str]:
    """Group names in order: the results' variants, then live runs."""
    names = list(results.variant_names())
    for r in results.runs:
        g = run_group(r)
        if g not in names:
            names.append(g)
    return [n for n in names if any(run_group(r) == n for r in results.runs)]


def metric_names(results) -> list[str]:
    """Every metric the results hold, e.g. ``miou``, ``iou/boat``, ``boundary_miou/2``, ``params``."""
    names = ["miou", "pixel_accuracy", "mean_class_accuracy"]
    names += [f"iou/{c}" for c in results.class_names]
    bands = sorted({int(k) for r in results.runs for k in r.get("boundary_miou", {})})
    names += [f"boundary_miou/{k}" for k in bands] + [f"boundary_accuracy/{k}" for k in bands]
    names += ["context_iou", "thin_iou"] if set(CONTEXT_CLASSES) <= set(results.class_names) else []
    names += ["params", "flops", "train_seconds"]
    devices: list[str] = []
    for v in results.variants.values():
        for d in v.get("inference_ms", {}):
            if d not in devices:
                devices.append(d)
    names += [f"inference_ms/{d}" for d in devices]
    return names


_LABELS = {
    "miou": "mIoU",
    "pixel_accuracy": "pixel accuracy",
    "mean_class_accuracy": "mean class accuracy",
    "params": "parameters",
    "flops": "FLOPs (one forward pass)",
    "train_seconds": "training time (s)",
    "context_iou": "mean IoU of boat and car (context)",
    "thin_iou": "mean IoU of wire and dot (thin)",
}


def metric_label(metric: str) -> str:
    """A readable name for a metric key."""
    if metric in _LABELS:
        return _LABELS[metric]
    kind, _, arg = metric.partition("/")
    if kind == "iou":
        return f"IoU of {arg}"
    if kind == "boundary_miou":
        return f"boundary mIoU (within {arg} px)"
    if kind == "boundary_accuracy":
        return f"boundary accuracy (within {arg} px)"
    if kind == "inference_ms":
        return f"inference ms/image ({arg})"
    return metric


def is_fraction(metric: str) -> bool:
    """Metrics in [0, 1], shown as percentages."""
    return metric not in ("params", "flops", "train_seconds") and not metric.startswith("inference_ms")


def metric_value(results, run: dict, metric: str) -> float:
    """The value of ``metric`` for one run (NaN when missing)."""
    kind, _, arg = metric.partition("/")
    costs = results.variants.get(run_group(run)) or results.variants.get(run["variant"], {})
    value: Any
    if kind == "iou":
        value = run.get("iou", {}).get(arg)
    elif kind in ("boundary_miou", "boundary_accuracy"):
        value = run.get(kind, {}).get(arg)
    elif kind in ("context_iou", "thin_iou"):
        cls = CONTEXT_CLASSES if kind == "context_iou" else THIN_CLASSES
        vals = [run.get("iou", {}).get(c) for c in cls]
        value = None if any(v is None for v in vals) else sum(vals) / len(vals)
    elif kind in ("params", "flops"):
        value = costs.get(kind, run.get(kind))
    elif kind == "inference_ms":
        value = costs.get("inference_ms", {}).get(arg, run.get("inference_ms", {}).get(arg))
    else:
        value = run.get(metric)
    return math.nan if value is None else float(value)


def summarize(results, metric: str = "miou", variants: Sequence[str] | None = None) -> dict[str, Stat]:
    """Mean, sample std and values of ``metric`` across seeds, per group (variant)."""
    names = list(variants) if variants is not None else groups(results)
    out: dict[str, Stat] = {}
    for name in names:
        pairs = [(r.get("seed"), metric_value(results, r, metric)) for r in results.runs if run_group(r) == name]
        pairs = [(seed, v) for seed, v in pairs if not math.isnan(v)]
        if not pairs:
            continue
        values = [v for _, v in pairs]
        seeds = tuple(seed for seed, _ in pairs) if all(seed is not None for seed, _ in pairs) else ()
        mean = statistics.fmean(values)
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        out[name] = Stat(mean, std, len(values), tuple(values), seeds)
    return out


def compare(results, a: str, b: str, metric: str = "miou") -> Comparison:
    """``a`` against ``b`` on ``metric``; ``KeyError`` names a variant without runs."""
    stats = summarize(results, metric, [a, b])
    for name in (a, b):
        if name not in stats:
            raise KeyError(f"no runs of {name!r} with {metric!r} in these results (have: {groups(results)})")
    return Comparison(metric, a, b, stats[a], stats[b])


def findings(results) -> list[Comparison]:
    """The paper's claims, as far as these results hold the variants they need.

    4-cascaded vs single (mIoU, boundary mIoU at 2 px, thin classes); chained
    residual pooling on (4 blocks) vs off (0) on mIoU and on the context
    classes (boat, car).
    """
    have = set(groups(results))
    claims = [
        ("4-cascaded-crp4", "single-crp4", "miou"),
        ("4-cascaded-crp4", "single-crp4", "boundary_miou/2"),
        ("4-cascaded-crp4", "single-crp4", "thin_iou"),
        ("4-cascaded-crp4", "4-cascaded-crp0", "miou"),
        ("4-cascaded-crp4", "4-cascaded-crp0", "context_iou"),
    ]
    out = []
    metrics = set(metric_names(results))
    for a, b, m in claims:
        if a in have and b in have and m in metrics:
            out.append(compare(results, a, b, m))
    return out


def _fmt(stat: Stat | None, metric: str, digits: int) -> str:
    if stat is None:
        return "-"
    if is_fraction(metric):
        text = f"{100 * stat.mean:.{digits}f}"
        return text + (f" ± {100 * stat.std:.{digits}f}" if stat.n > 1 else "")
    if metric in ("params", "flops"):
        return f"{stat.mean / 1e6:.2f} M" if metric == "params" else f"{stat.mean / 1e9:.2f} G"
    if metric.startswith("inference_ms/"):  # one measurement per variant, no seed spread
        return f"{stat.mean:.{digits}f}"
    return f"{stat.mean:.{digits}f}" + (f" ± {stat.std:.{digits}f}" if stat.n > 1 else "")


def format_table(
    results,
    metrics: Sequence[str] = ("miou", "boundary_miou/2", "context_iou", "thin_iou", "params"),
    variants: Sequence[str] | None = None,
    digits: int = 1,
) -> str:
    """A text table: one row per variant, mean ± std across seeds (fractions in %)."""
    names = list(variants) if variants is not None else groups(results)
    stats = {m: summarize(results, m, names) for m in metrics}
    header = ["variant", "seeds"] + [_short(m) for m in metrics]
    rows = []
    for name in names:
        n = max((stats[m][name].n for m in metrics if name in stats[m]), default=0)
        rows.append([name, str(n)] + [_fmt(stats[m].get(name), m, digits) for m in metrics])
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    line = lambda cells: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


def _short(metric: str) -> str:
    kind, _, arg = metric.partition("/")
    short = {"miou": "mIoU %", "pixel_accuracy": "pixel acc %", "mean_class_accuracy": "class acc %",
             "context_iou": "boat/car IoU %", "thin_iou": "wire/dot IoU %", "params": "params",
             "flops": "FLOPs", "train_seconds": "train s"}
    if metric in short:
        return short[metric]
    if kind == "iou":
        return f"{arg} IoU %"
    if kind == "boundary_miou":
        return f"bnd mIoU {arg}px %"
    if kind == "boundary_accuracy":
        return f"bnd acc {arg}px %"
    if kind == "inference_ms":
        words = arg.split()
        return "ms/img " + (words[1] if len(words) > 1 and words[0] == "NVIDIA" else words[0] if words else "")
    return metric


# --------------------------------------------------------------------------
# live runs
# --------------------------------------------------------------------------


def add_live_run(results, record: dict, *, costs: dict | None = None, predictions=None, group: str | None = None):
    """A copy of ``results`` with one more run (e.g. trained now, from the dashboard).

    The run is grouped under ``group`` (default: ``"<variant> (now, N epochs)"``)
    so that it is not averaged with runs of another budget; ``costs`` (params,
    flops, inference_ms) and ``predictions`` (uint8 ``[N, H, W]`` masks of the
    validation images, or a list of ``[H, W]`` masks when their sizes differ) are attached to that group. Returns ``(results, group)``.
    """
    new = copy.deepcopy(results)
    group = group or f"{record['variant']} (now, {record.get('epochs', '?')} ep)"
    base = group
    k = 2
    while group in groups(new):
        group = f"{base} #{k}"
        k += 1
    rec = dict(record, group=group, live=True)
    new.data["runs"].append(rec)
    entry = dict(new.variants.get(record["variant"], {}))
    entry.pop("inference_ms", None)
    entry.update(costs or {})
    entry["live"] = True
    new.data["variants"][group] = entry
    if predictions is not None:
        new.live_predictions = {**getattr(results, "live_predictions", {}), group: predictions}
    return new, group


def load_predictions(results, group: str, seed: int | None = None, folder: str | Path | None = None):
    """Predicted validation masks (uint8 ``[N, H, W]``, or a list of ``[H, W]`` masks when the
    images differ in size) of ``group`` and the image ids, or ``None``.

    Live runs keep theirs in memory; shipped runs in ``predictions/*.npz``
    beside the results file (the first seed that has one, unless ``seed``).
    """
    import numpy as np

    live = getattr(results, "live_predictions", {})
    if group in live:
        return live[group], None
    folder = Path(folder) if folder is not None else Path(getattr(results, "path", "results.json")).parent
    runs = sorted((r for r in results.runs if run_group(r) == group and r.get("predictions")), key=lambda r: r["seed"])
    if seed is not None:
        runs = [r for r in runs if int(r["seed"]) == seed]
    for r in runs:
        path = folder / r["predictions"]
        if path.is_file():
            from refinenet_edu.ablation import unpack_masks

            with np.load(path) as data:
                return unpack_masks(data), [str(i) for i in data["ids"]]
    return None


# --------------------------------------------------------------------------
# figures
# --------------------------------------------------------------------------


def _axes(ax, figsize):
    from matplotlib.figure import Figure

    if ax is not None:
        return ax.figure, ax
    fig = Figure(figsize=figsize, dpi=80)  # not pyplot: no global figure state, nothing shown twice
    return fig, fig.add_subplot()


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
    ax.set_title(f"{metric_label(metric)}: mean ± std over seeds (dots: single seeds)", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def plot_tradeoff(results, variants: Sequence[str] | None = None, metric: str = "miou", x: str = "params", ax=None):
    """``metric`` (mean ± std) against a cost: ``params``, ``flops`` or ``inference_ms/<device>``."""
    fig, ax = _axes(ax, (5.5, 3.6))
    ys = summarize(results, metric, variants)
    xs = summarize(results, x, list(ys))
    for name in ys:
        if name not in xs:
            continue
        xv = xs[name].mean / (1e6 if x == "params" else 1e9 if x == "flops" else 1)
        ax.errorbar(xv, _scaled(metric, ys[name].mean), yerr=_scaled(metric, ys[name].std), fmt="o", capsize=3)
        ax.annotate(name, (xv, _scaled(metric, ys[name].mean)), fontsize=7, xytext=(4, 3), textcoords="offset points")
    xlabel = {"params": "parameters (M)", "flops": "GFLOPs (one forward pass)"}.get(x, metric_label(x))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(metric_label(metric) + (" (%)" if is_fraction(metric) else ""))
    ax.set_title(f"{metric_label(metric)} against {xlabel}", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


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
    ax.set_title("per-class IoU, mean ± std over seeds", fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


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
    ax.set_title("accuracy near boundaries, mean ± std over seeds", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_predictions(image, mask, predictions: dict, palette, class_names=None, fig=None):
    """The image, its ground truth and each variant's prediction side by side.

    ``image``: normalised float ``[3, H, W]`` (as the datasets yield it) or
    uint8; ``mask``: ``[H, W]``; ``predictions``: ``{name: [H, W] mask}``
    (``None`` for a variant without stored predictions).
    """
    import numpy as np
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    from refinenet_edu.datasets.palette import colorize
    from refinenet_edu.datasets.transforms import to_uint8_image

    panels = [("image", to_uint8_image(image).permute(1, 2, 0).numpy()), ("ground truth", colorize(np.asarray(mask), palette))]
    for name, pred in predictions.items():
        panels.append((name, None if pred is None else colorize(np.asarray(pred), palette)))
    if fig is None:
        fig = Figure(figsize=(2.1 * len(panels), 2.6), dpi=80)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (title, arr) in zip(axes, panels):
        if arr is None:
            ax.text(0.5, 0.5, "no stored\npredictions", ha="center", va="center", fontsize=8)
        else:
            ax.imshow(arr, interpolation="nearest")
        ax.set_title(title, fontsize=7)
        ax.axis("off")
    if class_names:
        handles = [Patch(color=np.asarray(c) / 255, label=n) for n, c in zip(class_names, palette)]
        fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=7, frameon=False)
    fig.subplots_adjust(left=0.01, right=0.99, top=0.80, bottom=0.12, wspace=0.05)
    return fig


def figure_png(fig) -> bytes:
    """PNG bytes of a matplotlib figure (then the figure is released)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    try:
        import matplotlib.pyplot as plt

        plt.close(fig)
    except Exception:  # pragma: no cover
        pass
    return buf.getvalue()
