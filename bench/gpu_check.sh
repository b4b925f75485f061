#!/usr/bin/env bash
# The prepared device check, one GPU. Sections, in this order (CHECKS picks and orders them):
#   compiled   binary base 16 depth 5, typical batch, torch.compile (fills the compile cache the rest reuse)
#   eager      the same, eager: the speed-up is compiled vs eager, measured in one run
#   multiclass base 16 at batch 16, compiled, full-resolution level checkpointed: the widest batch
#              (16 x 640 x 12,800) peak memory, and the typical batch's rate
#   ragged     binary, 30 steps in the real sampler's order over real rasters: "graphs compiled: K"
#   packing    1-4 binary trials sharing the GPU: per-process and aggregate img/s
#   cost       bench/studycost with the rates measured here; writes $OUT/measured.json
# Each runs under a share of one deadline (BUDGET_S, default 330 s): the script always ends and leaves $OUT; what
# did not fit says SKIPPED. Usage (GPU machine, repo root): OUT=/some/dir [CHECKS="..."] bash bench/gpu_check.sh
set -u
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
export TORCHINDUCTOR_CACHE_DIR=${TORCHINDUCTOR_CACHE_DIR:-/tmp/inductor-cache}  # shared by every process here
export PYTORCH_CUDA_ALLOC_CONF=${PYTORCH_CUDA_ALLOC_CONF:-expandable_segments:True}  # ragged sizes fragment less
DEADLINE=$((SECONDS + ${BUDGET_S:-330}))
CHECKS=${CHECKS:-compiled eager multiclass ragged packing cost}

quiet() { grep --line-buffered -vE "Warning|warn|Tip|available|LOCAL_RANK|Tensor Cores|set_float32|Automatic Mixed|stopped|^\s*$"; }
# run SECONDS CMD...: CMD for at most SECONDS, never past the deadline; skipped when under 20 s are left.
run() {
  local want=$1; shift
  local left=$((DEADLINE - SECONDS))
  local limit=$((want < left ? want : left))
  if ((limit < 20)); then echo "SKIPPED (deadline): $*"; return 0; fi
  echo "+ [${limit}s] $*"
  timeout "$limit" "$@" 2>&1 | quiet
  local rc=${PIPESTATUS[0]}
  if ((rc == 124)); then echo "TIMED OUT after ${limit}s: $*"; elif ((rc != 0)); then echo "FAILED ($rc): $*"; fi
  return 0
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 -c "import torch, lightning; print('torch', torch.__version__, 'lightning', lightning.__version__)"
for check in $CHECKS; do
  echo "== $check"
  case $check in
    compiled) run 150 python3 -m bench.runshape --task binary --shapes typical --compile on --steps 8 --val-steps 2 \
                --warmup 3 --json "$OUT/binary_compiled.json" ;;
    eager) run 60 python3 -m bench.runshape --task binary --shapes typical --compile off --steps 8 --val-steps 2 \
             --warmup 2 --json "$OUT/binary_eager.json" ;;
    multiclass) run 150 python3 -m bench.runshape --task multiclass --base-channels 16 --compile on \
                  --checkpoint-levels 1 --steps 3 --val-steps 1 --warmup 2 --json "$OUT/multiclass_compiled.json" ;;
    ragged) run 70 python3 -m bench.runshape --task binary --compile on --ragged-steps 30 \
              --json "$OUT/binary_ragged.json" ;;
    packing) run 100 python3 -m bench.packing --task binary --procs 1,2,3,4 --seconds 8 --compile on \
               --json "$OUT/packing.json" ;;
    cost) run 30 python3 -m bench.studycost --preset full --runshape binary="$OUT/binary_compiled.json" \
            --runshape multiclass="$OUT/multiclass_compiled.json" --write "$OUT/measured.json" ;;
    *) echo "unknown check $check" ;;
  esac
done
