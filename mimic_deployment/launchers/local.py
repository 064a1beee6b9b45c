"""Local launcher: a detached supervisor per run (or one detached queue for a sequence)."""
from __future__ import annotations

import socket
import subprocess
import sys

from mimic_deployment.host import paths, procs
from mimic_deployment.launchers.base import Launcher
from mimic_deployment.runs.record import RunRecord, State


def spawn_detached(argv: list[str], log_file: str, marker: str | None) -> dict:
    """Own session and process group: no terminal, survives logout. Output appends to the log."""
    with open(log_file, "ab", buffering=0) as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True, env=procs.child_env(marker),
                                cwd=str(paths.REPO_ROOT))
    return procs.identity(proc.pid)


class LocalLauncher(Launcher):
    name = "local"

    def start(self, records: list[RunRecord], *, sequential: bool, continue_on_failure: bool) -> dict[str, dict]:
        if sequential and len(records) > 1:
            names = [r.name for r in records]
            argv = procs.entry_argv(sys.executable, "queue", *names)
            if continue_on_failure:
                argv.append("--continue-on-failure")
            queue_log = str(paths.outputs_root() / "logs" / f"queue_{names[0]}.log")
            ident = spawn_detached(argv, queue_log, marker=None)
            return {n: {"queue": {**ident, "position": i, "size": len(names), "log": queue_log}}
                    for i, n in enumerate(names)}
        started = {}
        for record in records:
            argv = procs.entry_argv(sys.executable, "supervise", record.name)
            started[record.name] = {"supervisor": spawn_detached(argv, record.plan["log_file"], record.marker)}
        return started

    def alive(self, record: RunRecord) -> bool | None:
        if record.host and record.host != socket.gethostname():
            return None
        owner = record.supervisor
        if not owner and record.state is State.QUEUED:  # waiting: in a queue, or still being launched
            owner = record.queue or record.launched_by
        if procs.is_alive(owner):
            return True
        # the supervisor is gone but its trainer still runs (it ignored the PDEATHSIG SIGTERM):
        # not lost (a resume would start a second trainer on the same output); `stop` ends it
        return record.state is State.RUNNING and procs.is_alive(record.trainer)

    def stop(self, record: RunRecord, timeout: float) -> list[int]:
        # the supervisor's tree only when it really is the run's (procs.belongs), and whatever carries the marker
        _, survivors = procs.terminate(record.supervisor, record.marker or None, timeout)
        return survivors
