"""The training loop, readable top to bottom: one step, one epoch, a whole run.

Every trainer of the library is built from these, so mixed precision is handled once (autocast for the forward
pass and the loss, a gradient scaler for float16: :mod:`refinenet_edu.engine.runtime`): :func:`train_step`,
:func:`train_one_epoch` (the steps over a data loader) and :func:`train` (a RefineNet on a segmentation dataset
with a :class:`~refinenet_edu.engine.recipes.TrainConfig`). The encoder pretraining
(:mod:`refinenet_edu.experiments.pretraining`), the benchmark harness (``./course bench``),
``benchmarks/train_course.py`` and notebook 07 call them rather than writing a step of their own.

:func:`train` reads as its steps: the device (under ``torchrun`` one per process, with DistributedDataParallel)
and the precision, the data, the loss, the optimizer with its two parameter groups and the schedule, the resume
from ``out_dir/last.pt``; then, every epoch, a reseed (an epoch is the same whether or not the run was resumed),
training, validation mIoU, and history.json, ``last.pt`` and ``best.pt`` written atomically. A NaN loss stops the
run naming the checkpoint kept; running out of memory says what to lower. An epoch whose loss blew up (over 10x
the lowest before it, :mod:`refinenet_edu.engine.divergence`, the rule the ablation statistics use) is warned
about once and never written as ``best.pt``; the run goes on (a loss spike can settle, and an ablation records
the run so that its statistics can leave it out) until the first NaN.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import random
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.optim.lr_scheduler import LambdaLR
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from refinenet_edu.datasets.info import DatasetInfo, class_pixel_histogram, fingerprint, require_labelled_pixels
from refinenet_edu.datasets.loading import eval_loader
from refinenet_edu.engine.checkpoints import load_checkpoint, save_checkpoint, unwrap
from refinenet_edu.engine.criterion import SegmentationLoss, median_frequency_weights
from refinenet_edu.engine.divergence import first_loss_jump, loss_jumps
from refinenet_edu.engine.evaluation import evaluate
from refinenet_edu.engine.recipes import TrainConfig, lr_lambda, make_optimizer, resume_conflicts
from refinenet_edu.engine.runtime import (
    autocast, describe_device, dtype_name, grad_scaler, loader_start_method, resolve_device, resolve_precision,
)
from refinenet_edu.files import atomic_write_json
from refinenet_edu.nn.config import RefineNetConfig

__all__ = ["TrainResult", "TrainingDiverged", "EpochStats", "seed_everything", "train_step", "train_one_epoch",
           "train", "epoch_scores", "make_criterion"]


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C (in a notebook: the stop button) during :func:`train`, with what was kept and how to go on.

    Still a ``KeyboardInterrupt``, so that a script or a command stops as it would; in a notebook, IPython
    prints the message alone instead of a traceback (it asks an exception for ``_render_traceback_``).
    """

    def _render_traceback_(self) -> list[str]:
        return [f"KeyboardInterrupt: {self}"]


# ----------------------------------------------------------------- one step
def train_step(
    model: torch.nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    *,
    criterion: Callable[[Any, torch.Tensor], torch.Tensor],
    dtype: torch.dtype = torch.float32,
    scaler: torch.amp.GradScaler | None = None,
    scheduler=None,
    check_finite: bool = True,
) -> torch.Tensor:
    """One optimisation step on one batch; returns the (detached) loss.

    The forward pass and the loss run under ``autocast(dtype)`` (a no-op for
    float32); the loss is scaled before the backward pass when ``scaler`` is
    enabled (float16: see :func:`~refinenet_edu.engine.runtime.grad_scaler`).
    With ``check_finite`` a NaN or infinite loss raises
    :class:`TrainingDiverged` *before* the weights are touched (the check
    reads the loss, the step's one device synchronisation).
    """
    with autocast(images.device, dtype):
        loss = criterion(model(images), targets)
    if check_finite:
        value = loss.item()
        if not math.isfinite(value):
            raise TrainingDiverged(f"the loss became {value}")
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        optimizer.step()
    if scheduler is not None:
        scheduler.step()
    return loss.detach()


