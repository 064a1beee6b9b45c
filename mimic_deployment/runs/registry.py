"""The run registry: the only reader and writer of outputs/runs/<name>/run.json (a RunRecord).

Written atomically (temp file + fsync + rename) under a per-run lock, versioned by `schema`
(runs/record.py: the types, the forward-only State, migrate()). Within one attempt a state only
moves forward; `resume` opens a new attempt and keeps the previous ones. Never deleted, never
overwritten blind.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from mimic_deployment.host import paths, procs
from mimic_deployment.runs.record import SCHEMA, Attempt, RunRecord, State, migrate, now
from mimic_deployment.util.atomic import atomic_write_json, atomic_write_text
from mimic_deployment.util.errors import UserError
from mimic_deployment.util.suggest import close_matches

__all__ = ["SCHEMA", "Attempt", "RunRecord", "State", "now", "read", "require", "update", "create", "advance",
           "open_attempt", "list_names", "scan", "read_file", "read_all", "atomic_write_json"]

RECORD_FILE = "run.json"
MARKER_FILE = "marker"  # the run's process marker beside its record: a corrupt record's run can still be stopped
SECRET_WORDS = ("TOKEN", "KEY", "SECRET", "PASSWORD")


def runs_dir() -> Path:
    return paths.outputs_root() / "runs"


def record_dir(name: str) -> Path:
    return runs_dir() / name


def scrub_env(env: dict) -> dict:
    """Never store an HF or W&B token (or anything that looks like a secret)."""
    return {k: v for k, v in env.items() if not any(word in k.upper() for word in SECRET_WORDS)}


def _parse(file: Path | str) -> RunRecord:
    with open(file, "rb") as handle:
        return migrate(json.loads(handle.read()))


def read(name: str) -> RunRecord | None:
    file = record_dir(name) / RECORD_FILE
    try:
        return _parse(file)
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, ValueError, TypeError, KeyError, AttributeError) as exc:
        # cannot happen through atomic writes; say so if it does (a newer schema: UserError as is)
        raise UserError(f"{file}: corrupt record ({exc})") from None


def close_names(name: str) -> list[str]:
    return close_matches(name, list_names(), n=3)


def require(name: str) -> RunRecord:
    """The record of `name`, or the one "no run named X" error, with the closest recorded names."""
    record = read(name)
    if record is not None:
        return record
    close = close_names(name)
    raise UserError(f"no run named {name!r}",
                    hint="did you mean " + " or ".join(map(repr, close)) + "?" if close else "see `status --all`")


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


def read_file(file: str) -> RunRecord | None:
    """A record, or None when it is missing or unreadable (corrupt, or of a newer schema):
    scanning callers (status) skip it rather than fail for every run."""
    try:
        return _parse(file)
    except (OSError, ValueError, TypeError, KeyError, AttributeError, UserError):
        return None


def read_all(unreadable: list[tuple[str, str]] | None = None) -> list[RunRecord]:
    """Every readable record, by name. On the `status` path: plain os calls, no Path per record.
    With `unreadable`, each run whose record exists but cannot be read is appended as (name, why)."""
    try:
        with os.scandir(runs_dir()) as entries:
            files = sorted((entry.name, os.path.join(entry.path, RECORD_FILE)) for entry in entries
                           if not entry.name.startswith("."))
    except FileNotFoundError:
        return []
    records = []
    for name, file in files:
        record = read_file(file)
        if record is not None:
            records.append(record)
        elif unreadable is not None and (why := unreadable_reason(file)):
            unreadable.append((name, why))
    return records


def unreadable_reason(file: str) -> str | None:
    """Why the record at `file` cannot be read, or None when it is fine or absent."""
    try:
        _parse(file)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except UserError as exc:  # a newer schema
        return str(exc)
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        return f"corrupt record ({type(exc).__name__}: {exc})"
    return None


def marker_of(name: str) -> str | None:
    """The run's process marker from its marker file (readable even when run.json is not)."""
    try:
        marker = (record_dir(name) / MARKER_FILE).read_text().strip()
    except OSError:
        return None
    return marker or None


