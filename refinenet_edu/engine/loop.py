"""The training loop, readable top to bottom: one step, one epoch, many epochs, a whole run.

Every trainer of the library is built from these four, so the mixed-precision
handling exists once (autocast for the forward pass and the loss, a gradient
scaler for float16, see :mod:`refinenet_edu.engine.runtime`):

* :func:`train_step` - forward under autocast, the loss in float32, backward
  (scaled for float16), the optimizer and schedule step;
* :func:`train_one_epoch` - :func:`train_step` over a data loader;
* :func:`fit` - epochs of :func:`train_one_epoch` with hooks before and after
  each (reseeding, validation, checkpoints, stopping);
* :func:`train` - a RefineNet on a segmentation dataset with a
  :class:`~refinenet_edu.engine.recipes.TrainConfig`: device and precision,
  ``torchrun`` (DistributedDataParallel), data loaders, optimizer and
  schedule, resume, validation mIoU, checkpoints.

The encoder pretraining (:mod:`refinenet_edu.experiments.pretraining`), the
benchmark harness (``./course bench``), ``benchmarks/train_course.py``
and notebook 07 call these functions rather than writing a step of their own.

:func:`train` does, in order:

1. pick the device (cuda, then mps, then cpu) and the precision
   (:func:`~refinenet_edu.engine.runtime.resolve_precision`: bf16 where the
   hardware runs it natively; fp16 with a gradient scaler on CUDA GPUs before
   compute capability 8.0, such as a T4);
2. join the process group when launched by ``torchrun`` (DistributedDataParallel);
3. build the data loaders, the optimizer with its two parameter groups and the
   learning-rate schedule (poly or step);
4. resume from ``out_dir/last.pt`` when asked;
5. for every epoch: reseed (so an epoch is the same whether or not the run was
   resumed), train, evaluate mIoU on the validation set, write history.json,
   ``last.pt`` (everything needed to resume) and ``best.pt`` (model only), all
   atomically.

A NaN loss stops the run with a clear message naming the last checkpoint
written (if one was); running out of memory says what to lower. An epoch whose
loss blew up (over 10x the lowest before it, :mod:`refinenet_edu.engine.divergence`,
the rule the ablation statistics use) is warned about once and never written as
``best.pt``; the run goes on (a loss spike can settle, and an ablation records
the run so that its statistics can leave it out), and stops at the first NaN. A resumed run
keeps its checkpoint's schedule: a config whose optimizer or schedule options
differ from it is refused.
"""

from __future__ import annotations

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
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from refinenet_edu.datasets.info import DatasetInfo, class_pixel_histogram, fingerprint, require_labelled_pixels
from refinenet_edu.datasets.loading import eval_loader
from refinenet_edu.engine.checkpoints import load_checkpoint, save_checkpoint, unwrap
from refinenet_edu.engine.criterion import SegmentationLoss, median_frequency_weights
from refinenet_edu.engine.divergence import first_loss_jump, loss_jumps
from refinenet_edu.engine.evaluation import evaluate
from refinenet_edu.engine.recipes import RESUME_FIXED, TrainConfig, _plain, lr_lambda, make_optimizer
from refinenet_edu.engine.runtime import (
    autocast,
    describe_device,
    dtype_name,
    grad_scaler,
    loader_start_method,
    resolve_device,
    resolve_precision,
)
from refinenet_edu.files import atomic_write_json
from refinenet_edu.nn.config import RefineNetConfig

__all__ = [
    "TrainResult",
    "TrainingDiverged",
    "EpochStats",
    "seed_everything",
    "train_step",
    "train_one_epoch",
    "fit",
    "train",
    "epoch_scores",
    "make_criterion",
]


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


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
    progress: bool | None = None,
    desc: str = "train",
) -> EpochStats:
    """:func:`train_step` over every ``(images, targets)`` batch.

    ``progress``: ``True`` shows a progress bar with the running loss,
    ``False`` makes a hidden one, ``None`` none at all. (The difference
    between the last two: ``tqdm.auto``'s bar calls ``iter()`` on a data
    loader when it is made, which draws one number from the loader's random
    generator and so shifts the order of the batches; :func:`train` has
    always made a bar, shown or not, and keeps doing so, so that its runs
    reproduce.)
    """
    model.train()
    started = time.perf_counter()
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    first_loss = None
    seen = 0
    bar = batches
    if progress is not None:
        from tqdm.auto import tqdm

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


