# Sourced by _policy_train.sh and _policy_eval.sh: find the policy folder an entry point was called
# through, whatever the current directory and however it was reached — `./train.sh` inside its
# folder, or a user's own link to it from elsewhere, followed back link by link until the link
# that points at the shared script itself (its folder is the policy's).
#   locate_policy <path it was called as> <shared script name>  ->  sets policy_dir and scripts
locate_policy() {
  local src="$1" shared="$2" target
  while [ -L "$src" ] && [ "$(basename -- "$(readlink -- "$src")")" != "$shared" ]; do  # no cycle: the caller resolved it
    target="$(readlink -- "$src")"
    case "$target" in /*) src="$target" ;; *) src="$(dirname -- "$src")/$target" ;; esac
  done
  policy_dir="$(CDPATH='' cd -- "$(dirname -- "$src")" && pwd -P)"
  scripts="$(dirname -- "$policy_dir")"
  if [ ! -f "$scripts/$shared" ]; then
    echo "error: $src is not inside mimic_deployment/training_scripts/<policy>/" >&2
    exit 2
  fi
}
