#!/usr/bin/env bash
# The CPU runs behind docs/benchmarks.md. Each writes benchmarks/<name>.json
# and the printed table to benchmarks/<name>.txt. Run from the repository root:
#   bash benchmarks/run_cpu.sh [target|peers|train|presets|compile|smoke ...]
# (no argument: all of them; on a 2-core CPU each takes a few minutes).
set -euo pipefail
PY=${PYTHON:-python}
bench() {  # name, then bench options; THREADS (default 2: both cores) sets torch.set_num_threads
  local name=$1; shift
  "$PY" -m tooling bench --devices cpu --threads "${THREADS:-2}" "$@" --json "benchmarks/$name.json" | tee "benchmarks/$name.txt"
}
runs=("$@")
[ ${#runs[@]} -eq 0 ] && runs=(target peers train presets compile)
for run in "${runs[@]}"; do
  case $run in
    # Target: official ResNet-101 preset, 512x512, batch 1, prediction; peers at the same depth.
    # (This CPU is shared with other work: --statistic min, the best of the round-robin steps.)
    target) bench cpu-target-512 --models official --modes forward \
              --input-size 512 512 --iterations 4 --warmup 1 --statistic min ;;
    # The torchvision peers at the same depth and input, prediction.
    peers) bench cpu-peers-512 --models official fcn deeplabv3 --modes forward --grid lean \
              --input-size 512 512 --iterations 3 --warmup 1 --statistic min ;;
    # Training steps (forward + backward + SGD), smaller input to keep the run short.
    train) bench cpu-train-256 --models official fcn deeplabv3 --modes train --grid lean \
              --input-size 256 256 --iterations 3 --warmup 1 --statistic min ;;
    # Every preset, prediction and training, in the baseline and the fast setting.
    presets) bench cpu-presets-256 --models official paper light-weight course --grid lean --input-size 256 256 \
              --iterations 2 --warmup 1 --statistic min ;;
    # torch.compile (inductor, with freezing for inference) against eager.
    # The fp32 baseline, and fp32 / bf16 channels_last both eager and compiled (child processes).
    compile) bench cpu-compile-512 --models official --modes forward --grid lean \
              --compile both --compile-timeout 540 \
              --input-size 512 512 --iterations 3 --warmup 1 --statistic min ;;
    smoke) bench cpu-smoke --smoke ;;
    *) echo "unknown run $run" >&2; exit 2 ;;
  esac
done
