#!/usr/bin/env bash
# Every training_scripts/<policy>/train.sh is a link to this file: the policy is its folder's
# name, everything else comes from env vars (DATASET_GROUP, BATCH_SIZE, STEPS, SAVE_FREQ,
# NUM_WORKERS, NUM_GPUS, COMPUTER, HF_ORG, ...) or flags, exactly as with train_manager.sh.
#   DATASET_GROUP=high_quality BATCH_SIZE=4 ./mimic_deployment/training_scripts/pi05/train.sh --dry-run
# The shared locator lies beside the real file of this script (links resolved all the way).
if ! real="$(readlink -f -- "${BASH_SOURCE[0]}")" || [ -z "$real" ]; then
  echo "error: cannot follow the links from ${BASH_SOURCE[0]} (a cycle of links?)" >&2
  exit 2
fi
source "$(dirname -- "$real")/_locate.sh"
locate_policy "${BASH_SOURCE[0]}" _policy_train.sh
package="$(dirname -- "$scripts")"
export MIMIC_PROG="${MIMIC_PROG:-$package/train_manager.sh}"
exec "$package/_python.sh" -m mimic_deployment train --policy "$(basename -- "$policy_dir")" "$@"
