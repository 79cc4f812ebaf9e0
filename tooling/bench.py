"""``./course bench``: how fast a RefineNet predicts and trains, next to its peers.

For every *case* - a model, a mode (``forward`` = prediction, ``train`` =
one SGD step: forward, cross-entropy, backward, update), a precision
(fp32, or bf16 / fp16 through ``torch.autocast``), a memory layout
(contiguous NCHW or channels_last), eager or ``torch.compile``, on a device -
it reports

* milliseconds per image and images per second (median over the timed
  iterations, or their minimum with ``--statistic min``: the better
  estimate on a machine that other work shares); on a CPU also the
  process's CPU time per image (all threads), which time spent waiting for
  other processes does not inflate;
* achieved TFLOP/s: FLOPs counted with ``torch.utils.flop_counter`` (on the
  ``meta`` device, so counting is free; the train step's backward pass is
  counted too, about 2x the forward), divided by the measured time;
* the fraction of the device's peak, where the peak is the best of a matrix
  multiplication and a 3x3 convolution probe in the same precision, timed
  in the same run before the cases and once in every round among them (the
  best time counts);
* peak memory of one step over what was resident before it (weights,
  optimizer state and input): on CUDA from ``torch.cuda.max_memory_allocated``;
  on a CPU from the process's peak resident set size (Linux ``VmHWM``, reset
  through ``/proc/self/clear_refs`` before the step, after returning freed
  heap memory with ``malloc_trim``). Python's ``tracemalloc`` does not see
  PyTorch's tensors, so it cannot be used.
* the speed-up over the same model in fp32, contiguous, eager (the
  baseline), and for predictions the share of pixels whose arg-max class is
  the same as the baseline's.

Peers: torchvision's FCN and DeepLabV3 (``fcn``, ``deeplabv3``) with the same
ResNet depth, random weights and no auxiliary head, measured in the same
cases. Their encoders are dilated (output stride 8), RefineNet's is not, so
their FLOPs differ a lot; the table gives both time and FLOPs ratios so a
reader can tell implementation speed from network size.

Cases are measured round-robin - one timed step of each case in turn, then
the next round - so that a machine shared with other work slows every case
alike. Compiled cases run one at a time in a child process with a time
limit, because compiling a ResNet-101 RefineNet takes minutes on a small CPU.

Model names: a preset (``official``, ``paper``, ``light-weight``,
``course``) or a peer (``fcn``, ``deeplabv3``), optionally ``@backbone`` and,
for presets, ``:key=value,...`` config overrides (tuples as ``32/32/48/64``),
e.g. ``official@resnet50``, ``fcn@resnet101``, ``official:cascade=single``.

Examples::

    ./course bench --smoke                     # < 1 minute, what CI runs
    ./course bench --models official fcn deeplabv3 --modes forward \\
        --input-size 512 512 --iterations 3 --json benchmarks/cpu.json
"""

from __future__ import annotations

import copy
import ctypes
import datetime as _dt
import contextlib
import json
import math
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from collections.abc import Iterator
from typing import Any, Callable

import torch
from torch import nn

from refinenet_edu.nn.config import MIN_INPUT_SIZE, PRESETS
from refinenet_edu.nn.encoders import BACKBONES
from refinenet_edu.engine.criterion import SegmentationLoss, class_scores
from refinenet_edu.engine.loop import train_step
from refinenet_edu.engine.runtime import DTYPES, autocast, bf16_native, cpu_supports_bf16, grad_scaler, resolve_device

__all__ = [
    "SCHEMA",
    "ModelSpec",
    "Case",
    "Settings",
    "parse_model_spec",
    "build_model",
    "count_step_flops",
    "PeakProbe",
    "probe_peak",
    "run_bench",
    "format_table",
]

SCHEMA = "refinenet-edu-bench/1"
PEERS = ("fcn", "deeplabv3")
PEER_BACKBONES = ("resnet50", "resnet101")  # what torchvision builds FCN / DeepLabV3 on
MODES = ("forward", "train")
MEMORY_FORMATS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}
BASELINE = ("fp32", "contiguous", False)  # dtype, memory format, compiled
STATISTICS = {"median": statistics.median, "min": min}
GRIDS = ("full", "lean")
ROW_KEYS = (  # every row of the JSON has these keys (tests check them)
    "model", "label", "family", "backbone", "parameters", "mode", "dtype", "memory_format", "compiled",
    "device", "batch", "input_size", "status", "note", "iterations", "times_ms", "cpu_times_ms", "statistic",
    "ms_per_step", "ms_per_image", "cpu_ms_per_image", "images_per_s", "flops_per_image", "tflops", "peak_tflops", "peak_fraction",
    "memory_mb", "speedup_vs_fp32_eager", "argmax_agreement", "compile_s",
)


