"""The run registry: one JSON record per run at outputs/runs/<name>/run.json.

Written atomically (temp file + fsync + rename) under a per-run lock, versioned by `schema`.
Within one attempt a state only moves forward (queued -> running -> an end); `resume` opens
a new attempt and keeps the previous ones in `attempts`. Never deleted, never overwritten blind.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from enum import Enum
from pathlib import Path
from typing import Callable, Iterator

from mimic_deployment.host import paths
from mimic_deployment.util.atomic import atomic_write_json
from mimic_deployment.util.errors import UserError

SCHEMA = 1
RECORD_FILE = "run.json"
SECRET_WORDS = ("TOKEN", "KEY", "SECRET", "PASSWORD")


class State(str, Enum):
    QUEUED = "queued"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    STOPPED = "stopped"
    LOST = "lost"

    @property
    def rank(self) -> int:
        return {State.QUEUED: 0, State.RUNNING: 1}.get(self, 2)

    @property
    def ended(self) -> bool:
        return self.rank == 2


def runs_dir() -> Path:
    return paths.outputs_root() / "runs"


def record_dir(name: str) -> Path:
    return runs_dir() / name


def now() -> float:
    return round(time.time(), 3)


def scrub_env(env: dict) -> dict:
    """Never store an HF or W&B token (or anything that looks like a secret)."""
    return {k: v for k, v in env.items() if not any(word in k.upper() for word in SECRET_WORDS)}


def read(name: str) -> dict | None:
    try:
        return json.loads((record_dir(name) / RECORD_FILE).read_text())
    except FileNotFoundError:
        return None
    except json.JSONDecodeError as exc:  # cannot happen through atomic writes; say so if it does
        raise UserError(f"{record_dir(name) / RECORD_FILE}: corrupt record ({exc})") from None


def list_names() -> list[str]:
    try:
        return sorted(entry.name for entry in os.scandir(runs_dir())
                      if entry.is_dir() and os.path.exists(os.path.join(entry.path, RECORD_FILE)))
    except FileNotFoundError:
        return []


def scan(names: list[str] | None = None) -> list[tuple[str, str, os.stat_result]]:
    """(name, record file, its stat) of every record, or of those of `names` that exist; by name."""
    root = str(runs_dir())
    if names is not None:
        candidates = sorted(set(names))
    else:
        try:
            with os.scandir(root) as entries:
                candidates = sorted(entry.name for entry in entries if not entry.name.startswith("."))
        except FileNotFoundError:
            return []
    found = []
    for name in candidates:
        file = os.path.join(root, name, RECORD_FILE)
        try:
            found.append((name, file, os.stat(file)))
        except (FileNotFoundError, NotADirectoryError):
            continue
    return found


def read_file(file: str) -> dict | None:
    try:
        with open(file, "rb") as handle:
            return json.loads(handle.read())
    except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError):
        return None


def read_all() -> list[dict]:
    """Every record, by name. On the `status` path: plain os calls, no Path per record."""
    try:
        with os.scandir(runs_dir()) as entries:
            files = sorted((entry.name, os.path.join(entry.path, RECORD_FILE)) for entry in entries)
    except FileNotFoundError:
        return []
    records = []
    for _, file in files:
        try:
            with open(file, "rb") as handle:
                records.append(json.loads(handle.read()))
        except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError):
            continue
    return records


@contextlib.contextmanager
def locked(name: str) -> Iterator[None]:
    with open(record_dir(name) / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def create(name: str, record: dict) -> None:
    """Claim the name: exactly one of two simultaneous launches gets it."""
    runs_dir().mkdir(parents=True, exist_ok=True)
    try:
        os.mkdir(record_dir(name))
    except FileExistsError:
        raise UserError(f"run {name!r} already exists (launched at the same moment?)",
                        hint="see `status`, or pick another name with --tag") from None
    record = {"schema": SCHEMA, "name": name, "created_at": now(), "updated_at": now(),
              "host": socket.gethostname(), "attempts": [], "restarts": 0, **record}
    atomic_write_json(record_dir(name) / RECORD_FILE, record)


def update(name: str, change: Callable[[dict], None]) -> dict:
    """Read-modify-write under the run's lock. `change` edits the dict in place."""
    with locked(name):
        record = read(name)
        if record is None:
            raise UserError(f"no run named {name!r}")
        change(record)
        record["updated_at"] = now()
        atomic_write_json(record_dir(name) / RECORD_FILE, record)
        return record


def advance(record: dict, state: State, **fields) -> bool:
    """Move `record` forward to `state` (in place). A move backwards or out of an end is refused."""
    current = State(record["state"])
    if current.ended or state.rank < current.rank:
        return False
    record["state"] = state.value
    record.update(fields)
    if state.ended:
        record.setdefault("ended_at", now())
        if record.get("ended_at") is None:
            record["ended_at"] = now()
    return True


def open_attempt(record: dict, kind: str, argv: list[str]) -> None:
    """A new attempt (launch or resume): archive the last one, start again from queued."""
    if record.get("state") and not State(record["state"]).ended and record.get("attempts"):
        raise UserError(f"run {record['name']!r} is {record['state']}", hint="stop it first")
    if record.get("attempts"):
        last = record["attempts"][-1]
        last.update({k: record.get(k) for k in ("state", "ended_at", "exit_code", "reason")})
    record["attempts"].append({"kind": kind, "argv": argv, "queued_at": now()})
    record.update(state=State.QUEUED.value, started_at=None, ended_at=None, exit_code=None,
                  reason=None, stop_requested=False, supervisor=None, trainer=None, queue=None)
