#!/usr/bin/env bash
# Expert demonstrations in batches, several at a time: the one place that says how a batch is made and kept.
#   bash scripts/demo_batches.sh OUT PER_BATCH FIRST_SEED WORKERS TASK...
# A batch is PER_BATCH tries of one (task, seed). The TASK list is taken in turn 40 times (name a task twice to give
# it twice the batches), one seed per batch from FIRST_SEED on, so no two batches share layouts. A finished batch is
# moved to OUT/demos/t<task>_s<seed> and skipped when the same command runs again; one cut short stays
# OUT/demos/tmp_* and starts over. PYTHON (default python3) runs them, DEMO_FLAGS adds options to every batch, and
# their output goes to OUT/demos.log. This process becomes xargs, so a `timeout` around it stops new batches (not the
# ones running: `pkill -f 'teaching_model demos'`). Used by scripts/cpu_demos.sh and scripts/dagger_device.sh demos.
set -euo pipefail
out=$1 per_batch=$2 seed=$3 workers=$4; shift 4
mkdir -p "$out/demos"
jobs=()
for _ in $(seq 40); do for task in "$@"; do jobs+=("$task $seed"); seed=$((seed + 1)); done; done
# sh -c gets OUT, the interpreter, PER_BATCH and DEMO_FLAGS as $0 to $3, then one batch's task and seed as $4 and $5.
exec xargs -P "$workers" -L 1 sh -c '[ -d "$0/demos/t$4_s$5" ] && exit 0; rm -rf "$0/demos/tmp_t$4_s$5"; \
  "$1" -m vla_ch2.factory.teaching_model demos --tasks "$4" --per-task "$2" --seed "$5" --image-size 96 \
    --jpeg-quality 80 --noisy-fraction 0.5 --keep-every 2 $3 --out "$0/demos/tmp_t$4_s$5" >> "$0/demos.log" 2>&1 \
  && mv "$0/demos/tmp_t$4_s$5" "$0/demos/t$4_s$5"' "$out" "${PYTHON:-python3}" "$per_batch" "${DEMO_FLAGS:-}" \
  < <(printf '%s\n' "${jobs[@]}")
