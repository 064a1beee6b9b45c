"""The stop protocol: cancel queued runs first, end running ones completely, settle the record."""
from __future__ import annotations

from dataclasses import dataclass

from mimic_deployment.host import procs
from mimic_deployment.runs import registry, tracking
from mimic_deployment.runs.record import RunRecord, State


@dataclass(frozen=True)
class Stopped:
    name: str
    state: State
    already: bool  # it had ended before this stop
    survivors: list[int]  # PIDs (or job ids) still alive after SIGKILL

    def line(self) -> str:
        if self.survivors:
            return f"{self.name}: {self.state.value}, but PIDs {self.survivors} survived SIGKILL"
        return f"{self.name}: {self.state.value}" + (" (already)" if self.already else "")


def stop_run(name: str, timeout: float) -> Stopped:
    """SIGTERM the run's processes, SIGKILL after `timeout`; record the end if its owner could not."""
    def request(r: RunRecord) -> None:
        if not r.state.ended:
            r.stop_requested = True

    record = registry.update(name, request)
    launcher = tracking.launcher_of(record)
    was = record.state
    survivors = launcher.stop(record, timeout)
    if record.queue and was is State.QUEUED and not record.supervisor:
        survivors = []  # waiting in a queue: cancelling the record is enough, the queue skips it

    def settle(r: RunRecord) -> None:  # the owner may have died before writing its end
        if registry.advance(r, State.STOPPED, reason="stopped by request"):
            tracking.store_progress(r)

    record = registry.update(name, settle)
    leftovers = [p.pid for p in procs.marked_processes(record.marker)] if launcher.name == "local" else []
    return Stopped(name, record.state, already=was is record.state, survivors=sorted(set(survivors + leftovers)))


def live_names() -> list[str]:
    """Every queued or running run (judged live first)."""
    return [r.name for r in registry.read_all() if not tracking.refresh(r).state.ended]


def stop_runs(names: list[str], timeout: float) -> list[Stopped]:
    """Queued ones first, so that a queue cannot start them; then their queues if left idle."""
    for name in names:
        registry.require(name)
    queued_first = sorted(names, key=lambda n: _state(n) is not State.QUEUED)
    results = [stop_run(name, timeout) for name in queued_first]
    stop_idle_queues(names)
    return results


def _state(name: str) -> State | None:
    record = registry.read(name)
    return record.state if record else None


def stop_idle_queues(names: list[str]) -> None:
    """A queue whose runs are all ended has nothing left to do: end it too."""
    for name in names:
        record = registry.read(name)
        queue = record.queue if record else None
        if not queue or not procs.is_alive(queue):
            continue
        members = [r for r in registry.read_all() if (r.queue or {}).get("pid") == queue["pid"]]
        if all(r.state.ended for r in members):
            procs.terminate(queue, None, timeout=5)
