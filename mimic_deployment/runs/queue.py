"""A sequential queue: runs one recorded run after another on this machine, each starting only
when the previous one has ended (the supervisors are this process's own children, so waiting
on them is real). Stops at the first failure unless --continue-on-failure.
Usage: python -m mimic_deployment._entry queue NAME [NAME ...] [--continue-on-failure]
"""
from __future__ import annotations

import signal
import subprocess
import sys

from mimic_deployment.host import procs
from mimic_deployment.runs import registry
from mimic_deployment.runs.record import State


def _cancel(names: list[str], reason: str) -> None:
    for name in names:
        registry.update(name, lambda r: registry.advance(r, State.STOPPED, reason=reason))


def main(argv: list[str]) -> int:
    keep_going = "--continue-on-failure" in argv
    names = [a for a in argv if not a.startswith("--")]
    stopping = {"now": False}
    current: dict = {}

    def on_signal(signum, _frame):
        stopping["now"] = True
        if current.get("proc") and current["proc"].poll() is None:
            current["proc"].send_signal(signal.SIGTERM)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    for i, name in enumerate(names):
        if stopping["now"]:
            _cancel(names[i:], "queue stopped")
            return 1
        record = registry.read(name)
        if record is None or record.state is not State.QUEUED:
            print(f"[mimic] queue: skipping {name} ({record and record.state.value})", flush=True)
            continue
        print(f"[mimic] queue: starting {name} ({i + 1}/{len(names)})", flush=True)
        with open(record.plan["log_file"], "ab", buffering=0) as log:
            env = procs.child_env(record.marker)
            # its own process group: `stop NAME` signals that group, which must not take the queue down
            current["proc"] = subprocess.Popen(procs.entry_argv(sys.executable, "supervise", name),
                                               stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                                               start_new_session=True)
            current["proc"].wait()
        ended = registry.read(name)
        state = ended.state.value if ended else None
        print(f"[mimic] queue: {name} ended {state}", flush=True)
        if state != State.FINISHED.value and not keep_going:
            _cancel(names[i + 1:], f"queue stopped: {name} {state}")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
