"""``refinenet-edu ablate``: the paper's comparisons, measured on your data.

RefineNet's central claims are comparisons (Lin et al., CVPR 2017, Sec. 4.3
and Tables 2 and 9, on NYUDv2 and Person-Parts with ResNet-50): a cascade of
RefineNet blocks beats one block that takes every path at once, and chained
residual pooling helps. This module trains a grid of *variants* of one preset (by default the
``course`` model) for several seeds, each with the **same training budget**,
and records for every run:

* mIoU, pixel accuracy and the IoU of every class;
* boundary (trimap) mIoU and accuracy within 1, 2, 4, 8, 16 px of a label edge;
* the training wall time, the device and the precision;

and for every variant its parameters, FLOPs (one forward pass at the crop
size) and inference time per image (batch 1) on the device that ran it.

A variant is named by what changes from the preset, e.g. ``4-cascaded-crp4``
(the course model), ``single-crp4``, ``4-cascaded-crp0`` (no chained residual
pooling), ``4-cascaded-crp4-rcu3`` (3 output RCUs per block) or
``4-cascaded-crp4-lw`` (light-weight decoder: 1x1 convolutions, no RCUs).

Results go to ``OUT/results.json`` (everything, with provenance: command,
commit, device, versions, wall time), ``OUT/results.csv`` (one row per run),
``OUT/summary.csv`` (mean and standard deviation per variant), and, for seed
0 by default, ``OUT/predictions/<variant>__seed<k>.npz`` (the predicted
validation masks, for the dashboard's side-by-side view) and optionally small
float16 checkpoints in ``OUT/checkpoints/``. Results are written after every
run; running the same command again skips the runs already in the results
file (resume), and refuses to mix in runs trained with another budget.

Usage::

    refinenet-edu ablate --seeds 0 1 2                    # the default grid
    refinenet-edu ablate --cascades single 4-cascaded --crp-blocks 0 4 --grid full
    refinenet-edu ablate --variants 4-cascaded-crp4 single-crp4 --epochs 10
    refinenet-edu ablate --list                           # what is planned, what is done
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import io
import itertools
import json
import math
import os
import re
import statistics
import time
import uuid
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable, Sequence

from refinenet_edu.files import atomic_write_bytes

__all__ = [
    "FORMAT",
    "Variant",
    "DEFAULT_GRID",
    "make_grid",
    "parse_variant",
    "budget_for",
    "RunSpec",
    "train_variant",
    "time_inference",
    "variant_costs",
    "AblationResults",
    "run_grid",
    "add_arguments",
    "run",
]

FORMAT = "refinenet-edu-ablation"
VERSION = 1
#: seconds a write of results.json waits for another ablate's write to the same folder
RESULTS_LOCK_WAIT = 120.0


class RunsFailed(RuntimeError):
    """Some runs of a grid failed; the others are saved."""

#: Boundary bands (px) recorded for every run.
BANDS: tuple[int, ...] = (1, 2, 4, 8, 16)

#: What the light-weight decoder changes (Nekrasov et al., BMVC 2018): 1x1
#: decoder convolutions and no RCUs (see ``PRESETS["light-weight"]``).
LIGHT_WEIGHT_OVERRIDES = dict(kernel_size=1, adaptive_rcus=0, output_rcus=0)


# --------------------------------------------------------------------------
# variants
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """One architecture in the grid: what differs from the preset.

    ``output_rcus=None`` keeps the preset's number of output RCUs.
    """

    cascade: str = "4-cascaded"
    crp_blocks: int = 4
    output_rcus: int | None = None
    light_weight: bool = False

    def __post_init__(self) -> None:
        from refinenet_edu.config import CASCADES

        if self.cascade not in CASCADES:
            raise ValueError(f"cascade {self.cascade!r}: expected one of {list(CASCADES)}")
        if not isinstance(self.crp_blocks, int) or self.crp_blocks < 0:
            raise ValueError(f"crp_blocks={self.crp_blocks!r}: must be an integer >= 0")
        if self.output_rcus is not None and (not isinstance(self.output_rcus, int) or self.output_rcus < 0):
            raise ValueError(f"output_rcus={self.output_rcus!r}: must be an integer >= 0")
        if self.light_weight and self.output_rcus is not None:
            raise ValueError("a light-weight variant has no RCUs: do not give output_rcus with it")

    @property
    def name(self) -> str:
        parts = [self.cascade, f"crp{self.crp_blocks}"]
        if self.output_rcus is not None:
            parts.append(f"rcu{self.output_rcus}")
        if self.light_weight:
            parts.append("lw")
        return "-".join(parts)

    @property
    def label(self) -> str:
        """A readable label for tables and charts."""
        text = f"{self.cascade}, CRP {self.crp_blocks}" if self.crp_blocks else f"{self.cascade}, no CRP"
        if self.output_rcus is not None:
            text += f", {self.output_rcus} output RCU" + ("s" if self.output_rcus != 1 else "")
        if self.light_weight:
            text += ", light-weight"
        return text

    def overrides(self) -> dict[str, Any]:
        """Keyword overrides of :func:`~refinenet_edu.config.make_config`."""
        out: dict[str, Any] = {"cascade": self.cascade, "crp_blocks": self.crp_blocks}
        if self.output_rcus is not None:
            out["output_rcus"] = self.output_rcus
        if self.light_weight:
            out.update(LIGHT_WEIGHT_OVERRIDES)
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": self.label,
            "cascade": self.cascade,
            "crp_blocks": self.crp_blocks,
            "output_rcus": self.output_rcus,
            "light_weight": self.light_weight,
        }


_NAME_RE = re.compile(r"^(?P<cascade>.+?)-crp(?P<crp>\d+)(?:-rcu(?P<rcu>\d+))?(?P<lw>-lw)?$")


def parse_variant(name: str | Variant) -> Variant:
    """The :class:`Variant` called ``name`` (e.g. ``"single-crp4"``); ``ValueError`` if malformed."""
    if isinstance(name, Variant):
        return name
    m = _NAME_RE.match(str(name).strip())
    if not m:
        raise ValueError(
            f"variant {name!r}: expected CASCADE-crpN[-rcuM][-lw], e.g. '4-cascaded-crp4', 'single-crp4', "
            "'4-cascaded-crp0', '4-cascaded-crp4-rcu3', '4-cascaded-crp4-lw'"
        )
    try:
        return Variant(
            cascade=m["cascade"],
            crp_blocks=int(m["crp"]),
            output_rcus=int(m["rcu"]) if m["rcu"] is not None else None,
            light_weight=bool(m["lw"]),
        )
    except ValueError as err:
        raise ValueError(f"variant {name!r}: {err}") from None


#: The reference variant: the course model as it is (4-cascaded, 4 CRP blocks).
REFERENCE = Variant()


def make_grid(
    cascades: Sequence[str] | None = None,
    crp_blocks: Sequence[int] | None = None,
    output_rcus: Sequence[int] | None = None,
    light_weight: bool = False,
    *,
    grid: str = "oat",
    reference: Variant = REFERENCE,
) -> list[Variant]:
    """The variants to train.

    ``grid="oat"`` (one factor at a time, as the paper's ablations): the
    ``reference`` plus, for each listed value of one factor, the reference with
    only that factor changed. ``grid="full"``: every combination of the listed
    cascades, CRP blocks and output RCUs. With nothing listed the default is
    every cascade at the reference's CRP, and CRP 0 / 2 / 4 on the reference
    cascade (:data:`DEFAULT_GRID`). ``light_weight`` adds the light-weight
    decoder of the reference (``oat``) or of every cascade x CRP (``full``).
    """
    from refinenet_edu.config import PAPER_CASCADES

    if grid not in ("oat", "full"):
        raise ValueError(f"grid={grid!r}: expected 'oat' (one factor at a time) or 'full' (all combinations)")
    nothing = cascades is None and crp_blocks is None and output_rcus is None and not light_weight
    if nothing:
        cascades, crp_blocks = list(PAPER_CASCADES), [0, 2, 4]
    variants: list[Variant] = []
    if grid == "oat":
        variants.append(reference)
        for c in cascades or []:
            variants.append(dataclasses.replace(reference, cascade=c))
        for k in crp_blocks or []:
            variants.append(dataclasses.replace(reference, crp_blocks=int(k)))
        for r in output_rcus or []:
            variants.append(dataclasses.replace(reference, output_rcus=int(r)))
        if light_weight:
            variants.append(dataclasses.replace(reference, output_rcus=None, light_weight=True))
    else:
        cs = list(cascades) if cascades else [reference.cascade]
        ks = [int(k) for k in crp_blocks] if crp_blocks else [reference.crp_blocks]
        rs = [int(r) for r in output_rcus] if output_rcus else [reference.output_rcus]
        for c, k, r in itertools.product(cs, ks, rs):
            variants.append(Variant(c, k, r))
        if light_weight:
            for c, k in itertools.product(cs, ks):
                variants.append(Variant(c, k, None, True))
    seen, unique = set(), []
    for v in variants:
        if v.name not in seen:
            seen.add(v.name)
            unique.append(v)
    return unique


#: The default grid: the four cascades of the paper (Fig. 2(c), Fig. 7) at 4 CRP blocks,
#: and 0 / 2 / 4 CRP blocks on the 4-cascade.
DEFAULT_GRID: list[Variant] = make_grid()


# --------------------------------------------------------------------------
# one run
# --------------------------------------------------------------------------


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
    out: str | None = None  # where predictions / checkpoints go
    save_predictions: bool = False
    save_checkpoint: bool = False
    threads: int | None = None
    progress: bool = False  # progress bars (one run at a time)
    log_epochs: bool = False  # one line per epoch instead (runs side by side, whose bars would mix)
    encoder_weights: str | None = None  # a pretrained encoder state dict every run starts from


class _InMemory:
    """A VOC-layout dataset decoded once and kept in memory; ``transforms`` run per access.

    Decoding 600 JPEGs every epoch costs more than the small course model's
    training step on a GPU; 750 images of 128x128 take about 40 MB.
    """

    def __init__(self, base, transforms, indices: Sequence[int]):
        from refinenet_edu.datasets.info import DatasetInfo, sample_ids

        self.transforms = transforms
        self.items = [base[i] for i in indices]  # base has no transforms: (uint8 image, mask)
        self.info = DatasetInfo.of(base)  # what DatasetInfo.of(self) answers
        ids = sample_ids(base)
        self.ids = [ids[i] for i in indices] if ids is not None else list(indices)

    # the attributes every dataset of the package has, read from its DatasetInfo
    name = property(lambda self: self.info.name)
    class_names = property(lambda self: self.info.class_names)
    palette = property(lambda self: self.info.palette)
    num_classes = property(lambda self: self.info.num_classes)
    ignore_index = property(lambda self: self.info.ignore_index)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        image, mask = self.items[index]
        if self.transforms is not None:
            return self.transforms(image, mask)
        return image, mask


def load_splits(data: str, train_config, subset: int | None = None):
    """Training and validation sets, decoded into memory (``subset``: first N / N//4 images)."""
    from refinenet_edu.datasets import eval_transforms, load_dataset, train_transforms

    base_train = load_dataset(data, "train")
    base_val = load_dataset(data, "val")
    n_train = len(base_train) if not subset else min(subset, len(base_train))
    n_val = len(base_val) if not subset else min(max(1, subset // 4), len(base_val))
    tt = train_transforms(
        train_config.crop_size, scale_range=train_config.scale_range, hflip=train_config.hflip,
        jitter=train_config.jitter,
    )
    return _InMemory(base_train, tt, range(n_train)), _InMemory(base_val, eval_transforms(), range(n_val))


def dataset_fingerprint(data: str) -> dict:
    """Name, generator version and a SHA-256 over the split files, images and masks of ``data``."""
    from refinenet_edu.datasets import load_dataset

    info: dict[str, Any] = {"name": str(data)}
    try:
        train = load_dataset(data, "train")
        val = load_dataset(data, "val")
    except Exception as err:  # pragma: no cover - reported, not fatal
        info["error"] = str(err)
        return info
    root = Path(train.root)
    meta = {}
    if (root / "meta.json").is_file():
        meta = json.loads((root / "meta.json").read_text())
    digest = hashlib.sha256()
    for ds in (train, val):
        for path in [*ds.images, *ds.masks]:
            digest.update(path.name.encode())
            digest.update(Path(path).read_bytes())
    info.update(
        generator_version=meta.get("generator_version"),
        seed=meta.get("seed"),
        train_images=len(train),
        val_images=len(val),
        class_names=list(train.class_names),
        palette=[list(map(int, c)) for c in train.palette],
        num_classes=int(train.num_classes),
        sha256=digest.hexdigest(),
    )
    return info


def budget_for(preset: str = "course", **overrides: Any):
    """The :class:`~refinenet_edu.engine.loop.TrainConfig` of ``preset``'s recipe with ``overrides``."""
    from refinenet_edu.engine.recipes import RECIPES, TrainConfig

    cfg = RECIPES.get(preset, TrainConfig()).replace(**overrides)
    cfg.__post_init__()
    return cfg


def _model_config(variant: Variant, preset: str, num_classes: int, model_overrides: dict):
    from refinenet_edu.config import make_config

    return make_config(preset, num_classes=num_classes, **{**model_overrides, **variant.overrides()})


def _float(x) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def pack_masks(masks) -> dict:
    """Arrays for ``np.savez`` of predicted masks: ``masks`` [N, H, W] when they share one
    size, else ``flat`` (all pixels, one after another) and ``shapes`` [N, 2]."""
    import numpy as np

    if isinstance(masks, np.ndarray):
        return {"masks": masks}
    return {"flat": np.concatenate([m.reshape(-1) for m in masks]),
            "shapes": np.array([m.shape for m in masks], dtype=np.int64)}


def unpack_masks(data):
    """The masks :func:`pack_masks` stored (an ``np.load`` result): an array or a list of arrays."""
    import numpy as np

    if "masks" in data:
        return data["masks"]
    flat, shapes = data["flat"], data["shapes"]
    ends = np.cumsum([h * w for h, w in shapes])
    return [flat[end - h * w:end].reshape(h, w) for end, (h, w) in zip(ends, shapes)]


def time_inference(
    model, input_size: tuple[int, int] = (128, 128), *, device=None, precision: str = "auto",
    batch: int = 1, warmup: int = 5, repeats: int = 30,
) -> dict:
    """Time of one prediction (``fast_inference``: eval, inference mode, channels_last, autocast)
    of a ``batch`` of random images: the fastest of ``repeats`` (and the median), in ms per image,
    with the device and precision."""
    import torch

    from refinenet_edu.engine.inference import fast_inference
    from refinenet_edu.engine.runtime import describe_device, dtype_name, resolve_device, resolve_precision

    device = resolve_device(device or "auto")
    model.to(device)
    x = torch.randn(batch, 3, *input_size, device=device)
    times = []
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
        # the minimum: on a shared machine other processes only ever add time
        "ms_per_image": 1000 * min(times) / batch,
        "median_ms_per_image": 1000 * statistics.median(times) / batch,
        "statistic": f"min of {repeats} after {warmup} warm-up",
        "device": describe_device(device),
        "precision": dtype_name(resolve_precision(precision, device)),
        "batch": batch,
        "input_size": list(input_size),
    }


def variant_costs(variant: Variant | str, *, preset: str = "course", num_classes: int = 7,
                  model_overrides: dict | None = None, input_size: tuple[int, int] = (128, 128)) -> dict:
    """Parameters and FLOPs (one forward pass at ``input_size``) of a variant; built on the meta device."""
    import torch

    from refinenet_edu.model import RefineNet
    from refinenet_edu.summary import count_flops, count_parameters

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

    ``train_config``: a :class:`~refinenet_edu.engine.loop.TrainConfig` (default:
    the preset's recipe). ``encoder_weights``: a state-dict file the encoder
    starts from (e.g. made by ``refinenet-edu pretrain``); the decoder always
    starts from random weights drawn with ``seed``. The model is scored after the last epoch (not the
    best one: the validation set is the test set here) in float32, with
    boundary bands :data:`BANDS`. ``record`` is the JSON-ready row of the
    results file (inference time not included: see :func:`time_inference`).
    """
    import torch

    from refinenet_edu.datasets.info import DatasetInfo
    from refinenet_edu.datasets.loading import eval_loader
    from refinenet_edu.engine.evaluation import evaluate
    from refinenet_edu.model import RefineNet
    from refinenet_edu.summary import count_parameters
    from refinenet_edu.engine.loop import train

    variant = parse_variant(variant)
    cfg = train_config if train_config is not None else budget_for(preset)
    cfg = cfg.replace(seed=seed)
    train_set, val_set = datasets if datasets is not None else load_splits(data, cfg, subset)
    info = DatasetInfo.of(train_set)
    config = _model_config(variant, preset, info.num_classes, model_overrides or {})
    torch.manual_seed(seed)  # the initial weights depend on the seed too
    model = RefineNet(config, weights=os.fspath(encoder_weights) if encoder_weights else None)
    started = time.perf_counter()
    result = train(model, train_set, val_set, cfg, progress=progress, on_epoch=on_epoch)
    train_seconds = time.perf_counter() - started
    ev = evaluate(
        model, eval_loader(val_set, batch_size=cfg.batch_size), num_classes=info.num_classes,
        bands=BANDS, progress=False, keep_per_image=False,
    )
    m = ev.metrics
    names = list(info.class_names)
    record = {
        "variant": variant.name,
        "label": variant.label,
        "seed": int(seed),
        "miou": _float(m.miou),
        "pixel_accuracy": _float(m.pixel_accuracy),
        "mean_class_accuracy": _float(m.mean_class_accuracy),
        "iou": {n: _float(v) for n, v in zip(names, m.iou)},
        "boundary_miou": {str(k): _float(b.miou) for k, b in ev.boundary.items()},
        "boundary_accuracy": {str(k): _float(b.pixel_accuracy) for k, b in ev.boundary.items()},
        "params": count_parameters(model),
        "train_seconds": round(train_seconds, 2),
        "epochs": len(result.history),
        "final_loss": result.history[-1]["loss"] if result.history else None,
        "history": [
            {"epoch": h["epoch"], "loss": round(h["loss"], 5), "miou": _float(h.get("miou"))} for h in result.history
        ],
        "device": result.device,
        "precision": result.precision,
        "train_images": len(train_set),
        "val_images": len(val_set),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    return record, model, val_set


def _log_epoch(variant: str, seed: int, epochs: int, record: dict) -> None:
    """One line per finished epoch of a run trained beside others (``--progress`` with ``--jobs`` > 1)."""
    from refinenet_edu.engine.loop import epoch_scores

    print(f"    {variant} seed {seed}: epoch {record['epoch']}/{epochs}  {epoch_scores(record)}  "
          f"({record['elapsed']:.0f} s)", flush=True)


def _run_spec(spec: RunSpec) -> dict:
    """Run one :class:`RunSpec` (in this process or a worker); returns the record."""
    from refinenet_edu.engine.runtime import cpu_threads

    # threads for this run only (the caller's are restored); the data loaders
    # choose their own start method (engine.runtime.loader_start_method)
    with cpu_threads(spec.threads):
        return _train_and_save(spec)


def _train_and_save(spec: RunSpec) -> dict:
    import numpy as np

    from refinenet_edu.datasets.info import DatasetInfo
    from refinenet_edu.engine.inference import predict_dataset
    from refinenet_edu.engine.recipes import TrainConfig

    cfg = TrainConfig(**{**spec.train_config, "scale_range": tuple(spec.train_config.get("scale_range", (0.75, 1.25)))})
    record, model, val_set = train_variant(
        spec.variant, spec.seed, preset=spec.preset, data=spec.data, train_config=cfg,
        model_overrides=spec.model_overrides, subset=spec.subset, progress=spec.progress,
        on_epoch=partial(_log_epoch, spec.variant, spec.seed, cfg.epochs) if spec.log_epochs else None,
        encoder_weights=spec.encoder_weights,
    )
    if spec.out and (spec.save_predictions or spec.save_checkpoint):
        out = Path(spec.out)
        stem = f"{spec.variant}__seed{spec.seed}"
        if spec.save_predictions:
            masks = predict_dataset(model, val_set)
            buf = io.BytesIO()
            np.savez_compressed(buf, **pack_masks(masks), ids=np.array(list(val_set.ids)))
            atomic_write_bytes(out / "predictions" / f"{stem}.npz", buf.getvalue())
            record["predictions"] = f"predictions/{stem}.npz"
        if spec.save_checkpoint:
            from refinenet_edu.engine.checkpoints import save_checkpoint

            save_checkpoint(
                out / "checkpoints" / f"{stem}.pt", model.cpu(), half=True,
                metrics={"miou": record["miou"]}, train_config=cfg.to_dict(),
                dataset={k: v for k, v in DatasetInfo.of(val_set).as_dict().items() if k in ("class_names", "palette")},
            )
            record["checkpoint"] = f"checkpoints/{stem}.pt"
    return record


# --------------------------------------------------------------------------
# the results file
# --------------------------------------------------------------------------


class AblationResults:
    """The results file: runs, per-variant costs, the budget, the dataset and provenance.

    ``AblationResults.load(folder_or_json)`` reads ``results.json``;
    :meth:`save` writes it with ``results.csv`` and ``summary.csv`` beside it
    (atomically). Runs are keyed by ``(variant, seed)``.
    """

    def __init__(self, data: dict | None = None):
        data = dict(data or {})
        if data and data.get("format") != FORMAT:
            raise ValueError(f"not an ablation results file (format={data.get('format')!r}, expected {FORMAT!r})")
        self.data = {
            "format": FORMAT,
            "version": VERSION,
            "dataset": {},
            "budget": {},
            "variants": {},
            "runs": [],
            "provenance": {"invocations": []},
            **data,
        }
        self._own_runs: set[tuple[str, int]] = set()  # what this process added: it wins when merging
        self._own_invocations: list[dict] = []

    # ---- reading
    @classmethod
    def load(cls, path: str | os.PathLike) -> "AblationResults":
        path = Path(path)
        if path.is_dir():
            path = path / "results.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no ablation results there (run `refinenet-edu ablate --out {path.parent}`)")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON ({err})") from err
        results = cls(data)
        results.path = path
        return results

    @property
    def runs(self) -> list[dict]:
        return self.data["runs"]

    @property
    def variants(self) -> dict[str, dict]:
        return self.data["variants"]

    @property
    def class_names(self) -> list[str]:
        names = self.data.get("dataset", {}).get("class_names")
        if names:
            return list(names)
        return list(self.runs[0]["iou"]) if self.runs else []

    def done(self) -> set[tuple[str, int]]:
        return {(r["variant"], int(r["seed"])) for r in self.runs}

    def variant_names(self) -> list[str]:
        """Variants in the order they were first added."""
        names = list(self.variants)
        for r in self.runs:
            if r["variant"] not in names:
                names.append(r["variant"])
        return names

    # ---- writing
    def add_run(self, record: dict) -> None:
        key = (record["variant"], int(record["seed"]))
        self.data["runs"] = [r for r in self.runs if (r["variant"], int(r["seed"])) != key] + [record]
        self._own_runs.add(key)

    def add_invocation(self, invocation: dict) -> None:
        """Record one invocation's provenance (kept when another process's results are merged in)."""
        self.data["provenance"]["invocations"].append(invocation)
        self._own_invocations.append(invocation)

    def save(self, folder: str | os.PathLike) -> Path:
        """Write results.json, results.csv and summary.csv, merged with what is on disk.

        Under the folder's lock (:mod:`refinenet_edu.engine.locks`), the file is
        read again and the runs, variant costs and invocations another
        ``ablate`` wrote there since are kept; this process's own runs win for
        the same (variant, seed). So two ablate runs into one folder keep both
        their runs. A file on disk with runs of another budget is a ValueError.
        """
        from refinenet_edu.engine.locks import output_lock
        from refinenet_edu.files import remove_stale_temporaries

        folder = Path(folder)
        if folder.exists() and not folder.is_dir():
            raise ValueError(f"--out {folder}: is a file; a results folder was expected")
        with output_lock(folder, wait=RESULTS_LOCK_WAIT):
            folder.mkdir(parents=True, exist_ok=True)
            remove_stale_temporaries(folder, only=("results.json", "results.csv", "summary.csv"))
            if (folder / "results.json").is_file():
                self._merge(AblationResults.load(folder), folder)
            self.data["runs"].sort(key=lambda r: (self.variant_names().index(r["variant"]), int(r["seed"])))
            atomic_write_bytes(folder / "results.json", (json.dumps(self.data, indent=1) + "\n").encode())
            atomic_write_bytes(folder / "results.csv", self.csv().encode())
            atomic_write_bytes(folder / "summary.csv", self.summary_csv().encode())
        return folder / "results.json"

    def _merge(self, disk: "AblationResults", folder: Path) -> None:
        """Take in what ``disk`` (the file as it is now) holds that this process did not write."""
        if disk.runs and disk.data.get("budget") and self.data.get("budget") and disk.data["budget"] != self.data["budget"]:
            diffs = _budget_differences(disk.data["budget"], self.data["budget"])
            raise ValueError(
                f"{folder}/results.json holds runs trained with another budget or data ({'; '.join(diffs)}); "
                "every run of a comparison needs the same budget: choose another --out"
            )
        mine = {(r["variant"], int(r["seed"])): r for r in self.runs if (r["variant"], int(r["seed"])) in self._own_runs}
        runs = [r for r in disk.runs if (r["variant"], int(r["seed"])) not in mine]
        self.data["runs"] = runs + list(mine.values())
        variants = dict(disk.variants)
        for name, entry in self.variants.items():
            merged = {**variants.get(name, {}), **entry}
            for key in ("inference_ms", "inference_settings"):
                if key in variants.get(name, {}) or key in entry:
                    merged[key] = {**variants.get(name, {}).get(key, {}), **entry.get(key, {})}
            variants[name] = merged
        self.data["variants"] = variants
        own_ids = {inv.get("id") for inv in self._own_invocations}
        self.data["provenance"] = {
            **disk.data.get("provenance", {}),
            "invocations": [inv for inv in disk.data.get("provenance", {}).get("invocations", [])
                            if inv.get("id") is None or inv.get("id") not in own_ids] + self._own_invocations,
        }

    def _inference_devices(self) -> list[str]:
        devices: list[str] = []
        for v in self.variants.values():
            for d in v.get("inference_ms", {}):
                if d not in devices:
                    devices.append(d)
        return devices

    def csv(self) -> str:
        """One row per run: variant, seed, metrics, costs."""
        classes = self.class_names
        bands = sorted({int(k) for r in self.runs for k in r.get("boundary_miou", {})})
        devices = self._inference_devices()
        header = ["variant", "label", "seed", "cascade", "crp_blocks", "output_rcus", "light_weight",
                  "miou", "pixel_accuracy", "mean_class_accuracy"]
        header += [f"iou_{c}" for c in classes]
        header += [f"boundary_miou_{k}px" for k in bands] + [f"boundary_accuracy_{k}px" for k in bands]
        header += ["params", "flops"] + [f"inference_ms[{d}]" for d in devices]
        header += ["train_seconds", "epochs", "device", "precision"]
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(header)
        for r in self.runs:
            v = parse_variant(r["variant"])
            costs = self.variants.get(r["variant"], {})
            row = [r["variant"], r.get("label", v.label), r["seed"], v.cascade, v.crp_blocks,
                   "" if v.output_rcus is None else v.output_rcus, int(v.light_weight),
                   r.get("miou"), r.get("pixel_accuracy"), r.get("mean_class_accuracy")]
            row += [r.get("iou", {}).get(c) for c in classes]
            row += [r.get("boundary_miou", {}).get(str(k)) for k in bands]
            row += [r.get("boundary_accuracy", {}).get(str(k)) for k in bands]
            row += [costs.get("params", r.get("params")), costs.get("flops")]
            row += [costs.get("inference_ms", {}).get(d) for d in devices]
            row += [r.get("train_seconds"), r.get("epochs"), r.get("device"), r.get("precision")]
            w.writerow(["" if x is None else x for x in row])
        return buf.getvalue()

    def summary_csv(self) -> str:
        """One row per variant: runs, mean and sample standard deviation of the main metrics."""
        from refinenet_edu.experiments.statistics import metric_names, summarize

        metrics = [m for m in metric_names(self) if not m.startswith("inference_ms") and m not in ("params", "flops")]
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["variant", "label", "runs", "params", "flops"]
                   + [f"{m}_{s}" for m in metrics for s in ("mean", "std")])
        stats = {m: summarize(self, m) for m in metrics}
        for name in self.variant_names():
            if not any(r["variant"] == name for r in self.runs):
                continue
            costs = self.variants.get(name, {})
            first = stats[metrics[0]][name]
            row = [name, parse_variant(name).label, first.n, costs.get("params"), costs.get("flops")]
            for m in metrics:
                s = stats[m].get(name)
                row += [s.mean if s else None, s.std if s else None]
            w.writerow(["" if x is None or (isinstance(x, float) and math.isnan(x)) else x for x in row])
        return buf.getvalue()


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
    if train.get("schedule") == "poly":  # results files from before the step schedule have neither key
        train.pop("schedule")
        train.pop("step_at", None)
    extra = {"encoder_weights": encoder_fingerprint(encoder_weights)} if encoder_weights else {}
    return {
        **extra,
        "preset": preset,
        "train": train,
        "subset": subset,
        "model_overrides": {k: list(v) if isinstance(v, tuple) else v for k, v in model_overrides.items()},
        "data": {k: fingerprint.get(k) for k in ("name", "generator_version", "sha256", "train_images", "val_images")},
        "scored": "the model after the last epoch, float32, on the whole validation split",
    }


def _budget_differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    diffs = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            diffs += _budget_differences(a, b, f"{prefix}{k}.")
        elif a != b:
            diffs.append(f"{prefix}{k}: {a!r} there, {b!r} now")
    return diffs


# --------------------------------------------------------------------------
# the grid
# --------------------------------------------------------------------------


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

    ``jobs > 1`` trains that many runs at once in worker processes (useful on
    a GPU, which one small model leaves mostly idle); results are still
    written by this process only. Inference times are measured afterwards,
    one variant at a time, so that concurrent training does not distort them.
    ``encoder_weights``: every run's encoder starts from this state dict (the
    paper's protocol: one pretrained encoder, fine-tuned; see
    :mod:`refinenet_edu.experiments.pretraining`); its SHA-256 is part of the budget.
    """
    from refinenet_edu.engine.provenance import git_commit, provenance

    variants = [parse_variant(v) for v in variants]
    if not variants:
        raise ValueError("no variants to train")
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("no seeds given")
    if jobs < 1:
        raise ValueError(f"jobs={jobs}: must be >= 1")
    for choice, name in ((save_predictions, "save_predictions"), (save_checkpoints, "save_checkpoints")):
        if choice not in ("none", "seed0", "all"):
            raise ValueError(f"{name}={choice!r}: expected 'none', 'seed0' or 'all'")
    model_overrides = dict(model_overrides or {})
    cfg = train_config if train_config is not None else budget_for(preset)
    cfg = cfg.replace(device=device, precision=precision)
    out = Path(out)

    fingerprint = dataset_fingerprint(data)
    budget = _budget_dict(preset, cfg, subset, model_overrides, fingerprint, encoder_weights)  # missing file: error
    if encoder_weights:  # a file that does not fit the encoder: one clear error now, not one per run
        from refinenet_edu.config import make_config
        from refinenet_edu.encoders import ResNetEncoder

        mc = make_config(preset, **model_overrides)
        ResNetEncoder(mc.backbone, weights=os.fspath(encoder_weights), width=mc.encoder_width)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: is a file; a results folder was expected (choose another --out)")
    if (out / "results.json").is_file():
        results = AblationResults.load(out)
        # a folder whose earlier invocation failed before any run finished holds no runs: nothing to compare with
        if results.runs and results.data.get("budget") and results.data["budget"] != budget:
            diffs = _budget_differences(results.data["budget"], budget)
            raise ValueError(
                f"{out}/results.json holds runs trained with another budget or data ({'; '.join(diffs)}); "
                "every run of a comparison needs the same budget: choose another --out"
            )
    else:
        results = AblationResults()
    results.data["budget"] = budget
    results.data["dataset"] = fingerprint
    num_classes = int(fingerprint.get("num_classes") or 0)

    # parameters and FLOPs (cheap: the meta device)
    for v in variants:
        entry = results.variants.setdefault(v.name, {})
        entry.update(v.as_dict())
        if "params" not in entry and num_classes:
            entry.update(variant_costs(v, preset=preset, num_classes=num_classes, model_overrides=model_overrides,
                                       input_size=(cfg.crop_size, cfg.crop_size)))

    # seed-major: every variant's first seed before any second seed, so a stopped grid is still balanced
    todo = [(v, s) for s in seeds for v in variants if (v.name, s) not in results.done()]
    skipped = len(variants) * len(seeds) - len(todo)
    prov = provenance(argv)
    if prov.get("commit") is None:
        prov["commit"] = os.environ.get("REFINENET_EDU_COMMIT") or git_commit()
        if prov["commit"]:
            prov["commit_source"] = "REFINENET_EDU_COMMIT (the checkout had no .git)"
    from refinenet_edu.engine.runtime import describe_device, resolve_device

    dev = resolve_device(device)
    invocation = {"id": uuid.uuid4().hex[:12], **prov, "device": describe_device(dev), "jobs": jobs, "threads": threads,
                  "planned": len(todo), "skipped": skipped, "runs": [], "wall_seconds": 0.0}
    needs_timing = time_inference_runs and any(
        describe_device(dev) not in results.variants[v.name].get("inference_ms", {}) for v in variants
    )
    if todo or needs_timing:
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
            encoder_weights=os.fspath(Path(encoder_weights).resolve()) if encoder_weights else None,
        )

    def finished(record: dict) -> None:
        results.add_run(record)
        invocation["runs"].append(f"{record['variant']}/seed{record['seed']}")
        invocation["wall_seconds"] = round(time.perf_counter() - started, 1)
        results.save(out)
        done = len(invocation["runs"])
        log(f"  [{done}/{len(todo)}] {record['variant']} seed {record['seed']}: mIoU {record['miou']:.4f}, "
            f"boundary(2px) mIoU {record['boundary_miou'].get('2', float('nan')):.4f}, "
            f"{record['train_seconds']:.0f} s  ({invocation['wall_seconds']:.0f} s so far)")

    failures: list[str] = []

    def failed(v: Variant, s: int, err: BaseException) -> None:
        failures.append(f"{v.name} seed {s}: {type(err).__name__}: {err}")
        log(f"  FAILED {v.name} seed {s}: {type(err).__name__}: {err}")

    if jobs == 1:
        for v, s in todo:
            if (out / "results.json").is_file() and (v.name, s) in AblationResults.load(out).done():
                log(f"  {v.name} seed {s}: finished meanwhile by another ablate into {out}; skipped")
                continue
            try:
                record = _run_spec(spec_for(v, s))
            except (KeyboardInterrupt, ValueError):
                raise
            except Exception as err:  # one failed run does not stop the others; reported at the end
                failed(v, s, err)
            else:
                finished(record)
    elif todo:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=min(jobs, len(todo)), mp_context=ctx) as pool:
            futures = {pool.submit(_run_spec, spec_for(v, s)): (v, s) for v, s in todo}
            for fut in as_completed(futures):
                try:
                    record = fut.result()
                except Exception as err:
                    failed(*futures[fut], err)
                else:
                    finished(record)

    if time_inference_runs:
        key = describe_device(dev)
        for v in variants:
            entry = results.variants[v.name]
            if key in entry.get("inference_ms", {}) or not num_classes:
                continue
            t = _time_variant(v, preset, num_classes, model_overrides, cfg.crop_size, device, precision)
            entry.setdefault("inference_ms", {})[t["device"]] = round(t["ms_per_image"], 3)
            entry.setdefault("inference_settings", {})[t["device"]] = {k: t[k] for k in ("precision", "batch", "input_size", "statistic", "median_ms_per_image")}
            log(f"  inference {v.name}: {t['ms_per_image']:.2f} ms/image on {t['device']} ({t['precision']})")
    invocation["wall_seconds"] = round(time.perf_counter() - started, 1)
    if failures:
        invocation["failed"] = failures
    results.save(out)
    log(f"ablate: done in {invocation['wall_seconds']:.0f} s; results in {out / 'results.json'}")
    if failures:
        raise RunsFailed(f"{len(failures)} run(s) failed (the others are saved; run again to retry them): "
                           + "; ".join(failures))
    return results


def _time_variant(v: Variant, preset: str, num_classes: int, model_overrides: dict, size: int, device, precision,
                  repeats: int = 30):
    import torch

    from refinenet_edu.model import RefineNet

    torch.manual_seed(0)  # timing does not depend on the weights
    model = RefineNet(_model_config(v, preset, num_classes, model_overrides))
    return time_inference(model, (size, size), device=device, precision=precision, repeats=repeats)


def retime(out: str | os.PathLike, *, device: str = "auto", precision: str = "auto", log=print,
           argv: list[str] | None = None, repeats: int = 30) -> AblationResults:
    """Measure the inference time of every variant in ``out`` on this device and add it to the file
    (replacing an earlier measurement on the same device)."""
    from refinenet_edu.engine.provenance import provenance
    from refinenet_edu.engine.runtime import describe_device, resolve_device

    results = AblationResults.load(out)
    started = time.perf_counter()
    invocation = {"id": uuid.uuid4().hex[:12], **provenance(argv), "device": describe_device(resolve_device(device)),
                  "retime": True}
    results.add_invocation(invocation)
    budget = results.data.get("budget", {})
    preset = budget.get("preset", "course")
    size = int(budget.get("train", {}).get("crop_size", 128))
    overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in budget.get("model_overrides", {}).items()}
    num_classes = int(results.data.get("dataset", {}).get("num_classes") or len(results.class_names))
    for name in results.variant_names():
        t = _time_variant(parse_variant(name), preset, num_classes, overrides, size, device, precision, repeats)
        entry = results.variants.setdefault(name, parse_variant(name).as_dict())
        entry.setdefault("inference_ms", {})[t["device"]] = round(t["ms_per_image"], 3)
        entry.setdefault("inference_settings", {})[t["device"]] = {k: t[k] for k in ("precision", "batch", "input_size", "statistic", "median_ms_per_image")}
        log(f"  inference {name}: {t['ms_per_image']:.2f} ms/image on {t['device']} ({t['precision']})")
    invocation["wall_seconds"] = round(time.perf_counter() - started, 1)
    results.save(out)
    return results


