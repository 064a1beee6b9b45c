#!/usr/bin/env bash
# The orchestrator: plan, launch, watch, stop, resume and evaluate training runs.
#   train_manager.sh --policy xvla --dataset-group all_datasets [--dry-run]
#   train_manager.sh status | logs NAME -f | stop NAME | resume NAME | history | --help
# A link to this script from elsewhere (~/bin/train_manager) is followed back to the checkout.
export MIMIC_PROG="${MIMIC_PROG:-$0}"
src="${BASH_SOURCE[0]}"
hops=0
while [ -L "$src" ] && [ "$hops" -lt 40 ]; do
  hops=$((hops + 1))
  target="$(readlink -- "$src")"
  case "$target" in /*) src="$target" ;; *) src="$(dirname -- "$src")/$target" ;; esac
done
exec "$(dirname -- "$src")/_python.sh" -m mimic_deployment "$@"
