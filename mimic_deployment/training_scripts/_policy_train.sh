#!/usr/bin/env bash
# Every training_scripts/<policy>/train.sh is a link to this file: the policy is its folder's
# name, everything else comes from env vars (DATASET_GROUP, BATCH_SIZE, STEPS, SAVE_FREQ,
# NUM_WORKERS, NUM_GPUS, COMPUTER, HF_ORG, ...) or flags, exactly as with train_manager.sh.
#   DATASET_GROUP=high_quality BATCH_SIZE=4 ./mimic_deployment/training_scripts/pi05/train.sh --dry-run
policy="$(basename "$(dirname "$0")")"
export MIMIC_PROG="${MIMIC_PROG:-$(dirname "$(dirname "$(dirname "$0")")")/train_manager.sh}"
exec "$(dirname "$0")/../../_python.sh" -m mimic_deployment train --policy "$policy" "$@"
