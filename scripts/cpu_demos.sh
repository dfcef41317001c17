#!/usr/bin/env bash
# Expert demonstrations on this machine's CPU cores, rendered by Mesa as the suite's evaluation is; resumable.
#   bash scripts/cpu_demos.sh OUT FIRST_SEED [WORKERS]
# Batches of six tries (scripts/demo_batches.sh), tasks in the order 1 7 5 2 3 9 0 4 6 8 1 7 5 2 3 9 (the weaker tasks
# twice), WORKERS (default 2) batches at a time, with this checkout's .venv. Stop it when there is enough (kill the
# script and its `teaching_model demos` processes); the same command goes on where it stopped. Round 11 ran it from a
# copy of the tree whose vla_ch2/factory/expert.py had GRASP_XY set back to v2's aims (docs/results/v2/round11/demos.json).
set -euo pipefail
here=$(dirname "$(realpath "$0")")
PYTHON=${PYTHON:-$here/../.venv/bin/python} exec bash "$here/demo_batches.sh" "$(realpath -m "$1")" 6 "$2" "${3:-2}" \
  1 7 5 2 3 9 0 4 6 8 1 7 5 2 3 9
