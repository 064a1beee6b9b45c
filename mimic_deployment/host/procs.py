"""Process identity and clean termination.

A PID alone is never trusted: a record keeps (pid, create time), and a process counts as ours
only when both match — a reused PID is someone else. Every process of a run also carries an
env marker (MIMIC_RUN_MARKER), so children that escaped the process group are still found, and
a recorded identity is signalled only when the process really is the run's (`belongs`): a
record whose pid and start time point at an unrelated program never gets it killed. Liveness
(`is_alive`) stays identity only: a `lost` judged wrongly is final, and another user's process
environment cannot be read.
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


PACKAGE = "mimic_deployment"
ENTRY_MODULE = f"{PACKAGE}._entry"  # the one stable entry point of detached processes


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


def live_markers() -> set[str]:
    """The run markers carried by live processes, in one pass over the process table."""
    found = set()
    for proc in psutil.process_iter():
        try:
            marker = proc.environ().get(MARKER_VAR)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        if marker and proc.pid != os.getpid():
            found.add(marker)
    return found


def foreign_root(root: dict | None, marker: str | None) -> int | None:
    """The PID of a recorded root (pid + create time of a live process) that is not the run's
    (see `belongs`): `terminate` leaves it and its children alone; `stop` says so."""
    proc = process_of(root)
    return proc.pid if proc is not None and not belongs(proc, marker) else None


def run_processes(root: dict | None, marker: str | None) -> list[psutil.Process]:
    """Everything belonging to a run: the root (when it really is the run's), its descendants,
    and anything with its marker."""
    procs: dict[int, psutil.Process] = {}
    proc = process_of(root)
    if proc is not None and belongs(proc, marker):
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
    alive = _wait(procs, timeout)
    alive += [p for p in run_processes(root, marker) if p not in alive]  # spawned meanwhile
    if alive:
        _signal_all(alive, signal.SIGKILL)
        alive = _wait(alive, 5)
    return len(procs), [p.pid for p in alive]


def _wait(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait until every one has exited, or `timeout`; the ones still running. A zombie has exited:
    it only waits for its parent (psutil.wait_procs would count it as running until the timeout
    when this process is not that parent, or when PID 1 does not reap)."""
    deadline = time.monotonic() + max(timeout, 0)
    alive = list(procs)
    while True:
        alive = [p for p in alive if not _dead(p)]
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.05)


def _dead(proc: psutil.Process) -> bool:
    try:
        if not proc.is_running():
            return True
        if proc.status() != psutil.STATUS_ZOMBIE:
            return False
        if proc.ppid() == os.getpid():  # our own child: collect it, so it leaves no zombie
            os.waitpid(proc.pid, os.WNOHANG)
        return True
    except (psutil.NoSuchProcess, ChildProcessError):
        return True


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


def belongs(proc: psutil.Process, marker: str | None) -> bool:
    """Whether a process found by a recorded identity is the run's own, to be signalled: it carries
    the run's marker; or it carries no marker at all and runs the toolkit (a --foreground
    supervisor sets its marker in os.environ after exec, which /proc does not show, and a
    sequential queue carries none). An unrelated program, or another run's process, is not."""
    if carries_marker(proc, marker):
        return True
    try:
        if MARKER_VAR in proc.environ():
            return False  # another run's
        return any(part == PACKAGE or part.startswith(PACKAGE + ".") for part in proc.cmdline())  # python -m ...
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False