# ---------------------------------------------------------------- what to run
@dataclass(frozen=True)
class ModelSpec:
    """A model to measure: a RefineNet preset (plus overrides) or a torchvision peer."""

    name: str
    backbone: str | None = None  # None: the preset's own
    overrides: tuple[tuple[str, Any], ...] = ()

    @property
    def family(self) -> str:
        return self.name if self.name in PEERS else "refinenet"

    @property
    def text(self) -> str:
        s = self.name + (f"@{self.backbone}" if self.backbone else "")
        if self.overrides:
            s += ":" + ",".join(f"{k}={_format_value(v)}" for k, v in self.overrides)
        return s


def _format_value(v: Any) -> str:
    return "/".join(map(str, v)) if isinstance(v, tuple) else str(v).lower() if isinstance(v, bool) else str(v)


def _parse_value(text: str) -> Any:
    if "/" in text:
        return tuple(_parse_value(t) for t in text.split("/"))
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_model_spec(text: str) -> ModelSpec:
    """``NAME[@BACKBONE][:KEY=VALUE,...]`` -> :class:`ModelSpec` (``ValueError`` if malformed)."""
    head, _, tail = text.partition(":")
    name, _, backbone = head.partition("@")
    if name not in PRESETS and name not in PEERS:
        raise ValueError(f"model {text!r}: expected a preset {list(PRESETS)} or a peer {list(PEERS)}")
    if backbone and backbone not in BACKBONES:
        raise ValueError(f"model {text!r}: backbone {backbone!r} is not one of {list(BACKBONES)}")
    if name in PEERS and backbone and backbone not in PEER_BACKBONES:
        raise ValueError(f"model {text!r}: torchvision builds {name} on {list(PEER_BACKBONES)} only")
    overrides = []
    if tail:
        if name in PEERS:
            raise ValueError(f"model {text!r}: overrides are for RefineNet presets only")
        for item in tail.split(","):
            key, eq, value = item.partition("=")
            if not eq or not key:
                raise ValueError(f"model {text!r}: expected KEY=VALUE after ':', got {item!r}")
            overrides.append((key.strip().replace("-", "_"), _parse_value(value.strip())))
    spec = ModelSpec(name, backbone or None, tuple(overrides))
    if spec.family == "refinenet":
        _refinenet_config(spec, 21)  # validate now: a clear error before anything runs
    return spec


def _refinenet_config(spec: ModelSpec, num_classes: int):
    from refinenet_edu.nn.config import make_config

    return make_config(spec.name, backbone=spec.backbone, num_classes=num_classes, **dict(spec.overrides))


def _peer_backbone(spec: ModelSpec, specs: list[ModelSpec], num_classes: int) -> ModelSpec:
    """Give a peer without ``@backbone`` the depth of the first RefineNet measured (resnet50 if none fits)."""
    if spec.family == "refinenet" or spec.backbone:
        return spec
    for other in specs:
        if other.family == "refinenet":
            depth = _refinenet_config(other, num_classes).backbone
            if depth in PEER_BACKBONES:
                return ModelSpec(spec.name, depth)
            break
    return ModelSpec(spec.name, "resnet50")


def build_model(spec: ModelSpec, num_classes: int = 21) -> nn.Module:
    """A randomly initialised model for ``spec`` (on the current default device)."""
    if spec.family == "refinenet":
        from refinenet_edu.nn.model import RefineNet

        return RefineNet(_refinenet_config(spec, num_classes))
    from torchvision.models import segmentation

    builder = getattr(segmentation, f"{spec.name}_{spec.backbone or 'resnet50'}")
    return builder(weights=None, weights_backbone=None, num_classes=num_classes, aux_loss=False)


def _label(spec: ModelSpec, model: nn.Module) -> tuple[str, str]:
    """(display label, backbone) of a built model."""
    if spec.family == "refinenet":
        cfg = model.config
        extra = "".join(f" {k}={_format_value(v)}" for k, v in spec.overrides)
        return f"RefineNet {spec.name}{extra}", cfg.backbone
    return {"fcn": "FCN", "deeplabv3": "DeepLabV3"}[spec.name] + " (torchvision)", spec.backbone or "resnet50"


@dataclass(frozen=True)
class Case:
    """One measured configuration of one model."""

    model: str  # ModelSpec.text
    mode: str  # "forward" | "train"
    dtype: str  # "fp32" | "bf16" | "fp16"
    memory_format: str  # "contiguous" | "channels_last"
    compiled: bool
    device: str  # "cpu" | "cuda" | "cuda:1" ...

    @property
    def is_baseline(self) -> bool:
        return (self.dtype, self.memory_format, self.compiled) == BASELINE