# --------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from refinenet_edu.cli_errors import finite_float, non_negative_int, positive_float, positive_int
    from refinenet_edu.config import CASCADES, PRESETS

    v = parser.add_argument_group("variants (default: every cascade at CRP 4, and CRP 0 / 2 / 4 on the 4-cascade)")
    v.add_argument("--variants", nargs="+", metavar="NAME",
                   help="variants by name, e.g. 4-cascaded-crp4 single-crp4 4-cascaded-crp0 4-cascaded-crp4-rcu3 "
                        "4-cascaded-crp4-lw (replaces the grid options)")
    v.add_argument("--cascades", nargs="+", choices=list(CASCADES), help="cascades to compare (paper Fig. 2(c) and Fig. 7)")
    v.add_argument("--crp-blocks", nargs="+", type=int, metavar="N", help="chained residual pooling blocks, e.g. 0 2 4")
    v.add_argument("--output-rcus", nargs="+", type=int, metavar="N", help="output RCUs per block, e.g. 1 3")
    v.add_argument("--light-weight", action="store_true", help="add the light-weight decoder (1x1 convs, no RCUs)")
    v.add_argument("--grid", choices=("oat", "full"), default="oat",
                   help="oat: change one factor at a time from the preset (default); full: all combinations")
    v.add_argument("--preset", default="course", choices=list(PRESETS), help="the model the variants start from")
    v.add_argument("--encoder-width", type=int, choices=(8, 16, 32, 64), help="override the preset's encoder width")
    v.add_argument("--widths", type=int, nargs=4, metavar=("W4", "W8", "W16", "W32"), help="override the decoder widths")
    t = parser.add_argument_group("budget (the same for every run; defaults: the preset's recipe)")
    t.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="seeds (default: 0 1 2)")
    t.add_argument("--epochs", type=positive_int)
    t.add_argument("--batch-size", type=positive_int)
    t.add_argument("--crop-size", type=positive_int)
    t.add_argument("--lr", type=positive_float)
    t.add_argument("--encoder-lr-ratio", type=finite_float,
                   help="encoder lr = lr x this (official recipe 0.1; the course recipe 1.0)")
    t.add_argument("--encoder-weights", type=Path, metavar="FILE",
                   help="start every run's encoder from this state dict (refinenet-edu pretrain makes one)")
    t.add_argument("--eval-every", type=positive_int, default=5, help="validation mIoU every N epochs during training (default 5)")
    t.add_argument("--subset", type=positive_int, help="only the first N training and N/4 validation images (quick tries, tests)")
    t.add_argument("--data", default="synthscenes", help="dataset name or VOC-layout folder (default: synthscenes)")
    r = parser.add_argument_group("running")
    r.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N, mps")
    r.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "fp16"))
    r.add_argument("--jobs", type=positive_int, default=1, help="runs trained at once in worker processes (GPU: 4-8)")
    r.add_argument("--threads", type=positive_int, help="CPU threads per run (torch.set_num_threads)")
    r.add_argument("--num-workers", type=non_negative_int, help="data-loading processes per run")
    r.add_argument("--out", type=Path, default=Path("results/ablation"), help="results folder (default results/ablation)")
    r.add_argument("--save-predictions", choices=("none", "seed0", "all"), default="seed0",
                   help="save the predicted validation masks of these runs (default: the first seed)")
    r.add_argument("--save-checkpoints", choices=("none", "seed0", "all"), default="none",
                   help="save float16 checkpoints of these runs (about 8 MB each for the course preset)")
    r.add_argument("--no-timing", action="store_true", help="do not measure inference time")
    r.add_argument("--retime", action="store_true",
                   help="only measure the inference time of the variants in --out on this device, and add it")
    r.add_argument("--timing-repeats", type=positive_int, default=30, help="timed predictions per variant (the fastest counts)")
    r.add_argument("--list", action="store_true", help="print the planned runs and which are done, then exit")
    r.add_argument("--progress", action="store_true",
                   help="progress bars with --jobs 1; with more jobs, one line per epoch of each run")


