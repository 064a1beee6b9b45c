"""LeRobot's training-log format (lerobot 0.4.4 and 0.6.1): pure functions over its lines and text.

All of it goes to stderr:

- prefix ``INFO 2026-11-20 23:56:20 ot_train.py:435 `` (local time; path:line right-aligned to 15)
- start of an attempt: ``INFO ... ot_train.py:197 {'batch_size': ...`` (pformat of the config,
  with ``'log_freq': 200``), then ``cfg.steps=6 (6)`` (the first number is exact)
- every log_freq steps: ``step:4 smpl:8 ep:0 epch:0.13 loss:56.566 grdn:941.041 lr:1.0e-05
  updt_s:0.264 data_s:0.020``; step/smpl/ep go through ``format_big_number`` (precision 0:
  1500 -> ``2K``), so a rounded step is only known exactly by counting log_freq steps from an
  exact anchor (``counted_step``). 0.6 adds ``smp/s:6`` (samples/s), then ``mem_gb:1.23`` on CUDA
  (peak allocated), then the policy's own sub-losses (``l1_loss:0.846 kld_loss:7.561`` for ACT):
  MetricsTracker prints its meters in the order they were registered
- 0.6 with ``--dataset.eval_split`` and ``--eval_steps``: ``step 4: eval_loss=1.0441`` (exact step;
  the loss on the held-out episodes, for ACT its L1 part only)
- tqdm: ``Training:  50%|#####     | 3/6 [00:10<00:10,  0.30step/s]`` (``s/step`` when slower
  than 1 step/s; its total is ``cfg.steps - resume step``; disabled under Slurm)
- ``Checkpoint policy after step N`` / ``Eval policy at step N`` (exact), ``End of training``,
  ``Track this run --> <url>`` / wandb's ``View run <name> at: <url>``
- failures: CUDA out of memory, the last traceback's exception (any name, every line of its
  message), ``ERROR`` lines, pretrained weights that failed to load (the policy then trains from
  a random init)
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

_SUFFIXES = ("", "K", "M", "B", "T", "Q")
_UNIT = {s: 1000**i for i, s in enumerate(_SUFFIXES)}

END_OF_TRAINING = "End of training"
FAILURE_MAX_CHARS = 2000  # a note keeps a whole multi-line error (draccus), bounded
FAILURE_MAX_LINES = 20

# Patterns used on every status call: literal prefixes, so the scan is a fast C search.
STEP_RE = re.compile(r"step:(\d+[KMBTQ]?) smpl:\S+ ep:\S+ epch:")
CFG_STEPS_RE = re.compile(r"cfg\.steps=(\d+)")
DUMP_START_RE = re.compile(r"train\.py:\d+ \{'")
CKPT_RE = re.compile(r"Checkpoint policy after step (\d+)")
EVAL_RE = re.compile(r"Eval policy at step (\d+)")
EVAL_LOSS_RE = re.compile(r"step (\d+): eval_loss=([-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|nan|inf))")
EVAL_LOSS_HINT = "eval_loss="
MEM_GB_RE = re.compile(r" mem_gb:(\d+(?:\.\d+)?)")
ANCHOR_PREFIXES = (b"Checkpoint policy after step ", b"Eval policy at step ")
ANCHOR_BYTES_RE = re.compile(rb"(?:Checkpoint policy after step|Eval policy at step) (\d+)")
LOG_FREQ_RE = re.compile(r"'log_freq': (\d+)")
TS_RE = re.compile(r"(?:DEBUG|INFO|WARNING|ERROR|CRITICAL) (?:\[PID: \d+\] )?(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) ")
BAR_RE = re.compile(
    r"Training:[ \t]*\d+%\|[^|\n]*\|[ \t]*(\d+)/(\d+)[ \t]*\[[^<\]\n]*<[^,\]\n]*,[ \t]*"
    r"([\d.]+|\?)[ \t]*(step/s|s/step|it/s|s/it)"
)
_KV_RE = re.compile(r"(\w+(?:/\w+)?):(\S+)")  # `smp/s:6` too
# The step line's own fields; any other numeric field is a policy sub-loss (0.6).
STEP_FIELDS = frozenset(("step", "smpl", "ep", "epch", "loss", "grdn", "lr", "updt_s", "data_s", "smp/s", "mem_gb"))
_ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")

# Byte strings whose presence says a stretch of log holds step information.
PROGRESS_MARKERS = (b"smpl:", b"Training:", b"cfg.steps=", b"Checkpoint policy after step")

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
_compiled: dict[str, re.Pattern[str]] = {}


# ------------------------------------------------------------------------------ big numbers


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


def rounding_of(token: str) -> int:
    """How far a printed number may be from the true one: 0 when exact, else its unit (K: 1000)."""
    return _UNIT[token[-1]] if token and token[-1] in "KMBTQ" else 0


def counted_step(anchor: int, lines_after: int, log_freq: int) -> int:
    """The step of the ``lines_after``-th step line after an exact step ``anchor``: LeRobot logs a
    step line at every multiple of log_freq."""
    return (anchor // log_freq) * log_freq + lines_after * log_freq


# ------------------------------------------------------------------------------ text and lines


def decode(data: bytes) -> str:
    """Log bytes as lines: ANSI colours dropped, ``\\r`` (tqdm redraws) made a line break."""
    text = data.decode("utf-8", "replace")
    if "\x1b" in text:
        text = _ANSI_RE.sub("", text)
    return text.replace("\r\n", "\n").replace("\r", "\n")


def last_match(rx: re.Pattern[str], text: str, start: int = 0) -> re.Match[str] | None:
    """The last match at or after ``start``. What we look for is usually near the end, so the
    search starts with the last few KiB and widens (windows begin at a line start)."""
    window = 8192
    while True:
        lo = max(start, len(text) - window)
        if lo > start:
            lo = text.rfind("\n", start, lo) + 1 or start
        found = None
        for found in rx.finditer(text, lo):  # noqa: B007  (the loop keeps the last match)
            pass
        if found is not None or lo <= start:
            return found
        window *= 8


def _search_last(name: str, text: str, start: int = 0) -> re.Match[str] | None:
    """Last match of a lazily compiled pattern at or after ``start`` (None without a hint)."""
    if not any(h in text for h in _LAZY_HINTS[name]):
        return None
    rx = _compiled.get(name)
    if rx is None:
        rx = _compiled[name] = re.compile(*_LAZY[name])
    return last_match(rx, text, start)


def wandb_url(text: str) -> str | None:
    """The W&B link of the last ``Track this run`` / ``View run ... at:`` line."""
    m = _search_last("wandb", text)
    return m.group(1).rstrip(".,;)]") if m else None


def line_at(text: str, pos: int) -> str:
    start = text.rfind("\n", 0, pos) + 1
    end = text.find("\n", pos)
    return text[start : end if end >= 0 else len(text)].strip()


def parse_float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def step_fields(text: str, pos: int, end: int | None = None) -> dict[str, str]:
    """``{"step": "4", "loss": "56.566", "smp/s": "6", ...}`` of the step line starting at ``pos``."""
    if end is None:
        end = text.find("\n", pos)
    return dict(_KV_RE.findall(text, pos, end if end >= 0 else len(text)))


def sub_losses(fields: dict[str, str]) -> dict[str, float]:
    """The policy's own numbers in a step line (0.6: ``l1_loss``, ``kld_loss`` for ACT), by name."""
    out = {}
    for key, value in fields.items():
        if key not in STEP_FIELDS:
            number = parse_float(value)
            if number is not None:
                out[key] = number
    return out


