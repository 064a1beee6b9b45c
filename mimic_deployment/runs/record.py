"""The typed run record (run.json): RunRecord, its Attempts, the forward-only State, migrate().

Schema 2 (written today): every attempt carries its own outcome (state, started_at, ended_at,
exit_code, restarts, reason); the run-level keys hold what spans attempts (plan, marker, the
current owner's identities, progress, the total restarts). For readers outside the package (jq,
dashboards, job scripts of the previous version) the current attempt's outcome is also written
at the top level: a derived copy that `migrate()` never reads back — the attempts are the truth.

Schema 1 (before): the current attempt's outcome lived only at the top level and archived
attempts got theirs copied when the next one opened; `migrate()` reads it faithfully. The total
of automatic restarts was kept only per run, so schema-1 attempts have `restarts=None` (not
recorded). A record of a newer schema is refused (UserError): an older toolkit must not rewrite
what it cannot read. Unknown keys are kept, not dropped: in `extra` (run or attempt level) and
written back as they came, so a read-modify-write never loses a newer writer's data.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, fields
from enum import Enum
from typing import Any

from mimic_deployment.util.errors import UserError

SCHEMA = 2


def now() -> float:
    return round(time.time(), 3)


class State(str, Enum):
    """An attempt's state. Moves only forward, along TRANSITIONS; a new attempt starts over."""

    QUEUED = "queued"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    STOPPED = "stopped"
    LOST = "lost"

    @property
    def ended(self) -> bool:
        return not TRANSITIONS[self]

    def can_move_to(self, target: State) -> bool:
        return target in TRANSITIONS[self]


# Like SkyPilot's job_lib: queued -> running -> an end, or queued -> an end directly (cancelled
# while waiting, refused by sbatch, a queue that stopped, a Slurm job that COMPLETED before the
# record saw it run). No state moves to itself (a second supervisor must not "start" a running
# run) and an end never moves: `lost` is judged under the run's lock only after its owner is
# found gone, so no owner is left to write a later truth; what happens next is a new attempt.
TRANSITIONS: dict[State, frozenset[State]] = {
    State.QUEUED: frozenset({State.RUNNING, State.FINISHED, State.FAILED, State.STOPPED, State.LOST}),
    State.RUNNING: frozenset({State.FINISHED, State.FAILED, State.STOPPED, State.LOST}),
    State.FINISHED: frozenset(), State.FAILED: frozenset(), State.STOPPED: frozenset(), State.LOST: frozenset(),
}


@dataclass
class Attempt:
    """One launch, resume or restart of a run (automatic restarts and Slurm requeues are attempts too)."""

    kind: str  # train (a launch, or a Slurm requeue from scratch) | resume | restart (automatic, after a crash)
    argv: list[str]
    queued_at: float | None = None
    state: State = State.QUEUED
    started_at: float | None = None
    ended_at: float | None = None
    exit_code: int | None = None
    # automatic restarts within this attempt: 0 since each restart is an attempt of its own (kind
    # "restart"); older records may count them here; None: not recorded (schema 1)
    restarts: int | None = 0
    reason: str | None = None  # the note: why it ended (or why it is waiting)
    extra: dict = field(default_factory=dict)

    KEYS = ("kind", "argv", "queued_at", "state", "started_at", "ended_at", "exit_code", "restarts", "reason")

    def to_json(self) -> dict:
        out = {**self.extra, "kind": self.kind, "argv": self.argv, "queued_at": self.queued_at,
               "state": self.state.value, "started_at": self.started_at, "ended_at": self.ended_at,
               "exit_code": self.exit_code, "restarts": self.restarts, "reason": self.reason}
        return out

    @classmethod
    def from_json(cls, raw: dict) -> Attempt:
        return cls(kind=raw.get("kind", "train"), argv=list(raw.get("argv") or []), queued_at=raw.get("queued_at"),
                   state=State(raw.get("state", "queued")), started_at=raw.get("started_at"),
                   ended_at=raw.get("ended_at"), exit_code=raw.get("exit_code"), restarts=raw.get("restarts"),
                   reason=raw.get("reason"), extra={k: v for k, v in raw.items() if k not in cls.KEYS})


