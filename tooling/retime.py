"""``./course retime``: measure the inference times of a finished ablation results set again, on this machine.

``refinenet-edu ablate`` times the variants on the machine that trained them; the shipped sets ``results/ablation``,
``ablation-60ep`` and ``ablation-pretrained`` also hold times measured afterwards on the course's 2-core CPU (their
READMEs say how). :func:`retime` builds every variant of a results folder with the budget recorded there (preset,
model options, crop size, number of classes), times it with :func:`refinenet_edu.experiments.runner.time_inference`,
the timing ``ablate`` uses (the fastest of ``repeats`` predictions of one image, after 5 warm-up), and stores the time
under this device's name: an earlier measurement on the same device is replaced, those of other devices are kept.
The results file gains a provenance entry marked ``"retime": true``.
"""

from __future__ import annotations

import os
import time

from refinenet_edu.experiments.results import AblationResults
from refinenet_edu.experiments.runner import new_invocation, time_variant
from refinenet_edu.experiments.variants import parse_variant

__all__ = ["retime"]


def retime(out: str | os.PathLike, *, device: str = "auto", precision: str = "auto", repeats: int = 30,
           argv: list[str] | None = None, log=print) -> AblationResults:
    """Time every variant of the results in ``out`` on ``device`` and save them there (module docstring)."""
    results = AblationResults.load(out)
    started = time.perf_counter()
    invocation = {**new_invocation(argv, device), "retime": True}
    results.add_invocation(invocation)
    budget = results.data.get("budget", {})
    preset = budget.get("preset", "course")
    size = int(budget.get("train", {}).get("crop_size", 128))
    overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in budget.get("model_overrides", {}).items()}
    num_classes = int(results.data.get("dataset", {}).get("num_classes") or len(results.class_names))
    for name in results.variant_names():
        entry = results.variants.setdefault(name, parse_variant(name).as_dict())
        time_variant(parse_variant(name), entry, preset, num_classes, overrides, size, device, precision, log, repeats)
    invocation["wall_seconds"] = round(time.perf_counter() - started, 1)
    results.save(out)
    return results
