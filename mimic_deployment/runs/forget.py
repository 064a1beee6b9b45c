"""Forgetting a run: its record, checkpoints and log move aside (never deleted without purge), so its name is free.

Everything goes to outputs/runs/.forgotten/<name>-<UTC stamp>/: `run/` (the record folder: run.json,
the sbatch script, the dataset link), `train/` (LeRobot's output folder, the checkpoints) and the
log. With purge the checkpoints and the log are deleted instead; the record is always kept there,
so what was forgotten can still be read. A live run (queued or running) is refused.
"""
from __future__ import annotations

import errno
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from mimic_deployment.host import paths, procs
from mimic_deployment.runs import registry, tracking
from mimic_deployment.util.errors import UserError

FORGOTTEN = ".forgotten"  # a dot folder: never listed as a run (registry skips dot names)


@dataclass
class Forgotten:
    name: str
    state: str  # as it ended ("corrupt" for a record that could not be read)
    folder: Path  # where it went
    moved: list[tuple[str, str, str]] = field(default_factory=list)  # (what, from, to)
    deleted: list[tuple[str, str]] = field(default_factory=list)  # (what, path), with purge


def _stamped_folder(name: str) -> Path:
    root = registry.runs_dir() / FORGOTTEN
    root.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    for n in range(1, 1000):
        folder = root / (f"{name}-{stamp}" if n == 1 else f"{name}-{stamp}-{n}")
        try:
            os.mkdir(folder)  # atomic: two forgets in one second get two folders
            return folder
        except FileExistsError:
            continue
    raise UserError(f"too many forgotten copies of {name!r} in {root}")


def _move(src: Path, dst: Path) -> None:
    try:
        os.rename(src, dst)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        shutil.move(str(src), str(dst))  # another filesystem: copy, then remove the original


def _locations(name: str) -> tuple[str, Path, Path]:
    """(state, output folder, log) of the run; refuses a live run, or one whose record cannot be
    read while processes carrying its marker still run."""
    file = registry.record_dir(name) / registry.RECORD_FILE
    why = registry.unreadable_reason(str(file))
    if why is None:
        record = registry.require(name)  # unknown names: the one close-match error
        if not record.state.ended:
            raise UserError(f"run {name!r} is {record.state.value}", hint=f"stop it first: stop {name}")
        return record.state.value, Path(record.plan["output_dir"]), Path(record.plan["log_file"])
    if not why.startswith("corrupt record"):  # a newer schema: this toolkit must not judge it
        raise UserError(why, hint="update the toolkit (git pull) to forget it")
    marker = registry.marker_of(name)
    if marker and procs.marked_processes(marker):
        raise UserError(f"run {name!r} has an unreadable record but its processes still run",
                        hint=f"stop it first: stop {name}")
    root = paths.outputs_root()  # the plan is unreadable: the default locations of the name
    return "corrupt", root / "train" / name, root / "logs" / f"{name}.log"


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def forget(name: str, purge: bool = False) -> Forgotten:
    """Move the run aside (see the module's docstring); the name is free afterwards."""
    source = registry.record_dir(name)
    if not name or name.startswith(".") or "/" in name:
        raise UserError(f"{name!r} is not a run name", hint="see `status --all`")
    if not (source / registry.RECORD_FILE).exists():
        registry.require(name)  # the one "no run named X" error, with the closest names
    if registry.unreadable_reason(str(source / registry.RECORD_FILE)) is None:
        tracking.refresh(registry.require(name))  # a run whose owner is gone is judged (lost) first
    with registry.locked(name):  # judged again under the lock: a resume cannot reopen it meanwhile
        state, output_dir, log = _locations(name)
        folder = _stamped_folder(name)
        done = Forgotten(name, state, folder)
        for what, path, dst in (("checkpoints", output_dir, folder / "train"), ("log", log, folder / log.name)):
            if not path.exists() and not path.is_symlink():
                continue
            if purge:
                _remove(path)
                done.deleted.append((what, str(path)))
            else:
                _move(path, dst)
                done.moved.append((what, str(path), str(dst)))
        _move(source, folder / "run")  # last: until here the record holds the name
        done.moved.append(("record", str(source), str(folder / "run")))
    return done