# the current attempt's outcome, mirrored at the top level of run.json (derived; never read back)
OUTCOME = ("state", "started_at", "ended_at", "exit_code", "reason")
# run-level keys and their defaults (a hand-written or partial schema-1 record lacks some)
RUN_KEYS: dict[str, Any] = {
    "created_at": None, "updated_at": None, "host": None, "launcher": "local", "plan": None, "marker": None,
    "max_restarts": 0, "toolkit_commit": None, "lerobot_version": None, "gpus": None,
    "cuda_visible_devices": None, "wait_for_gpus": False, "stop_requested": False, "supervisor": None,
    "trainer": None, "queue": None, "launched_by": None, "progress": None, "wandb_url": None, "restarts": 0,
    "slurm": None,
}


@dataclass
class RunRecord:
    """Everything recorded about one run. The current attempt is the last one."""

    name: str
    attempts: list[Attempt]
    plan: dict = field(default_factory=dict)  # RunPlan.to_dict(), secrets scrubbed; RunPlan.from_dict reads it
    created_at: float | None = None
    updated_at: float | None = None
    host: str | None = None
    launcher: str = "local"
    marker: str = ""  # MIMIC_RUN_MARKER of every process of the run
    max_restarts: int = 0
    toolkit_commit: str | None = None
    lerobot_version: str | None = None
    gpus: list[dict] = field(default_factory=list)
    cuda_visible_devices: str | None = None
    wait_for_gpus: bool = False
    stop_requested: bool = False  # of the current attempt
    supervisor: dict | None = None  # identities ({pid, create_time}) of the current attempt's owners
    trainer: dict | None = None
    queue: dict | None = None
    launched_by: dict | None = None  # owner of a queued record until a supervisor or queue takes it
    progress: dict | None = None  # the last progress, stored at the end
    wandb_url: str | None = None
    restarts: int = 0  # automatic restarts over all attempts (Slurm requeues included)
    slurm: dict | None = None  # the Slurm launcher's job data
    extra: dict = field(default_factory=dict)

    # -- the current attempt ----------------------------------------------------------------
    @property
    def current(self) -> Attempt:
        return self.attempts[-1]

    @property
    def state(self) -> State:
        return self.current.state

    @state.setter
    def state(self, value: State) -> None:
        self.current.state = value

    @property
    def started_at(self) -> float | None:
        return self.current.started_at

    @started_at.setter
    def started_at(self, value: float | None) -> None:
        self.current.started_at = value

    @property
    def ended_at(self) -> float | None:
        return self.current.ended_at

    @ended_at.setter
    def ended_at(self, value: float | None) -> None:
        self.current.ended_at = value

    @property
    def exit_code(self) -> int | None:
        return self.current.exit_code

    @exit_code.setter
    def exit_code(self, value: int | None) -> None:
        self.current.exit_code = value

    @property
    def reason(self) -> str | None:
        return self.current.reason

    @reason.setter
    def reason(self, value: str | None) -> None:
        self.current.reason = value

    # -- moves --------------------------------------------------------------------------------
    def set(self, **values: Any) -> None:
        """Known fields by name (the outcome ones go to the current attempt); others to `extra`."""
        for key, value in values.items():
            if key == "state":
                raise ValueError("a state changes only through advance()")
            if key in RUN_KEYS or key in OUTCOME:
                setattr(self, key, value)
            else:
                self.extra[key] = value

    def advance(self, state: State, **values: Any) -> bool:
        """Move the current attempt forward to `state`; False (nothing changed) if TRANSITIONS refuse."""
        if not self.state.can_move_to(state):
            return False
        self.current.state = state
        self.set(**values)
        if state.ended and self.ended_at is None:
            self.ended_at = now()
        return True

    def open_attempt(self, kind: str, argv: list[str]) -> Attempt:
        """A new attempt (resume, Slurm requeue): the only way to start over after an end."""
        if not self.state.ended:
            raise UserError(f"run {self.name!r} is {self.state.value}", hint="stop it first")
        self.attempts.append(Attempt(kind=kind, argv=list(argv), queued_at=now()))
        self.stop_requested = False
        self.supervisor = self.trainer = self.queue = None
        return self.current

    def open_restart(self, argv: list[str], **end: Any) -> Attempt:
        """An automatic restart by the same owner: the current attempt ends failed (with `end`:
        exit code, note), a `restart` attempt opens and runs at once under the same supervisor."""
        if self.state is not State.RUNNING:
            raise ValueError(f"a restart follows a running attempt, not a {self.state.value} one")
        self.advance(State.FAILED, **end)
        supervisor = self.supervisor
        self.open_attempt("restart", argv)
        self.supervisor = supervisor
        self.restarts += 1
        self.advance(State.RUNNING, started_at=now())
        return self.current

    def judged(self, state: State, reason: str | None = None) -> RunRecord:
        """A copy whose current attempt shows `state` (the truth when it cannot be written)."""
        attempts = [*self.attempts[:-1], Attempt.from_json(self.current.to_json())]
        copy = RunRecord(**{f.name: getattr(self, f.name) for f in fields(self) if f.name != "attempts"},
                         attempts=attempts)
        copy.current.state = state
        copy.current.reason = reason or copy.current.reason
        return copy

    # -- JSON ---------------------------------------------------------------------------------
    def to_json(self) -> dict:
        """The JSON object of run.json (schema 2)."""
        out: dict = {**self.extra, "schema": SCHEMA, "name": self.name}
        for key in RUN_KEYS:
            out[key] = getattr(self, key)
        out["attempts"] = [a.to_json() for a in self.attempts]
        out.update({key: getattr(self.current, key) for key in OUTCOME})
        out["state"] = self.state.value
        return out

    @classmethod
    def from_json(cls, raw: dict) -> RunRecord:
        return migrate(raw)