def eval_losses(text: str, start: int = 0) -> list[tuple[int, int, float]]:
    """(offset, step, eval_loss) of every ``step N: eval_loss=X`` line after ``start`` (0.6)."""
    if EVAL_LOSS_HINT not in text:
        return []
    return [(m.start(), int(m.group(1)), float(m.group(2))) for m in EVAL_LOSS_RE.finditer(text, start)]


_epoch_cache: dict[str, float] = {}


def epoch(ts: str | None) -> float | None:
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


def time_of_line(text: str, pos: int) -> float | None:
    """Timestamp of the log prefix on the line holding ``pos``."""
    line_start = text.rfind("\n", 0, pos) + 1
    m = TS_RE.search(text, line_start, pos)
    return epoch(m.group(1)) if m else None


def config_dumps(text: str) -> list[int]:
    """Offsets of the config dumps (``...train.py:197 {'batch_size': ...``) in ``text``."""
    marks = []
    i = text.find(" {'")
    while i >= 0:
        m = DUMP_START_RE.search(text, max(0, i - 20), i + 3)
        if m:
            marks.append(m.start())
        i = text.find(" {'", i + 3)
    return marks


def last_bar(text: str, start: int, end: int | None = None) -> re.Match[str] | None:
    """The last tqdm bar between ``start`` and ``end``: groups n, total, rate, unit."""
    pos = len(text) if end is None else end
    for _ in range(64):
        pos = text.rfind("Training:", start, pos)
        if pos < 0:
            return None
        m = BAR_RE.match(text, pos)
        if m:
            return m
    return None


def bar_steps_per_sec(bar: re.Match[str]) -> float | None:
    rate, unit = bar.group(3), bar.group(4)
    if rate == "?" or float(rate) <= 0:
        return None
    return float(rate) if unit.endswith("/s") else 1.0 / float(rate)


# ------------------------------------------------------------------------------ failures

