"""Training progress from a LeRobot log's head and tail plus the newest checkpoint.

On the ``status`` fast path: stdlib only, and never reads a whole log. A log may be several GB
and hold several appended attempts. We read the first ``HEAD_BYTES`` (config dump,
``cfg.steps=``, the W&B link) and the last ``TAIL_BYTES``, split on ``\\n`` and ``\\r`` (tqdm
redraws with ``\\r``). Two bounded extra reads backwards, only when needed: up to
``MAX_EXTENDS`` x ``EXTEND_BYTES`` when the tail holds no step information at all (a warning
flood), and up to ``ANCHOR_SEARCH_BYTES`` (a ``find``/``count`` over bytes) for the last exact
``Checkpoint policy after step N`` line when the last step line is K/M-rounded.

Formats (lerobot 0.4.4, all on stderr):

- prefix ``INFO 2026-11-20 23:56:20 ot_train.py:435 `` (local time; path:line right-aligned to 15)
- start of an attempt: ``INFO ... ot_train.py:197 {'batch_size': ...`` (pformat of the config,
  with ``'log_freq': 200``), then ``cfg.steps=6 (6)`` (the first number is exact)
- every log_freq steps: ``step:4 smpl:8 ep:0 epch:0.13 loss:56.566 grdn:941.041 lr:1.0e-05
  updt_s:0.264 data_s:0.020``; step/smpl/ep go through ``format_big_number`` (precision 0:
  1500 -> ``2K``), so step lines at multiples of log_freq are counted from an exact anchor
- tqdm: ``Training:  50%|#####     | 3/6 [00:10<00:10,  0.30step/s]`` (``s/step`` when slower
  than 1 step/s; its total is ``cfg.steps - resume step``; disabled under Slurm)
- ``Checkpoint policy after step N`` (exact), ``End of training``,
  ``Track this run --> <url>`` / wandb's ``View run <name> at: <url>``

Attempts: a new one starts at the config dump, at a ``cfg.steps=`` line with no dump before it
in the window, and at a supervisor line ``[mimic] ...`` that announces a start (matches
``MIMIC_START_RE`` and not ``MIMIC_NOT_START_RE``, e.g. ``[mimic] attempt 2 starting: ...``).
Failure, ``finished`` and step lines only count after the last start; when the latest attempt
has not logged a step yet, the step is its resume point (the newest checkpoint).
"""

from __future__ import annotations

import bisect
import json
import os
import re
import time
from dataclasses import asdict, dataclass

HEAD_BYTES = 64 * 1024
TAIL_BYTES = 256 * 1024
EXTEND_BYTES = 1024 * 1024
MAX_EXTENDS = 4
ANCHOR_SEARCH_BYTES = 8 * 1024 * 1024
FAILURE_MAX_CHARS = 300

_SUFFIXES = ("", "K", "M", "B", "T", "Q")
_UNIT = {s: 1000**i for i, s in enumerate(_SUFFIXES)}

MIMIC_START_RE = re.compile(
    r"\b(?:start|started|starting|launch|launched|launching|resume|resumed|resuming|relaunch\w*)\b", re.I
)
MIMIC_NOT_START_RE = re.compile(r"\b(?:exit\w*|fail\w*|error\w*|kill\w*|stop\w*|gave up|giving up)\b", re.I)

