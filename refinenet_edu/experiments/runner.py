"""Running an ablation (``refinenet-edu ablate``): the paper's comparisons, measured on your data.

RefineNet's central claims are comparisons (Lin et al., CVPR 2017, Sec. 4.3 and Tables 2 and 9, on NYUDv2 and
Person-Parts with ResNet-50): a cascade of RefineNet blocks beats one block that takes every path at once, and chained
residual pooling helps. :func:`run_grid` trains a grid of variants of one preset (by default the ``course`` model; names
such as ``single-crp4`` or ``4-cascaded-crp0``, see :mod:`~refinenet_edu.experiments.variants`) for several seeds, each
with the **same training budget**. It records for every run the mIoU, pixel accuracy, the IoU of every class, boundary
(trimap) mIoU and accuracy within :data:`BANDS` px of a label edge, the training wall time, the device and the
precision; and for every variant its parameters, FLOPs (one forward pass at the crop size) and inference time per image
(batch 1) on the device that ran it.

Results go to ``OUT/results.json`` (everything, with provenance: command, commit, device, versions, wall time),
``OUT/results.csv`` (one row per run), ``OUT/summary.csv`` (mean and standard deviation per variant), and, for seed 0 by
default, ``OUT/predictions/<variant>__seed<k>.npz`` (the predicted validation masks) and optionally small float16
checkpoints in ``OUT/checkpoints/``. Results are written after every run; the same command again skips the runs already
in the results file (resume), and refuses to mix in runs trained with another budget. ``refinenet-edu ablate --list``
prints what is planned and what is done.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import statistics
import time
import uuid
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable, Sequence

from refinenet_edu.experiments.results import AblationResults, pack_masks, require_same_budget
from refinenet_edu.engine.divergence import first_loss_jump
from refinenet_edu.experiments.variants import Variant, parse_variant
from refinenet_edu.files import atomic_write_bytes

__all__ = ["BANDS", "RunSpec", "RunsFailed", "budget_for", "dataset_fingerprint", "load_splits", "new_invocation",
           "run_grid", "time_inference", "time_variant", "train_variant", "variant_costs"]


class RunsFailed(RuntimeError):
    """Some runs of a grid failed; the others are saved."""

#: Boundary bands (px) recorded for every run.
BANDS: tuple[int, ...] = (1, 2, 4, 8, 16)


@dataclass
class RunSpec:
    """Everything one training run needs; plain data, so it can go to another process."""

    variant: str
    seed: int
    preset: str = "course"
    data: str = "synthscenes"
    train_config: dict = dataclasses.field(default_factory=dict)
    model_overrides: dict = dataclasses.field(default_factory=dict)
    subset: int | None = None
    out: str | None = None  # the results folder, where predictions / checkpoints go
    save_predictions: bool = False
    save_checkpoint: bool = False
    threads: int | None = None
    progress: bool = False  # progress bars (one run at a time)
    log_epochs: bool = False  # one line per epoch instead (runs side by side, whose bars would mix)
    encoder_weights: str | None = None  # a pretrained encoder state dict every run starts from


class _InMemory:
    """A VOC-layout dataset decoded once and kept in memory; ``transforms`` run per access.

    Decoding 600 JPEGs every epoch costs more than the small course model's training step on a GPU; 750 images of
    128x128 take about 40 MB.
    """

    def __init__(self, base, transforms, indices: Sequence[int]):
        from refinenet_edu.datasets.info import DatasetInfo, sample_ids

        self.transforms = transforms
        self.items = [base[i] for i in indices]  # base has no transforms: (uint8 image, mask)
        self.info = DatasetInfo.of(base)  # what DatasetInfo.of(self) answers
        ids = sample_ids(base)
        self.ids = [ids[i] for i in indices] if ids is not None else list(indices)

    # the attributes every dataset of the package has
    name = property(lambda self: self.info.name)
    class_names = property(lambda self: self.info.class_names)
    palette = property(lambda self: self.info.palette)
    num_classes = property(lambda self: self.info.num_classes)
    ignore_index = property(lambda self: self.info.ignore_index)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        return self.transforms(*self.items[index])

    def read_mask(self, index: int):
        """The stored mask of sample ``index``, without the transforms (what ``class_pixel_histogram`` counts)."""
        return self.items[index][1]


def load_splits(data: str, train_config, subset: int | None = None):
    """Training and validation sets, decoded into memory (``subset``: first N / N//4 images)."""
    from refinenet_edu.datasets import eval_transforms, load_dataset, train_transforms

    train, val = load_dataset(data, "train"), load_dataset(data, "val")
    n_train = min(subset or len(train), len(train))
    n_val = min(max(1, subset // 4) if subset else len(val), len(val))
    tt = train_transforms(train_config.crop_size, scale_range=train_config.scale_range, hflip=train_config.hflip,
                          jitter=train_config.jitter)
    return _InMemory(train, tt, range(n_train)), _InMemory(val, eval_transforms(), range(n_val))


def dataset_fingerprint(data: str) -> dict:
    """Name, generator version and a SHA-256 over the split files, images and masks of ``data``."""
    from refinenet_edu.datasets import load_dataset

    train = load_dataset(data, "train")  # data that cannot be read: refused before anything is written
    val = load_dataset(data, "val")
    meta_file = Path(train.root) / "meta.json"
    meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
    digest = hashlib.sha256()
    for ds in (train, val):
        for path in [*ds.images, *ds.masks]:
            digest.update(path.name.encode())
            digest.update(Path(path).read_bytes())
    return {
        "name": str(data), "generator_version": meta.get("generator_version"), "seed": meta.get("seed"),
        "train_images": len(train), "val_images": len(val), "class_names": list(train.class_names),
        "palette": [list(map(int, c)) for c in train.palette], "num_classes": int(train.num_classes),
        "sha256": digest.hexdigest(),
    }


def budget_for(preset: str = "course", **overrides: Any):
    """The :class:`~refinenet_edu.engine.loop.TrainConfig` of ``preset``'s recipe with ``overrides``."""
    from refinenet_edu.engine.recipes import RECIPES, TrainConfig

    return RECIPES.get(preset, TrainConfig()).replace(**overrides)  # replace checks the values


def _model_config(variant: Variant, preset: str, num_classes: int, model_overrides: dict):
    from refinenet_edu.nn.config import make_config

    return make_config(preset, num_classes=num_classes, **{**model_overrides, **variant.overrides()})


def time_inference(model, input_size: tuple[int, int] = (128, 128), *, device=None, precision: str = "auto",
                   repeats: int = 30) -> dict:
    """Milliseconds per image of one prediction of a random image (batch 1) with ``fast_inference`` (eval, inference
    mode, channels_last, autocast): the fastest of ``repeats`` after 5 warm-up runs, and the median; with the device
    and precision."""
    import torch

    from refinenet_edu.engine.inference import fast_inference
    from refinenet_edu.engine.runtime import describe_device, dtype_name, resolve_device, resolve_precision

    device = resolve_device(device or "auto")
    model.to(device)
    x = torch.randn(1, 3, *input_size, device=device)
    warmup, times = 5, []
    with fast_inference(model, precision=precision) as run:
        for i in range(warmup + repeats):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t0 = time.perf_counter()
            run(x)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if i >= warmup:
                times.append(time.perf_counter() - t0)
    return {
        "ms_per_image": 1000 * min(times),  # the minimum: on a shared machine other processes only ever add time
        "median_ms_per_image": 1000 * statistics.median(times),
        "statistic": f"min of {repeats} after {warmup} warm-up",
        "device": describe_device(device),
        "precision": dtype_name(resolve_precision(precision, device)),
        "batch": 1,
        "input_size": list(input_size),
    }


def variant_costs(variant: Variant | str, *, preset: str = "course", num_classes: int = 7,
                  model_overrides: dict | None = None, input_size: tuple[int, int] = (128, 128)) -> dict:
    """Parameters and FLOPs (one forward pass at ``input_size``) of a variant; built on the meta device."""
    import torch

    from refinenet_edu.nn.model import RefineNet
    from refinenet_edu.nn.cost import count_flops, count_parameters

    variant = parse_variant(variant)
    config = _model_config(variant, preset, num_classes, model_overrides or {})
    with torch.device("meta"):
        model = RefineNet(config)
    return {
        "params": count_parameters(model),
        "flops": count_flops(model, input_size, device="meta"),
        "flops_input": list(input_size),
        "model_config": config.to_dict(),
    }


def train_variant(
    variant: Variant | str,
    seed: int = 0,
    *,
    preset: str = "course",
    data: str = "synthscenes",
    train_config=None,
    model_overrides: dict | None = None,
    subset: int | None = None,
    progress: bool = False,
    datasets=None,
    on_epoch=None,
    encoder_weights: str | os.PathLike | None = None,
):
    """Train one variant with one seed and score it; returns ``(record, model, val_set)``.

    ``train_config``: a :class:`~refinenet_edu.engine.loop.TrainConfig` (default: the preset's recipe).
    ``encoder_weights``: a state-dict file the encoder starts from (e.g. made by ``refinenet-edu pretrain``); the
    decoder always starts from random weights drawn with ``seed``. The model is scored after the last epoch (not the
    best one: the validation set is the test set here) in float32, with boundary bands :data:`BANDS`. ``record`` is the
    JSON-ready row of the results file (inference time not included: see :func:`time_inference`).
    """
    import torch

    from refinenet_edu.datasets.info import DatasetInfo
    from refinenet_edu.datasets.loading import eval_loader
    from refinenet_edu.engine.evaluation import evaluate
    from refinenet_edu.engine.metrics import float_or_none
    from refinenet_edu.nn.model import RefineNet
    from refinenet_edu.nn.cost import count_parameters
    from refinenet_edu.engine.loop import train

    variant = parse_variant(variant)
    cfg = (train_config or budget_for(preset)).replace(seed=seed)
    train_set, val_set = datasets if datasets is not None else load_splits(data, cfg, subset)
    info = DatasetInfo.of(train_set)
    config = _model_config(variant, preset, info.num_classes, model_overrides or {})
    torch.manual_seed(seed)  # the initial weights depend on the seed too
    model = RefineNet(config, weights=os.fspath(encoder_weights) if encoder_weights else None)
    started = time.perf_counter()
    result = train(model, train_set, val_set, cfg, progress=progress, on_epoch=on_epoch)
    train_seconds = time.perf_counter() - started
    ev = evaluate(model, eval_loader(val_set, batch_size=cfg.batch_size), num_classes=info.num_classes, bands=BANDS,
                  progress=False, keep_per_image=False)
    m = ev.metrics
    record = {
        "variant": variant.name, "label": variant.label, "seed": int(seed),
        "miou": float_or_none(m.miou), "pixel_accuracy": float_or_none(m.pixel_accuracy),
        "mean_class_accuracy": float_or_none(m.mean_class_accuracy),
        "iou": {n: float_or_none(v) for n, v in zip(info.class_names, m.iou)},
        "boundary_miou": {str(k): float_or_none(b.miou) for k, b in ev.boundary.items()},
        "boundary_accuracy": {str(k): float_or_none(b.pixel_accuracy) for k, b in ev.boundary.items()},
        "params": count_parameters(model), "train_seconds": round(train_seconds, 2), "epochs": len(result.history),
        "final_loss": result.history[-1]["loss"] if result.history else None,
        "history": [{"epoch": h["epoch"], "loss": round(h["loss"], 5), "miou": float_or_none(h.get("miou"))}
                    for h in result.history],
        "device": result.device, "precision": result.precision,
        "train_images": len(train_set), "val_images": len(val_set),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    return record, model, val_set


def _log_epoch(variant: str, seed: int, epochs: int, record: dict) -> None:
    """One line per finished epoch of a run trained beside others (``--progress`` with ``--jobs`` > 1)."""
    from refinenet_edu.engine.loop import epoch_scores

    print(f"    {variant} seed {seed}: epoch {record['epoch']}/{epochs}  {epoch_scores(record)}  "
          f"({record['elapsed']:.0f} s)", flush=True)


def _run_spec(spec: RunSpec) -> dict | None:
    """Train and score one :class:`RunSpec` (in this process or a worker), save what it asks for; the record (None:
    another ablate into ``spec.out`` finished this run meanwhile)."""
    import numpy as np

    from refinenet_edu.datasets.info import DatasetInfo
    from refinenet_edu.engine.inference import predict_dataset
    from refinenet_edu.engine.recipes import TrainConfig
    from refinenet_edu.engine.runtime import cpu_threads

    if spec.out and (Path(spec.out) / "results.json").is_file() \
            and (spec.variant, spec.seed) in AblationResults.load(spec.out).done():
        return None
    cfg = TrainConfig(**spec.train_config)  # (it makes scale_range, a list in JSON, a tuple again)
    with cpu_threads(spec.threads):  # for this run only; the caller's are restored
        record, model, val_set = train_variant(
            spec.variant, spec.seed, preset=spec.preset, data=spec.data, train_config=cfg,
            model_overrides=spec.model_overrides, subset=spec.subset, progress=spec.progress,
            on_epoch=partial(_log_epoch, spec.variant, spec.seed, cfg.epochs) if spec.log_epochs else None,
            encoder_weights=spec.encoder_weights,
        )
    stem = f"{spec.variant}__seed{spec.seed}"
    if spec.save_predictions:
        buf = io.BytesIO()
        np.savez_compressed(buf, **pack_masks(predict_dataset(model, val_set)), ids=np.array(list(val_set.ids)))
        atomic_write_bytes(Path(spec.out) / "predictions" / f"{stem}.npz", buf.getvalue())
        record["predictions"] = f"predictions/{stem}.npz"
    if spec.save_checkpoint:
        from refinenet_edu.engine.checkpoints import save_checkpoint

        info = DatasetInfo.of(val_set)
        save_checkpoint(Path(spec.out) / "checkpoints" / f"{stem}.pt", model.cpu(), half=True,
                        metrics={"miou": record["miou"]}, train_config=cfg.to_dict(),
                        dataset={"class_names": list(info.class_names), "palette": [list(c) for c in info.palette]})
        record["checkpoint"] = f"checkpoints/{stem}.pt"
    return record


def encoder_fingerprint(path: str | os.PathLike) -> dict:
    """File name and SHA-256 of a pretrained encoder (the budget names it, not its folder)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"encoder weights {path}: no such file (expected a state dict from refinenet-edu pretrain)")
    return {"file": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


def _budget_dict(preset: str, cfg, subset: int | None, model_overrides: dict, fingerprint: dict,
                 encoder_weights: str | os.PathLike | None = None) -> dict:
    """What every run of one results file must share (the device and data workers may differ)."""
    train = {k: v for k, v in cfg.to_dict().items()
             if k not in ("seed", "device", "num_workers", "compile", "channels_last", "precision")}
    # an option at its default is left out, so that the budget equals that of a results file which does not record it
    if train["schedule"] == "poly":  # step_at shapes the step schedule only
        del train["schedule"], train["step_at"]
    if train["loss"] != "focal":  # gamma shapes the focal loss only
        del train["focal_gamma"]
    if train["loss"] == "cross-entropy":
        del train["loss"]
    extra = {"encoder_weights": encoder_fingerprint(encoder_weights)} if encoder_weights else {}
    return {
        **extra, "preset": preset, "train": train, "subset": subset,
        "model_overrides": {k: list(v) if isinstance(v, tuple) else v for k, v in model_overrides.items()},
        "data": {k: fingerprint.get(k) for k in ("name", "generator_version", "sha256", "train_images", "val_images")},
        "scored": "the model after the last epoch, float32, on the whole validation split",
    }


def new_invocation(argv: list[str] | None, device: str) -> dict:
    """A new entry of the results file's provenance: an id, the command, commit and versions, the device."""
    from refinenet_edu.engine.provenance import provenance
    from refinenet_edu.engine.runtime import describe_device, resolve_device

    prov = provenance(argv)
    if prov["commit"] is None and os.environ.get("REFINENET_EDU_COMMIT"):  # e.g. a copy of the checkout without .git
        prov.update(commit=os.environ["REFINENET_EDU_COMMIT"],
                    commit_source="REFINENET_EDU_COMMIT (the checkout had no .git)")
    return {"id": uuid.uuid4().hex[:12], **prov, "device": describe_device(resolve_device(device))}


def run_grid(
    variants: Sequence[Variant | str],
    seeds: Sequence[int],
    out: str | os.PathLike,
    *,
    preset: str = "course",
    data: str = "synthscenes",
    train_config=None,
    model_overrides: dict | None = None,
    subset: int | None = None,
    jobs: int = 1,
    threads: int | None = None,
    save_predictions: str = "seed0",
    save_checkpoints: str = "none",
    device: str = "auto",
    precision: str = "auto",
    time_inference_runs: bool = True,
    argv: list[str] | None = None,
    log: Callable[[str], None] = print,
    progress: bool = False,
    encoder_weights: str | os.PathLike | None = None,
) -> AblationResults:
    """Train every (variant, seed) not yet in ``out/results.json``; write results after each run.

    ``jobs > 1`` trains that many runs at once in worker processes (useful on a GPU, which one small model leaves mostly
    idle); results are still written by this process only. Inference times are measured afterwards, one variant at a
    time, so that concurrent training does not distort them. ``encoder_weights``: every run's encoder starts from this
    state dict (the paper's protocol: one pretrained encoder, fine-tuned; see
    :mod:`refinenet_edu.experiments.pretraining`); its SHA-256 is part of the budget.
    """
    from torch.utils.data import Subset

    from refinenet_edu.datasets import load_dataset
    from refinenet_edu.datasets.info import require_labelled_pixels
    from refinenet_edu.nn.config import make_config
    from refinenet_edu.nn.encoders import ResNetEncoder

    variants, seeds = [parse_variant(v) for v in variants], [int(s) for s in seeds]
    if not variants or not seeds:
        raise ValueError("run_grid: no variants or no seeds to train")
    model_overrides = dict(model_overrides or {})
    cfg = (train_config or budget_for(preset)).replace(device=device, precision=precision)
    out = Path(out)

    # refused before anything is written (one clear error now, not one per run): data that cannot be read, a training
    # split without a labelled pixel, encoder weights that are missing or do not fit the encoder
    fingerprint = dataset_fingerprint(data)
    train = load_dataset(data, "train")
    require_labelled_pixels(Subset(train, range(min(subset, len(train)))) if subset else train,
                            f"--data {data}: the training split")
    budget = _budget_dict(preset, cfg, subset, model_overrides, fingerprint, encoder_weights)
    if encoder_weights:
        encoder_weights = os.fspath(Path(encoder_weights).resolve())  # as the worker processes will load it
        encoder_config = make_config(preset, **model_overrides)
        ResNetEncoder(encoder_config.backbone, weights=encoder_weights, width=encoder_config.encoder_width)
    results = AblationResults.load(out) if (out / "results.json").is_file() else AblationResults()
    require_same_budget(results.data, budget, out)
    results.data["budget"] = budget
    results.data["dataset"] = fingerprint
    num_classes = fingerprint["num_classes"]

    # parameters and FLOPs (cheap: the meta device)
    for v in variants:
        entry = results.variants.setdefault(v.name, {})
        entry.update(v.as_dict())
        if "params" not in entry:
            entry.update(variant_costs(v, preset=preset, num_classes=num_classes, model_overrides=model_overrides,
                                       input_size=(cfg.crop_size, cfg.crop_size)))

    # seed-major: every variant's first seed before any second seed, so a stopped grid is still balanced
    todo = [(v, s) for s in seeds for v in variants if (v.name, s) not in results.done()]
    skipped = len(variants) * len(seeds) - len(todo)
    invocation = {**new_invocation(argv, device), "jobs": jobs, "threads": threads, "planned": len(todo),
                  "skipped": skipped, "runs": [], "wall_seconds": 0.0}

    def untimed(v: Variant) -> bool:
        return time_inference_runs and invocation["device"] not in results.variants[v.name].get("inference_ms", {})

    if todo or any(untimed(v) for v in variants):
        results.add_invocation(invocation)
    started = time.perf_counter()
    log(f"ablate: {len(todo)} run(s) to train, {skipped} already in {out / 'results.json'}; "
        f"{cfg.epochs} epochs each on {invocation['device']}, {jobs} at a time")
    results.save(out)

    def spec_for(v: Variant, s: int) -> RunSpec:
        first_seed = s == min(seeds)
        return RunSpec(
            variant=v.name, seed=s, preset=preset, data=data, train_config=cfg.to_dict(),
            model_overrides=model_overrides, subset=subset, out=str(out),
            save_predictions=save_predictions == "all" or (save_predictions == "seed0" and first_seed),
            save_checkpoint=save_checkpoints == "all" or (save_checkpoints == "seed0" and first_seed),
            threads=threads, progress=progress and jobs == 1, log_epochs=progress and jobs > 1,
            encoder_weights=encoder_weights,
        )

    failures: list[str] = []
    for spec, record in _outcomes([spec_for(v, s) for v, s in todo], jobs):
        name = f"{spec.variant} seed {spec.seed}"
        if record is None:
            log(f"  {name}: finished meanwhile by another ablate into {out}; skipped")
            continue
        if isinstance(record, Exception):
            failures.append(f"{name}: {type(record).__name__}: {record}")
            log(f"  FAILED {failures[-1]}")
            continue
        results.add_run(record)
        invocation["runs"].append(f"{spec.variant}/seed{spec.seed}")
        invocation["wall_seconds"] = round(time.perf_counter() - started, 1)
        results.save(out)
        log(f"  [{len(invocation['runs'])}/{len(todo)}] {name}: mIoU {record['miou']:.4f}, "
            f"boundary(2px) mIoU {record['boundary_miou'].get('2', float('nan')):.4f}, "
            f"{record['train_seconds']:.0f} s  ({invocation['wall_seconds']:.0f} s so far)")
        jump = first_loss_jump(record["history"])  # the rule of comparison.diverged
        if jump is not None:
            log(f"      warning: its training loss blew up ({jump.describe()}); "
                "comparison.without_diverged leaves such runs out of a comparison")

    for v in variants:
        if untimed(v):
            time_variant(v, results.variants[v.name], preset, num_classes, model_overrides, cfg.crop_size, device,
                         precision, log)
    invocation["wall_seconds"] = round(time.perf_counter() - started, 1)
    if failures:
        invocation["failed"] = failures
    results.save(out)
    log(f"ablate: done in {invocation['wall_seconds']:.0f} s; results in {out / 'results.json'}")
    if failures:
        raise RunsFailed(f"{len(failures)} run(s) failed (the others are saved; run again to retry them): "
                         f"{'; '.join(failures)}")
    return results


def _outcomes(specs: list[RunSpec], jobs: int):
    """``(spec, record)`` of each run as it ends, ``(spec, the exception)`` of one that failed, ``(spec, None)`` of one
    that another ablate finished meanwhile: one after another in this process (``jobs=1``, where a ValueError, bad
    input every run would meet, stops the grid), else ``jobs`` at a time in worker processes."""
    if jobs == 1 or not specs:
        for spec in specs:
            try:
                yield spec, _run_spec(spec)
            except (KeyboardInterrupt, ValueError):
                raise
            except Exception as err:  # one failed run does not stop the others; reported at the end
                yield spec, err
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(jobs, len(specs)), mp_context=ctx) as pool:
        futures = {pool.submit(_run_spec, spec): spec for spec in specs}
        for fut in as_completed(futures):
            try:
                yield futures[fut], fut.result()
            except Exception as err:
                yield futures[fut], err


def time_variant(v: Variant, entry: dict, preset: str, num_classes: int, model_overrides: dict, size: int, device,
                 precision, log, repeats: int = 30) -> None:
    """Time ``v``'s inference and store it in its results ``entry`` under the device's name."""
    import torch

    from refinenet_edu.nn.model import RefineNet

    torch.manual_seed(0)  # timing does not depend on the weights
    model = RefineNet(_model_config(v, preset, num_classes, model_overrides))
    t = time_inference(model, (size, size), device=device, precision=precision, repeats=repeats)
    entry.setdefault("inference_ms", {})[t["device"]] = round(t["ms_per_image"], 3)
    entry.setdefault("inference_settings", {})[t["device"]] = {
        k: t[k] for k in ("precision", "batch", "input_size", "statistic", "median_ms_per_image")}
    log(f"  inference {v.name}: {t['ms_per_image']:.2f} ms/image on {t['device']} ({t['precision']})")

