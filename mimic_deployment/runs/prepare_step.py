"""The supervisor's prepare step, run as its own process so that the supervisor never holds
LeRobot and torch in memory: python -m mimic_deployment._entry prepare RUN_NAME"""
from __future__ import annotations

import sys
from pathlib import Path

from mimic_deployment.runs import registry
from mimic_deployment.util.errors import UserError


def main(name: str) -> int:
    from mimic_deployment.datasets.prepare import prepare

    record = registry.require(name)
    spec, link = record.plan["dataset"], Path(record.plan["dataset"]["root"])
    try:
        prepare(spec, link, log=lambda msg: print(msg, flush=True))
    except UserError as exc:
        print(f"[mimic] error: {exc}", flush=True)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