# ----------------------------------------------------------------- one epoch
@dataclass
class EpochStats:
    """What one epoch of training saw: the summed loss (times batch size) and the images."""

    loss_sum: torch.Tensor  # float64 on the training device, so summing costs no synchronisation
    images: int
    seconds: float
    first_loss: torch.Tensor | None = None  # the loss of its first batch, before that batch's step

    @property
    def mean_loss(self) -> float:
        return float(self.loss_sum.item() / max(1, self.images))


def train_one_epoch(
    model: torch.nn.Module,
    batches: Iterable,
    optimizer: torch.optim.Optimizer,
    *,
    criterion: Callable[[Any, torch.Tensor], torch.Tensor],
    device: torch.device,
    dtype: torch.dtype = torch.float32,
    scaler: torch.amp.GradScaler | None = None,
    scheduler=None,
    channels_last: bool = False,
    check_finite: bool = True,
    progress: bool = False,
    desc: str = "train",
) -> EpochStats:
    """:func:`train_step` over every ``(images, targets)`` batch; ``progress`` shows a bar with the running loss.

    The batches always pass through a ``tqdm.auto`` bar, hidden without ``progress``: making one draws a number
    from a data loader's random generator, so a run's batch order is the same whether its bar is shown or not.
    """
    from tqdm.auto import tqdm

    model.train()
    started = time.perf_counter()
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    first_loss = None
    seen = 0
    bar = tqdm(batches, desc=desc, leave=False, disable=not progress)
    for images, targets in bar:
        images = images.to(device, non_blocking=True)
        targets = targets.to(device, non_blocking=True).long()
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        loss = train_step(model, images, targets, optimizer, criterion=criterion, dtype=dtype, scaler=scaler,
                          scheduler=scheduler, check_finite=check_finite)
        loss_sum += loss.double() * images.shape[0]
        if first_loss is None:
            first_loss = loss.double()
        seen += images.shape[0]
        if progress:
            bar.set_postfix(loss=f"{loss.item():.3f}")
    return EpochStats(loss_sum, seen, time.perf_counter() - started, first_loss)


# ----------------------------------------------------------------- a whole run
@dataclass
class TrainResult:
    history: list[dict] = field(default_factory=list)
    best_miou: float = float("nan")
    best_epoch: int = -1
    seconds: float = 0.0
    out_dir: Path | None = None
    stopped_because: str = "finished"
    device: str = ""
    precision: str = ""

    @property
    def final_miou(self) -> float:
        scored = [h["miou"] for h in self.history if h.get("miou") is not None]
        return scored[-1] if scored else float("nan")


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's generators: call it before building a model, so that
    its initial weights, and with them the whole run, follow the seed."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def make_criterion(cfg: TrainConfig, train_set, num_classes: int) -> SegmentationLoss:
    """The loss ``cfg.loss`` asks for; class-weighted cross-entropy weighs by the training set's own pixel counts."""
    weights = None
    if cfg.loss == "weighted-cross-entropy":
        frequency = class_pixel_histogram(train_set, num_classes, cfg.ignore_index)["frequency"]
        weights = median_frequency_weights(frequency)
    return SegmentationLoss(cfg.ignore_index, loss=cfg.loss, class_weights=weights, focal_gamma=cfg.focal_gamma)


def epoch_scores(record: dict) -> str:
    """'loss 0.1234  val mIoU 0.567' for one history record (no mIoU in epochs without validation)."""
    miou = "" if record.get("miou") is None else f"  val mIoU {record['miou']:.3f}"
    return f"loss {record['loss']:.4f}{miou}"


