"""Bounded reads of a file that may be several GB: its head and tail, and reading back from the end.

Nothing here parses; what to look for is passed in. Line breaks are ``\\n`` and ``\\r`` (tqdm
redraws with ``\\r``); every window returned starts at a line start.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

HEAD_BYTES = 64 * 1024
TAIL_BYTES = 256 * 1024
EXTEND_BYTES = 1024 * 1024
MAX_EXTENDS = 4


@dataclass(frozen=True)
class Window:
    head: bytes | None  # the first HEAD_BYTES up to their last line break; None when tail is the whole file
    tail: bytes
    tail_offset: int  # file offset of tail[0] (a line start)
    mtime: float
    path: str


def _first_break(data: bytes) -> int:
    """Index just past the first line break (``\\n`` or ``\\r``); len(data) when there is none."""
    cuts = [i for i in (data.find(b"\n"), data.find(b"\r")) if i >= 0]
    return min(cuts) + 1 if cuts else len(data)


def read_window(path: str, wanted: tuple[bytes, ...] = ()) -> Window | None:
    """The head and the tail of a file. When the tail holds none of ``wanted`` (a warning flood?),
    it is extended backwards up to MAX_EXTENDS x EXTEND_BYTES until it does. None if unreadable."""
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            size = st.st_size
            if size <= HEAD_BYTES + TAIL_BYTES:
                return Window(None, f.read(HEAD_BYTES + TAIL_BYTES), 0, st.st_mtime, path)
            head = f.read(HEAD_BYTES)
            start = size - TAIL_BYTES
            f.seek(start)
            tail = f.read(TAIL_BYTES)
            if wanted and not any(m in tail for m in wanted):
                chunks, s, found = [tail], start, False
                for _ in range(MAX_EXTENDS):
                    if s <= HEAD_BYTES:
                        break
                    new_s = max(HEAD_BYTES, s - EXTEND_BYTES)
                    f.seek(new_s)
                    chunks.insert(0, f.read(s - new_s))
                    s = new_s
                    if any(m in chunks[0] for m in wanted):
                        found = True
                        break
                if found or s <= HEAD_BYTES:
                    tail, start = b"".join(chunks), s
            if start <= HEAD_BYTES:  # the tail reached the head: the whole file is in hand
                return Window(None, head + tail, 0, st.st_mtime, path)
            cut = _first_break(tail)
            head = head[: max(head.rfind(b"\n"), head.rfind(b"\r")) + 1]  # no partial last line
            return Window(head, tail[cut:], start + cut, st.st_mtime, path)
    except OSError:
        return None


def read_backwards(path: str, end: int, max_bytes: int, chunk: int = EXTEND_BYTES) -> Iterator[bytes]:
    """The bytes before file offset ``end``, growing by ``chunk`` towards the start of the file
    (each yield is the whole buffer so far, ending at ``end``), at most ``max_bytes`` in all.
    Stops quietly on a read error."""
    buf = b""
    pos = end
    try:
        with open(path, "rb") as f:
            while pos > 0 and end - pos < max_bytes:
                n = min(chunk, pos, max_bytes - (end - pos))
                pos -= n
                f.seek(pos)
                buf = f.read(n) + buf
                yield buf
    except OSError:
        return


def tail_lines(path: str | os.PathLike[str], n: int, max_bytes: int = 4 * 1024 * 1024) -> list[str]:
    """The last ``n`` lines of a file, reading backwards in chunks (at most ``max_bytes``).

    Lines split on ``\\n``; within a line only the text after the last ``\\r`` is kept (what a
    terminal shows of a tqdm bar). Missing/unreadable file -> ``[]``.
    """
    if n <= 0:
        return []
    try:
        with open(path, "rb") as f:
            pos = os.fstat(f.fileno()).st_size
            chunks: list[bytes] = []
            newlines = got = 0
            while pos > 0 and newlines <= n and got < max_bytes:
                step = min(64 * 1024, pos, max_bytes - got)
                pos -= step
                f.seek(pos)
                data = f.read(step)
                chunks.insert(0, data)
                newlines += data.count(b"\n")
                got += len(data)
            data = b"".join(chunks)
    except OSError:
        return []
    if pos > 0 and b"\n" in data:
        data = data[data.find(b"\n") + 1 :]
    text = data.decode("utf-8", "replace")
    if text.endswith("\n"):
        text = text[:-1]
    if not text:
        return []
    return [line.rstrip("\r").rsplit("\r", 1)[-1] for line in text.split("\n")[-n:]]