# Patterns used on every call: literal prefixes, so the scan is a fast C search.
_STEP_RE = re.compile(r"step:(\d+[KMBTQ]?) smpl:\S+ ep:\S+ epch:")
_CFG_STEPS_RE = re.compile(r"cfg\.steps=(\d+)")
_DUMP_START_RE = re.compile(r"train\.py:\d+ \{'")
_CKPT_RE = re.compile(r"Checkpoint policy after step (\d+)")
_EVAL_RE = re.compile(r"Eval policy at step (\d+)")
_LOG_FREQ_RE = re.compile(r"'log_freq': (\d+)")
_TS_RE = re.compile(r"(?:DEBUG|INFO|WARNING|ERROR|CRITICAL) (?:\[PID: \d+\] )?(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) ")
_BAR_RE = re.compile(
    r"Training:[ \t]*\d+%\|[^|\n]*\|[ \t]*(\d+)/(\d+)[ \t]*\[[^<\]\n]*<[^,\]\n]*,[ \t]*"
    r"([\d.]+|\?)[ \t]*(step/s|s/step|it/s|s/it)"
)
_KV_RE = re.compile(r"(\w+):(\S+)")
_ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")

# Patterns only compiled/run when a cheap substring test says they may match.
_LAZY = {
    "wandb": (r"(?:Track this run -->|View run\b[^\n]*?\bat:?)[ \t]*(https?://[^\s'\"<>]+)", 0),
    "oom": (r"CUDA out of memory|OutOfMemoryError|CUDA error: out of memory", 0),
    "traceback": (r"^(?:\[rank\d+\]:[ \t]?)?Traceback \(most recent call last\):", re.M),
    "exc": (
        r"^(?:\[rank\d+\]:[ \t]?)?((?:[A-Za-z_]\w*\.)*[A-Za-z_]\w*(?:Error|Exception|Interrupt)\b(?::[^\n]*)?)$",
        re.M,
    ),
    "error": (r"^(?:(?:ERROR|CRITICAL) (?:\[PID: \d+\] )?\d{4}-\d\d-\d\d [^\n]*|[\w.-]+: error: [^\n]*)$", re.M),
    "weights": (r"Could not load state dict from remote files[^\n]*", 0),
}
_LAZY_HINTS = {
    "wandb": ("Track this run", "View run"),
    "oom": ("out of memory", "OutOfMemoryError"),
    "traceback": ("Traceback (most recent",),
    "exc": ("Error", "Exception", "Interrupt"),
    "error": ("ERROR ", "CRITICAL ", ": error: "),
    "weights": ("Could not load state dict",),
}

_EXTEND_MARKERS = (b"smpl:", b"Training:", b"cfg.steps=", b"Checkpoint policy after step")


@dataclass(frozen=True)
class Progress:
    step: int | None = None  # best estimate of the current step
    step_approx: bool = False  # True when only a K/M-rounded step line says where we are
    total_steps: int | None = None
    loss: float | None = None  # last logged
    lr: float | None = None  # last logged
    last_step_time: float | None = None  # epoch secs of the last step line / bar update
    steps_per_sec: float | None = None
    eta_seconds: float | None = None
    checkpoint_step: int | None = None  # newest checkpoint's training_step.json
    finished: bool = False  # "End of training" after the last start
    failure: str | None = None  # "<label>: <line>" for the latest attempt
    wandb_url: str | None = None
    started_count: int = 0  # `cfg.steps=` lines in what was read
    age_seconds: float | None = None  # now - last_step_time

    @property
    def fraction(self) -> float | None:
        if self.step is None or not self.total_steps:
            return None
        return min(1.0, max(0.0, self.step / self.total_steps))

    def to_dict(self) -> dict:
        return asdict(self)


def format_big_number(num: float, precision: int = 0) -> str:
    """lerobot.utils.utils.format_big_number (for numbers below 1e18)."""
    for suffix in _SUFFIXES:
        if abs(num) < 1000.0:
            return f"{num:.{precision}f}{suffix}"
        num /= 1000.0
    return str(num)


def parse_big_number(token: str) -> tuple[int, bool]:
    """``"2K"`` -> ``(2000, True)``; ``"999"`` -> ``(999, False)``. The bool says approximate."""
    suffix = token[-1] if token and token[-1] in "KMBTQ" else ""
    num = token[:-1] if suffix else token
    return int(float(num) * _UNIT[suffix]), bool(suffix)


_compiled: dict[str, re.Pattern] = {}