def migrate(raw: dict) -> RunRecord:
    """A RunRecord from any run.json this toolkit ever wrote (schema 1 or 2)."""
    schema = raw.get("schema", 1)
    if not isinstance(schema, int) or schema > SCHEMA:
        raise UserError(f"run {raw.get('name')!r}: record schema {schema} is newer than this toolkit's ({SCHEMA})",
                        hint="update the toolkit (git pull) to read it")
    known = {"schema", "name", "attempts", *RUN_KEYS, *OUTCOME}
    values = {key: raw.get(key, default) for key, default in RUN_KEYS.items()}
    values.update(plan=raw.get("plan") or {}, gpus=raw.get("gpus") or [], marker=raw.get("marker") or "",
                  launcher=raw.get("launcher") or "local", restarts=raw.get("restarts") or 0,
                  max_restarts=raw.get("max_restarts") or 0)
    attempts = [Attempt.from_json(a) for a in raw.get("attempts") or []]
    if schema == 1:
        _attempts_of_schema_1(raw, attempts)
    if not attempts:
        raise UserError(f"run {raw.get('name')!r}: record has no attempt")
    return RunRecord(name=raw.get("name", ""), attempts=attempts,
                     extra={k: v for k, v in raw.items() if k not in known}, **values)


def _attempts_of_schema_1(raw: dict, attempts: list[Attempt]) -> None:
    """Schema 1: archived attempts have their end fields (state, ended_at, exit_code, reason: copied
    when the next one opened), the current one lives at the top level; restarts were per run only."""
    for attempt in attempts:
        attempt.restarts = None
    if not attempts and raw.get("state"):  # a hand-written or very early record: one attempt
        argv = (raw.get("plan") or {}).get("argv") or []
        attempts.append(Attempt(kind="train", argv=list(argv), queued_at=raw.get("created_at"), restarts=None))
    if attempts:
        current = attempts[-1]
        current.state = State(raw.get("state", "queued"))
        for key in ("started_at", "ended_at", "exit_code", "reason"):
            setattr(current, key, raw.get(key))