def _variants_from_args(args) -> list[Variant]:
    if args.variants:
        return [parse_variant(n) for n in args.variants]
    return make_grid(args.cascades, args.crp_blocks, args.output_rcus, args.light_weight, grid=args.grid)


def run(args: argparse.Namespace) -> int:
    if args.retime:
        retime(args.out, device=args.device, precision=args.precision, argv=getattr(args, "_argv", None),
               repeats=args.timing_repeats)
        return 0
    variants = _variants_from_args(args)
    overrides: dict[str, Any] = {}
    if args.encoder_width is not None:
        overrides["encoder_width"] = args.encoder_width
    if args.widths:
        overrides["widths"] = tuple(args.widths)
    if args.subset is not None and args.subset < 1:
        raise ValueError(f"--subset {args.subset}: must be >= 1")
    # check the model options now, before anything trains
    from refinenet_edu.config import make_config

    for v in variants:
        make_config(args.preset, **{**overrides, **v.overrides()})
    cfg = budget_for(
        args.preset, epochs=args.epochs, batch_size=args.batch_size, crop_size=args.crop_size, lr=args.lr,
        eval_every=args.eval_every, num_workers=args.num_workers, encoder_lr_ratio=args.encoder_lr_ratio,
    )
    if args.list:
        done = set()
        if (Path(args.out) / "results.json").is_file():
            done = AblationResults.load(args.out).done()
        for v in variants:
            marks = " ".join(f"{s}{'*' if (v.name, s) in done else ''}" for s in args.seeds)
            print(f"{v.name:<32} {v.label:<40} seeds {marks}")
        print(f"({cfg.epochs} epochs, batch {cfg.batch_size}, crop {cfg.crop_size}; * = done in {args.out})")
        return 0
    from refinenet_edu.cli_errors import kept

    kept(f"{args.out / 'results.json'} keeps every run that finished; the same command trains the rest")
    run_grid(
        variants, args.seeds, args.out, preset=args.preset, data=args.data, train_config=cfg,
        model_overrides=overrides, subset=args.subset, jobs=args.jobs, threads=args.threads,
        save_predictions=args.save_predictions, save_checkpoints=args.save_checkpoints, device=args.device,
        precision=args.precision, time_inference_runs=not args.no_timing, argv=getattr(args, "_argv", None),
        progress=args.progress, encoder_weights=args.encoder_weights,
    )
    return 0
