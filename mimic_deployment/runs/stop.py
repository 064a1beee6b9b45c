"""The stop protocol: cancel queued runs first, end running ones completely, settle the record.

Whatever still carries a run's marker is ended too: after a run ended in any way (a `lost` run
whose trainer left a helper behind), and for a run whose record cannot be read (its marker file
beside the record still names its processes). A corrupt record is left exactly as it is, for
inspection (`status` shows it as corrupt): a stop never rewrites what it cannot read. A recorded
PID that is not the run's (no marker: see procs.belongs) is never signalled, and the line says so.
Every launcher's result is said one way, by `Stopped.line`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from mimic_deployment.host import procs
from mimic_deployment.runs import registry, tracking
from mimic_deployment.runs.record import RunRecord, State


def _processes(count: int) -> str:
    return f"{count} process" + ("" if count == 1 else "es")


@dataclass(frozen=True)
class Stopped:
    name: str
    state: State | None  # None: the record cannot be read
    was: State | None  # before this stop
    survivors: list[int]  # PIDs (or job ids) still alive after SIGKILL
    by_marker: int = 0  # processes found by the run's marker alone (an ended or unreadable run) and ended
    unreadable: str | None = None  # why the record cannot be read ("corrupt record", ...)
    foreign: list[int] = field(default_factory=list)  # recorded PIDs that are not the run's: left alone
    no_marker: bool = False  # unreadable, and no marker file: its processes cannot be found

    @property
    def already(self) -> bool:
        """It had ended before this stop."""
        return self.was is not None and self.was.ended

    @property
    def ok(self) -> bool:
        """Nothing of the run is known to be left running."""
        return not self.survivors and not self.no_marker

    def line(self) -> str:
        """One line, the same for every launcher: `NAME: stopped (was running)`, `NAME: cancelled
        (was queued)`, `NAME: already finished`, `NAME: corrupt record; ended 2 processes by marker`."""
        if self.unreadable is not None:
            text = (f"{self.name}: {self.unreadable}, and no marker file to find its processes by" if self.no_marker
                    else f"{self.name}: {self.unreadable}; ended {_processes(self.by_marker)} by marker")
        elif self.already or self.state is None or self.was is None:
            text = f"{self.name}: already {self.state.value if self.state else '?'}"
            if self.by_marker:
                text += f"; ended {_processes(self.by_marker)} left behind, by marker"
        elif self.was is State.QUEUED and self.state is State.STOPPED:
            text = f"{self.name}: cancelled (was queued)"
        else:  # stopped, or an end its owner recorded in the meantime
            text = f"{self.name}: {self.state.value} (was {self.was.value})"
        if self.foreign:
            text += f"; recorded PID {', '.join(map(str, self.foreign))} is not the run's (no marker): left alone"
        if self.survivors:
            text += f", but PIDs {self.survivors} survived SIGKILL"
        return text


def unreadable(name: str) -> str | None:
    """Why the record of `name` exists but cannot be read (None: readable, or no record)."""
    why = registry.unreadable_reason(str(registry.record_dir(name) / registry.RECORD_FILE))
    if why is None:
        return None
    return "corrupt record" if why.startswith("corrupt record") else f"unreadable record ({why})"


def stop_unreadable(name: str, why: str, timeout: float) -> Stopped:
    """A run whose record cannot be read: end whatever carries its marker; the record stays as it is."""
    marker = registry.marker_of(name)
    if not marker:
        return Stopped(name, None, None, [], unreadable=why, no_marker=True)
    count, survivors = procs.terminate(None, marker, timeout)
    return Stopped(name, None, None, survivors, by_marker=count, unreadable=why)


def stop_run(name: str, timeout: float) -> Stopped:
    """SIGTERM the run's processes, SIGKILL after `timeout`; record the end if its owner could not."""
    why = unreadable(name)
    if why is not None:
        return stop_unreadable(name, why, timeout)
    # judged first: a run whose owner is already gone is `lost`, not stopped by this request
    record = tracking.refresh(registry.require(name))
    if record.state.ended:
        count, survivors = procs.terminate(None, record.marker or None, timeout)
        return Stopped(name, record.state, record.state, survivors, by_marker=count)

    def request(r: RunRecord) -> None:
        if not r.state.ended:
            r.stop_requested = True

    record = registry.update(name, request)
    launcher = tracking.launcher_of(record)
    was = record.state
    local = launcher.name == "local"
    foreign = procs.foreign_root(record.supervisor, record.marker or None) if local else None
    survivors = launcher.stop(record, timeout)
    if record.queue and was is State.QUEUED and not record.supervisor:
        survivors = []  # waiting in a queue: cancelling the record is enough, the queue skips it

    def settle(r: RunRecord) -> None:  # the owner may have died before writing its end
        if registry.advance(r, State.STOPPED, reason="stopped by request"):
            tracking.store_progress(r)

    record = registry.update(name, settle)
    leftovers = [p.pid for p in procs.marked_processes(record.marker)] if local and record.marker else []
    return Stopped(name, record.state, was, sorted(set(survivors + leftovers)),
                   foreign=[foreign] if foreign else [])


def live_names() -> list[str]:
    """Every queued or running run (judged live first), every ended one that left a process with
    its marker behind, and every unreadable one whose marker a live process carries."""
    unreadable_runs: list[tuple[str, str]] = []
    records = registry.read_all(unreadable_runs)
    markers = procs.live_markers()
    names = [r.name for r in records if not tracking.refresh(r).state.ended or (r.marker and r.marker in markers)]
    names += [name for name, _ in unreadable_runs if registry.marker_of(name) in markers]
    return sorted(names)


def stop_runs(names: list[str], timeout: float) -> list[Stopped]:
    """Queued ones first, so that a queue cannot start them; then their queues if left idle."""
    for name in names:
        if unreadable(name) is None:
            registry.require(name)  # a typo: one error, with the closest names, before anything stops
    queued_first = sorted(names, key=lambda n: _state(n) is not State.QUEUED)
    results = [stop_run(name, timeout) for name in queued_first]
    stop_idle_queues(names)
    return results


def _read(name: str) -> RunRecord | None:
    return registry.read_file(str(registry.record_dir(name) / registry.RECORD_FILE))


def _state(name: str) -> State | None:
    record = _read(name)
    return record.state if record else None


def stop_idle_queues(names: list[str]) -> None:
    """A queue whose runs are all ended has nothing left to do: end it too."""
    for name in names:
        record = _read(name)
        queue = record.queue if record else None
        if not queue or not procs.is_alive(queue):
            continue
        members = [r for r in registry.read_all() if (r.queue or {}).get("pid") == queue["pid"]]
        if all(r.state.ended for r in members):
            procs.terminate(queue, None, timeout=5)
