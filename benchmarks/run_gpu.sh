#!/usr/bin/env bash
# The CUDA runs for docs/benchmarks.md (not yet measured: no GPU was lent when
# this was written). Writes benchmarks/<name>.json and .txt. Run from the
# repository root on a machine with a GPU:  bash benchmarks/run_gpu.sh
set -euo pipefail
PY=${PYTHON:-python}
bench() {
  local name=$1; shift
  "$PY" -m tooling bench --devices cuda "$@" --json "benchmarks/$name.json" | tee "benchmarks/$name.txt"
}
# Issue 8's GPU target: official ResNet-101 preset, 512x512, training step in bf16
# reaches >= 35% of the peak probed in the same run (see the "% peak" column).
bench gpu-train-512 --models official fcn deeplabv3 --modes train --batch 8 \
  --input-size 512 512 --iterations 10 --warmup 3 --compile both --compile-timeout 600
bench gpu-forward-512 --models official fcn deeplabv3 --modes forward --batch 8 \
  --input-size 512 512 --iterations 10 --warmup 3 --compile both --compile-timeout 600
bench gpu-presets-512 --models official paper light-weight course --batch 8 \
  --input-size 512 512 --iterations 10 --warmup 3
