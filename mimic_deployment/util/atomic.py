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
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=indent, sort_keys=True)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def building_folder(target: Path, prefix: str = ".building-") -> Iterator[Path]:
    """Yield a temp folder beside `target`; on success it is renamed to `target` in one step.

    An interrupted build leaves only the temp folder (never a `target` that looks complete).
    The caller must make sure `target` does not exist yet (renaming onto a folder fails)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{prefix}{target.name}-", dir=target.parent))
    try:
        yield tmp
        os.rename(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
