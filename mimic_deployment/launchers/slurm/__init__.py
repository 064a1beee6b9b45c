"""Slurm launcher, one batch job per run: script, Slurm tools (client), submit side, job side."""
from __future__ import annotations

from mimic_deployment.launchers.slurm.client import (
    ACTIVE,
    FINAL,
    SQUEUE_TTL,
    SqueueCache,
    final_state,
    parse_job_id,
    parse_squeue,
    slurm_message,
)
from mimic_deployment.launchers.slurm.job import SlurmSupervisor, job_main, reopen_for_requeue
from mimic_deployment.launchers.slurm.script import SCRIPT_FILE, sbatch_argv, sbatch_directives, sbatch_script
from mimic_deployment.launchers.slurm.submit import KILL_WAIT, SlurmLauncher, job_info, job_table

__all__ = ["ACTIVE", "FINAL", "KILL_WAIT", "SCRIPT_FILE", "SQUEUE_TTL", "SlurmLauncher", "SlurmSupervisor",
           "SqueueCache", "final_state", "job_info", "job_main", "job_table", "parse_job_id", "parse_squeue",
           "reopen_for_requeue", "sbatch_argv", "sbatch_directives", "sbatch_script", "slurm_message"]
