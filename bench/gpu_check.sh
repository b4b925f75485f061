#!/usr/bin/env bash
# The prepared device check: run-shape throughput at full scale on one GPU, both tasks.
# Usage (on a GPU machine, from the repo root): OUT=/some/dir bash bench/gpu_check.sh
set -u
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 -c "import torch, lightning, torchmetrics, numpy; print('torch', torch.__version__, 'lightning', lightning.__version__, 'torchmetrics', torchmetrics.__version__, 'numpy', numpy.__version__)"
python3 -m bench.runshape --task binary --steps 10 --json "$OUT/binary.json" 2>&1 | grep -vE "Warning|warn|Tip|available|LOCAL_RANK"
for base in 16 8; do
  python3 -m bench.runshape --task multiclass --steps 6 --val-steps 2 --base-channels $base \
    --json "$OUT/multiclass_base$base.json" 2>&1 | grep -vE "Warning|warn|Tip|available|LOCAL_RANK"
done
OMP_NUM_THREADS=1 taskset -c 0 python3 bench/datagen.py 2>&1 | tail -6
