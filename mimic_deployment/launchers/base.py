"""The one small interface every launcher fills."""
from __future__ import annotations

from typing import Protocol


class Launcher(Protocol):
    name: str

    def start(self, records: list[dict], *, sequential: bool, continue_on_failure: bool) -> dict[str, dict]:
        """Start already-recorded (queued) runs; return what to store in each record."""

    def alive(self, record: dict) -> bool | None:
        """Is the run's owner alive? None: cannot tell from here (another host)."""

    def stop(self, record: dict, timeout: float) -> list[int]:
        """End the run completely; return PIDs (or ids) that survived."""

    # Optional hooks (the slurm launcher has them; callers use getattr/hasattr):
    #   check(plans) -> None: refuse plans before any name is claimed (sbatch --test-only)
    #   verdict(record) -> (State, reason): the end of a run whose owner is gone without one
