#!/usr/bin/env bash
# Expert demonstrations on this machine's CPU cores, rendered by Mesa as the suite's evaluation is; resumable.
#   bash scripts/cpu_demos.sh OUT FIRST_SEED [WORKERS]
# Batches of six tries, one (task, seed) each, tasks in the order 1 7 5 2 3 9 0 4 6 8 1 7 5 2 3 9 (the weaker tasks
# twice), one seed per batch from FIRST_SEED on, WORKERS (default 2) batches at a time. A finished batch is moved to
# OUT/demos/t<task>_s<seed>; one cut short stays OUT/demos/tmp_* and is run again from the start on the next call.
# Stop it when there is enough (kill the script and its `teaching_model demos` processes). Round 11 ran it from a copy
# of the tree whose vla_ch2/factory/expert.py had GRASP_XY set back to v2's aims (docs/results/v2/round11/demos.json).
set -euo pipefail
out=$(realpath -m "$1"); seed=$2; workers=${3:-2}
py=${PYTHON:-$(dirname "$(realpath "$0")")/../.venv/bin/python}
mkdir -p "$out/demos"
jobs=()
for _ in $(seq 40); do for task in 1 7 5 2 3 9 0 4 6 8 1 7 5 2 3 9; do jobs+=("$task $seed"); seed=$((seed + 1)); done; done
# sh -c gets OUT as $0, the interpreter as $1, then the task and the seed of one batch as $2 and $3.
printf '%s\n' "${jobs[@]}" | xargs -P "$workers" -L 1 sh -c '[ -d "$0/demos/t$2_s$3" ] && exit 0; rm -rf "$0/demos/tmp_t$2_s$3"; \
  "$1" -m vla_ch2.factory.teaching_model demos --tasks "$2" --per-task 6 --seed "$3" --image-size 96 --jpeg-quality 80 \
    --noisy-fraction 0.5 --keep-every 2 --out "$0/demos/tmp_t$2_s$3" >> "$0/demos.log" 2>&1 \
  && mv "$0/demos/tmp_t$2_s$3" "$0/demos/t$2_s$3"' "$out" "$py"
