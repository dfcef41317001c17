#!/usr/bin/env bash
# Train teaching-model candidates side by side on one GPU machine (torch, tokenizers and Pillow; no LIBERO).
#   bash scripts/train_device.sh DEMOS OUT STEPS NAME='{"image_size": 96, ...}' [NAME=JSON ...]
# Each candidate writes OUT/NAME/weights.pt and OUT/NAME/train.json, its log to OUT/NAME.log;
# `python -m vla_ch2.factory.teaching_model export --run OUT/NAME ...` makes the checkpoint here.
set -euo pipefail
demos=$1; out=$2; steps=$3; shift 3
PY=${PYTHON:-python3}
mkdir -p "$out"
pids=()
for spec in "$@"; do
  name=${spec%%=*}; config=${spec#*=}
  "$PY" -m vla_ch2.factory.teaching_model train --data "$demos" --tokenizer data/v2/tokenizer.json \
    --text data/v2/text.txt --out "$out/$name" --steps "$steps" --config "$config" > "$out/$name.log" 2>&1 &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
exit $status
