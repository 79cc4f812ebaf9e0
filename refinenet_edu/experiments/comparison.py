"""Comparing the variants of an ablation: plain functions over a results file, no widgets.

:func:`summarize` gives a metric's mean, standard deviation and values across seeds, per variant; :func:`compare`
asks whether variant A beats B by more than the seed spread, and what a t-test (Welch's, or paired by seed) says;
:func:`holm` corrects a family of such tests and :func:`seeds_needed` sizes one; :func:`findings` checks the paper's
two claims; :func:`without_diverged` leaves out runs whose training loss blew up, by one stated rule. The dashboard and
the figures (:mod:`refinenet_edu.viz`) are built on these. Runs trained "now" from the dashboard carry their own group
name (:func:`~refinenet_edu.experiments.results.add_live_run`), so they are never averaged with the shipped runs.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any, Sequence

from refinenet_edu.engine.divergence import DIVERGED_FACTOR, first_loss_jump

__all__ = ["Stat", "Comparison", "run_group", "groups", "metric_names", "metric_label", "metric_value", "summarize",
           "compare", "TestResult", "holm", "seeds_needed", "findings", "format_table", "diverged", "without_diverged"]

#: Classes whose only cue is the wide context around them (data/README.md).
CONTEXT_CLASSES = ("boat", "car")
#: Thin and small structures, which need the high-resolution paths.
THIN_CLASSES = ("wire", "dot")


def _t_quantile(level: float, df: float) -> float:
    """How many standard errors either side of an estimate a two-sided ``level`` t-interval reaches."""
    from scipy import stats as st

    return float(st.t.ppf(0.5 + level / 2, df))


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

    def interval(self, level: float = 0.95) -> tuple[float, float]:
        """A ``level`` confidence interval of the mean (Student's t with n - 1 degrees of freedom; NaN for one run).

        It treats the seeds as a random sample of training runs: with 3 seeds the half-width is 4.30 standard errors at
        95 %, not 1.96.
        """
        if self.n < 2:
            return (math.nan, math.nan)
        half = _t_quantile(level, self.n - 1) * self.std / math.sqrt(self.n)
        return (self.mean - half, self.mean + half)


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
    def paired(self) -> bool:
        """Whether both variants ran the same seeds, so that their runs pair up seed by seed."""
        sa, sb = self.stat_a.seeds, self.stat_b.seeds
        return bool(sa) and len(sa) == self.stat_a.n and len(sb) == self.stat_b.n and sorted(sa) == sorted(sb) \
            and len(set(sa)) == len(sa)

    def test(self, *, paired: bool = False, level: float = 0.95) -> "TestResult":
        """A two-sided t-test of "no difference" and a ``level`` confidence interval of the difference.

        By default Welch's test, which assumes nothing about how the seeds of the two variants relate: one seed draws
        different initial weights for two different architectures. ``paired=True`` pairs the runs seed by seed (both
        variants must have run the same seeds); that is justified only where a seed makes the two runs alike (the same
        batch order and augmentation, a shared pretrained encoder), and with 3 seeds it has 2 degrees of freedom.
        """
        from scipy import stats as st

        na, nb, diff = self.stat_a.n, self.stat_b.n, self.difference
        name = "paired t" if paired else "Welch t"
        if paired:
            if not self.paired:
                raise ValueError(f"{self.a} and {self.b}: a paired test needs the same seeds in both")
            b = dict(zip(self.stat_b.seeds, self.stat_b.values))
            d = [va - b[seed] for seed, va in zip(self.stat_a.seeds, self.stat_a.values)]
            se, df = (statistics.stdev(d) / math.sqrt(na) if na > 1 else math.nan), na - 1
        elif na < 2 or nb < 2:
            se = df = math.nan
        else:
            va, vb = self.stat_a.std**2 / na, self.stat_b.std**2 / nb
            se = math.sqrt(va + vb)
            df = (va + vb) ** 2 / (va**2 / (na - 1) + vb**2 / (nb - 1)) if se > 0 else na + nb - 2
        if math.isnan(se):  # one run: no interval
            return TestResult(diff, math.nan, math.nan, math.nan, df, name, level)
        if se == 0:
            return TestResult(diff, diff, diff, 1.0 if diff == 0 else 0.0, df, name, level)
        half = _t_quantile(level, df) * se
        return TestResult(diff, diff - half, diff + half, float(2 * st.t.sf(abs(diff) / se, df)), df, name, level)

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

    Compare each adjusted value with the level (0.05) as if it were the only test: with 20 comparisons, one p of 0.03 is
    no longer a finding.
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

    ``std`` is the seed-to-seed standard deviation of one variant (or, with ``paired=True``, of the per-seed
    differences). Computed with the noncentral t distribution, so it is exact for normal seed noise, not a normal
    approximation.
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


def run_group(run: dict) -> str:
    """The name runs are grouped (averaged) under: the variant, or a live run's own group."""
    return run.get("group") or run["variant"]


def groups(results) -> list[str]:
    """The groups that have runs, in order: the results' variants, then live runs."""
    present = {run_group(r) for r in results.runs}
    names = dict.fromkeys([*results.variant_names(), *(run_group(r) for r in results.runs)])
    return [n for n in names if n in present]


def diverged(run: dict, factor: float = DIVERGED_FACTOR) -> int | None:
    """The first epoch at which ``run``'s training loss blew up (over ``factor`` times its lowest so far, or not
    finite), else None: a failure of the run, not a measurement of its variant. The rule is training's own
    (:mod:`refinenet_edu.engine.divergence`, which says why 10x)."""
    jump = first_loss_jump(run.get("history", []), factor)
    return None if jump is None else jump.epoch


def without_diverged(results, factor: float = DIVERGED_FACTOR):
    """A copy of ``results`` without the runs that :func:`diverged`, and a list of ``(group, seed, epoch)`` left out."""
    import copy

    epochs = [diverged(r, factor) for r in results.runs]
    left_out = [(run_group(r), r.get("seed"), e) for r, e in zip(results.runs, epochs) if e is not None]
    kept = copy.copy(results)
    kept.data = {**results.data, "runs": [r for r, e in zip(results.runs, epochs) if e is None]}
    return kept, left_out


def metric_names(results) -> list[str]:
    """Every metric the results hold, e.g. ``miou``, ``iou/boat``, ``boundary_miou/2``, ``params``."""
    names = ["miou", "pixel_accuracy", "mean_class_accuracy"]
    names += [f"iou/{c}" for c in results.class_names]
    bands = sorted({int(k) for r in results.runs for k in r.get("boundary_miou", {})})
    names += [f"boundary_miou/{k}" for k in bands] + [f"boundary_accuracy/{k}" for k in bands]
    names += ["context_iou", "thin_iou"] if set(CONTEXT_CLASSES) <= set(results.class_names) else []
    names += ["params", "flops", "train_seconds"]
    names += [f"inference_ms/{d}" for d in results.inference_devices()]
    return names


#: Each metric's names: (the label of figures and sentences, the short header of tables; fractions in %). The metrics
#: of one class, band or device (``iou/boat``, ``boundary_miou/2``) put what follows the slash in place of ``{}``.
_NAMES = {
    "miou": ("mIoU", "mIoU %"),
    "pixel_accuracy": ("pixel accuracy", "pixel acc %"),
    "mean_class_accuracy": ("mean class accuracy", "class acc %"),
    "params": ("parameters", "params"),
    "flops": ("FLOPs (one forward pass)", "FLOPs"),
    "train_seconds": ("training time (s)", "train s"),
    "context_iou": ("mean IoU of boat and car (context)", "boat/car IoU %"),
    "thin_iou": ("mean IoU of wire and dot (thin)", "wire/dot IoU %"),
    "iou": ("IoU of {}", "{} IoU %"),
    "boundary_miou": ("boundary mIoU (within {} px)", "bnd mIoU {}px %"),
    "boundary_accuracy": ("boundary accuracy (within {} px)", "bnd acc {}px %"),
    "inference_ms": ("inference ms/image ({})", "ms/img {}"),
}


def metric_label(metric: str, *, short: bool = False) -> str:
    """A readable name for a metric key; ``short``: the column header of :func:`format_table`."""
    kind, _, arg = metric.partition("/")
    if kind not in _NAMES:
        return metric
    if kind == "inference_ms" and short:  # "NVIDIA H100 80GB HBM3" -> "H100", "CPU (x86_64, 2 threads)" -> "CPU"
        words = arg.split()
        arg = words[1] if len(words) > 1 and words[0] == "NVIDIA" else words[0] if words else ""
    return _NAMES[kind][short].format(arg)


def is_fraction(metric: str) -> bool:
    """Metrics in [0, 1], shown as percentages."""
    return metric not in ("params", "flops", "train_seconds") and not metric.startswith("inference_ms")


def metric_value(results, run: dict, metric: str) -> float:
    """The value of ``metric`` for one run (NaN when missing)."""
    kind, _, arg = metric.partition("/")
    costs = results.variants.get(run_group(run)) or results.variants.get(run["variant"], {})
    value: Any
    if kind in ("iou", "boundary_miou", "boundary_accuracy"):
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
        seeds, values = zip(*pairs)
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        out[name] = Stat(statistics.fmean(values), std, len(values), values, () if None in seeds else seeds)
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

    4-cascaded vs single (mIoU, boundary mIoU at 2 px, thin classes); chained residual pooling on (4 blocks) vs off (0)
    on mIoU and on the context classes (boat, car).
    """
    claims = [
        ("4-cascaded-crp4", "single-crp4", "miou"),
        ("4-cascaded-crp4", "single-crp4", "boundary_miou/2"),
        ("4-cascaded-crp4", "single-crp4", "thin_iou"),
        ("4-cascaded-crp4", "4-cascaded-crp0", "miou"),
        ("4-cascaded-crp4", "4-cascaded-crp0", "context_iou"),
    ]
    have, metrics = set(groups(results)), set(metric_names(results))
    return [compare(results, a, b, m) for a, b, m in claims if a in have and b in have and m in metrics]


def _fmt(stat: Stat | None, metric: str) -> str:
    if stat is None:
        return "-"
    if metric in ("params", "flops"):
        return f"{stat.mean / 1e6:.2f} M" if metric == "params" else f"{stat.mean / 1e9:.2f} G"
    scale = 100 if is_fraction(metric) else 1
    spread = stat.n > 1 and not metric.startswith("inference_ms/")  # one measurement per variant, no seed spread
    return f"{scale * stat.mean:.1f}" + (f" ± {scale * stat.std:.1f}" if spread else "")


def format_table(
    results,
    metrics: Sequence[str] = ("miou", "boundary_miou/2", "context_iou", "thin_iou", "params"),
    variants: Sequence[str] | None = None,
) -> str:
    """A text table: one row per variant, mean ± std across seeds (fractions in %, one decimal)."""
    names = list(variants) if variants is not None else groups(results)
    stats = {m: summarize(results, m, names) for m in metrics}
    header = ["variant", "seeds"] + [metric_label(m, short=True) for m in metrics]
    rows = []
    for name in names:
        n = max((stats[m][name].n for m in metrics if name in stats[m]), default=0)
        rows.append([name, str(n)] + [_fmt(stats[m].get(name), m) for m in metrics])
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    line = lambda cells: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])