def train(
    model: torch.nn.Module | RefineNetConfig,
    train_set: Dataset,
    val_set: Dataset | None,
    cfg: TrainConfig | None = None,
    *,
    out_dir: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool = True,
    dataset_info: DatasetInfo | None = None,
    provenance: dict | None = None,
    on_epoch: Callable[[dict], None] | None = None,
) -> TrainResult:
    """Train ``model`` (a RefineNet, or a ``RefineNetConfig`` to build one) on ``train_set``, scoring mIoU on
    ``val_set`` after each epoch.

    Datasets yield ``(image float [3,H,W], mask int64 [H,W])``; training images share one size
    (``train_transforms(crop_size)``), validation images may have any. With ``out_dir``, checkpoints and
    history are written there, and ``resume=True`` continues from ``out_dir/last.pt`` exactly where it
    stopped. ``progress`` shows a bar per epoch and prints a line after it; ``on_epoch(record)`` is called
    with each epoch's history record once it is saved (e.g. :class:`refinenet_edu.viz.plots.LiveTrainingPlot`).
    """
    cfg = cfg or TrainConfig()
    rank, world, device = _join_process_group(cfg.device)  # under torchrun: one process per device
    dtype = resolve_precision(cfg.precision, device)
    seed_everything(cfg.seed)  # before a model is built from a config: its initial weights follow the seed
    module = _model_on(model, train_set, device, cfg.channels_last)
    train_loader, val_loader = _loaders(train_set, val_set, cfg, device, rank, world)
    criterion = _criterion(cfg, train_set, module.config.num_classes, device, show=progress and rank == 0)
    optimizer = make_optimizer(module, cfg)  # two parameter groups: encoder and decoder
    steps = len(train_loader)  # per epoch (the last partial batch is dropped)
    scheduler = LambdaLR(optimizer, lr_lambda(cfg, steps * cfg.epochs, round(cfg.warmup_epochs * steps)))
    scaler = grad_scaler(device, dtype)  # enabled for float16 only
    out_dir = Path(out_dir) if out_dir is not None else None
    result = TrainResult(out_dir=out_dir, device=describe_device(device), precision=dtype_name(dtype),
                         best_miou=-math.inf)
    stamp = dict(train_config=cfg.to_dict(), dataset=(dataset_info or DatasetInfo.of(train_set)).as_dict(),
                 provenance=provenance or {}, train_data=fingerprint(train_set))  # in every checkpoint
    if resume:
        _resume(result, cfg, stamp["train_data"], module, optimizer, scheduler, scaler, len(train_set))
    net = _wrapped(module, cfg.compile, world, device)  # DistributedDataParallel, torch.compile
    started, elapsed_before = time.perf_counter(), sum(h.get("seconds", 0.0) for h in result.history)
    with _explained_failures(cfg, device, dtype, result, scheduler):
        for epoch in range(len(result.history), cfg.epochs):
            epoch_started = time.perf_counter()
            _reseed(train_loader, cfg.seed, epoch, rank)  # the same draws whether or not the run was resumed
            stats = train_one_epoch(net, train_loader, optimizer, criterion=criterion, device=device, dtype=dtype,
                                    scaler=scaler, scheduler=scheduler, channels_last=cfg.channels_last,
                                    progress=progress and rank == 0, desc=f"epoch {epoch + 1}/{cfg.epochs}")
            record = _epoch_record(stats, epoch, optimizer, world)  # summed over the processes
            if val_loader is not None and ((epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs):
                score = evaluate(module, val_loader, num_classes=module.config.num_classes, bands=(), device=device,
                                 amp_dtype=None if dtype == torch.float32 else dtype, progress=False,
                                 keep_per_image=False)
                record.update(miou=score.metrics.miou, pixel_accuracy=score.metrics.pixel_accuracy)
            record.update(seconds=time.perf_counter() - epoch_started,
                          elapsed=elapsed_before + (time.perf_counter() - started))
            result.history.append(record)
            improved = _judge(result, record, cfg.lr, warn=rank == 0)  # best so far, and never an epoch that blew up
            if rank == 0 and out_dir is not None:
                _save(out_dir, module, optimizer, scheduler, scaler, result, improved, stamp)
            if rank == 0 and progress:
                print(f"epoch {epoch + 1:3d}/{cfg.epochs}  {epoch_scores(record)}  "
                      f"({record['images_per_second']:.1f} img/s, {record['elapsed']:.0f} s)", flush=True)
            if rank == 0 and on_epoch is not None:
                on_epoch(record)
            result.stopped_because = _stop_reason(cfg, record)
            if result.stopped_because != "finished":
                break
    result.best_miou = result.best_miou if result.best_epoch > 0 else float("nan")
    result.seconds = elapsed_before + (time.perf_counter() - started)
    return result


# ----------------------------------------------------------------- the steps of train, by name
def _join_process_group(device_name: str) -> tuple[int, int, torch.device]:
    """(rank, world_size, device): joins the process group when launched by ``torchrun`` (one GPU per process)."""
    device = resolve_device(device_name)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, device
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    return dist.get_rank(), dist.get_world_size(), device


def _model_on(model, train_set, device: torch.device, channels_last: bool) -> torch.nn.Module:
    """The RefineNet (built from a config if need be) on ``device``, checked against the training set's classes."""
    from refinenet_edu.nn.model import RefineNet

    module = unwrap(RefineNet(model) if isinstance(model, RefineNetConfig) else model)
    classes = DatasetInfo.of(train_set).num_classes
    if classes and classes != module.config.num_classes:
        raise ValueError(f"the model predicts {module.config.num_classes} classes but the training set has {classes}")
    module.to(device)
    if channels_last:
        module.to(memory_format=torch.channels_last)
    return module


class _ShardSampler(DistributedSampler):
    """Evaluation shards without DistributedSampler's padding (no image counted twice)."""

    def __iter__(self):
        return iter(range(self.rank, len(self.dataset), self.num_replicas))

    def __len__(self) -> int:
        return len(range(self.rank, len(self.dataset), self.num_replicas))


def _loaders(train_set, val_set, cfg: TrainConfig, device, rank: int, world: int):
    """Shuffled training batches (a shard per process under torchrun) and the validation loader (or None).

    Validation images may have any size: same-size ones are batched, others run one by one (never padded).
    """
    sampler = None if world == 1 else DistributedSampler(train_set, world, rank, seed=cfg.seed, drop_last=True)
    start_method = loader_start_method(cfg.num_workers)
    train_loader = DataLoader(train_set, batch_size=cfg.batch_size, shuffle=sampler is None, sampler=sampler,
                              drop_last=len(train_set) >= cfg.batch_size * world, num_workers=cfg.num_workers,
                              multiprocessing_context=start_method, generator=torch.Generator(),
                              pin_memory=device.type == "cuda")
    if val_set is None:
        return train_loader, None
    shards = _ShardSampler(val_set, world, rank, shuffle=False) if world > 1 else None
    return train_loader, eval_loader(val_set, batch_size=cfg.batch_size, sampler=shards,
                                     num_workers=cfg.num_workers, multiprocessing_context=start_method)


def _criterion(cfg: TrainConfig, train_set, num_classes: int, device, show: bool) -> SegmentationLoss:
    require_labelled_pixels(train_set)  # all "ignore": a loss of 0 that trains nothing
    criterion = make_criterion(cfg, train_set, num_classes).to(device)
    if show and criterion.class_weights is not None:
        names = DatasetInfo.of(train_set).class_names or [str(c) for c in range(num_classes)]
        print("class weights (median frequency over the training set): " + ", ".join(
            f"{n} {w:.2f}" for n, w in zip(names, criterion.class_weights.tolist())), flush=True)
    return criterion


def _resume(result: TrainResult, cfg: TrainConfig, train_data, module, optimizer, scheduler, scaler, images: int):
    """Load ``result.out_dir/last.pt`` into the model, optimizer, schedule, scaler and ``result`` (history, best
    epoch), after checking that it was trained with this model, this schedule and these training images."""
    last = result.out_dir / "last.pt" if result.out_dir is not None else None
    if last is None or not last.is_file():
        raise ValueError(f"resume: no checkpoint to resume from at {result.out_dir}/last.pt")
    state = load_checkpoint(last)
    if RefineNetConfig.from_dict(state["model_config"]) != module.config:
        raise ValueError(f"resume: {last} was trained with a different model config")
    saved_cfg = state.get("train_config") or {}
    differ = [f"{k}={getattr(cfg, k)!r} (last.pt: {saved_cfg[k]!r})"
              for k in resume_conflicts(dataclasses.asdict(cfg), saved_cfg)]
    if differ:
        raise ValueError(f"resume: {last} continues its own optimizer and schedule; cannot honour "
                         f"{', '.join(differ)}: resume with its config, or start a new run")
    if state.get("train_data") and train_data and state["train_data"] != train_data:
        raise ValueError(f"resume: {last} was trained on another training set (fingerprint {state['train_data']}; "
                         f"this one, {images} images, has {train_data}): resume with the same data "
                         "(--data, --subset), or start a new run")
    module.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    scaler.load_state_dict(state["scaler"])
    result.history = list(state["history"])
    result.best_miou = state.get("best_miou", result.best_miou)
    result.best_epoch = state.get("best_epoch", result.best_epoch)


def _wrapped(module: torch.nn.Module, compile: bool, world: int, device: torch.device) -> torch.nn.Module:
    """The network the steps run: ``module`` in DistributedDataParallel (under torchrun), ``torch.compile``d
    if asked. Both share ``module``'s weights, which are what is evaluated and saved."""
    net = module
    if world > 1:
        device_ids = [device.index] if device.type == "cuda" else None
        net = torch.nn.parallel.DistributedDataParallel(module, device_ids=device_ids)
    return torch.compile(net) if compile else net


def _reseed(loader: DataLoader, seed: int, epoch: int, rank: int) -> None:
    """Reseed every generator from (seed, epoch): an epoch draws the same crops, flips, dropout masks and batch
    order whether or not the run was resumed."""
    seed_everything(seed * 100_003 + epoch * 1009 + rank)
    loader.generator.manual_seed(seed * 100_003 + epoch)
    if isinstance(loader.sampler, DistributedSampler):
        loader.sampler.set_epoch(epoch)


def _epoch_record(stats: EpochStats, epoch: int, optimizer, world: int) -> dict[str, Any]:
    """The epoch's history record, before validation: its mean loss over every process, the learning rate, the speed,
    and in the first epoch the untrained network's loss (``initial_loss``, divergence's first reference)."""
    loss_sum, seen = stats.loss_sum, stats.images
    first_loss = stats.first_loss if stats.first_loss is not None else torch.zeros_like(loss_sum)
    if world > 1:
        totals = torch.stack([loss_sum, torch.full_like(loss_sum, seen), first_loss / world])
        dist.all_reduce(totals)
        loss_sum, seen, first_loss = totals[0], int(totals[1].item()), totals[2]
    record = {"epoch": epoch + 1, "loss": float(loss_sum.item() / max(1, seen)),
              "lr": optimizer.param_groups[1]["lr"], "images_per_second": seen / max(stats.seconds, 1e-9),
              "miou": None, "pixel_accuracy": None}
    if epoch == 0 and stats.first_loss is not None:
        record["initial_loss"] = float(first_loss.item())
    return record


def _judge(result: TrainResult, record: dict, lr: float, warn: bool) -> bool:
    """Whether the epoch of ``record`` is the best so far (then ``result`` says so); an epoch whose loss blew up
    (:mod:`~refinenet_edu.engine.divergence`) never is, and the first one is warned about."""
    jumps = list(loss_jumps(result.history))
    blew_up = bool(jumps) and jumps[-1].epoch == record["epoch"]
    if blew_up and jumps[0] is jumps[-1] and warn:
        print(f"warning: the training loss blew up ({jumps[0].describe()}); this run diverged: an epoch like "
              f"this is never written as best.pt; training goes on, but lower the learning rate (now lr={lr})",
              file=sys.stderr, flush=True)
    improved = not blew_up and record["miou"] is not None and record["miou"] > result.best_miou
    if improved:
        result.best_miou, result.best_epoch = record["miou"], record["epoch"]
    return improved


def _save(out_dir: Path, module, optimizer, scheduler, scaler, result: TrainResult, improved: bool, stamp: dict):
    """``best.pt`` (the model, when it improved), ``last.pt`` (everything a resume needs) and history.json."""
    common = dict(epoch=result.history[-1]["epoch"] - 1, history=result.history, best_miou=result.best_miou,
                  best_epoch=result.best_epoch, **stamp)
    if improved:
        save_checkpoint(out_dir / "best.pt", module, metrics={"miou": result.best_miou}, **common)
    save_checkpoint(out_dir / "last.pt", module, optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
                    scaler=scaler.state_dict(), **common)
    atomic_write_json(out_dir / "history.json", result.history)


def _stop_reason(cfg: TrainConfig, record: dict) -> str:
    if cfg.target_miou is not None and record["miou"] is not None and record["miou"] >= cfg.target_miou:
        return f"reached target mIoU {cfg.target_miou}"
    if cfg.max_minutes is not None and record["elapsed"] >= cfg.max_minutes * 60:
        return f"time budget of {cfg.max_minutes} min"
    return "finished"


@contextlib.contextmanager
def _explained_failures(cfg: TrainConfig, device: torch.device, dtype: torch.dtype, result: TrainResult, scheduler):
    """Failures a user can act on, said with what to do: Ctrl-C (where the run can go on from), a NaN loss (and
    which checkpoint is kept), running out of memory, and batch norm given one value per channel."""
    try:
        yield
    except KeyboardInterrupt as stop:
        if type(stop) is not KeyboardInterrupt:  # e.g. the command line's SIGTERM: its own handling
            raise
        done = len(result.history)
        kept = (f"{result.out_dir / 'last.pt'} holds epoch {done}: train(..., resume=True) goes on from there"
                if result.out_dir is not None and done else "nothing was saved")
        raise TrainingInterrupted(f"training interrupted in epoch {done + 1}; {kept}") from None
    except TrainingDiverged as err:
        done, jump = len(result.history), first_loss_jump(result.history)
        last = result.out_dir / "last.pt" if result.out_dir is not None and done else None
        if last is None:
            kept = "No checkpoint was written."
        elif jump is None:
            kept = f"The last good checkpoint is kept: {last} (epoch {done})."
        else:  # the loss had blown up before it became NaN: last.pt holds a diverged model
            best = (f"{result.out_dir / 'best.pt'} (epoch {result.best_epoch}) holds the best epoch that did not"
                    if result.best_epoch > 0 else "no good checkpoint was written")
            kept = f"{last} (epoch {done}) is kept, but the run had already diverged ({jump.describe()}); {best}."
        fp32 = " or use precision='fp32'" if dtype != torch.float32 else ""
        raise TrainingDiverged(f"{err} in epoch {done + 1} (step {scheduler.last_epoch}); stopped. {kept} "
                               f"Lower the learning rate (now lr={cfg.lr}){fp32}.") from None
    except RuntimeError as err:
        text = str(err).lower()  # the CPU allocator says "can't allocate memory", CUDA "out of memory"
        if isinstance(err, torch.OutOfMemoryError) or "out of memory" in text or "can't allocate memory" in text:
            raise RuntimeError(
                f"out of memory on {device} with batch_size={cfg.batch_size}, crop_size={cfg.crop_size}, "
                f"precision={cfg.precision}: lower --batch-size (e.g. {max(1, cfg.batch_size // 2)}) or --crop-size, "
                "use --precision auto (bf16, or fp16 on GPUs before compute capability 8.0), or choose narrower "
                "decoder --widths / a smaller --backbone") from err
        raise
    except ValueError as err:
        if "Expected more than 1 value per channel when training" not in str(err):  # torch's batch norm
            raise
        deepest = -(-cfg.crop_size // 32)  # the encoder's 1/32 stage, rounded up as the strided convolutions do
        raise ValueError(
            f"batch norm cannot train on batch_size={cfg.batch_size} with crop_size={cfg.crop_size}: the encoder's "
            f"1/32 features are {deepest}x{deepest}, so a batch norm layer sees {cfg.batch_size * deepest * deepest} "
            "value(s) per channel and needs more than one: use --batch-size 2 or more, or --crop-size 64 or more"
        ) from err
