"""The supervisor's attempt-start marker in a run's log: how it is written and how it is found.

The marker is one line, ``[mimic] ==> v1 attempt 2 start 1800000000`` (``restart 1`` instead of
``attempt 2`` when the supervisor restarts the trainer from the last checkpoint). The prefix
``[mimic] ==> v`` is kept for every future version, so a reader takes any such line as a start.

Logs of runs launched before the marker existed hold today's older start lines instead
(``[mimic] <time> === NAME: attempt 2 (resume) starting, supervisor pid 123 ===`` and
``[mimic] <time> restart 1 of 3 starting: resuming from the last checkpoint``). They count only
before the first marker of the text read, where no supervisor writing markers has been yet; a
line that merely contains "starting" (``not starting: the run is finished``) is never a start.
"""

from __future__ import annotations

import re
import time

MARKER_VERSION = 1
MARKER_PREFIX = "[mimic] ==> v"

_LEGACY_START_RE = re.compile(
    r"\[mimic\] (?:\d{4}-\d\d-\d\d \d\d:\d\d:\d\d )?(?:=== [^\n]*?)?"
    r"(?:attempt \d+|restart \d+ of \d+)\b[^\n]*?\bstarting\b"
)


def attempt_start_line(attempt: int, at: float | None = None) -> str:
    """The marker line (with its newline) that starts attempt number ``attempt``."""
    return _marker(f"attempt {attempt}", at)


def restart_start_line(restart: int, at: float | None = None) -> str:
    """The marker line (with its newline) that starts the supervisor's restart number ``restart``."""
    return _marker(f"restart {restart}", at)


def _marker(what: str, at: float | None) -> str:
    return f"{MARKER_PREFIX}{MARKER_VERSION} {what} start {int(time.time() if at is None else at)}\n"


def _line_starts(text: str, prefix: str, end: int) -> list[int]:
    """Offsets of the lines of ``text[:end]`` that begin with ``prefix`` (a fast C search)."""
    out = []
    i = text.find(prefix, 0, end)
    while i >= 0:
        if i == 0 or text[i - 1] == "\n":
            out.append(i)
        i = text.find(prefix, i + len(prefix), end)
    return out


def attempt_starts(text: str) -> list[int]:
    """Offsets in ``text`` of the lines that start an attempt, in order."""
    markers = _line_starts(text, MARKER_PREFIX, len(text))
    legacy_end = markers[0] if markers else len(text)
    legacy = [i for i in _line_starts(text, "[mimic] ", legacy_end) if _LEGACY_START_RE.match(text, i)]
    return legacy + markers
