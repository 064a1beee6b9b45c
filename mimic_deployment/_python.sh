#!/usr/bin/env bash
# Exec the project's Python with this checkout on PYTHONPATH. The environment is the one
# `make` creates (.venv, a link into ~/.cache/mimic-deployment/envs, shared by clones).
repo="$(CDPATH='' cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
py="$repo/.venv/bin/python"
if [ ! -x "$py" ]; then
  env_dir="$(python3 "$repo/scripts/ensure_env.py" --find 2>/dev/null)" && py="$env_dir/bin/python" || py=""
fi
if [ -z "$py" ]; then
  if python3 -c 'import yaml, psutil' 2>/dev/null; then
    py=python3
  else
    echo "error: the project's environment is missing (create it with: make -C $repo env)" >&2
    exit 2
  fi
fi
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
exec "$py" "$@"