@dataclass
class Settings:
    input_size: tuple[int, int] = (512, 512)
    batch: int = 1
    iterations: int = 3
    warmup: int = 1
    num_classes: int = 21
    compile_timeout: float = 300.0
    seed: int = 0
    probe: bool = True
    cudnn_benchmark: bool = True  # let cuDNN time its algorithms once per shape (inputs here have one size)
    statistic: str = "median"  # of the timed steps: "median", or "min" on a machine shared with other work

    def validate(self) -> None:
        h, w = self.input_size
        if h < MIN_INPUT_SIZE or w < MIN_INPUT_SIZE:
            raise ValueError(f"input size {h}x{w}: height and width must be at least {MIN_INPUT_SIZE}")
        if self.batch < 1 or self.iterations < 1 or self.warmup < 0 or self.num_classes < 1:
            raise ValueError("batch, iterations and num_classes must be >= 1, warmup >= 0")
        if self.statistic not in STATISTICS:
            raise ValueError(f"statistic {self.statistic!r}: expected one of {list(STATISTICS)}")
        if self.compile_timeout <= 0:
            raise ValueError(f"compile timeout {self.compile_timeout}: must be positive")


# ---------------------------------------------------------------- FLOPs
def count_step_flops(spec: ModelSpec, mode: str, settings: Settings) -> int:
    """FLOPs of one step (whole batch) counted on the ``meta`` device.

    ``forward``: the forward pass in eval mode. ``train``: forward in train
    mode, cross-entropy and the backward pass (weight and activation
    gradients; the optimizer's element-wise update is not counted).
    """
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        model = build_model(spec, settings.num_classes)
        x = torch.zeros(settings.batch, 3, *settings.input_size)
        target = torch.zeros(settings.batch, *settings.input_size, dtype=torch.long)
    counter = FlopCounterMode(display=False)
    if mode == "forward":
        model.eval()
        with counter, torch.no_grad():
            class_scores(model(x))
    else:
        _train_mode(model)
        with counter:
            SegmentationLoss()(model(x), target).backward()
    return int(counter.get_total_flops())


def _train_mode(model: nn.Module) -> None:
    """``train()``, with the peers' batch norms frozen as RefineNet's official recipe freezes its own.

    (DeepLabV3's image-pooling branch cannot even run batch norm in training
    mode on a batch of one.)
    """
    model.train()
    if not hasattr(model, "config"):
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()


# ---------------------------------------------------------------- device helpers
@contextlib.contextmanager
def _cuda_math(settings: Settings) -> Iterator[None]:
    """cuDNN autotuning as ``settings`` says, for the block only (the caller's setting is restored)."""
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = settings.cudnn_benchmark
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before


def _cuda_math_in_force() -> dict[str, Any]:
    """The CUDA math settings in force, for the JSON."""
    return {
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
        "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
    }


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _dtype_runs_natively(dtype: str, device: torch.device) -> bool:
    if dtype == "bf16":
        return bf16_native(device)
    return dtype == "fp32" or device.type == "cuda"


def default_dtypes(device: torch.device) -> list[str]:
    """fp32 plus the low precisions the device runs natively (fp16 on a CPU is emulated: ask for it)."""
    return [d for d in DTYPES if _dtype_runs_natively(d, device)]


_LIBC = None


def _libc():
    global _LIBC
    if _LIBC is None:
        try:
            _LIBC = ctypes.CDLL("libc.so.6")
            _LIBC.malloc_trim  # noqa: B018 - glibc only
        except (OSError, AttributeError):
            _LIBC = False
    return _LIBC