@contextlib.contextmanager
def locked(name: str) -> Iterator[None]:
    with open(record_dir(name) / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def create(record: RunRecord) -> None:
    """Claim the name: exactly one of two simultaneous launches gets it. A write that fails (disk
    full, name too long) removes what it made, so the name stays free, and is one UserError."""
    name = record.name
    folder = record_dir(name)
    try:
        runs_dir().mkdir(parents=True, exist_ok=True)
        os.mkdir(folder)
    except FileExistsError:
        raise UserError(f"run {name!r} already exists (launched at the same moment?)",
                        hint="see `status`, or pick another name with --tag") from None
    except OSError as exc:
        raise _write_error(folder, exc) from None
    record.created_at = record.updated_at = now()
    record.host = socket.gethostname()
    try:
        if record.marker:
            atomic_write_text(folder / MARKER_FILE, record.marker + "\n")
        atomic_write_json(folder / RECORD_FILE, record.to_json())
    except OSError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise _write_error(folder, exc) from None


def _write_error(folder: Path, exc: OSError) -> UserError:
    if exc.errno == errno.ENAMETOOLONG:
        return UserError(f"run name too long for this filesystem ({len(folder.name)} characters)",
                         hint="use a shorter --tag or group name")
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return UserError(f"no space left to write the run record under {folder.parent}",
                         hint="free disk space (old checkpoints lie under outputs/train/), then launch again")
    return UserError(f"cannot write the run record {folder / RECORD_FILE}: {exc.strerror or exc}",
                     hint="check the permissions of MIMIC_OUTPUTS")


def update(name: str, change: Callable[[RunRecord], object]) -> RunRecord:
    """Read-modify-write under the run's lock. `change` edits the record in place.

    Every end of a run goes through here (the supervisor's, `lost` judged by status, a stop
    that settles, a cancelled queue member): the change that moves the current attempt into an
    end starts the lab's notify hook, once, after the lock is released."""
    with locked(name):
        record = read(name)
        if record is None:
            raise UserError(f"no run named {name!r}")
        before = (len(record.attempts), record.state)
        change(record)
        record.updated_at = now()
        atomic_write_json(record_dir(name) / RECORD_FILE, record.to_json())
    if record.state.ended and (before[0] != len(record.attempts) or not before[1].ended):
        _announce_end(record)
    return record


NOTIFY_LOG = "notify.log"  # beside the record: the hook's output and outcome, appended


def _announce_end(record: RunRecord) -> None:
    """Start the notify hook of lab.yaml for this end, if it declares one for it: detached
    (runs/notify.py), so that neither a supervisor's exit, nor `status` judging `lost`, nor a
    stop waits for a chat server. Never raises: a notification must not break recording an end."""
    from mimic_deployment.config.lab import load_lab  # YAML: read only when a run ends, never by `status` alone

    log = record_dir(record.name) / NOTIFY_LOG
    try:
        hook = load_lab().notify
        if hook is None or record.state.value not in hook.on:
            return
        env = procs.child_env(None)
        env.pop(procs.MARKER_VAR, None)  # not the run's: a stop's marker sweep must not cut it short
        with open(log, "ab") as out:
            proc = subprocess.Popen([sys.executable, "-m", "mimic_deployment.runs.notify", record.name,
                                     record.state.value, str(len(record.attempts))],
                                    stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT, env=env,
                                    cwd=str(record_dir(record.name)), start_new_session=True, close_fds=True)
        try:
            assert proc.stdin is not None
            proc.stdin.write(json.dumps(record.to_json()).encode())
            proc.stdin.close()
        except OSError:
            pass  # it died at once: what it said is in notify.log
        if os.environ.get("SLURM_JOB_ID"):  # a job's end kills what it leaves: wait, bounded
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=hook.timeout + 10)
    except (OSError, UserError) as exc:  # lab.yaml broken since launch, a full disk: say so where it is read
        with contextlib.suppress(OSError), open(log, "a") as out:
            out.write(f"[mimic] {time.strftime('%Y-%m-%d %H:%M:%S')} notify not started for "
                      f"{record.state.value}: {exc}\n")


def advance(record: RunRecord, state: State, **fields: object) -> bool:
    """Move `record` forward to `state` (in place); a move TRANSITIONS refuse changes nothing."""
    return record.advance(state, **fields)


def open_attempt(record: RunRecord, kind: str, argv: list[str]) -> None:
    """A new attempt (resume, Slurm requeue): start again from queued."""
    record.open_attempt(kind, argv)