def _search_last(name: str, text: str, start: int = 0) -> re.Match | None:
    """Last match of a lazily compiled pattern at or after ``start`` (None without a hint)."""
    if not any(h in text for h in _LAZY_HINTS[name]):
        return None
    rx = _compiled.get(name)
    if rx is None:
        rx = _compiled[name] = re.compile(*_LAZY[name])
    return _last(rx, text, start)


def _last(rx: re.Pattern, text: str, start: int = 0) -> re.Match | None:
    """The last match at or after ``start``. What we look for is usually near the end, so the
    search starts with the last few KiB and widens (windows begin at a line start)."""
    window = 8192
    while True:
        lo = max(start, len(text) - window)
        if lo > start:
            lo = text.rfind("\n", start, lo) + 1 or start
        found = None
        for found in rx.finditer(text, lo):
            pass
        if found is not None or lo <= start:
            return found
        window *= 8


# ---------------------------------------------------------------------------------------- reading


def _decode(data: bytes) -> str:
    text = data.decode("utf-8", "replace")
    if "\x1b" in text:
        text = _ANSI_RE.sub("", text)
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _first_break(data: bytes) -> int:
    """Index just past the first line break (``\\n`` or ``\\r``); 0 when there is none."""
    cuts = [i for i in (data.find(b"\n"), data.find(b"\r")) if i >= 0]
    return min(cuts) + 1 if cuts else len(data)


@dataclass
class _Parts:
    head: str | None  # None when ``text`` starts at the top of the file
    text: str
    text_offset: int  # file offset of text[0] (a line start)
    mtime: float
    path: str


def _read_parts(path: str) -> _Parts | None:
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            size = st.st_size
            if size <= HEAD_BYTES + TAIL_BYTES:
                return _Parts(None, _decode(f.read(HEAD_BYTES + TAIL_BYTES)), 0, st.st_mtime, path)
            head = f.read(HEAD_BYTES)
            start = size - TAIL_BYTES
            f.seek(start)
            tail = f.read(TAIL_BYTES)
            if not any(m in tail for m in _EXTEND_MARKERS):
                # Nothing to go on (a warning flood?): look further back, a bounded number of times.
                chunks, s, found = [tail], start, False
                for _ in range(MAX_EXTENDS):
                    if s <= HEAD_BYTES:
                        break
                    new_s = max(HEAD_BYTES, s - EXTEND_BYTES)
                    f.seek(new_s)
                    chunks.insert(0, f.read(s - new_s))
                    s = new_s
                    if any(m in chunks[0] for m in _EXTEND_MARKERS):
                        found = True
                        break
                if found or s <= HEAD_BYTES:
                    tail, start = b"".join(chunks), s
            if start <= HEAD_BYTES:  # the tail reached the head: the whole file is in hand
                return _Parts(None, _decode(head + tail), 0, st.st_mtime, path)
            cut = _first_break(tail)
            head = head[: max(head.rfind(b"\n"), head.rfind(b"\r")) + 1]  # no partial last line
            return _Parts(_decode(head), _decode(tail[cut:]), start + cut, st.st_mtime, path)
    except OSError:
        return None


def _count_since_anchor(path: str, end: int) -> tuple[int, int] | None:
    """Search backwards from file offset ``end`` (at most ANCHOR_SEARCH_BYTES) for the last
    ``Checkpoint policy after step N`` / ``Eval policy at step N`` line; return (N, number of
    step lines between it and ``end``). None if not found or an attempt starts in between."""
    markers = (b"Checkpoint policy after step ", b"Eval policy at step ")
    buf = b""
    pos = end
    try:
        with open(path, "rb") as f:
            while pos > 0 and end - pos < ANCHOR_SEARCH_BYTES:
                n = min(EXTEND_BYTES, pos, ANCHOR_SEARCH_BYTES - (end - pos))
                pos -= n
                f.seek(pos)
                buf = f.read(n) + buf
                hit = max(buf.rfind(m) for m in markers)
                start_mark = buf.rfind(b"cfg.steps=")
                if start_mark > hit:
                    return None  # an attempt started after the anchor: it does not apply
                if hit >= 0:
                    m = re.match(rb"(?:Checkpoint policy after step|Eval policy at step) (\d+)", buf[hit:])
                    if not m:
                        return None
                    return int(m.group(1)), buf.count(b" smpl:", hit)
    except OSError:
        return None
    return None