def _proc_status_bytes(key: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark of this process (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        return True
    except OSError:
        return False


CPU_MEMORY_METHOD = "peak RSS (VmHWM, reset via /proc/self/clear_refs after malloc_trim) minus RSS before the step"
CUDA_MEMORY_METHOD = "torch.cuda.max_memory_allocated minus memory_allocated before the step"


def measure_memory(step: Callable[[], Any], device: torch.device) -> float | None:
    """MiB one ``step()`` needs beyond what was resident before it (None if it cannot be measured)."""
    if device.type == "cuda":
        _sync(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        step()
        _sync(device)
        return (torch.cuda.max_memory_allocated(device) - before) / 2**20
    if device.type != "cpu":
        step()
        return None
    libc = _libc()
    if libc:
        libc.malloc_trim(0)  # give freed heap pages back, so reused pages show up again
    before = _proc_status_bytes("VmRSS")
    if before is None or not _reset_peak_rss():
        step()
        return None
    step()
    peak = _proc_status_bytes("VmHWM")
    return max(0, peak - before) / 2**20 if peak is not None else None


class PeakProbe:
    """The device's peak in one dtype: a square matmul and a 3x3 channels_last convolution.

    Sizes grow until one call takes ``min_seconds`` (so that an emulated,
    slow precision does not take minutes). :meth:`run` times a few calls of
    each and keeps the best time seen; the bench calls it before the cases
    and once in every round among them, so the peak is measured under the
    same conditions (the same other work on a shared machine) as the cases.
    """

    def __init__(self, device: torch.device, dtype: str, *, min_seconds: float = 0.05):
        self.device = device
        torch_dtype = DTYPES[dtype]
        big = device.type == "cuda"
        with torch.inference_mode():
            n, limit = (2048 if big else 256), (16384 if big else 4096)
            while True:
                a = torch.randn(n, n, device=device).to(torch_dtype)
                b = torch.randn(n, n, device=device).to(torch_dtype)
                if _best_time(lambda: a @ b, device, reps=1) >= min_seconds or n >= limit:
                    break
                n *= 2
            # the decoder's most common layer
            channels, hw = (512, 64) if big else (256, 64)
            conv = nn.Conv2d(channels, channels, 3, padding=1, bias=False).to(device, torch_dtype)
            conv = conv.to(memory_format=torch.channels_last)
            batch, limit = 1, (256 if big else 64)
            while True:
                x = torch.randn(batch, channels, hw, hw, device=device).to(torch_dtype)
                x = x.contiguous(memory_format=torch.channels_last)
                if _best_time(lambda: conv(x), device, reps=1) >= min_seconds or batch >= limit:
                    break
                batch *= 2
        self.kernels = {
            "matmul": (2 * n**3, lambda: a @ b),
            "conv": (2 * batch * channels * channels * 9 * hw * hw, lambda: conv(x)),
        }
        self.sizes = {"matmul_size": n, "conv_shape": [batch, channels, hw, hw]}
        self.best = {name: math.inf for name in self.kernels}

    def run(self, reps: int = 3) -> None:
        with torch.inference_mode():
            for name, (_, fn) in self.kernels.items():
                self.best[name] = min(self.best[name], _best_time(fn, self.device, reps, warmup=False))

    def result(self) -> dict[str, Any]:
        tflops = {f"{name}_tflops": flops / self.best[name] / 1e12 for name, (flops, _) in self.kernels.items()}
        return {**tflops, "peak_tflops": max(tflops.values()), **self.sizes}


def probe_peak(device: torch.device, dtype: str, *, reps: int = 5) -> dict[str, Any]:
    """Best TFLOP/s of :class:`PeakProbe` 's matmul and convolution in ``dtype``, on its own."""
    probe = PeakProbe(device, dtype)
    probe.run(reps)
    return probe.result()


def _best_time(fn: Callable[[], Any], device: torch.device, reps: int, *, warmup: bool = True) -> float:
    if warmup:
        fn()  # oneDNN/cuBLAS pick their kernels on the first call
    best = math.inf
    for _ in range(reps):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return best


# ---------------------------------------------------------------- one case
class Runner:
    """Holds a prepared model and input for one case; ``step()`` runs it once."""

    def __init__(self, case: Case, model: nn.Module, settings: Settings):
        self.case = case
        self.device = torch.device(case.device)
        self.model = model
        self.dtype = DTYPES[case.dtype]
        fmt = MEMORY_FORMATS[case.memory_format]
        gen = torch.Generator().manual_seed(settings.seed)
        x = torch.randn(settings.batch, 3, *settings.input_size, generator=gen)
        self.x = x.to(self.device).contiguous(memory_format=fmt)
        self.forward = torch.compile(model) if case.compiled else model
        if case.mode == "train":
            self.target = torch.randint(0, settings.num_classes, (settings.batch, *settings.input_size), generator=gen)
            self.target = self.target.to(self.device)
            params = [p for p in model.parameters() if p.requires_grad]
            # lr does not change the cost; small, so that random labels do not blow the weights up
            self.optimizer = torch.optim.SGD(params, lr=1e-4, momentum=0.9, weight_decay=5e-4)
            self.scaler = grad_scaler(self.device, self.dtype)  # enabled for fp16 only
            self.criterion = SegmentationLoss()
        self.times: list[float] = []
        self.cpu_times: list[float] = []
        self.output: torch.Tensor | None = None

    def step(self) -> None:
        if self.case.mode == "forward":
            self.model.eval()
            with torch.inference_mode(), autocast(self.device, self.dtype):
                self.output = class_scores(self.forward(self.x))
            return
        _train_mode(self.model)
        train_step(self.forward, self.x, self.target, self.optimizer, criterion=self.criterion, dtype=self.dtype,
                   scaler=self.scaler, check_finite=False)  # no extra device sync inside the timed step

    def timed_step(self) -> None:
        """One step; appends its wall time and this process's CPU time (all threads) in seconds."""
        _sync(self.device)
        t0, c0 = time.perf_counter(), time.process_time()
        self.step()
        _sync(self.device)
        self.times.append(time.perf_counter() - t0)
        self.cpu_times.append(time.process_time() - c0)


def _empty_row(case: Case, spec: ModelSpec, settings: Settings) -> dict[str, Any]:
    row = {k: None for k in ROW_KEYS}
    row.update(asdict(case))
    row.update(
        family=spec.family, backbone=spec.backbone, batch=settings.batch, input_size=list(settings.input_size),
        status="ok", times_ms=[], iterations=0,
    )
    return row


def _agreement(output: torch.Tensor | None, reference: torch.Tensor | None) -> float | None:
    if output is None or reference is None:
        return None
    return (output.float().argmax(1) == reference.float().argmax(1)).float().mean().item()


def _measure(
    runners: list[Runner],
    settings: Settings,
    log: Callable[[str], None],
    references: dict[tuple[str, str], torch.Tensor] | None = None,
    probes: list[PeakProbe] = (),
) -> dict[Case, dict[str, Any]]:
    """Warm up, check the arg-max against the baseline, measure memory, then time round-robin.

    ``references``: baseline outputs by (model, device), filled in here from
    the baseline cases when they are among ``runners``. ``probes`` run once
    in every round, next to the cases.
    """
    out: dict[Case, dict[str, Any]] = {}
    references = {} if references is None else references
    alive = []
    # forward cases first: their outputs are compared before any train step changes the weights
    for r in sorted(runners, key=lambda r: (r.case.mode != "forward", not r.case.is_baseline)):
        info: dict[str, Any] = {}
        out[r.case] = info
        try:
            t0 = time.perf_counter()
            r.step()
            _sync(r.device)
            first = time.perf_counter() - t0
            if r.case.compiled:
                info["compile_s"] = first
            for _ in range(settings.warmup - 1):
                r.step()
            if r.case.mode == "forward":
                key = (r.case.model, r.case.device)
                if r.case.is_baseline:
                    references[key] = r.output.float().clone()
                info["argmax_agreement"] = _agreement(r.output, references.get(key))
                r.output = None
            info["memory_mb"] = measure_memory(r.step, r.device)
            alive.append(r)
            log(f"  ready: {_case_text(r.case)} (first step {first:.2f} s)")
        except Exception as err:  # one failing case (e.g. an unsupported dtype) must not end the run
            info["status"] = "error"
            info["note"] = f"{type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}"
            log(f"  error: {_case_text(r.case)}: {info['note']}")
    for i in range(settings.iterations):
        for r in alive if i % 2 == 0 else alive[::-1]:  # alternate the order: no case always goes first
            r.timed_step()
            r.output = None
        for p in probes:
            p.run()
        log(f"  round {i + 1}/{settings.iterations} done")
    for r in alive:
        out[r.case]["times_ms"] = [t * 1e3 for t in r.times]
        if r.device.type == "cpu":
            out[r.case]["cpu_times_ms"] = [t * 1e3 for t in r.cpu_times]
    return out


def _case_text(case: Case) -> str:
    compiled = " compiled" if case.compiled else ""
    return f"{case.model} {case.mode} {case.dtype} {case.memory_format}{compiled} on {case.device}"


# ---------------------------------------------------------------- compiled cases: child process
def _run_compiled_case(case: Case, settings: Settings, log: Callable[[str], None]) -> dict[str, Any]:
    """Measure one compiled case in a child process, killed after ``settings.compile_timeout`` seconds."""
    request = json.dumps({"case": asdict(case), "settings": asdict(settings)})
    cmd = [sys.executable, "-m", "tooling.bench", "--worker"]
    # the child uses as many threads as this process does now (--threads)
    env = dict(os.environ, OMP_NUM_THREADS=str(torch.get_num_threads()), PYTHONPATH=os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH")])))
    proc = subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=env, start_new_session=True,  # its own process group: the compiler's workers die with it
    )
    try:
        stdout, stderr = proc.communicate(request, timeout=settings.compile_timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        log(f"  compiled case stopped after {settings.compile_timeout:g} s")
        return {"status": "skipped", "note": f"compiling and measuring took longer than {settings.compile_timeout:g} s"}
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (stderr.strip().splitlines() or ["no output"])[-1][:200]
        log(f"  compiled case failed (exit {proc.returncode}): {tail}")
        return {"status": "error", "note": f"child process failed: {tail}"}
    return json.loads(lines[-1])


def _worker() -> int:
    """Child side of :func:`_run_compiled_case`: read a request on stdin, print one JSON line."""
    request = json.loads(sys.stdin.read())
    case = Case(**request["case"])
    s = request["settings"]
    s["input_size"] = tuple(s["input_size"])
    settings = Settings(**s)
    with _cuda_math(settings):
        print(json.dumps(_measure_in_worker(case, settings)))
    return 0


def _measure_in_worker(case: Case, settings: Settings) -> dict[str, Any]:
    spec = parse_model_spec(case.model)
    if case.mode == "forward":
        # freezing lets the compiler fold batch norm into the convolutions and pre-pack weights
        import torch._inductor.config as inductor_config

        inductor_config.freezing = True
    torch.manual_seed(settings.seed)
    device = torch.device(case.device)
    model = build_model(spec, settings.num_classes).to(device)
    references = {}
    if case.mode == "forward":  # the eager fp32 output, for the arg-max agreement
        baseline = Runner(Case(case.model, "forward", *BASELINE, case.device), model, settings)
        baseline.step()
        references[(case.model, case.device)] = baseline.output.float().clone()
        del baseline
    model.to(memory_format=MEMORY_FORMATS[case.memory_format])
    runner = Runner(case, model, settings)
    return _measure([runner], settings, log=lambda m: print(m, file=sys.stderr), references=references)[case]


# ---------------------------------------------------------------- the run
def environment(devices: list[torch.device]) -> dict[str, Any]:
    """Device, versions, commit and date for the JSON and the table's header."""
    import torchvision

    import refinenet_edu

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    info: dict[str, Any] = {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "commit": None,
        "dirty": None,
        "host": platform.node(),
        "platform": platform.platform(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cpu_bf16_native": cpu_supports_bf16(),
        "load_average": {"start": _load_average(), "end": None},  # other work on the machine
        "cuda": [torch.cuda.get_device_name(d) for d in devices if d.type == "cuda"],
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "torchvision": torchvision.__version__,
            "refinenet_edu": refinenet_edu.__version__,
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        },
    }
    from refinenet_edu.engine.provenance import git_commit

    commit = git_commit()
    if commit is not None:
        info["commit"] = commit.removesuffix("-dirty")
        info["dirty"] = commit.endswith("-dirty")
    return info


def run_bench(
    models: list[str],
    *,
    modes: list[str] = ("forward", "train"),
    dtypes: list[str] | None = None,
    memory_formats: list[str] = ("contiguous", "channels_last"),
    compile: str = "off",
    grid: str = "full",
    devices: list[str] | None = None,
    settings: Settings | None = None,
    log: Callable[[str], None] = lambda m: None,
) -> dict[str, Any]:
    """Measure every combination; return the JSON-able result (see the module docstring).

    ``grid="full"``: every dtype in every memory format. ``grid="lean"``:
    the fp32 contiguous eager baseline plus every dtype in channels_last only
    (the layout the fast paths use; eager and/or compiled as ``compile``
    says), which saves the slow combinations. cuDNN's autotuning follows
    ``settings.cudnn_benchmark`` during the run; the caller's setting is
    restored afterwards.
    """
    settings = settings or Settings()
    with _cuda_math(settings):
        return _run_bench(models, modes=modes, dtypes=dtypes, memory_formats=memory_formats, compile=compile,
                          grid=grid, devices=devices, settings=settings, log=log)


def _run_bench(models, *, modes, dtypes, memory_formats, compile, grid, devices, settings, log) -> dict[str, Any]:
    settings.validate()
    if grid not in GRIDS:
        raise ValueError(f"grid={grid!r}: expected one of {list(GRIDS)}")
    if compile not in ("off", "on", "both"):
        raise ValueError(f"compile={compile!r}: expected 'off', 'on' or 'both'")
    for mode in modes:
        if mode not in MODES:
            raise ValueError(f"mode {mode!r}: expected one of {list(MODES)}")
    for fmt in memory_formats:
        if fmt not in MEMORY_FORMATS:
            raise ValueError(f"memory format {fmt!r}: expected one of {list(MEMORY_FORMATS)}")
    if dtypes is not None:
        for d in dtypes:
            if d not in DTYPES:
                raise ValueError(f"dtype {d!r}: expected one of {list(DTYPES)}")
    if devices is None:
        devices = ["cuda"] if torch.cuda.is_available() else ["cpu"]
    devs = []
    for d in devices:
        dev = resolve_device(d)  # a name torch does not know: "device='tpu': expected ...", as every command says
        if dev.type not in ("cpu", "cuda"):
            raise ValueError(f"device {d!r}: expected cpu or cuda")
        devs.append(dev)
    specs = [parse_model_spec(m) for m in models]
    specs = [_peer_backbone(s, specs, settings.num_classes) for s in specs]
    compiled_opts = {"off": [False], "on": [True], "both": [False, True]}[compile]

    result: dict[str, Any] = {"schema": SCHEMA, **environment(devs)}
    result["settings"] = {
        **asdict(settings), "input_size": list(settings.input_size), "models": [s.text for s in specs],
        "modes": list(modes), "memory_formats": list(memory_formats), "compile": compile, "grid": grid,
        "devices": [str(d) for d in devs], "timing": f"{settings.statistic} of round-robin iterations",
    }
    if any(d.type == "cuda" for d in devs):
        result["settings"]["cuda_math"] = _cuda_math_in_force()
    result["memory_method"] = {"cpu": CPU_MEMORY_METHOD, "cuda": CUDA_MEMORY_METHOD}

    # cases per device, dtype list per device
    dtypes_per_device = {d: list(dtypes) if dtypes else default_dtypes(d) for d in devs}
    probes: dict[tuple[str, str], PeakProbe] = {}
    if settings.probe:
        for d in devs:
            for dt in dtypes_per_device[d]:
                log(f"peak probe: {d} {dt}")
                probes[(str(d), dt)] = PeakProbe(d, dt)
                probes[(str(d), dt)].run()

    rows: list[dict[str, Any]] = []
    eager_runners: list[Runner] = []
    compiled_cases: list[tuple[Case, ModelSpec]] = []
    flops: dict[tuple[str, str], int] = {}
    meta: dict[str, tuple[str, str, int]] = {}
    for spec in specs:
        for mode in modes:
            flops[(spec.text, mode)] = count_step_flops(spec, mode, settings)
        for d in devs:
            torch.manual_seed(settings.seed)
            base = build_model(spec, settings.num_classes).to(d)
            label, backbone = _label(spec, base)
            meta[spec.text] = (label, backbone, sum(p.numel() for p in base.parameters()))
            for fmt in memory_formats:
                model = copy.deepcopy(base).to(memory_format=MEMORY_FORMATS[fmt])  # same weights in every layout
                for mode in modes:
                    for dt in dtypes_per_device[d]:
                        if grid == "lean" and fmt != "channels_last" and (dt, fmt) != BASELINE[:2]:
                            continue
                        for compiled in compiled_opts:
                            case = Case(spec.text, mode, dt, fmt, compiled, str(d))
                            if grid == "lean" and fmt == "contiguous" and compiled:
                                continue  # lean: the contiguous layout only for the eager baseline
                            if compiled:
                                compiled_cases.append((case, spec))
                            else:
                                eager_runners.append(Runner(case, model, settings))
            del base

    log(f"measuring {len(eager_runners)} eager case(s) round-robin")
    infos = _measure(eager_runners, settings, log, probes=list(probes.values()))
    for case, _spec in compiled_cases:
        log(f"compiled case (child process, limit {settings.compile_timeout:g} s): {_case_text(case)}")
        infos[case] = _run_compiled_case(case, settings, log)
    del eager_runners
    result["peak"] = {}
    for (d, dt), p in probes.items():
        result["peak"].setdefault(d, {})[dt] = p.result()
    del probes

    cases = list(infos)
    for case in cases:
        spec = parse_model_spec(case.model)
        row = _empty_row(case, spec, settings)
        row.update(infos[case])
        row["label"], row["backbone"], row["parameters"] = meta[case.model]
        row["flops_per_image"] = flops[(case.model, case.mode)] / settings.batch
        times = row["times_ms"] or []
        row["iterations"] = len(times)
        if times and row["status"] == "ok":
            step_ms = STATISTICS[settings.statistic](times)
            row["statistic"] = settings.statistic
            row["ms_per_step"] = step_ms
            row["ms_per_image"] = step_ms / settings.batch
            row["images_per_s"] = 1e3 * settings.batch / step_ms
            if row.get("cpu_times_ms"):
                row["cpu_ms_per_image"] = STATISTICS[settings.statistic](row["cpu_times_ms"]) / settings.batch
            row["tflops"] = flops[(case.model, case.mode)] / (step_ms / 1e3) / 1e12
            peak = result["peak"].get(case.device, {}).get(case.dtype)
            if peak:
                row["peak_tflops"] = peak["peak_tflops"]
                row["peak_fraction"] = row["tflops"] / peak["peak_tflops"]
        rows.append(row)
    baseline = {(r["model"], r["mode"], r["device"]): r for r in rows if Case(**_case_fields(r)).is_baseline}
    for r in rows:
        b = baseline.get((r["model"], r["mode"], r["device"]))
        if b is not None and b["ms_per_step"] and r["ms_per_step"]:
            r["speedup_vs_fp32_eager"] = b["ms_per_step"] / r["ms_per_step"]
    result["rows"] = rows
    result["comparisons"] = _comparisons(rows)
    result["load_average"]["end"] = _load_average()
    return result


def _load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def _case_fields(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in ("model", "mode", "dtype", "memory_format", "compiled", "device")}


def _comparisons(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The fastest setting of every model, and every peer against the RefineNet of the same depth."""
    ok = [r for r in rows if r["status"] == "ok" and r["ms_per_step"]]
    out = []
    groups: dict[tuple, list[dict]] = {}
    for r in ok:
        groups.setdefault((r["model"], r["mode"], r["device"]), []).append(r)
    for (model, mode, device), rs in groups.items():
        best = min(rs, key=lambda r: r["ms_per_step"])
        out.append({
            "kind": "fastest_vs_fp32_eager", "model": model, "mode": mode, "device": device,
            "fastest": {k: best[k] for k in ("dtype", "memory_format", "compiled")},
            "ms_per_image": best["ms_per_image"], "speedup": best["speedup_vs_fp32_eager"],
        })
    for peer in (r for r in ok if r["family"] != "refinenet"):
        ours = next(
            (r for r in ok if r["family"] == "refinenet" and r["backbone"] == peer["backbone"]
             and all(r[k] == peer[k] for k in ("mode", "dtype", "memory_format", "compiled", "device"))),
            None,
        )
        if ours is None:
            continue
        out.append({
            "kind": "peer", "refinenet": ours["model"], "peer": peer["model"], "backbone": peer["backbone"],
            **{k: peer[k] for k in ("mode", "dtype", "memory_format", "compiled", "device")},
            "time_ratio": ours["ms_per_step"] / peer["ms_per_step"],  # > 1: RefineNet is slower
            "flops_ratio": ours["flops_per_image"] / peer["flops_per_image"],
            "tflops_ratio": ours["tflops"] / peer["tflops"],  # > 1: RefineNet uses the device better
        })
    return out


# ---------------------------------------------------------------- table
def _fmt(v: Any, spec: str, empty: str = "-") -> str:
    return empty if v is None else format(v, spec)


def format_table(result: dict[str, Any]) -> str:
    """The result as a plain-text (Markdown-compatible) table with its stamp."""
    v = result["versions"]
    commit = (result["commit"] or "unknown")[:10] + (" (uncommitted changes)" if result.get("dirty") else "")
    s = result["settings"]
    lines = [
        f"./course bench  {result['date']}  commit {commit}",
        f"device: {', '.join(result['cuda']) or result['cpu']} ({result['cpu_count']} CPUs, "
        f"{result['torch_threads']} torch threads, CPU native bf16: {result['cpu_bf16_native']})",
        f"torch {v['torch']}, torchvision {v['torchvision']}, python {v['python']}, CUDA {v['cuda']}",
        f"load average (1/5/15 min) at start {result['load_average']['start']}, at end {result['load_average']['end']}",
        f"input {s['batch']}x3x{s['input_size'][0]}x{s['input_size'][1]}, {s['iterations']} timed iteration(s) "
        f"round-robin after {s['warmup']} warm-up, {s['statistic']} time",
    ]
    for dev, peaks in result["peak"].items():
        lines.append(
            f"peak probe {dev}: " + ", ".join(
                f"{dt} {p['peak_tflops']:.3f} TFLOP/s (matmul {p['matmul_tflops']:.3f}, conv {p['conv_tflops']:.3f})"
                for dt, p in peaks.items()
            )
        )
    lines.append("")
    header = ("model", "backbone", "mode", "dtype", "layout", "compile", "device", "ms/img", "CPU ms/img", "img/s",
              "GFLOP/img", "TFLOP/s", "% peak", "mem MiB", "x fp32 eager", "argmax agree")
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join("---" for _ in header) + "|")
    for r in result["rows"]:
        if r["status"] != "ok":
            cells = [r["label"], r["backbone"], r["mode"], r["dtype"], r["memory_format"],
                     "yes" if r["compiled"] else "no", r["device"], f"{r['status']}: {r['note']}"]
            cells += [""] * (len(header) - len(cells))
        else:
            cells = [
                r["label"], r["backbone"], r["mode"], r["dtype"], r["memory_format"],
                "yes" if r["compiled"] else "no", r["device"], _fmt(r["ms_per_image"], ".1f"),
                _fmt(r["cpu_ms_per_image"], ".1f"), _fmt(r["images_per_s"], ".2f"), _fmt(r["flops_per_image"] / 1e9, ".1f"), _fmt(r["tflops"], ".3f"),
                _fmt(None if r["peak_fraction"] is None else 100 * r["peak_fraction"], ".0f"),
                _fmt(r["memory_mb"], ".0f"), _fmt(r["speedup_vs_fp32_eager"], ".2f"),
                _fmt(None if r["argmax_agreement"] is None else 100 * r["argmax_agreement"], ".2f"),
            ]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    fastest = [c for c in result["comparisons"] if c["kind"] == "fastest_vs_fp32_eager"]
    if fastest:
        lines += ["", "fastest setting of each model vs fp32 contiguous eager:"]
        for c in fastest:
            f = c["fastest"]
            lines.append(
                f"  {c['model']} {c['mode']} on {c['device']}: {f['dtype']} {f['memory_format']}"
                f"{' compiled' if f['compiled'] else ''}, {c['ms_per_image']:.1f} ms/img, "
                f"x{_fmt(c['speedup'], '.2f', '?')}"
            )
    peers = [c for c in result["comparisons"] if c["kind"] == "peer"]
    if peers:
        lines += ["", "RefineNet vs peers (same case; time ratio > 1: RefineNet slower; FLOPs ratio: RefineNet/peer):"]
        for c in peers:
            lines.append(
                f"  {c['refinenet']} / {c['peer']} ({c['backbone']}) {c['mode']} {c['dtype']} {c['memory_format']}"
                f"{' compiled' if c['compiled'] else ''}: time x{c['time_ratio']:.2f}, FLOPs x{c['flops_ratio']:.2f}, "
                f"TFLOP/s x{c['tflops_ratio']:.2f}"
            )
    return "\n".join(lines)


# ---------------------------------------------------------------- CLI
SMOKE = dict(models=["course", "fcn"], input_size=(64, 64), iterations=1, warmup=1)


if __name__ == "__main__":  # the worker process of run_bench (the command is ``./course bench``)
    if sys.argv[1:] != ["--worker"]:
        sys.exit("usage: python -m tooling.bench --worker (run_bench starts it); "
                 "the command is `./course bench`")
    sys.exit(_worker())