# ----------------------------------------------------------------- many epochs
def fit(
    model: torch.nn.Module,
    batches: Iterable,
    optimizer: torch.optim.Optimizer,
    *,
    epochs: int,
    start_epoch: int = 0,
    before_epoch: Callable[[int], None] | None = None,
    after_epoch: Callable[[int, EpochStats], bool | None] | None = None,
    **step_options: Any,
) -> int:
    """Train for epochs ``start_epoch`` .. ``epochs - 1``; returns the number of epochs run.

    ``before_epoch(epoch)`` runs first in each epoch (reseeding, a sampler's
    ``set_epoch``); ``after_epoch(epoch, stats)`` after it (validation,
    checkpoints, logging) and stops the run by returning ``True``.
    ``step_options`` go to :func:`train_one_epoch` (``criterion``, ``device``,
    ``dtype``, ``scaler``, ``scheduler``, ...); ``desc`` may use ``{epoch}``
    and ``{epochs}``.
    """
    desc = step_options.pop("desc", "epoch {epoch}/{epochs}")
    ran = 0
    for epoch in range(start_epoch, epochs):
        if before_epoch is not None:
            before_epoch(epoch)
        stats = train_one_epoch(model, batches, optimizer, desc=desc.format(epoch=epoch + 1, epochs=epochs),
                                **step_options)
        ran += 1
        if after_epoch is not None and after_epoch(epoch, stats):
            break
    return ran


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


def _distributed() -> tuple[int, int, int]:
    """(rank, world_size, local_rank); joins the process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, 0
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
    return dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0"))


class _ShardSampler(DistributedSampler):
    """Evaluation shards without DistributedSampler's padding (no image counted twice)."""

    def __iter__(self):
        return iter(range(self.rank, len(self.dataset), self.num_replicas))

    def __len__(self) -> int:
        return len(range(self.rank, len(self.dataset), self.num_replicas))


def make_criterion(cfg: TrainConfig, train_set, num_classes: int) -> SegmentationLoss:
    """The loss ``cfg.loss`` asks for; class-weighted cross-entropy weighs by the training set's own pixel counts."""
    weights = None
    if cfg.loss == "weighted-cross-entropy":
        frequency = class_pixel_histogram(train_set, num_classes, cfg.ignore_index)["frequency"]
        weights = median_frequency_weights(frequency)
    return SegmentationLoss(cfg.ignore_index, loss=cfg.loss, class_weights=weights, focal_gamma=cfg.focal_gamma)


def _is_out_of_memory(err: BaseException) -> bool:
    """CUDA's OutOfMemoryError, and the CPU allocator's refusal ("DefaultCPUAllocator: can't allocate memory")."""
    text = str(err).lower()
    return isinstance(err, torch.OutOfMemoryError) or "out of memory" in text or "can't allocate memory" in text


#: What torch's batch norm says when a training batch has one value per channel.
_BATCH_NORM_ONE_VALUE = "Expected more than 1 value per channel when training"


