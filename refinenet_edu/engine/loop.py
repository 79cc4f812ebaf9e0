"""Training RefineNet, readable top to bottom.

The recipe of the official code: SGD with momentum 0.9 and weight decay
5e-4, a learning rate for the decoder (5e-4) and a 10x lower one for the
pretrained encoder, frozen batch-norm statistics, random scale, crop and flip,
and the ignore label 255. The official code lowered its rate by hand, in
steps, to 5e-5, with batches of one image; the library's recipes use DeepLab's
"poly" schedule ``lr * (1 - step/steps) ** 0.9`` and batches of 16 instead
(and add colour jitter, which the official code has not). ``schedule="step"``
with ``batch_size=1`` and ``jitter=False`` (``refinenet-edu train --schedule
step --batch-size 1 --no-jitter``) is the official code's way: both rates 10x
lower after ``step_at`` (3/4) of the steps, so the decoder ends at 5e-5. When
the official code stepped and how long it trained are not published; 3/4 and
the epoch count are the course's choices.

:func:`train` does, in order:

1. pick the device (cuda, then mps, then cpu) and the precision (bf16 where the
   hardware is fast at it; fp16 with a gradient scaler on older GPUs);
2. join the process group when launched by ``torchrun`` (DistributedDataParallel);
3. build the data loaders, the optimizer with its two parameter groups and the
   learning-rate schedule (poly or step);
4. resume from ``out_dir/last.pt`` when asked;
5. for every epoch: reseed (so an epoch is the same whether or not the run was
   resumed), train, evaluate mIoU on the validation set, write history.json,
   ``last.pt`` (everything needed to resume) and ``best.pt`` (model only), all
   atomically.

A NaN loss stops the run with a clear message naming the last checkpoint
written (if one was); running out of memory says what to lower. A resumed run
keeps its checkpoint's schedule: a config whose optimizer or schedule options
differ from it is refused.
"""

from __future__ import annotations

import dataclasses
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from refinenet_edu.engine.checkpoints import load_checkpoint, save_checkpoint, unwrap
from refinenet_edu.config import RefineNetConfig
from refinenet_edu.engine.runtime import autocast, describe_device, resolve_device, resolve_precision
from refinenet_edu.files import atomic_write_json

__all__ = [
    "TrainConfig",
    "RECIPES",
    "TrainResult",
    "TrainingDiverged",
    "seed_everything",
    "train",
    "make_optimizer",
    "poly_lambda",
    "step_lambda",
    "lr_lambda",
    "describe_dataset",
    "epoch_scores",
]


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


@dataclass
class TrainConfig:
    """How to train (the model's architecture lives in ``RefineNetConfig``)."""

    epochs: int = 40
    batch_size: int = 16
    optimizer: str = "sgd"  # "sgd" (official) or "adam"
    lr: float = 5e-4  # decoder learning rate
    encoder_lr_ratio: float = 0.1  # encoder lr = lr * ratio (official: 10x lower)
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "poly"  # "poly" (DeepLab's) or "step" (the official code's: 10x lower after step_at)
    poly_power: float = 0.9
    step_at: float = 0.75  # "step": the fraction of the steps after which both rates are 10x lower
    warmup_epochs: float = 0.0  # linear warm-up before the decay (helps Adam from scratch)
    crop_size: int = 400
    scale_range: tuple[float, float] = (0.7, 1.3)
    hflip: bool = True
    jitter: bool = True
    device: str = "auto"
    precision: str = "auto"  # auto / fp32 / bf16 / fp16
    channels_last: bool = True
    compile: bool = False
    seed: int = 0
    num_workers: int = 0
    eval_every: int = 1
    target_miou: float | None = None  # stop once validation mIoU reaches it
    max_minutes: float | None = None  # stop after the epoch that passes this wall time
    ignore_index: int = 255

    def __post_init__(self) -> None:
        self.scale_range = tuple(self.scale_range)
        checks = [
            ("epochs", self.epochs >= 1, "an integer >= 1"),
            ("batch_size", self.batch_size >= 1, "an integer >= 1"),
            ("optimizer", self.optimizer in ("sgd", "adam"), "'sgd' or 'adam'"),
            ("schedule", self.schedule in ("poly", "step"), "'poly' or 'step'"),
            ("step_at", 0 < self.step_at <= 1, "a fraction in (0, 1]"),
            ("lr", math.isfinite(self.lr) and self.lr > 0, "a finite number > 0"),
            ("encoder_lr_ratio", math.isfinite(self.encoder_lr_ratio) and self.encoder_lr_ratio >= 0,
             "a finite number >= 0"),
            ("weight_decay", math.isfinite(self.weight_decay) and self.weight_decay >= 0, "a finite number >= 0"),
            ("max_minutes", self.max_minutes is None or (math.isfinite(self.max_minutes) and self.max_minutes >= 0),
             "a finite number of minutes >= 0 (0: stop after the first epoch)"),
            ("target_miou", self.target_miou is None or 0 < self.target_miou <= 1, "a number in (0, 1]"),
            ("crop_size", self.crop_size >= 32, "an integer >= 32"),
            ("num_workers", self.num_workers >= 0, "an integer >= 0"),
            ("eval_every", self.eval_every >= 1, "an integer >= 1"),
        ]
        for name, ok, allowed in checks:
            if not ok:
                raise ValueError(f"{name}={getattr(self, name)!r}: expected {allowed}")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["scale_range"] = list(self.scale_range)
        return d

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


