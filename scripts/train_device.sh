#!/usr/bin/env bash
# Train teaching-model candidates side by side on one GPU machine (torch, tokenizers and Pillow; no LIBERO).
#   bash scripts/train_device.sh DEMOS OUT STEPS NAME='{"image_size": 96, ...}' [NAME='CONFIG|OPTIONS' ...]
# DEMOS: one folder of task_*.npz, or several separated by commas (the halves 'thin --complement' makes).
# CONFIG: model sizes as JSON; OPTIONS (after a '|'): training options as JSON (holdout, jitter, crop_area_min,
# weight_decay, ema). BATCH and LR (environment) set the batch size and peak learning rate of every candidate.
# Each candidate writes OUT/NAME/weights.pt and OUT/NAME/train.json, its log to OUT/NAME.log;
# `python -m vla_ch2.factory.teaching_model export --run OUT/NAME ...` makes the checkpoint here.
set -euo pipefail
IFS=',' read -r -a demos <<< "$1"; out=$2; steps=$3; shift 3
PY=${PYTHON:-python3}
mkdir -p "$out"
pids=()
for spec in "$@"; do
  name=${spec%%=*}; rest=${spec#*=}
  config=${rest%%|*}; options='{}'
  [[ "$rest" == *"|"* ]] && options=${rest#*|}
  "$PY" -m vla_ch2.factory.teaching_model train --data "${demos[@]}" --tokenizer data/v2/tokenizer.json \
    --text data/v2/text.txt --out "$out/$name" --steps "$steps" ${BATCH:+--batch-size "$BATCH"} ${LR:+--lr "$LR"} \
    --config "$config" --options "$options" \
    > "$out/$name.log" 2>&1 &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
exit $status
