"""Process identity and clean termination.

A PID alone is never trusted: a record keeps (pid, create time), and a process counts as ours
only when both match — a reused PID is someone else. Every process of a run also carries an
env marker (MIMIC_RUN_MARKER), so children that escaped the process group are still found.
"""
from __future__ import annotations

import os
import signal
import time
from collections.abc import Mapping

import psutil

from mimic_deployment.host.paths import REPO_ROOT

MARKER_VAR = "MIMIC_RUN_MARKER"
CREATE_TIME_SLACK = 0.05  # seconds: create_time is derived from boot time and jiffies


ENTRY_MODULE = "mimic_deployment._entry"  # the one stable entry point of detached processes


def entry_argv(python: str, command: str, *args: str) -> list[str]:
    """The argv that runs one of the toolkit's own detached processes (supervise, queue, prepare)."""
    return [python, "-m", ENTRY_MODULE, command, *args]


def child_env(marker: str | None, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The env of every process the toolkit starts for a run (supervisor, queue, prepare step,
    trainer): this repo first on PYTHONPATH (so `python -m mimic_deployment._entry` resolves
    from any cwd) and the run's marker, so `stop` finds whatever escapes the process group."""
    env = dict(os.environ if base is None else base)
    parts = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    root = str(REPO_ROOT)
    env["PYTHONPATH"] = os.pathsep.join([root, *(p for p in parts if p != root)])
    if marker:
        env[MARKER_VAR] = marker
    return env


def identity(pid: int) -> dict:
    proc = psutil.Process(pid)
    return {"pid": pid, "create_time": proc.create_time()}


def process_of(ident: dict | None) -> psutil.Process | None:
    """The live process behind a recorded identity, or None (gone, zombie or PID reused)."""
    if not ident or not ident.get("pid"):
        return None
    try:
        proc = psutil.Process(ident["pid"])
        if abs(proc.create_time() - ident["create_time"]) > CREATE_TIME_SLACK:
            return None
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def is_alive(ident: dict | None) -> bool:
    return process_of(ident) is not None


def marked_processes(marker: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.pid != os.getpid() and proc.environ().get(MARKER_VAR) == marker:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def run_processes(root: dict | None, marker: str | None) -> list[psutil.Process]:
    """Everything belonging to a run: the root, its descendants, and anything with its marker."""
    procs: dict[int, psutil.Process] = {}
    proc = process_of(root)
    if proc is not None:
        procs[proc.pid] = proc
        try:
            procs.update({c.pid: c for c in proc.children(recursive=True)})
        except psutil.NoSuchProcess:
            pass
    if marker:
        procs.update({p.pid: p for p in marked_processes(marker)})
    return list(procs.values())


def _signal_all(procs: list[psutil.Process], sig: int) -> None:
    groups = set()
    for proc in procs:
        try:
            groups.add(os.getpgid(proc.pid))
            proc.send_signal(sig)
        except (psutil.NoSuchProcess, ProcessLookupError):
            continue
    for pgid in groups - {os.getpgid(0)}:  # whole groups too: dataloader workers, accelerate ranks
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            continue


def terminate(root: dict | None, marker: str | None, timeout: float) -> tuple[int, list[int]]:
    """SIGTERM the run's processes, wait up to `timeout`, SIGKILL what is left.

    Returns (how many processes were signalled, PIDs still alive at the end)."""
    procs = run_processes(root, marker)
    if not procs:
        return 0, []
    _signal_all(procs, signal.SIGTERM)
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    alive += [p for p in run_processes(root, marker) if p not in alive]  # spawned meanwhile
    if alive:
        _signal_all(alive, signal.SIGKILL)
        _, alive = psutil.wait_procs(alive, timeout=5)
    time.sleep(0)  # let the kernel reap
    return len(procs), [p.pid for p in alive]


def reap_marked(marker: str | None, timeout: float = 5.0) -> list[int]:
    """End whatever still carries the run's marker (dataloader workers, a stray child) once the
    run has ended in any way; never this process. Returns the PIDs that survived SIGKILL."""
    if not marker:
        return []
    return terminate(None, marker, timeout)[1]


def carries_marker(proc: psutil.Process, marker: str | None) -> bool:
    """Whether `proc` is really the run's (its environ holds the marker): checked before any signal,
    so a recorded PID and start time that point at an unrelated process are never signalled."""
    if not marker:
        return True  # records from before markers: identity (pid, create time) is all there is
    try:
        return proc.environ().get(MARKER_VAR) == marker
    except psutil.AccessDenied:
        return False
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
