#!/usr/bin/env bash
# One DAgger round for the teaching model on the lent GPU machine, in three calls (LIBERO staged there
# first: scripts/device_sim_bundle.py). Everything stays under /tmp/dagger on that machine between calls.
#   bash scripts/dagger_device.sh collect MODEL SECONDS ROUND [PER_TASK]   learner-driven episodes, expert labels
#   bash scripts/dagger_device.sh demos SECONDS PER_BATCH FIRST_SEED TASK... expert demonstrations on fresh layouts
#   bash scripts/dagger_device.sh train STEPS:LR[:SEED[:SET[:FROM]]] ...    fine-tune MODEL's weights, one candidate each
#   bash scripts/dagger_device.sh validate SECONDS PER_TASK MODEL...        fresh validation layouts, policies on the CPU
# WORKERS (default 15) simulator processes; BATCH (default 1024) training batch; TEXT (default .devdata/text.txt);
# EXTRA_DATA more folders of task_*.npz to train on (e.g. DAgger episodes collected on this CPU machine, carried);
# MODEL the checkpoint to fine-tune when no collect stage ran on this machine. DEMO_FLAGS more options for
# every demos batch (e.g. "--early-close-fraction 0.5").
# demos: WORKERS slots take batches of PER_BATCH tries, one (task, seed) each, the TASK list in turn (name a task
# twice to give it twice the batches), one seed per batch from FIRST_SEED on; a batch still running at SECONDS is dropped whole.
# SET (train): all (DAgger episodes and demonstrations, the default), demos, dagger, or all-xyz (all, with the
# rotation dimensions left out of the loss). FROM: model (fine-tune MODEL, the default) or scratch (MODEL's sizes,
# new weights and action statistics: MODEL's recipe on this data).
# Candidates are exported to /tmp/dagger/cand/<STEPS_LR_SEED_SET_FROM> and come back as $OUT/cand_<...>.tgz.
set -euo pipefail
stage=$1; shift
W=${WORKERS:-15}
root=/tmp/dagger
mkdir -p "$root"
case "$stage" in
  collect)
    model=$1 seconds=$2 round=$3 per_task=${4:-100}
    echo "$model" > "$root/model"
    python3 -m vla_ch2.factory.dagger --model "$model" --out "$root/data$round" --tasks all --per-task "$per_task" \
      --betas 0 0 0.5 --round "$round" --workers "$W" --max-seconds "$seconds" > "$root/collect$round.log"
    grep task_id "$root/collect$round.log"
    ;;
  demos)
    seconds=$1 per_batch=$2 seed=$3; shift 3
    timeout "$seconds" bash scripts/demo_batches.sh "$root" "$per_batch" "$seed" "$W" "$@" || true
    pkill -f 'teaching_model demos' || true; sleep 2  # timeout stops xargs, not the batches it started
    rm -rf "$root"/demos/tmp_*
    python3 - "$root"/demos/t[0-9]*/task_*.json <<'EOF'
import json, sys
rows = [json.load(open(path))["summary"] for path in sys.argv[1:]]  # the batches that finished and were kept
for t in sorted({r["task_id"] for r in rows}):
    mine = [r for r in rows if r["task_id"] == t]
    print(f"task {t}: {sum(r['kept'] for r in mine)} kept of {sum(r['tries'] for r in mine)} tries,",
          f"{sum(r['frames'] for r in mine)} frames")
EOF
    ;;
  train)
    model=${MODEL:-$(cat "$root/model")}
    echo "$model" > "$root/model"
    dagger="$( (ls -d "$root"/data* 2>/dev/null || true) | paste -sd' ') ${EXTRA_DATA:-}"
    demos="$( (ls -d "$root"/demos/t[0-9]* 2>/dev/null || true) | paste -sd' ')"
    pids=()
    mkdir -p "$root/run"
    # One candidate's spec STEPS:LR[:SEED[:SET[:FROM]]] -> steps lr seed set from, its name and its data.
    candidate() {
      IFS=: read -r steps lr seed set from <<< "$1"; seed=${seed:-0}; set=${set:-all}; from=${from:-model}
      name=${steps}_${lr}_${seed}_${set}_${from}
      case "$set" in demos) data=$demos ;; dagger) data=$dagger ;; *) data="$dagger $demos" ;; esac
    }
    sizes=$(python3 -c "import json, sys; c = json.load(open(sys.argv[1]))['config']; c.pop('vocab_size'); print(json.dumps(c))" \
      "$model/train.json")
    for spec in "$@"; do
      candidate "$spec"
      extra=""; [ "$set" = all-xyz ] && extra=', "loss_dims": [0, 1, 2, 6]'
      start="\"init\": \"$model\", "; config=(); [ "$from" = scratch ] && start="" && config=(--config "$sizes")
      python3 -m vla_ch2.factory.teaching_model train --data $data --tokenizer "$model/tokenizer.json" "${config[@]}" \
        --text "${TEXT:-.devdata/text.txt}" --out "$root/run/$name" --steps "$steps" --batch-size "${BATCH:-1024}" \
        --lr "$lr" --options "{$start\"jitter\": true, \"crop_area_min\": 0.7, \"seed\": $seed, \"max_seconds\": ${MAXS:-1e9}$extra}" \
        > "$root/run/$name.log" 2>&1 &
      pids+=($!)
    done
    status=0
    for pid in "${pids[@]}"; do wait "$pid" || status=1; done
    for spec in "$@"; do
      candidate "$spec"
      tail -2 "$root/run/$name.log"
      records=(--dagger $data); [ "$from" = scratch ] && records=(--extra-demos $demos)
      python3 -m vla_ch2.factory.teaching_model export --run "$root/run/$name" --tokenizer "$model/tokenizer.json" \
        --out "$root/cand/$name" "${records[@]}"
      if [ -n "${OUT:-}" ]; then tar czf "$OUT/cand_$name.tgz" -C "$root/cand" "$name"; fi
    done
    exit $status
    ;;
  validate)
    seconds=$1 per_task=$2; shift 2
    timeout "$seconds" python3 -m vla_ch2.factory.validate --models "$@" --tasks all --per-task "$per_task" \
      --workers "$W" --device cpu --out "$root/val.jsonl" > "$root/val.log" 2>&1 || true
    python3 - "$root/val.jsonl" <<'EOF'
import json, sys
from vla_ch2.factory.validate import table
rows = [json.loads(line) for line in open(sys.argv[1])]
# Compare on the (task, k) episodes every model finished, so a cut-short run stays fair.
keys = None
for m in {r["model"] for r in rows}:
    done = {(r["task"], r["k"]) for r in rows if r["model"] == m}
    keys = done if keys is None else keys & done
for model, m in table([r for r in rows if (r["task"], r["k"]) in keys]).items():
    per_task = " ".join(f"{t}:{s}/{n}" for t, (s, n) in sorted(m["tasks"].items()))
    print(f"{model}: {m['successes']}/{m['episodes']}  [{per_task}]")
EOF
    [ -n "${OUT:-}" ] && cp "$root/val.jsonl" "$OUT/" || true
    ;;
  *)
    echo "usage: $0 collect|train|validate ..." >&2; exit 2 ;;
esac
