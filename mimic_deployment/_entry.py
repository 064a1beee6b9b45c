"""The one stable entry point of every detached process and job script the toolkit starts.

    python -m mimic_deployment._entry supervise RUN_NAME
    python -m mimic_deployment._entry queue NAME [NAME ...] [--continue-on-failure]
    python -m mimic_deployment._entry prepare RUN_NAME
    python -m mimic_deployment._entry slurm-job RUN_NAME

Records, queues and sbatch scripts written today name this module, so the code behind it can
move without breaking a run that was launched before the move (the old module paths keep
shims that forward here).
"""
from __future__ import annotations

import sys

USAGE = "usage: python -m mimic_deployment._entry {supervise|queue|prepare|slurm-job} ARGS"


def supervise(args: list[str]) -> int:
    from mimic_deployment.runs.supervisor import Supervisor

    return Supervisor(args[0]).run()


def queue(args: list[str]) -> int:
    from mimic_deployment.runs.queue import main as queue_main

    return queue_main(args)


def prepare(args: list[str]) -> int:
    from mimic_deployment.runs.prepare_step import main as prepare_main

    return prepare_main(args[0])


def slurm_job(args: list[str]) -> int:
    from mimic_deployment.launchers.slurm import job_main

    return job_main(args[0])


COMMANDS = {"supervise": supervise, "queue": queue, "prepare": prepare, "slurm-job": slurm_job}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in COMMANDS or len(argv) < 2:
        print(USAGE, file=sys.stderr)
        return 2
    return COMMANDS[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
