"""Training progress from a LeRobot log's head and tail plus the newest checkpoint.

On the ``status`` fast path: stdlib only, and never reads a whole log. A log may be several GB
and hold several appended attempts; we read the first ``HEAD_BYTES`` (cfg dump, ``cfg.steps=``,
the W&B link) and the last ``TAIL_BYTES`` (extended backwards a bounded number of times only when
they hold no step information at all), split on ``\\n`` and ``\\r`` (tqdm redraws with ``\\r``).

Formats (lerobot 0.4.4, all on stderr):

- prefix ``INFO 2026-11-20 23:56:20 ot_train.py:435 `` (local time; path:line right-aligned to 15)
- start of an attempt: ``INFO ... ot_train.py:197 {'batch_size': ...`` (pformat of the config,
  with ``'log_freq': 200``), then ``cfg.steps=6 (6)`` (first number exact)
- ``step:4 smpl:8 ep:0 epch:0.13 loss:56.566 grdn:941.041 lr:1.0e-05 updt_s:0.264 data_s:0.020``;
  step/smpl/ep go through ``format_big_number`` (precision 0: 1500 -> ``2K``)
- tqdm: ``Training:  50%|#####     | 3/6 [00:10<00:10,  0.30step/s]`` (``s/step`` when slower
  than 1 step/s; total is ``cfg.steps - resume step``; disabled under Slurm)
- ``Checkpoint policy after step N`` (exact), ``End of training``,
  ``Track this run --> <url>`` / wandb's ``View run <name> at: <url>``

Attempt boundaries: the config dump, a ``cfg.steps=`` line with no dump before it in the window,
and supervisor header lines ``[mimic] ...`` that announce a start (``start``/``starting``/
``launch``/``resume``..., see ``MIMIC_START_RE``). Failure and ``finished`` only count after the
last boundary; step information too (falling back to the checkpoint when the latest attempt has
not logged a step yet).
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import asdict, dataclass

HEAD_BYTES = 64 * 1024
TAIL_BYTES = 256 * 1024
EXTEND_BYTES = 1024 * 1024
MAX_EXTENDS = 4
FAILURE_MAX_CHARS = 300

_SUFFIXES = ("", "K", "M", "B", "T", "Q")
_UNIT = {s: 1000**i for i, s in enumerate(_SUFFIXES)}

_ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")
_TS = r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)"
# The timestamp (optional) is on the same line as the step: "... 23:56:20 ot_train.py:435 step:4 ..."
_STEP_RE = re.compile(
    r"(?:" + _TS + r" +\S+ +)?step:(\d+)([KMBTQ]?) smpl:\S+ ep:\S+ epch:[^\n]*"
)
_KV_RE = re.compile(r"(\w+):(\S+)")
_BAR_RE = re.compile(
    r"Training:[ \t]*\d+%\|[^|\n]*\|[ \t]*(\d+)/(\d+)[ \t]*\[[^<\]\n]*<[^,\]\n]*,[ \t]*"
    r"([\d.]+|\?)[ \t]*(step/s|s/step|it/s|s/it)"
)
_CFG_STEPS_RE = re.compile(r"cfg\.steps=(\d+)")
_DUMP_START_RE = re.compile(r"\.py:\d+ \{'")
_MIMIC_RE = re.compile(r"^\[mimic\][^\n]*", re.M)
MIMIC_START_RE = re.compile(
    r"\b(?:start|started|starting|launch|launched|launching|resume|resumed|resuming|relaunch\w*)\b",
    re.I,
)
_MIMIC_NOT_START_RE = re.compile(r"\b(?:exit\w*|fail\w*|error\w*|kill\w*|stop\w*|gave up|giving up)\b", re.I)
_END_RE = re.compile(r"End of training")
_CKPT_LINE_RE = re.compile(r"(?:Checkpoint policy after step|Eval policy at step) (\d+)")
_LOG_FREQ_RE = re.compile(r"'log_freq': (\d+)")
_WANDB_RE = re.compile(r"(?:Track this run -->|View run\b[^\n]*?\bat:?)[ \t]*(https?://[^\s'\"<>]+)")
_OOM_RE = re.compile(r"CUDA out of memory|OutOfMemoryError|CUDA error: out of memory")
_TRACEBACK_RE = re.compile(r"^(?:\[rank\d+\]:[ \t]?)?Traceback \(most recent call last\):", re.M)
_EXC_RE = re.compile(
    r"^(?:\[rank\d+\]:[ \t]?)?((?:[A-Za-z_]\w*\.)*[A-Za-z_]\w*(?:Error|Exception|Interrupt)\b(?::[^\n]*)?)$",
    re.M,
)
_ERROR_LINE_RE = re.compile(
    r"^(?:(?:ERROR|CRITICAL) (?:\[PID: \d+\] )?\d{4}-\d\d-\d\d [^\n]*|[\w.-]+: error: [^\n]*)$", re.M
)
_WEIGHTS_RE = re.compile(r"Could not load state dict from remote files[^\n]*")

_STEP_MARKERS = (b"smpl:", b"Training:", b"cfg.steps=", b"Checkpoint policy after step")


@dataclass(frozen=True)
class Progress:
    step: int | None = None  # best estimate of the current step
    step_approx: bool = False  # True when step comes from a K/M-rounded step line
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
    """lerobot.utils.utils.format_big_number, for the numbers it is given (ints below 1e18)."""
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


# ---------------------------------------------------------------------------------------- reading


def _decode(data: bytes) -> str:
    text = data.decode("utf-8", "replace")
    if "\x1b" in text:
        text = _ANSI_RE.sub("", text)
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _drop_partial_first_line(data: bytes) -> bytes:
    cut = min((i for i in (data.find(b"\n"), data.find(b"\r")) if i >= 0), default=-1)
    return data[cut + 1 :] if cut >= 0 else b""


def _read_parts(path: str) -> tuple[str | None, str, float] | None:
    """(head text or None when the tail covers the file, tail text, mtime); None if unreadable."""
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            size = st.st_size
            if size <= HEAD_BYTES + TAIL_BYTES:
                return None, _decode(f.read(HEAD_BYTES + TAIL_BYTES)), st.st_mtime
            head = f.read(HEAD_BYTES)
            start = size - TAIL_BYTES
            f.seek(start)
            tail = f.read(TAIL_BYTES)
            if not any(m in tail for m in _STEP_MARKERS):
                # Nothing to go on (a warning flood?): look further back, a bounded number of times.
                chunks = [tail]
                found = False
                for _ in range(MAX_EXTENDS):
                    if start <= HEAD_BYTES:
                        break
                    new_start = max(HEAD_BYTES, start - EXTEND_BYTES)
                    f.seek(new_start)
                    chunk = f.read(start - new_start)
                    chunks.insert(0, chunk)
                    start = new_start
                    if any(m in chunk for m in _STEP_MARKERS):
                        found = True
                        break
                if found or start <= HEAD_BYTES:
                    tail = b"".join(chunks)
                if start <= HEAD_BYTES:
                    return None, _decode(head + tail), st.st_mtime
            return _decode(head), _decode(_drop_partial_first_line(tail)), st.st_mtime
    except OSError:
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
            data = b""
            while pos > 0 and data.count(b"\n") <= n and len(data) < max_bytes:
                step = min(64 * 1024, pos, max_bytes - len(data))
                pos -= step
                f.seek(pos)
                data = f.read(step) + data
    except OSError:
        return []
    if pos > 0:
        data = data[data.find(b"\n") + 1 :] if b"\n" in data else data
    text = data.decode("utf-8", "replace")
    if text.endswith("\n"):
        text = text[:-1]
    if not text:
        return []
    lines = [line.rstrip("\r").rsplit("\r", 1)[-1] for line in text.split("\n")]
    return lines[-n:]


# ---------------------------------------------------------------------------------------- parsing


def _epoch(ts: str | None) -> float | None:
    if not ts:
        return None
    try:
        return time.mktime(
            (int(ts[0:4]), int(ts[5:7]), int(ts[8:10]), int(ts[11:13]), int(ts[14:16]), int(ts[17:19]), 0, 0, -1)
        )
    except (ValueError, OverflowError):
        return None


def _line_at(text: str, pos: int) -> str:
    start = text.rfind("\n", 0, pos) + 1
    end = text.find("\n", pos)
    return text[start : end if end >= 0 else len(text)].strip()


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _boundaries(text: str) -> list[int]:
    marks = [m.start() for m in _DUMP_START_RE.finditer(text)]
    for m in _MIMIC_RE.finditer(text):
        line = m.group(0)
        if MIMIC_START_RE.search(line) and not _MIMIC_NOT_START_RE.search(line):
            marks.append(m.start())
    marks.sort()
    out = list(marks)
    prev = -1
    for m in _CFG_STEPS_RE.finditer(text):
        c = m.start()
        if not any(prev < b <= c for b in marks):
            out.append(c)  # a start whose config dump is not in the window
        prev = c
    return sorted(out)


def _last(regex: re.Pattern, text: str, start: int = 0) -> re.Match | None:
    found = None
    for found in regex.finditer(text, start):
        pass
    return found


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


def _rate_from_lines(lines: list, exact_of: dict[int, int], log_freq: int | None) -> float | None:
    """Steps/s over recent step lines (>= 30 s of them when there are): with log_freq the span
    is exact (one line per log_freq steps); else from the values, which must be exact or span
    at least 20x their rounding."""
    timed = [(ln[0], _epoch(ln[1]), ln[2], ln[3], ln[4]) for ln in lines if ln[1]]
    if len(timed) < 2:
        return None
    t1 = timed[-1][1]
    i = len(timed) - 2
    while i > 0 and (t1 is None or timed[i][1] is None or t1 - timed[i][1] < 30):
        i -= 1
    windows = [timed[i:], timed] if i > 0 else [timed]
    for win in windows:
        (p0, t0, v0, ap0, tok0), (p1, t1, v1, ap1, tok1) = win[0], win[-1]
        if t0 is None or t1 is None or t1 <= t0:
            continue
        if log_freq:
            return (len(win) - 1) * log_freq / (t1 - t0)
        err = 0
        if p0 in exact_of:
            v0 = exact_of[p0]
        elif ap0:
            err = _UNIT[tok0[-1]]
        if p1 in exact_of:
            v1 = exact_of[p1]
        elif ap1:
            err = max(err, _UNIT[tok1[-1]])
        if v1 > v0 and v1 - v0 >= 20 * err:
            return (v1 - v0) / (t1 - t0)
    return None


def read_checkpoint_step(output_dir: str | os.PathLike | None) -> int | None:
    """Step of the newest checkpoint: ``checkpoints/last`` (else the highest-numbered one)."""
    if output_dir is None:
        return None
    ckdir = os.path.join(os.fspath(output_dir), "checkpoints")
    candidates = [os.path.join(ckdir, "last")]
    if not os.path.exists(candidates[0]):
        try:
            numbered = [n for n in os.listdir(ckdir) if n.isdigit()]
        except OSError:
            return None
        candidates = [os.path.join(ckdir, n) for n in sorted(numbered, key=int, reverse=True)[:2]]
    for d in candidates:
        try:
            with open(os.path.join(d, "training_state", "training_step.json"), encoding="utf-8") as f:
                return int(json.load(f)["step"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return None


def _failure(text: str, start: int, step_positions: list[tuple[int, int]]) -> str | None:
    """The latest attempt's failure as ``label: line``; ``step_positions`` = (pos, step) of the
    step lines. A crash-like line followed by real progress (a higher step line, or a tqdm bar
    still advancing: tqdm redraws once when closed after a crash) was not fatal and is dropped."""

    def progressed_after(pos: int) -> bool:
        before = max((v for p, v in step_positions if p < pos), default=-1)
        if any(v > before for p, v in step_positions if p > pos):
            return True
        last = _last_bar(text, pos)
        prev = _last_bar(text, pos, last.start()) if last else None
        return bool(last and prev and int(last.group(1)) > int(prev.group(1)))

    def fmt(label: str, line: str) -> str:
        out = f"{label}: {line.strip()}"
        return out if len(out) <= FAILURE_MAX_CHARS else out[: FAILURE_MAX_CHARS - 3] + "..."

    oom = _last(_OOM_RE, text, start)
    if oom and not progressed_after(oom.start()):
        return fmt("CUDA out of memory", _line_at(text, oom.start()))
    exc = _last(_EXC_RE, text, start)
    if exc and not progressed_after(exc.start()):
        line = exc.group(1)
        label = "interrupted" if line.split(":", 1)[0].endswith("KeyboardInterrupt") else "crashed"
        return fmt(label, line)
    tb = _last(_TRACEBACK_RE, text, start)
    if tb and not exc and not progressed_after(tb.start()):
        rest = [ln for ln in text[tb.end() :].split("\n") if ln.strip() and not ln.startswith(("Training:", "INFO "))]
        return fmt("crashed", rest[-1] if rest else "Traceback (no exception line)")
    err = _last(_ERROR_LINE_RE, text, start)
    if err and not progressed_after(err.start()):
        return fmt("error", err.group(0))
    weights = _last(_WEIGHTS_RE, text, start)
    if weights:
        return fmt("pretrained weights not loaded (random init)", weights.group(0))
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
    head, text, mtime = parts
    now = time.time() if now is None else now

    # ---- totals, counts, W&B, log_freq (head + tail)
    started = len(_CFG_STEPS_RE.findall(text)) + (len(_CFG_STEPS_RE.findall(head)) if head else 0)
    m = _last(_CFG_STEPS_RE, text)
    head_total = _last(_CFG_STEPS_RE, head) if head else None
    if m:
        total = int(m.group(1))
    elif total_steps_hint is not None:
        total = int(total_steps_hint)
    elif head_total:
        total = int(head_total.group(1))
    else:
        total = None
    m = _last(_WANDB_RE, text) or (_last(_WANDB_RE, head) if head else None)
    wandb_url = m.group(1).rstrip(".,;)]") if m else None
    m = _last(_LOG_FREQ_RE, text) or (_last(_LOG_FREQ_RE, head) if head else None)
    log_freq = int(m.group(1)) if m and int(m.group(1)) > 0 else None

    # ---- latest attempt
    bounds = _boundaries(text)
    start = bounds[-1] if bounds else 0
    m = _last(_CFG_STEPS_RE, text, start)
    attempt_total = int(m.group(1)) if m else total

    # step lines: (pos, ts, value, approx, token, match)
    lines = []
    for sm in _STEP_RE.finditer(text, start):
        token = sm.group(2) + sm.group(3)
        value, approx = parse_big_number(token)
        lines.append((sm.start(), sm.group(1), value, approx, token, sm))
    anchors = [(a.start(), int(a.group(1))) for a in _CKPT_LINE_RE.finditer(text, start)]
    anchors += [(p, v) for p, _, v, approx, _, _ in lines if not approx]
    anchors.sort()
    if log_freq is None:
        exact_vals = [v for _, _, v, approx, _, _ in lines if not approx]
        diffs = [b - a for a, b in zip(exact_vals, exact_vals[1:]) if b > a]
        log_freq = min(diffs) if diffs else None
    if not anchors and bounds:
        # A resumed attempt starts at the checkpoint it resumed from (0 when fresh).
        anchors = [(start, checkpoint_step or 0)]

    # exact values of the step lines after the last anchor, when log_freq reconstructs them
    exact_of: dict[int, int] = {}
    for p, _, v, approx, _, _ in lines:
        if not approx:
            exact_of[p] = v
    if anchors and log_freq:
        a_pos, a_val = anchors[-1]
        base = (a_val // log_freq) * log_freq
        k = 0
        for p, _, v, approx, token, _ in lines:
            if p <= a_pos:
                continue
            k += 1
            cand = base + k * log_freq
            if format_big_number(cand) != token:
                break
            exact_of[p] = cand

    bar = _last_bar(text, start)
    bar_step = None
    if bar:
        n, bar_total = int(bar.group(1)), int(bar.group(2))
        offset = attempt_total - bar_total if attempt_total is not None and attempt_total >= bar_total else 0
        bar_step = offset + n
        if total is None:
            total = bar_total

    step: int | None = None
    step_approx = False
    last_line = lines[-1] if lines else None
    if bar_step is not None:
        step = bar_step
        if last_line and last_line[0] in exact_of:
            step = max(step, exact_of[last_line[0]])
    elif last_line is not None:
        lp, _, lv, lapprox, _, _ = last_line
        later_anchor = max((v for p, v in anchors if p > lp), default=None)
        if lp in exact_of:
            step = exact_of[lp]
        elif later_anchor is not None:
            step = later_anchor
        else:
            step, step_approx = lv, lapprox
        if later_anchor is not None:
            step = max(step, later_anchor)
    elif anchors:
        step = max(v for _, v in anchors)
    if checkpoint_step is not None and (step is None or checkpoint_step > step):
        step, step_approx = checkpoint_step, False
    if step is not None and step_approx:
        exact_lb = max([v for _, v in anchors] + ([checkpoint_step] if checkpoint_step is not None else []),
                       default=None)
        if exact_lb is not None and exact_lb > step:
            step, step_approx = exact_lb, False

    # ---- loss / lr / timing
    loss = lr = None
    last_step_time = None
    sps = None
    if last_line is not None:
        kv = dict(_KV_RE.findall(last_line[5].group(0)))
        loss, lr = _float(kv.get("loss")), _float(kv.get("lr"))
        last_step_time = _epoch(last_line[1])
        sps = _rate_from_lines(lines, exact_of, log_freq)
        if sps is None:
            per_step = (_float(kv.get("updt_s")) or 0.0) + (_float(kv.get("data_s")) or 0.0)
            if per_step > 0:
                sps = 1.0 / per_step
    if bar is not None:
        rate, unit = bar.group(3), bar.group(4)
        if rate != "?" and float(rate) > 0:
            sps = float(rate) if unit.endswith("/s") else 1.0 / float(rate)
        if last_line is None or bar.start() > last_line[0]:
            last_step_time = mtime  # the bar redraws continuously: the file's mtime is its last update

    eta = None
    if total is not None and step is not None and sps:
        eta = max(0, total - step) / sps

    # ---- finished / failure (latest attempt only)
    finished = _END_RE.search(text, start) is not None
    positions = [(p, exact_of.get(p, v)) for p, _, v, _, _, _ in lines]
    failure = _failure(text, start, positions)

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
