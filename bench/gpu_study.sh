#!/usr/bin/env bash
# The prepared device run (one H200, about 9 minutes): install the carried wheels (Ray, Optuna and what they need
# beyond the machine's packages: bench/device_wheelhouse.sh builds .whl/ here), run bench/gpu_check.sh, then a
# short study at the full run shape for both tasks; tables, JSON figures and logs go to $OUT in three files
# (gpu_study.log, results.tar.gz, summary.txt). Everything runs under one deadline (BUDGET_S, default 530 s), of
# which the study keeps STUDY_S (default 220 s) and the checks get the rest; CHECKS (see gpu_check.sh) and
# STUDY_TASKS (default "binary multiclass") choose what runs. Usage, device tool, .whl carried: bash bench/gpu_study.sh
set -u
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpu_study}
mkdir -p "$OUT"
START=$SECONDS
DEADLINE=$((SECONDS + ${BUDGET_S:-530}))
exec > >(tee "$OUT/gpu_study.log") 2>&1
WORK=$(mktemp -d)
export TORCHINDUCTOR_CACHE_DIR=/tmp/inductor-cache  # one on-disk compile cache for every process and trial here
export PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True  # the trials' setting: ragged sizes fragment less

echo "== install carried wheels"
if ! ls .whl/*.whl >/dev/null 2>&1; then echo "no .whl/: build it here first (bash bench/device_wheelhouse.sh)"; exit 2; fi
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 2
export PYTHONPATH=/tmp/site:$PWD  # Ray's trial workers import study/ and models/ from the tree
python3 -c "import ray, optuna, torch; print('ray', ray.__version__, 'optuna', optuna.__version__, 'torch', torch.__version__)" || exit 2
python3 -m pip check 2>&1 | grep -iE "ray|optuna|alembic|sqlalchemy|pydantic|opencensus|opentelemetry" | head -20

CHECK_S=$((DEADLINE - SECONDS - ${STUDY_S:-220}))
echo "== gpu_check (${CHECK_S}s)"
BUDGET_S=$CHECK_S OUT="$WORK/check" bash bench/gpu_check.sh

# The study: a few trials of a few epochs on 48 rasters per task at full scale. Binary shares the GPU between
# two trials; multiclass runs alone (two batch-16 trials at the widest shape would not fit together).
COMPILE=""
if python3 -m study.run --help 2>/dev/null | grep -q -- "--compile"; then COMPILE="--compile on"; fi
echo "== study (study.run ${COMPILE:-without --compile: eager trials})"
study() {
  local task=$1 limit=$2; shift 2
  local left=$((DEADLINE - SECONDS))
  ((limit > left)) && limit=$left
  if ((limit < 30)); then echo "SKIPPED (deadline): $task study"; return; fi
  echo "+ [${limit}s] $task: $*"
  timeout "$limit" python3 -m study.run --preset full --task "$task" --instances 48 --no-dashboard $COMPILE \
    --storage "$WORK/runs" --name "gpu-$task" "$@" 2>&1 | grep --line-buffered -vE "Warning|warn|Tip|LOCAL_RANK|^\s*$"
  echo "$task study: exit ${PIPESTATUS[0]} after $((SECONDS - START))s"
}
for task in ${STUDY_TASKS:-binary multiclass}; do
  case $task in
    binary) study binary 110 --num-samples 2 --epochs 2 --gpus-per-trial 0.5 ;;
    multiclass) study multiclass 110 --num-samples 1 --epochs 2 --gpus-per-trial 1 ;;
  esac
done

echo "== results"
python3 - "$WORK" <<'PY' | tee "$OUT/summary.txt"
import json, sys
from pathlib import Path
work = Path(sys.argv[1])
for f in sorted((work / "check").glob("*.json")):
    print(f"{f.name}: {json.dumps(json.loads(f.read_text()))[:600]}")
try:
    import pandas as pd
    for t in sorted(work.glob("runs/*/tables/trials.parquet")):
        cols = ["task", "trial_id", "status", "epochs_completed", "objective_best", "wall_seconds", "error"]
        df = pd.read_parquet(t)
        print(t.parent.parent.name, df[[c for c in cols if c in df.columns]].to_string())
    for t in sorted(work.glob("runs/*/tables/epochs.parquet")):
        cols = ["trial_id", "epoch", "epoch_seconds", "images_per_second", "train_loss", "val_loss"]
        df = pd.read_parquet(t)
        print(t.parent.parent.name, df[[c for c in cols if c in df.columns]].to_string())
except Exception as exc:  # the summary must not hide the tarball
    print("tables:", exc)
PY
tar -czf "$OUT/results.tar.gz" -C "$WORK" --exclude="*.ckpt" --exclude="checkpoint_*" check runs 2>/dev/null
ls -la "$OUT"
echo "gpu_study: $((SECONDS - START))s"
