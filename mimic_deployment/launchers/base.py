"""The interface every launcher implements, with the defaults of its optional hooks."""
from __future__ import annotations

import abc
from typing import TYPE_CHECKING, ClassVar

from mimic_deployment.runs.record import RunRecord, State

if TYPE_CHECKING:
    from mimic_deployment.planning.plan import RunPlan


class Launcher(abc.ABC):
    """How a run is started, judged alive and stopped. Callers call every method: the hooks
    (`check`, `verdict`, `waiting_reason`) have defaults for launchers that have nothing to add."""

    name: ClassVar[str]

    @abc.abstractmethod
    def start(self, records: list[RunRecord], *, sequential: bool, continue_on_failure: bool) -> dict[str, dict]:
        """Start already-recorded (queued) runs; return what to store in each record."""

    @abc.abstractmethod
    def alive(self, record: RunRecord) -> bool | None:
        """Is the run's owner alive? None: cannot tell from here (another host)."""

    @abc.abstractmethod
    def stop(self, record: RunRecord, timeout: float) -> list[int]:
        """End the run completely; return PIDs (or ids) that survived. Never signal a recorded
        PID that is not the run's (procs.belongs): a stale record must not kill a stranger."""

    def check(self, plans: list[RunPlan]) -> None:
        """Refuse plans before any name is claimed (raise UserError); by default all pass."""
        return None

    def verdict(self, record: RunRecord) -> tuple[State, str]:
        """The end of a run whose owner is gone without a recorded one."""
        return State.LOST, "its processes are gone without a recorded end"

    def waiting_reason(self, record: RunRecord) -> str | None:
        """Why a run that has not started yet is waiting, if the launcher knows (a Slurm queue)."""
        return None
