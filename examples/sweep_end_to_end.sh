#!/usr/bin/env bash
# The batch-size sweep loop, offline, on a laptop CPU, with no W&B account:
#   sweep create (grid up to the ceiling) -> sweep run (same YAML, same program as
#   `wandb agent` would run) -> sweep analyze (sweep-mode K_c, JSON, plot, W&B run).
#
#   bash examples/sweep_end_to_end.sh [OUT_DIR]   # 10 short runs: about a minute on 2 cores
#
# The ceiling would normally come from wandb_batchsize.find_batch_size(...);
# set CEILING=... to change it (MIN_BATCH, REPEATS and N_TRAIN size the sweep).
# With an account, the online loop is
#   wandb sweep OUT_DIR/bs.yaml && wandb agent ENTITY/PROJECT/SWEEP_ID
#   wandb-batchsize sweep analyze ENTITY/PROJECT/SWEEP_ID
#
# Everything is written under OUT_DIR (relative to where you run this, or a new
# temporary folder): nothing goes into the repository, from any directory.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"   # a checkout works uninstalled too

OUT="${1:-$(mktemp -d -t wbs-sweep-XXXXXX)}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
CEILING="${CEILING:-256}" MIN_BATCH="${MIN_BATCH:-16}" REPEATS="${REPEATS:-2}"
N_TRAIN="${N_TRAIN:-4096}"                     # samples of the demo task per run
WBS=(python -m wandb_batchsize)

export WANDB_MODE=offline WANDB_DIR="$OUT" WANDB_SILENT=true
export WANDB_X_DISABLE_STATS=true WANDB_DISABLE_GIT=true WANDB_SAVE_CODE=false

echo "== 1. a sweep config: powers of two up to the ceiling $CEILING, $REPEATS seed(s) each"
"${WBS[@]}" sweep create --max-batch "$CEILING" --min-batch "$MIN_BATCH" --repeats "$REPEATS" \
    --base-lr 0.1 --param epochs=1 --param n_train="$N_TRAIN" --name bs-demo -o "$OUT/bs.yaml"
cat "$OUT/bs.yaml"

echo "== 2. every grid point as an offline W&B run of the demo program, grouped"
"${WBS[@]}" sweep run "$OUT/bs.yaml" --group bs-demo --jobs 2

echo "== 3. sweep-mode analysis of the group"
"${WBS[@]}" sweep analyze "$OUT" --group bs-demo --out-dir "$OUT"

echo
echo "sweep-mode plot: $OUT/sweep-bs-demo.png"
echo "result JSON:     $OUT/sweep-bs-demo.json"
echo "W&B runs:        $OUT/wandb   (wandb sync $OUT/wandb/offline-run-* to upload them)"
