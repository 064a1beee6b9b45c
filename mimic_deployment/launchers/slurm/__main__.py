"""Shim for sbatch scripts written before _entry: `python -m mimic_deployment.launchers.slurm job NAME`."""
from __future__ import annotations

import sys

from mimic_deployment._entry import main as entry_main


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "job":
        return entry_main(["slurm-job", argv[1]])
    print("usage: python -m mimic_deployment.launchers.slurm job RUN_NAME", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
