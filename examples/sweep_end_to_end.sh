#!/usr/bin/env bash
# The batch-size sweep loop, offline, on a laptop CPU, with no W&B account:
#   sweep create (grid up to the ceiling) -> sweep run (same YAML, same program as
#   `wandb agent` would run) -> sweep analyze (sweep-mode K_c, JSON, plot, W&B run).
#
#   bash examples/sweep_end_to_end.sh [OUT_DIR]   # 10 short runs: about a minute on 2 cores
#
# The ceiling would normally come from wandb_batchsize.find_batch_size(...);
# set CEILING=... to change it. With an account, the online loop is
#   wandb sweep OUT_DIR/bs.yaml && wandb agent ENTITY/PROJECT/SWEEP_ID
#   wandb-batchsize sweep analyze ENTITY/PROJECT/SWEEP_ID
set -euo pipefail
cd "$(dirname "$0")/.."                       # the program path sweeps/train.py is relative

OUT="${1:-$(mktemp -d -t wbs-sweep-XXXXXX)}"
mkdir -p "$OUT"
CEILING="${CEILING:-256}"
WBS=(python -m wandb_batchsize)

export WANDB_MODE=offline WANDB_DIR="$OUT" WANDB_SILENT=true
export WANDB_X_DISABLE_STATS=true WANDB_DISABLE_GIT=true WANDB_SAVE_CODE=false

echo "== 1. a sweep config: powers of two up to the ceiling $CEILING, 2 seeds each"
"${WBS[@]}" sweep create --max-batch "$CEILING" --min-batch 16 --repeats 2 --base-lr 0.1 \
    --param epochs=1 --name bs-demo -o "$OUT/bs.yaml"
cat "$OUT/bs.yaml"

echo "== 2. every grid point as an offline W&B run of sweeps/train.py, grouped"
"${WBS[@]}" sweep run "$OUT/bs.yaml" --group bs-demo --jobs 2

echo "== 3. sweep-mode analysis of the group"
"${WBS[@]}" sweep analyze "$OUT" --group bs-demo --out-dir "$OUT"

echo
echo "sweep-mode plot: $OUT/sweep-bs-demo.png"
echo "result JSON:     $OUT/sweep-bs-demo.json"
echo "W&B runs:        $OUT/wandb   (wandb sync $OUT/wandb/offline-run-* to upload them)"
