#!/usr/bin/env bash
# The orchestrator: plan, launch, watch, stop, resume and evaluate training runs.
#   train_manager.sh --policy xvla --dataset-group all_datasets [--dry-run]
#   train_manager.sh status | logs NAME -f | stop NAME | resume NAME | history | --help
export MIMIC_PROG="${MIMIC_PROG:-$0}"
exec "$(dirname "${BASH_SOURCE[0]}")/_python.sh" -m mimic_deployment "$@"
