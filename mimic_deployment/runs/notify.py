"""The end-of-run notification: runs lab.yaml's `notify` command for one end of one run.

registry.update sees the end (the change that moves the current attempt into finished, failed,
stopped or lost: exactly one change per end, under the run's lock) and, once the lock is
released, starts this module detached, with the record as JSON on stdin:

    python -m mimic_deployment.runs.notify NAME STATE ATTEMPT

Here the command (an argv, never a shell line) gets that JSON on its stdin and MIMIC_RUN_NAME,
MIMIC_RUN_STATE in its env; it runs in its own process group, bounded by the hook's timeout
(then the group is killed). Its output and the outcome go to outputs/runs/NAME/notify.log, and
the outcome is noted in the attempt's `notify` field. Nothing here changes the run's state.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from mimic_deployment.config.lab import NotifyHook, load_lab
from mimic_deployment.runs import registry
from mimic_deployment.runs.record import RunRecord
from mimic_deployment.util.errors import UserError
from mimic_deployment.util.secrets import redact_text


def say(message: str) -> None:
    """A line of notify.log (this process's stdout is appended to it)."""
    print(f"[mimic] {time.strftime('%Y-%m-%d %H:%M:%S')} {message}", flush=True)


def run_hook(hook: NotifyHook, name: str, state: str, payload: bytes) -> tuple[bool, str]:
    """Run the command once; (ok, what happened). Its stdout and stderr are this process's."""
    env = {**os.environ, "MIMIC_RUN_NAME": name, "MIMIC_RUN_STATE": state}
    try:
        proc = subprocess.Popen(list(hook.command), stdin=subprocess.PIPE, env=env, start_new_session=True)
    except OSError as exc:
        return False, f"cannot run {hook.command[0]}: {exc.strerror or exc}"
    try:
        proc.communicate(payload, timeout=hook.timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # its own group: whatever it started goes too
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait()
        return False, f"timed out after {hook.timeout:g} s (killed)"
    if proc.returncode != 0:
        return False, f"exited with code {proc.returncode}"
    return True, "exited with code 0"


def note(record: RunRecord, attempt: int, state: str, ok: bool, what: str) -> None:
    """The outcome on the attempt that ended (a resume may have opened another since)."""
    if 0 < attempt <= len(record.attempts):
        record.attempts[attempt - 1].extra["notify"] = {"state": state, "ok": ok, "note": what,
                                                        "at": registry.now()}


def main(argv: list[str]) -> int:
    if len(argv) != 3 or not argv[2].isdigit():
        print("usage: python -m mimic_deployment.runs.notify NAME STATE ATTEMPT (record JSON on stdin)",
              file=sys.stderr)
        return 2
    name, state, attempt = argv[0], argv[1], int(argv[2])
    payload = redact_text(sys.stdin.buffer.read().decode("utf-8", "replace")).encode()
    hook: NotifyHook | None = None
    ok, what = False, "no notify command in the lab settings any more"
    try:
        hook = load_lab().notify
    except UserError as exc:  # edited since the run ended
        what = f"lab settings unreadable: {exc}"
    if hook is not None:
        say(f"notify {name} {state}: running {list(hook.command)}")
        ok, what = run_hook(hook, name, state, payload)
    say(f"notify {name} {state}: " + ("sent, " if ok else "FAILED, ") + what)
    try:
        registry.update(name, lambda r: note(r, attempt, state, ok, what))
    except (OSError, UserError) as exc:
        say(f"could not note the outcome in the record: {exc}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
