#!/usr/bin/env bash
# Expert demonstrations on this machine's CPU cores, rendered by Mesa as the suite's evaluation is; resumable.
#   bash scripts/cpu_demos.sh OUT FIRST_SEED [WORKERS]
# Batches of six tries (scripts/demo_batches.sh), tasks in the order 1 7 5 2 3 9 0 4 6 8 1 7 5 2 3 9 (the weaker tasks
# twice), WORKERS (default 2) batches at a time, with this checkout's .venv. Stop it when there is enough (kill the
# script and its `teaching_model demos` processes); the same command goes on where it stopped. DEMO_FLAGS passes options
# to every batch: DEMO_FLAGS="--grasp-xy cream_cheese -0.01 0" aims the expert as v2's demonstrations did (rounds 11 and
# 12 had to run it from a copy of the tree with GRASP_XY edited; each batch's task_*.json now records the aims used).
set -euo pipefail
here=$(dirname "$(realpath "$0")")
PYTHON=${PYTHON:-$here/../.venv/bin/python} exec bash "$here/demo_batches.sh" "$(realpath -m "$1")" 6 "$2" "${3:-2}" \
  1 7 5 2 3 9 0 4 6 8 1 7 5 2 3 9
