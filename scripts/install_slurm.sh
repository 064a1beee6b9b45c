#!/usr/bin/env bash
# Install a local Slurm (slurm-wlm) + munge for the single-node test cluster
# (tests/slurm_cluster.py). Idempotent: does nothing when everything is present.
# Not root: prints why and exits 0, so the tests can skip with that reason.
set -euo pipefail

PATH="$PATH:/usr/sbin:/sbin"
need=(sbatch squeue scontrol scancel sinfo slurmctld slurmd munged)

missing=()
for b in "${need[@]}"; do
    command -v "$b" >/dev/null 2>&1 || missing+=("$b")
done
if [ "${#missing[@]}" -eq 0 ]; then
    echo "install_slurm: Slurm and munge already installed"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "install_slurm: not root; cannot install slurm-wlm munge (missing: ${missing[*]})"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_slurm: no apt-get; install slurm-wlm and munge by hand (missing: ${missing[*]})"
    exit 0
fi

echo "install_slurm: installing slurm-wlm munge (missing: ${missing[*]})"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
version=$(dpkg-query -W -f='${Version}' slurm-wlm 2>/dev/null || echo "?")
echo "install_slurm: installed slurm-wlm $version"