#: Training recipes by model preset. ``official`` and ``light-weight`` take the
#: published rates, momentum, weight decay, crops and scales (they assume
#: ImageNet weights), with batch 16 and the poly schedule in place of the
#: official code's batch 1 and manual steps; ``course`` trains the small
#: course model from scratch on the embedded dataset, so its encoder learns at
#: the full rate.
RECIPES: dict[str, TrainConfig] = {
    "official": TrainConfig(),
    "paper": TrainConfig(),
    "light-weight": TrainConfig(lr=5e-3, encoder_lr_ratio=0.1, crop_size=500, scale_range=(0.5, 2.0)),
    "course": TrainConfig(
        epochs=30,
        batch_size=16,
        optimizer="adam",
        lr=2e-3,
        encoder_lr_ratio=1.0,
        weight_decay=1e-4,
        warmup_epochs=1.0,
        crop_size=128,
        scale_range=(0.75, 1.25),
    ),
}


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


# ----------------------------------------------------------------- pieces
#: the options that shape the optimizer and the schedule: a resumed run must keep its checkpoint's
RESUME_FIXED = ("epochs", "batch_size", "optimizer", "schedule", "step_at", "lr", "encoder_lr_ratio", "momentum",
                "weight_decay", "poly_power", "warmup_epochs", "crop_size", "scale_range", "jitter", "seed")


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


def poly_lambda(total_steps: int, power: float = 0.9, warmup_steps: int = 0):
    """The "poly" learning-rate factor ``(1 - step / total) ** power``.

    With ``warmup_steps`` the factor first rises linearly from ~0 to 1.
    """

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        return max(0.0, 1.0 - step / max(1, total_steps)) ** power

    return factor


