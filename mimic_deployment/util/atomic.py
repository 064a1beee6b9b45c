"""Atomic files: a JSON file or a folder appears whole or not at all (temp + fsync + rename)."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def atomic_write_json(path: Path, data: Any, indent: int | None = 2) -> None:
    """Write `data` to `path` so that a reader never sees a torn file, even after a crash."""
    atomic_write_text(path, json.dumps(data, indent=indent, sort_keys=True) + "\n")


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` whole or not at all (temp + fsync + rename)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def fsync_folder(folder: Path) -> None:
    """Make a folder's entries (a rename into it, a file created in it) survive a crash; best effort."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def building_name(target: Path) -> Path:
    """Where this process builds `target`: `<target>.tmp-<pid>`, a name never taken for a finished one."""
    return target.with_name(f"{target.name}.tmp-{os.getpid()}")


def leftover_builds(target: Path) -> list[Path]:
    """Temp folders of builds of `target` that are still there (running, or interrupted by a kill)."""
    return sorted(target.parent.glob(f"{target.name}.tmp-*"))


@contextlib.contextmanager
def building_folder(target: Path, replace: bool = False) -> Iterator[Path]:
    """Yield `<target>.tmp-<pid>` to build into; on success it is renamed to `target` in one step.

    The folder is not created: builders such as LeRobot insist on creating their root themselves.
    An interrupted build leaves only the temp folder (never a `target` that looks complete); an
    exception removes it. With `replace`, an existing `target` is swapped out for the new one and
    deleted; without, `target` must not exist (renaming onto a folder fails)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = building_name(target)
    shutil.rmtree(tmp, ignore_errors=True)  # ours by name, so left by a dead process that had our pid
    try:
        yield tmp
        fsync_folder(tmp)
        if replace and target.exists():
            old = target.with_name(f"{target.name}.old-{os.getpid()}")
            os.rename(target, old)
            os.rename(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, target)
        fsync_folder(target.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
