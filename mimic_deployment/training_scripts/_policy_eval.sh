#!/usr/bin/env bash
# Every training_scripts/<policy>/eval.sh is a link to this file: the policy is the name of the
# folder holding that link; everything else comes from env vars or flags (see eval-robot --help).
#   MODEL_PATH=act_odin_high_quality EVAL_DATASET=Mimic-Robotics/eval_act_test \
#     ./mimic_deployment/training_scripts/act/eval.sh [--dry-run]
# The shared locator lies beside the real file of this script (links resolved all the way).
if ! real="$(readlink -f -- "${BASH_SOURCE[0]}")" || [ -z "$real" ]; then
  echo "error: cannot follow the links from ${BASH_SOURCE[0]} (a cycle of links?)" >&2
  exit 2
fi
source "$(dirname -- "$real")/_locate.sh"
locate_policy "${BASH_SOURCE[0]}" _policy_eval.sh
export MIMIC_PROG="${MIMIC_PROG:-$policy_dir/eval.sh}"
exec "$(dirname -- "$scripts")/_python.sh" -m mimic_deployment eval-robot --policy "$(basename -- "$policy_dir")" "$@"