def tail_lines(path: str | os.PathLike, n: int, max_bytes: int = 4 * 1024 * 1024) -> list[str]:
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
                chunk = f.read(step)
                chunks.insert(0, chunk)
                newlines += chunk.count(b"\n")
                got += len(chunk)
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


# ---------------------------------------------------------------------------------------- parsing

_epoch_cache: dict[str, float] = {}


def _epoch(ts: str | None) -> float | None:
    """'2026-11-20 23:56:20' (local time) -> epoch seconds."""
    if not ts:
        return None
    out = _epoch_cache.get(ts)
    if out is None:
        try:
            out = time.mktime(
                (int(ts[0:4]), int(ts[5:7]), int(ts[8:10]), int(ts[11:13]), int(ts[14:16]), int(ts[17:19]), 0, 0, -1)
            )
        except (ValueError, OverflowError):
            return None
        if len(_epoch_cache) > 4096:
            _epoch_cache.clear()
        _epoch_cache[ts] = out
    return out


def _ts_before(text: str, pos: int) -> float | None:
    """Timestamp of the INFO prefix on the line holding ``pos``."""
    line_start = text.rfind("\n", 0, pos) + 1
    m = _TS_RE.search(text, line_start, pos)
    return _epoch(m.group(1)) if m else None


def _line_at(text: str, pos: int) -> str:
    start = text.rfind("\n", 0, pos) + 1
    end = text.find("\n", pos)
    return text[start : end if end >= 0 else len(text)].strip()


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _attempt_start(text: str) -> int | None:
    """Offset in ``text`` where the latest attempt starts; None if no start is in the window."""
    marks = []
    i = text.find(" {'")
    while i >= 0:
        m = _DUMP_START_RE.search(text, max(0, i - 20), i + 3)
        if m:
            marks.append(m.start())
        i = text.find(" {'", i + 3)
    i = text.find("[mimic]")
    while i >= 0:
        if i == 0 or text[i - 1] == "\n":
            line = _line_at(text, i)
            if MIMIC_START_RE.search(line) and not MIMIC_NOT_START_RE.search(line):
                marks.append(i)
        i = text.find("[mimic]", i + 7)
    marks.sort()
    latest = marks[-1] if marks else None
    prev = -1
    for m in _CFG_STEPS_RE.finditer(text):
        c = m.start()
        if not any(prev < b <= c for b in marks) and (latest is None or c > latest):
            latest = c  # a start whose config dump is not in the window
        prev = c
    return latest


def _last_bar(text: str, start: int, end: int | None = None) -> re.Match | None:
    pos = len(text) if end is None else end
    for _ in range(64):
        pos = text.rfind("Training:", start, pos)
        if pos < 0:
            return None
        m = _BAR_RE.match(text, pos)
        if m:
            return m
    return None


