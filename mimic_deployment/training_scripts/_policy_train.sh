#!/usr/bin/env bash
# Every training_scripts/<policy>/train.sh is a link to this file: the policy is its folder's
# name, everything else comes from env vars (DATASET_GROUP, BATCH_SIZE, STEPS, SAVE_FREQ,
# NUM_WORKERS, NUM_GPUS, COMPUTER, HF_ORG, ...) or flags, exactly as with train_manager.sh.
#   DATASET_GROUP=high_quality BATCH_SIZE=4 ./mimic_deployment/training_scripts/pi05/train.sh --dry-run
# The policy and the repo are found from this script's own location, whatever the current
# directory and however it was reached: `./train.sh` inside its folder, or a user's own link to
# train.sh from elsewhere (followed back, link by link, to the policy folder's train.sh).
src="${BASH_SOURCE[0]}"
hops=0
while [ -L "$src" ] && [ "$(basename -- "$(readlink -- "$src")")" != "_policy_train.sh" ]; do
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
if [ ! -f "$scripts/_policy_train.sh" ]; then
  echo "error: $src is not inside mimic_deployment/training_scripts/<policy>/" >&2
  exit 2
fi
package="$(dirname -- "$scripts")"
export MIMIC_PROG="${MIMIC_PROG:-$package/train_manager.sh}"
exec "$package/_python.sh" -m mimic_deployment train --policy "$(basename -- "$policy_dir")" "$@"
