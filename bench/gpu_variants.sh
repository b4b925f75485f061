#!/usr/bin/env bash
# Device experiment: binary run-shape throughput, eager vs channels_last vs torch.compile, side by side.
set -u
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpu_variants}
mkdir -p "$OUT"
quiet() { grep -vE "Warning|warn|Tip|available|LOCAL_RANK|Tensor Cores|set_float32|Automatic Mixed|stopped|^\s*$"; }
for variant in "--compile off" "--compile off --channels-last" "--compile on"; do
  python3 -m bench.runshape --task binary --steps 10 $variant 2>&1 | quiet
done