def read_checkpoint_step(output_dir: str | os.PathLike | None) -> int | None:
    """Step of the newest checkpoint: ``checkpoints/last`` (else the highest-numbered one)."""
    if output_dir is None:
        return None
    ckdir = os.path.join(os.fspath(output_dir), "checkpoints")

    def step_of(d: str) -> int | None:
        try:
            with open(os.path.join(d, "training_state", "training_step.json"), encoding="utf-8") as f:
                return int(json.load(f)["step"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    step = step_of(os.path.join(ckdir, "last"))
    if step is not None:
        return step
    try:
        numbered = sorted((n for n in os.listdir(ckdir) if n.isdigit()), key=int, reverse=True)
    except OSError:
        return None
    for name in numbered[:2]:  # the newest, or the one before while the newest is being written
        step = step_of(os.path.join(ckdir, name))
        if step is not None:
            return step
    return None


def _failure(text: str, start: int, steps: "_StepLines") -> str | None:
    """The latest attempt's failure as ``label: line``. A crash-like line followed by real
    progress (a higher step line, or a tqdm bar still advancing: tqdm redraws once when it is
    closed after a crash) was not fatal and is dropped."""

    def progressed_after(pos: int) -> bool:
        if steps.progressed_after(pos):
            return True
        last = _last_bar(text, pos)
        prev = _last_bar(text, pos, last.start()) if last else None
        return bool(last and prev and int(last.group(1)) > int(prev.group(1)))

    def fmt(label: str, line: str) -> str:
        out = f"{label}: {line.strip()}"
        return out if len(out) <= FAILURE_MAX_CHARS else out[: FAILURE_MAX_CHARS - 3] + "..."

    oom = _search_last("oom", text, start)
    if oom and not progressed_after(oom.start()):
        return fmt("CUDA out of memory", _line_at(text, oom.start()))
    exc = _search_last("exc", text, start)
    if exc and not progressed_after(exc.start()):
        line = exc.group(1)
        label = "interrupted" if line.split(":", 1)[0].endswith("KeyboardInterrupt") else "crashed"
        return fmt(label, line)
    tb = _search_last("traceback", text, start)
    if tb and not exc and not progressed_after(tb.start()):
        rest = [ln for ln in text[tb.end() :].split("\n") if ln.strip() and not ln.startswith(("Training:", "INFO "))]
        return fmt("crashed", rest[-1] if rest else "Traceback (no exception line)")
    err = _search_last("error", text, start)
    if err and not progressed_after(err.start()):
        return fmt("error", err.group(0))
    weights = _search_last("weights", text, start)
    if weights:
        return fmt("pretrained weights not loaded (random init)", weights.group(0))
    return None


class _StepLines:
    """The latest attempt's step lines, evaluated lazily (a tail holds thousands)."""

    def __init__(self, text: str, start: int):
        self.text = text
        found = list(_STEP_RE.finditer(text, start))
        self.pos: list[int] = [m.start() for m in found]
        self.tok: list[str] = [m.group(1) for m in found]
        self.recon_from: int | None = None  # lines from this index on are reconstructed
        self.recon_base = 0  # exact value of line i >= recon_from: recon_base + i * log_freq
        self.log_freq: int | None = None

    def __len__(self) -> int:
        return len(self.pos)

    def printed(self, i: int) -> tuple[int, bool]:
        return parse_big_number(self.tok[i])

    def exact(self, i: int) -> int | None:
        value, approx = parse_big_number(self.tok[i])
        if not approx:
            return value
        if self.recon_from is not None and i >= self.recon_from:
            return self.recon_base + i * self.log_freq
        return None

    def best(self, i: int) -> int:
        e = self.exact(i)
        return e if e is not None else self.printed(i)[0]

    def exact_lines(self) -> list[tuple[int, int]]:
        return [(p, int(t)) for p, t in zip(self.pos, self.tok) if t[-1] not in "KMBTQ"]

    def reconstruct(self, anchor_pos: int, anchor_val: int, log_freq: int, k0: int = 0) -> None:
        """Step lines after an exact anchor sit at the next multiples of log_freq; accept that
        when it reproduces what was printed for the first and the last of them."""
        first = bisect.bisect_right(self.pos, anchor_pos)
        if first >= len(self.pos):
            return
        base = (anchor_val // log_freq) * log_freq + (k0 + 1 - first) * log_freq
        for i in {first, len(self.pos) - 1}:
            if format_big_number(base + i * log_freq) != self.tok[i]:
                return
        self.recon_from, self.recon_base, self.log_freq = first, base, log_freq

    def ts(self, i: int) -> float | None:
        return _ts_before(self.text, self.pos[i])

    def progressed_after(self, pos: int) -> bool:
        j = bisect.bisect_left(self.pos, pos)
        if j >= len(self.pos):
            return False
        return j == 0 or self.best(len(self.pos) - 1) > self.best(j - 1)


def _rate(lines: _StepLines, log_freq: int | None) -> float | None:
    """Steps/s over the recent step lines (the last >= 30 s of them when there are). With
    log_freq the span is exact (one line per log_freq steps); without, the values must be exact
    or span at least 20x their rounding."""
    n = len(lines)
    if n < 2:
        return None
    t1 = lines.ts(n - 1)
    if t1 is None:
        return None
    first = None
    i = n - 2
    while i >= 0 and n - i <= 5000:
        t0 = lines.ts(i)
        if t0 is not None:
            first = (i, t0)
            if t1 - t0 >= 30:
                break
        i -= 1
    if first is None or first[1] >= t1:
        return None
    i, t0 = first
    if log_freq:
        return (n - 1 - i) * log_freq / (t1 - t0)
    err = 0
    values = []
    for j in (i, n - 1):
        e = lines.exact(j)
        if e is None:
            e, _ = lines.printed(j)
            err = max(err, _UNIT[lines.tok[j][-1]])
        values.append(e)
    if values[1] > values[0] and values[1] - values[0] >= 20 * err:
        return (values[1] - values[0]) / (t1 - t0)
    return None


def read_progress(
    log_path: str | os.PathLike | None,
    output_dir: str | os.PathLike | None = None,
    total_steps_hint: int | None = None,
    now: float | None = None,
) -> Progress:
    """Progress of a run from its log (head + tail only) and newest checkpoint. Never raises
    for a missing/empty/garbled log: unknown fields are None."""
    checkpoint_step = read_checkpoint_step(output_dir)
    parts = _read_parts(os.fspath(log_path)) if log_path is not None else None
    if parts is None:
        return Progress(step=checkpoint_step, total_steps=total_steps_hint, checkpoint_step=checkpoint_step)
    head, text = parts.head, parts.text
    now = time.time() if now is None else now

    # ---- totals, counts, W&B, log_freq (tail first, then head)
    started = len(_CFG_STEPS_RE.findall(text)) + (len(_CFG_STEPS_RE.findall(head)) if head else 0)
    m = _last(_CFG_STEPS_RE, text)
    head_total = _last(_CFG_STEPS_RE, head) if head else None
    if m:
        total = int(m.group(1))
    elif total_steps_hint is not None:
        total = int(total_steps_hint)
    else:
        total = int(head_total.group(1)) if head_total else None
    m = _search_last("wandb", text) or (_search_last("wandb", head) if head else None)
    wandb_url = m.group(1).rstrip(".,;)]") if m else None
    m = _last(_LOG_FREQ_RE, text) or (_last(_LOG_FREQ_RE, head) if head else None)
    log_freq = int(m.group(1)) if m and int(m.group(1)) > 0 else None

    # ---- the latest attempt
    attempt = _attempt_start(text)
    start = attempt or 0
    m = _last(_CFG_STEPS_RE, text, start)
    attempt_total = int(m.group(1)) if m else total

    lines = _StepLines(text, start)
    anchors = [(a.start(), int(a.group(1))) for rx in (_CKPT_RE, _EVAL_RE) for a in rx.finditer(text, start)]
    exact_lines = lines.exact_lines()
    anchors = sorted(anchors + exact_lines)
    if log_freq is None:
        diffs = [b - a for (_, a), (_, b) in zip(exact_lines, exact_lines[1:]) if b > a]
        log_freq = min(diffs) if diffs else None

    # Exact values of rounded step lines: counted in log_freq steps from the last exact anchor
    # (a checkpoint/eval line, an unrounded step line, or the attempt's resume point), and
    # checked against what was printed.
    n = len(lines)
    last_approx = n > 0 and lines.printed(n - 1)[1]
    if last_approx and log_freq:
        if anchors:
            lines.reconstruct(anchors[-1][0], anchors[-1][1], log_freq)
        elif attempt is not None:
            lines.reconstruct(start, checkpoint_step or 0, log_freq)
        elif head is not None:
            found = _count_since_anchor(parts.path, parts.text_offset)
            if found:
                lines.reconstruct(-1, found[0], log_freq, k0=found[1])

    bar = _last_bar(text, start)
    bar_step = None
    if bar:
        bn, bar_total = int(bar.group(1)), int(bar.group(2))
        offset = attempt_total - bar_total if attempt_total is not None and attempt_total >= bar_total else 0
        bar_step = offset + bn
        if total is None:
            total = bar_total

    # ---- the step: bar > exact step line / later anchor > rounded line (bounded by exact ones)
    step: int | None = None
    step_approx = False
    exact_lb = max([v for _, v in anchors] + ([checkpoint_step] if checkpoint_step is not None else []), default=None)
    if bar_step is not None:
        step = max(bar_step, (lines.exact(n - 1) or 0) if n else 0)
    elif n:
        lp, token = lines.pos[n - 1], lines.tok[n - 1]
        lv = lines.printed(n - 1)[0]
        later = max((v for p, v in anchors if p > lp), default=None)
        if lines.exact(n - 1) is not None:
            step = lines.exact(n - 1)
        elif later is not None:
            step = later
        elif exact_lb is not None and (exact_lb > lv or format_big_number(exact_lb) == token):
            # the exact lower bound is consistent with (or past) the rounded line: it is closer
            step, step_approx = exact_lb, format_big_number(exact_lb) == token
        else:
            step, step_approx = lv, True
        if later is not None:
            step = max(step, later)
    elif anchors:
        step = max(v for _, v in anchors)
    if checkpoint_step is not None and (step is None or checkpoint_step > step):
        step, step_approx = checkpoint_step, False

    # ---- loss / lr / timing
    loss = lr = last_step_time = sps = None
    if n:
        lp = lines.pos[n - 1]
        line_end = text.find("\n", lp)
        kv = dict(_KV_RE.findall(text, lp, line_end if line_end >= 0 else len(text)))
        loss, lr = _float(kv.get("loss")), _float(kv.get("lr"))
        last_step_time = lines.ts(n - 1)
        sps = _rate(lines, log_freq)
        if sps is None:
            per_step = (_float(kv.get("updt_s")) or 0.0) + (_float(kv.get("data_s")) or 0.0)
            if per_step > 0:
                sps = 1.0 / per_step
    if bar is not None:
        rate, unit = bar.group(3), bar.group(4)
        if rate != "?" and float(rate) > 0:
            sps = float(rate) if unit.endswith("/s") else 1.0 / float(rate)
        if not n or bar.start() > lines.pos[n - 1]:
            last_step_time = parts.mtime  # the bar redraws continuously: mtime is its last update

    eta = None
    if total is not None and step is not None and sps:
        eta = max(0, total - step) / sps

    # ---- finished / failure (latest attempt only)
    finished = text.find("End of training", start) >= 0
    failure = _failure(text, start, lines)

    return Progress(
        step=step,
        step_approx=step_approx,
        total_steps=total,
        loss=loss,
        lr=lr,
        last_step_time=last_step_time,
        steps_per_sec=sps,
        eta_seconds=eta,
        checkpoint_step=checkpoint_step,
        finished=finished,
        failure=failure,
        wandb_url=wandb_url,
        started_count=started,
        age_seconds=(now - last_step_time) if last_step_time is not None else None,
    )