def step_lambda(total_steps: int, at: float = 0.75, factor: float = 0.1, warmup_steps: int = 0):
    """The step schedule's factor: 1 until ``at * total_steps``, then ``factor``.

    With the official rates (5e-4 decoder, 5e-5 encoder) and ``factor=0.1``
    the decoder ends at 5e-5, where the official code's hand-made steps
    ended. With ``warmup_steps`` the factor first rises linearly to 1.
    """
    boundary = round(at * total_steps)

    def f(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        return 1.0 if step < boundary else factor

    return f


def lr_lambda(cfg: "TrainConfig", total_steps: int, warmup_steps: int = 0):
    """The learning-rate factor of ``cfg.schedule`` (:func:`poly_lambda` or :func:`step_lambda`)."""
    if cfg.schedule == "step":
        return step_lambda(total_steps, cfg.step_at, warmup_steps=warmup_steps)
    return poly_lambda(total_steps, cfg.poly_power, warmup_steps)


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Two parameter groups: encoder at ``lr * encoder_lr_ratio``, decoder at ``lr``."""
    module = unwrap(model)
    groups = [
        {"params": list(module.encoder_parameters()), "lr": cfg.lr * cfg.encoder_lr_ratio, "name": "encoder"},
        {"params": list(module.decoder_parameters()), "lr": cfg.lr, "name": "decoder"},
    ]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)


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


def _is_out_of_memory(err: BaseException) -> bool:
    return isinstance(err, torch.OutOfMemoryError) or "out of memory" in str(err).lower()


def _out_of_memory_message(cfg: TrainConfig, device: torch.device) -> str:
    return (
        f"out of memory on {device} with batch_size={cfg.batch_size}, crop_size={cfg.crop_size}, "
        f"precision={cfg.precision}: lower --batch-size (e.g. {max(1, cfg.batch_size // 2)}) or --crop-size, "
        "use --precision bf16 (or fp16 on older GPUs), or choose narrower decoder --widths / a smaller --backbone"
    )


def epoch_scores(record: dict) -> str:
    """'loss 0.1234  val mIoU 0.567' for one history record (no mIoU in epochs without validation)."""
    miou = "" if record.get("miou") is None else f"  val mIoU {record['miou']:.3f}"
    return f"loss {record['loss']:.4f}{miou}"


def describe_dataset(ds) -> dict:
    """What a checkpoint records of its dataset: name, class names, palette."""
    return {
        "name": str(getattr(ds, "name", "") or getattr(ds, "root", "")),
        "class_names": list(getattr(ds, "class_names", [])),
        "palette": [list(map(int, c)) for c in getattr(ds, "palette", [])],
        "num_classes": int(getattr(ds, "num_classes", 0) or 0),
        "ignore_index": int(getattr(ds, "ignore_index", 255)),
    }


# ----------------------------------------------------------------- the loop
def train(
    model: torch.nn.Module | RefineNetConfig,
    train_set: Dataset,
    val_set: Dataset | None,
    cfg: TrainConfig | None = None,
    *,
    out_dir: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool = True,
    live_plot: bool = False,
    dataset_info: dict | None = None,
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
    loss, miou, elapsed, ...) once that epoch is saved.
    """
    from refinenet_edu.engine.evaluation import eval_loader, evaluate  # evaluation depends on the model, not on training
    from refinenet_edu.model import RefineNet

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
    ds_classes = getattr(train_set, "num_classes", None)
    if ds_classes is not None and ds_classes != num_classes:
        raise ValueError(f"the model predicts {num_classes} classes but the training set has {ds_classes}")
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
        )

    # ---- optimizer, schedule, gradient scaler (fp16 only)
    steps_per_epoch = len(train_loader)  # the real number of steps (the last partial batch is dropped)
    total_steps = steps_per_epoch * cfg.epochs
    optimizer = make_optimizer(module, cfg)
    warmup_steps = round(cfg.warmup_epochs * steps_per_epoch)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg, total_steps, warmup_steps))
    scaler = torch.amp.GradScaler(device.type, enabled=(dtype == torch.float16))

    # ---- resume
    history: list[dict] = []
    start_epoch = 0
    best_miou, best_epoch = float("-inf"), -1
    saved_epoch = None  # the last epoch written to out_dir/last.pt
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
        module.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        history = list(state["history"])
        start_epoch = int(state["epoch"]) + 1
        best_miou = state.get("best_miou", best_miou)
        best_epoch = state.get("best_epoch", best_epoch)
        saved_epoch = start_epoch

    # ---- wrappers: DDP, torch.compile
    net: torch.nn.Module = module
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            module, device_ids=[device.index] if device.type == "cuda" else None
        )
    if cfg.compile:
        net = torch.compile(net)

    plot = None
    if live_plot and is_main:
        from refinenet_edu.viz.plots import LiveTrainingPlot

        plot = LiveTrainingPlot()
        plot.update(history)
    from tqdm.auto import tqdm

    result = TrainResult(out_dir=out_dir, device=describe_device(device), precision=str(dtype).replace("torch.", ""))
    started = time.perf_counter()
    elapsed_before = sum(h.get("seconds", 0.0) for h in history)

    for epoch in range(start_epoch, cfg.epochs):
        # Reseed from (seed, epoch): an epoch draws the same crops, flips,
        # dropout masks and batch order whether or not the run was resumed.
        seed_everything(cfg.seed * 100_003 + epoch * 1009 + rank)
        loader_gen.manual_seed(cfg.seed * 100_003 + epoch)
        if sampler is not None:
            sampler.set_epoch(epoch)
        net.train()
        epoch_start = time.perf_counter()
        loss_sum = torch.zeros((), device=device, dtype=torch.float64)
        seen = 0
        bar = tqdm(train_loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False, disable=not (progress and is_main))
        for images, masks in bar:
            images = images.to(device, non_blocking=True)
            masks = masks.to(device, non_blocking=True).long()
            if cfg.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            try:
                with autocast(device, dtype):
                    scores = net(images)
                    loss = F.cross_entropy(scores.float(), masks, ignore_index=cfg.ignore_index)
                loss_value = loss.item()  # the step's one device sync: the NaN check and the progress bar share it
                if not math.isfinite(loss_value):
                    raise TrainingDiverged(
                        f"the loss became {loss_value} in epoch {epoch + 1} (step {scheduler.last_epoch}); stopped. "
                        + (f"The last good checkpoint is kept: {out_dir / 'last.pt'} (epoch {saved_epoch}). "
                           if saved_epoch is not None else "No checkpoint was written. ")
                        + f"Lower the learning rate (now lr={cfg.lr}) or use precision='fp32'."
                    )
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
            except RuntimeError as err:
                if _is_out_of_memory(err) and not isinstance(err, TrainingDiverged):
                    raise RuntimeError(_out_of_memory_message(cfg, device)) from err
                raise
            loss_sum += loss.detach().double() * images.shape[0]
            seen += images.shape[0]
            if progress and is_main:
                bar.set_postfix(loss=f"{loss_value:.3f}")
        if world > 1:
            totals = torch.stack([loss_sum, torch.tensor(float(seen), device=device, dtype=torch.float64)])
            dist.all_reduce(totals)
            loss_sum, seen = totals[0], int(totals[1].item())
        train_seconds = time.perf_counter() - epoch_start

        record: dict[str, Any] = {
            "epoch": epoch + 1,
            "loss": float(loss_sum.item() / max(1, seen)),
            "lr": optimizer.param_groups[1]["lr"],
            "images_per_second": seen / max(train_seconds, 1e-9),
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
        record["seconds"] = time.perf_counter() - epoch_start
        record["elapsed"] = elapsed_before + (time.perf_counter() - started)
        history.append(record)

        improved = record["miou"] is not None and record["miou"] > best_miou
        if improved:
            best_miou, best_epoch = record["miou"], epoch + 1
        if is_main and out_dir is not None:
            common = dict(
                epoch=epoch,
                history=history,
                best_miou=best_miou,
                best_epoch=best_epoch,
                train_config=cfg.to_dict(),
                dataset=dataset_info if dataset_info is not None else describe_dataset(train_set),
                provenance=provenance or {},
            )
            if improved:
                save_checkpoint(out_dir / "best.pt", module, metrics={"miou": record["miou"]}, **common)
            save_checkpoint(
                out_dir / "last.pt", module, optimizer=optimizer.state_dict(),
                scheduler=scheduler.state_dict(), scaler=scaler.state_dict(), **common,
            )
            atomic_write_json(out_dir / "history.json", history)
            saved_epoch = epoch + 1
        if plot is not None:
            plot.update(history)
        if progress and is_main:
            print(f"epoch {epoch + 1:3d}/{cfg.epochs}  {epoch_scores(record)}  "
                  f"({record['images_per_second']:.1f} img/s, {record['elapsed']:.0f} s)", flush=True)
        if on_epoch is not None and is_main:
            on_epoch(record)
        if cfg.target_miou is not None and record["miou"] is not None and record["miou"] >= cfg.target_miou:
            result.stopped_because = f"reached target mIoU {cfg.target_miou}"
            break
        if cfg.max_minutes is not None and record["elapsed"] >= cfg.max_minutes * 60:
            result.stopped_because = f"time budget of {cfg.max_minutes} min"
            break

    if plot is not None:
        plot.close()
    result.history = history
    result.best_miou = best_miou if best_epoch > 0 else float("nan")
    result.best_epoch = best_epoch
    result.seconds = elapsed_before + (time.perf_counter() - started)
    return result