def _batch_norm_message(cfg: TrainConfig) -> str:
    deepest = -(-cfg.crop_size // 32)  # the encoder's 1/32 stage, rounded up as the strided convolutions do
    return (
        f"batch norm cannot train on batch_size={cfg.batch_size} with crop_size={cfg.crop_size}: the encoder's 1/32 "
        f"features are {deepest}x{deepest}, so a batch norm layer sees {cfg.batch_size * deepest * deepest} value(s) "
        "per channel and needs more than one: use --batch-size 2 or more, or --crop-size 64 or more"
    )


def _out_of_memory_message(cfg: TrainConfig, device: torch.device) -> str:
    return (
        f"out of memory on {device} with batch_size={cfg.batch_size}, crop_size={cfg.crop_size}, "
        f"precision={cfg.precision}: lower --batch-size (e.g. {max(1, cfg.batch_size // 2)}) or --crop-size, "
        "use --precision auto (bf16, or fp16 on GPUs before compute capability 8.0), or choose narrower decoder "
        "--widths / a smaller --backbone"
    )


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
    """Train ``model`` on ``train_set``, scoring mIoU on ``val_set`` after each epoch.

    ``model`` is a RefineNet (or a ``RefineNetConfig`` to build one). Datasets
    yield ``(image float [3,H,W], mask int64 [H,W])``; training images must
    share one size (use ``train_transforms(crop_size)``), validation images
    may have any size. With ``out_dir``,
    checkpoints and history are written there, and ``resume=True`` continues
    from ``out_dir/last.pt`` exactly where it stopped. ``on_epoch``, if given,
    is called on the main process with each epoch's history record (epoch,
    loss, miou, elapsed, ...) once that epoch is saved; a notebook passes
    :class:`refinenet_edu.viz.plots.LiveTrainingPlot` to redraw the curves.
    """
    from refinenet_edu.nn.model import RefineNet

    cfg = cfg or TrainConfig()
    rank, world, local_rank = _distributed()
    is_main = rank == 0
    device = resolve_device(cfg.device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    dtype = resolve_precision(cfg.precision, device)
    out_dir = Path(out_dir) if out_dir is not None else None

    # ---- model
    seed_everything(cfg.seed)
    if isinstance(model, RefineNetConfig):
        model = RefineNet(model)
    module = unwrap(model)
    num_classes = module.config.num_classes
    info = DatasetInfo.of(train_set)
    if info.num_classes and info.num_classes != num_classes:
        raise ValueError(f"the model predicts {num_classes} classes but the training set has {info.num_classes}")
    module.to(device)
    if cfg.channels_last:
        module.to(memory_format=torch.channels_last)

    # ---- data
    loader_gen = torch.Generator()
    sampler = DistributedSampler(train_set, world, rank, shuffle=True, seed=cfg.seed, drop_last=True) if world > 1 else None
    train_loader = DataLoader(
        train_set,
        batch_size=cfg.batch_size,
        shuffle=sampler is None,
        sampler=sampler,
        drop_last=len(train_set) >= cfg.batch_size * world,
        num_workers=cfg.num_workers,
        multiprocessing_context=loader_start_method(cfg.num_workers),
        generator=loader_gen,
        pin_memory=device.type == "cuda",
        persistent_workers=False,
    )
    val_loader = None
    if val_set is not None:
        # images of any size: same-size ones are batched, others run one by one (never padded)
        val_loader = eval_loader(
            val_set,
            batch_size=cfg.batch_size,
            sampler=_ShardSampler(val_set, world, rank, shuffle=False) if world > 1 else None,
            num_workers=cfg.num_workers,
            multiprocessing_context=loader_start_method(cfg.num_workers),
        )

    require_labelled_pixels(train_set)  # all "ignore": a loss of 0 that trains nothing
    criterion = make_criterion(cfg, train_set, num_classes).to(device)
    if is_main and progress and criterion.class_weights is not None:
        names = info.class_names or [str(c) for c in range(num_classes)]
        print("class weights (median frequency over the training set): " + ", ".join(
            f"{n} {w:.2f}" for n, w in zip(names, criterion.class_weights.tolist())), flush=True)

    # ---- optimizer, schedule, gradient scaler (fp16 only)
    steps_per_epoch = len(train_loader)  # the real number of steps (the last partial batch is dropped)
    total_steps = steps_per_epoch * cfg.epochs
    optimizer = make_optimizer(module, cfg)
    warmup_steps = round(cfg.warmup_epochs * steps_per_epoch)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg, total_steps, warmup_steps))
    scaler = grad_scaler(device, dtype)

    # ---- resume
    history: list[dict] = []
    start_epoch = 0
    best = {"miou": float("-inf"), "epoch": -1}
    saved = {"epoch": None}  # the last epoch written to out_dir/last.pt
    train_data = fingerprint(train_set)  # which training images: a resumed run must keep them
    if resume:
        if out_dir is None or not (out_dir / "last.pt").is_file():
            raise ValueError(f"resume: no checkpoint to resume from at {out_dir}/last.pt")
        state = load_checkpoint(out_dir / "last.pt")
        if RefineNetConfig.from_dict(state["model_config"]) != module.config:
            raise ValueError(f"resume: {out_dir}/last.pt was trained with a different model config")
        saved_cfg = state.get("train_config") or {}
        differ = [f"{k}={getattr(cfg, k)!r} (last.pt: {saved_cfg[k]!r})" for k in RESUME_FIXED
                  if k in saved_cfg and _plain(getattr(cfg, k)) != _plain(saved_cfg[k])]
        if differ:
            raise ValueError(f"resume: {out_dir}/last.pt continues its own optimizer and schedule; cannot honour "
                             f"{', '.join(differ)}: resume with its config, or start a new run")
        saved_data = state.get("train_data")
        if saved_data and train_data and saved_data != train_data:
            raise ValueError(f"resume: {out_dir}/last.pt was trained on another training set (fingerprint {saved_data}; "
                             f"this one, {len(train_set)} images, has {train_data}): resume with the same data "
                             "(--data, --subset), or start a new run")
        module.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        history = list(state["history"])
        start_epoch = int(state["epoch"]) + 1
        best = {"miou": state.get("best_miou", best["miou"]), "epoch": state.get("best_epoch", best["epoch"])}
        saved["epoch"] = start_epoch

    # ---- wrappers: DDP, torch.compile
    net: torch.nn.Module = module
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            module, device_ids=[device.index] if device.type == "cuda" else None
        )
    if cfg.compile:
        net = torch.compile(net)

    result = TrainResult(out_dir=out_dir, device=describe_device(device), precision=dtype_name(dtype))
    started = time.perf_counter()
    elapsed_before = sum(h.get("seconds", 0.0) for h in history)
    record_info = (dataset_info or info).as_dict()

    def before_epoch(epoch: int) -> None:
        # Reseed from (seed, epoch): an epoch draws the same crops, flips,
        # dropout masks and batch order whether or not the run was resumed.
        seed_everything(cfg.seed * 100_003 + epoch * 1009 + rank)
        loader_gen.manual_seed(cfg.seed * 100_003 + epoch)
        if sampler is not None:
            sampler.set_epoch(epoch)

    def after_epoch(epoch: int, stats: EpochStats) -> bool:
        loss_sum, seen = stats.loss_sum, stats.images
        first_loss = stats.first_loss if stats.first_loss is not None else torch.zeros((), device=device,
                                                                                       dtype=torch.float64)
        if world > 1:
            totals = torch.stack([loss_sum, torch.tensor(float(seen), device=device, dtype=torch.float64),
                                  first_loss / world])
            dist.all_reduce(totals)
            loss_sum, seen, first_loss = totals[0], int(totals[1].item()), totals[2]
        record: dict[str, Any] = {
            "epoch": epoch + 1,
            "loss": float(loss_sum.item() / max(1, seen)),
            "lr": optimizer.param_groups[1]["lr"],
            "images_per_second": seen / max(stats.seconds, 1e-9),
            "miou": None,
            "pixel_accuracy": None,
        }
        if val_loader is not None and ((epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs):
            ev = evaluate(
                module, val_loader, num_classes=num_classes, bands=(), device=device,
                amp_dtype=None if dtype == torch.float32 else dtype, progress=False, keep_per_image=False,
            )
            record["miou"] = ev.metrics.miou
            record["pixel_accuracy"] = ev.metrics.pixel_accuracy
        if epoch == 0 and stats.first_loss is not None:  # the untrained network's loss: divergence's first reference
            record["initial_loss"] = float(first_loss.item())
        record["seconds"] = time.perf_counter() - epoch_started[epoch]
        record["elapsed"] = elapsed_before + (time.perf_counter() - started)
        history.append(record)

        jumps = list(loss_jumps(history))
        blew_up = bool(jumps) and jumps[-1].epoch == epoch + 1  # this epoch diverged: never best.pt
        if blew_up and jumps[0] is jumps[-1] and is_main:  # the first such epoch: say so once
            print(f"warning: the training loss blew up ({jumps[0].describe()}); this run diverged: an epoch like "
                  f"this is never written as best.pt; training goes on, but lower the learning rate (now lr={cfg.lr})",
                  file=sys.stderr, flush=True)
        improved = not blew_up and record["miou"] is not None and record["miou"] > best["miou"]
        if improved:
            best.update(miou=record["miou"], epoch=epoch + 1)
        if is_main and out_dir is not None:
            common = dict(
                epoch=epoch, history=history, best_miou=best["miou"], best_epoch=best["epoch"],
                train_config=cfg.to_dict(), dataset=record_info, provenance=provenance or {},
                train_data=train_data,
            )
            if improved:
                save_checkpoint(out_dir / "best.pt", module, metrics={"miou": record["miou"]}, **common)
            save_checkpoint(
                out_dir / "last.pt", module, optimizer=optimizer.state_dict(),
                scheduler=scheduler.state_dict(), scaler=scaler.state_dict(), **common,
            )
            atomic_write_json(out_dir / "history.json", history)
            saved["epoch"] = epoch + 1
        if progress and is_main:
            print(f"epoch {epoch + 1:3d}/{cfg.epochs}  {epoch_scores(record)}  "
                  f"({record['images_per_second']:.1f} img/s, {record['elapsed']:.0f} s)", flush=True)
        if on_epoch is not None and is_main:
            on_epoch(record)
        if cfg.target_miou is not None and record["miou"] is not None and record["miou"] >= cfg.target_miou:
            result.stopped_because = f"reached target mIoU {cfg.target_miou}"
            return True
        if cfg.max_minutes is not None and record["elapsed"] >= cfg.max_minutes * 60:
            result.stopped_because = f"time budget of {cfg.max_minutes} min"
            return True
        return False

    epoch_started: dict[int, float] = {}

    def start(epoch: int) -> None:
        before_epoch(epoch)
        epoch_started[epoch] = time.perf_counter()

    try:
        fit(
            net, train_loader, optimizer, epochs=cfg.epochs, start_epoch=start_epoch, before_epoch=start,
            after_epoch=after_epoch, criterion=criterion, device=device, dtype=dtype,
            scaler=scaler, scheduler=scheduler, channels_last=cfg.channels_last, progress=progress and is_main,
        )
    except TrainingDiverged as err:
        epoch = len(history) + 1
        jump = first_loss_jump(history)
        if saved["epoch"] is None:
            kept = "No checkpoint was written. "
        elif jump is None:
            kept = f"The last good checkpoint is kept: {out_dir / 'last.pt'} (epoch {saved['epoch']}). "
        else:  # the loss had blown up before it became NaN: last.pt holds a diverged model
            kept = (f"{out_dir / 'last.pt'} (epoch {saved['epoch']}) is kept, but the run had already diverged "
                    f"({jump.describe()}); "
                    + (f"{out_dir / 'best.pt'} (epoch {best['epoch']}) holds the best epoch that did not. " if best["epoch"] > 0
                       else "no good checkpoint was written. "))
        raise TrainingDiverged(
            f"{err} in epoch {epoch} (step {scheduler.last_epoch}); stopped. {kept}"
            f"Lower the learning rate (now lr={cfg.lr}) or use precision='fp32'."
        ) from None
    except RuntimeError as err:
        if _is_out_of_memory(err):
            raise RuntimeError(_out_of_memory_message(cfg, device)) from err
        raise
    except ValueError as err:
        if _BATCH_NORM_ONE_VALUE in str(err):
            raise ValueError(_batch_norm_message(cfg)) from err
        raise

    result.history = history
    result.best_miou = best["miou"] if best["epoch"] > 0 else float("nan")
    result.best_epoch = best["epoch"]
    result.seconds = elapsed_before + (time.perf_counter() - started)
    return result