# Lines that are never part of an exception's message: the log's own lines, tqdm, the toolkit's.
_NOT_MESSAGE_RE = re.compile(
    r"(?:(?:DEBUG|INFO|WARNING|ERROR|CRITICAL) |Training:|\[mimic\]|wandb:|Traceback \(|During handling of|"
    r"The above exception|Exception ignored|\S+:\d+: \w*Warning\b)"
)
_RANK_RE = re.compile(r"\[rank\d+\]:[ \t]?")


def _message_line(line: str) -> str:
    """A traceback line without the ``[rankN]: `` prefix torchrun/accelerate put before it."""
    m = _RANK_RE.match(line)
    return line[m.end() :] if m else line


def exception_of(text: str, traceback_end: int) -> str:
    """The exception that ends the traceback whose header line ends at ``traceback_end``, whatever
    its name (``OfflineModeIsEnabled: ...``), with the lines of a multi-line message (draccus'
    ``DecodingError`` indents its causes under it): frames (indented) and interleaved log lines
    are skipped, the message ends at a blank line or a log line; FAILURE_MAX_LINES at most."""
    exc: list[str] = []
    last_frame = None
    for raw in text[traceback_end : traceback_end + 256 * 1024].split("\n")[1:]:
        line = _message_line(raw).rstrip()
        if not exc:
            if not line.strip() or _NOT_MESSAGE_RE.match(line):
                continue
            if line[0] in " \t":  # a frame: '  File "x", line 1', its code, '^^^' markers
                last_frame = line.strip()
                continue
            exc.append(line)
        elif not line.strip() or _NOT_MESSAGE_RE.match(line) or len(exc) >= FAILURE_MAX_LINES:
            break
        else:
            exc.append(line)
    if exc:
        return "\n".join(exc)
    return last_frame or "Traceback (no exception line)"


def failure(text: str, start: int, progressed_after: Callable[[int], bool]) -> str | None:
    """The failure after ``start`` as ``label: message`` (a message may hold several lines:
    FAILURE_MAX_LINES, FAILURE_MAX_CHARS in all). A crash-like line that ``progressed_after``
    says real progress followed was not fatal and is dropped."""

    def fmt(label: str, message: str) -> str:
        out = f"{label}: {message.strip()}"
        return out if len(out) <= FAILURE_MAX_CHARS else out[: FAILURE_MAX_CHARS - 3] + "..."

    oom = _search_last("oom", text, start)
    if oom and not progressed_after(oom.start()):
        return fmt("CUDA out of memory", line_at(text, oom.start()))
    tb = _search_last("traceback", text, start)
    if tb and not progressed_after(tb.start()):  # the last traceback's own exception, whatever its name
        message = exception_of(text, tb.end())
        label = "interrupted" if message.split(":", 1)[0].endswith("KeyboardInterrupt") else "crashed"
        return fmt(label, message)
    exc = _search_last("exc", text, start)  # an exception line without its traceback in the window
    if exc and not progressed_after(exc.start()):
        line = exc.group(1)
        label = "interrupted" if line.split(":", 1)[0].endswith("KeyboardInterrupt") else "crashed"
        return fmt(label, line)
    err = _search_last("error", text, start)
    if err and not progressed_after(err.start()):
        return fmt("error", err.group(0))
    weights = _search_last("weights", text, start)
    if weights:
        return fmt("pretrained weights not loaded (random init)", weights.group(0))
    return None


# ------------------------------------------------------------------------------ streaming


@dataclass
class StepCounter:
    """Exact steps of step lines read in order (a whole log, line by line): a rounded step is the
    previous exact one plus log_freq when that reproduces what was printed, else it stays rounded."""

    log_freq: int | None = None
    previous: int | None = None  # the last exact step seen (step line or checkpoint line)

    def feed(self, line: str) -> Iterator[tuple[int, dict[str, str]]]:
        """(step, fields) of each step line in ``line``; notes log_freq and exact anchors (a checkpoint
        line, an eval_loss line)."""
        if "'log_freq'" in line:
            m = LOG_FREQ_RE.search(line)
            if m:
                self.log_freq = int(m.group(1))
        if "Checkpoint policy" in line:
            for m in CKPT_RE.finditer(line):
                self.previous = int(m.group(1))
        if EVAL_LOSS_HINT in line:
            for m in EVAL_LOSS_RE.finditer(line):
                self.previous = int(m.group(1))
        if "smpl:" not in line:
            return
        found = list(STEP_RE.finditer(line))
        for i, m in enumerate(found):
            end = found[i + 1].start() if i + 1 < len(found) else len(line)
            token = m.group(1)
            value, approx = parse_big_number(token)
            if approx and self.previous is not None and self.log_freq:
                guess = counted_step(self.previous, 1, self.log_freq)
                if format_big_number(guess) == token:
                    value, approx = guess, False
            self.previous = None if approx else value
            yield value, step_fields(line, m.start(), end)
