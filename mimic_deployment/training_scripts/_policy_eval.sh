#!/usr/bin/env bash
# Every training_scripts/<policy>/eval.sh is a link to this file: the policy is the name of the
# folder holding that link; everything else comes from env vars or flags (see eval-robot --help).
#   MODEL_PATH=act_odin_high_quality EVAL_DATASET=Mimic-Robotics/eval_act_test \
#     ./mimic_deployment/training_scripts/act/eval.sh [--dry-run]
# The repo is found from this script's own location, whatever the current directory and however
# it was reached (a link to eval.sh from elsewhere is followed back to its policy folder).
src="${BASH_SOURCE[0]}"
hops=0
while [ -L "$src" ] && [ "$(basename -- "$(readlink -- "$src")")" != "_policy_eval.sh" ]; do
  hops=$((hops + 1))
  if [ "$hops" -gt 40 ]; then  # a cycle of links
    echo "error: too many levels of links from ${BASH_SOURCE[0]}" >&2
    exit 2
  fi
  target="$(readlink -- "$src")"
  case "$target" in /*) src="$target" ;; *) src="$(dirname -- "$src")/$target" ;; esac
done
policy_dir="$(CDPATH='' cd -- "$(dirname -- "$src")" && pwd -P)"
scripts="$(dirname -- "$policy_dir")"
if [ ! -f "$scripts/_policy_eval.sh" ]; then
  echo "error: $src is not inside mimic_deployment/training_scripts/<policy>/" >&2
  exit 2
fi
export MIMIC_PROG="${MIMIC_PROG:-$policy_dir/eval.sh}"
exec "$(dirname -- "$scripts")/_python.sh" -m mimic_deployment eval-robot --policy "$(basename -- "$policy_dir")" "$@"
