"""Progress of a run from its log's head and tail plus its newest checkpoint.

On the ``status`` fast path: stdlib only, and never reads a whole log. A log may be several GB
and hold several appended attempts. We read the first ``HEAD_BYTES`` (config dump,
``cfg.steps=``, the W&B link) and the last ``TAIL_BYTES`` (logs/tail.py), and parse them with
logs/lerobot_format.py. Two bounded extra reads backwards, only when needed: up to
``MAX_EXTENDS`` x ``EXTEND_BYTES`` when the tail holds no step information at all (a warning
flood), and up to ``ANCHOR_SEARCH_BYTES`` (a ``find``/``count`` over bytes) for the last exact
``Checkpoint policy after step N`` line when the last step line is K/M-rounded.

Numbers of the last step line (loss, lr; 0.6: samples/s, GPU memory, the policy's sub-losses) and
the last ``step N: eval_loss=X`` line (0.6 with a held-out split) of the latest attempt.

Attempts: a new one starts at the config dump, at a ``cfg.steps=`` line with no dump before it
in the window, and at the supervisor's attempt-start marker (logs/markers.py). Failure,
``finished`` and step lines only count after the last start; when the latest attempt has not
logged a step yet, the step is its resume point (the newest checkpoint).
"""

from __future__ import annotations

import bisect
import os
import time
from dataclasses import asdict, dataclass, field

from mimic_deployment.host.paths import last_checkpoint_step, newest_checkpoint_step
from mimic_deployment.logs import lerobot_format as fmt
from mimic_deployment.logs import markers, tail
from mimic_deployment.logs.tail import EXTEND_BYTES, HEAD_BYTES, MAX_EXTENDS, TAIL_BYTES  # noqa: F401  (the read bounds, documented above)

ANCHOR_SEARCH_BYTES = 8 * 1024 * 1024
_ATTEMPT_START_BYTES = (b"cfg.steps=", markers.MARKER_PREFIX.encode())


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
    eval_loss: float | None = None  # the last `step N: eval_loss=X` (0.6, --eval-split)
    eval_loss_step: int | None = None  # its N
    samples_per_sec: float | None = None  # `smp/s` of the last step line (0.6)
    mem_gb: float | None = None  # `mem_gb` of the last step line (0.6 on CUDA: peak allocated)
    peak_mem_gb: float | None = None  # the highest `mem_gb` of the latest attempt's step lines read
    sub_losses: dict[str, float] = field(default_factory=dict)  # the policy's own losses (0.6: l1_loss, ...)

    @property
    def fraction(self) -> float | None:
        if self.step is None or not self.total_steps:
            return None
        return min(1.0, max(0.0, self.step / self.total_steps))

    def to_dict(self) -> dict:
        return asdict(self)


def trained_to_the_end(progress: Progress, output_dir: str | os.PathLike | None, steps: int | None) -> bool:
    """The latest attempt logged ``End of training`` and the resumable checkpoint is the final
    step: the training is complete, whatever happened after it (a failed Hub push, a lost owner)."""
    return bool(progress.finished and output_dir is not None and steps is not None
                and last_checkpoint_step(os.fspath(output_dir)) == steps)


class _StepLines:
    """The latest attempt's step lines, evaluated lazily (a tail holds thousands)."""

    def __init__(self, text: str, start: int):
        self.text = text
        found = list(fmt.STEP_RE.finditer(text, start))
        self.pos: list[int] = [m.start() for m in found]
        self.tok: list[str] = [m.group(1) for m in found]
        self.recon_from: int | None = None  # lines from this index on are reconstructed
        self.recon_base = 0  # exact value of line i >= recon_from: recon_base + i * log_freq
        self.log_freq = 0  # set with recon_from

    def __len__(self) -> int:
        return len(self.pos)

    def printed(self, i: int) -> tuple[int, bool]:
        return fmt.parse_big_number(self.tok[i])

    def exact(self, i: int) -> int | None:
        value, approx = fmt.parse_big_number(self.tok[i])
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
        base = fmt.counted_step(anchor_val, k0 + 1 - first, log_freq)  # line i: base + i * log_freq
        for i in {first, len(self.pos) - 1}:
            if fmt.format_big_number(base + i * log_freq) != self.tok[i]:
                return
        self.recon_from, self.recon_base, self.log_freq = first, base, log_freq

    def ts(self, i: int) -> float | None:
        return fmt.time_of_line(self.text, self.pos[i])

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
            err = max(err, fmt.rounding_of(lines.tok[j]))
        values.append(e)
    if values[1] > values[0] and values[1] - values[0] >= 20 * err:
        return (values[1] - values[0]) / (t1 - t0)
    return None


def _count_since_anchor(path: str, end: int) -> tuple[int, int] | None:
    """Search backwards from file offset ``end`` (at most ANCHOR_SEARCH_BYTES) for the last
    ``Checkpoint policy after step N`` / ``Eval policy at step N`` line; return (N, number of
    step lines between it and ``end``). None if not found or an attempt starts in between."""
    for buf in tail.read_backwards(path, end, ANCHOR_SEARCH_BYTES):
        hit = max(buf.rfind(m) for m in fmt.ANCHOR_PREFIXES)
        if max(buf.rfind(m) for m in _ATTEMPT_START_BYTES) > hit:
            return None  # an attempt started after the anchor: it does not apply
        if hit >= 0:
            m = fmt.ANCHOR_BYTES_RE.match(buf, hit)
            return (int(m.group(1)), buf.count(b" smpl:", hit)) if m else None
    return None


def _attempt_start(text: str) -> int | None:
    """Offset in ``text`` where the latest attempt starts; None if no start is in the window."""
    marks = sorted(fmt.config_dumps(text) + markers.attempt_starts(text))
    latest = marks[-1] if marks else None
    prev = -1
    for m in fmt.CFG_STEPS_RE.finditer(text):
        c = m.start()
        if not any(prev < b <= c for b in marks) and (latest is None or c > latest):
            latest = c  # a start whose config dump is not in the window
        prev = c
    return latest


def _failure(text: str, start: int, steps: _StepLines) -> str | None:
    """The latest attempt's failure. Real progress after a crash-like line (a higher step line,
    or a tqdm bar still advancing: tqdm redraws once when it is closed after a crash) means it
    was not fatal."""

    def progressed_after(pos: int) -> bool:
        if steps.progressed_after(pos):
            return True
        last = fmt.last_bar(text, pos)
        prev = fmt.last_bar(text, pos, last.start()) if last else None
        return bool(last and prev and int(last.group(1)) > int(prev.group(1)))

    return fmt.failure(text, start, progressed_after)


def read_progress(
    log_path: str | os.PathLike | None,
    output_dir: str | os.PathLike | None = None,
    total_steps_hint: int | None = None,
    now: float | None = None,
) -> Progress:
    """Progress of a run from its log (head + tail only) and newest checkpoint. Never raises
    for a missing/empty/garbled log: unknown fields are None."""
    checkpoint_step = newest_checkpoint_step(output_dir)
    window = tail.read_window(os.fspath(log_path), fmt.PROGRESS_MARKERS) if log_path is not None else None
    if window is None:
        return Progress(step=checkpoint_step, total_steps=total_steps_hint, checkpoint_step=checkpoint_step)
    head = fmt.decode(window.head) if window.head is not None else None
    text = fmt.decode(window.tail)
    now = time.time() if now is None else now

    # ---- totals, counts, W&B, log_freq (tail first, then head)
    started = len(fmt.CFG_STEPS_RE.findall(text)) + (len(fmt.CFG_STEPS_RE.findall(head)) if head else 0)
    m = fmt.last_match(fmt.CFG_STEPS_RE, text)
    head_total = fmt.last_match(fmt.CFG_STEPS_RE, head) if head else None
    total: int | None
    if m:
        total = int(m.group(1))
    elif total_steps_hint is not None:
        total = int(total_steps_hint)
    else:
        total = int(head_total.group(1)) if head_total else None
    wandb_url = fmt.wandb_url(text) or (fmt.wandb_url(head) if head else None)
    m = fmt.last_match(fmt.LOG_FREQ_RE, text) or (fmt.last_match(fmt.LOG_FREQ_RE, head) if head else None)
    log_freq = int(m.group(1)) if m and int(m.group(1)) > 0 else None

    # ---- the latest attempt
    attempt = _attempt_start(text)
    start = attempt or 0
    m = fmt.last_match(fmt.CFG_STEPS_RE, text, start)
    attempt_total = int(m.group(1)) if m else total

    lines = _StepLines(text, start)
    evals = fmt.eval_losses(text, start)
    anchors = [(a.start(), int(a.group(1))) for rx in (fmt.CKPT_RE, fmt.EVAL_RE) for a in rx.finditer(text, start)]
    anchors += [(pos, step) for pos, step, _ in evals]
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
            found = _count_since_anchor(window.path, window.tail_offset)
            if found:
                lines.reconstruct(-1, found[0], log_freq, k0=found[1])

    bar = fmt.last_bar(text, start)
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
        exact_last = lines.exact(n - 1)
        if exact_last is not None:
            step = exact_last
        elif later is not None:
            step = later
        elif exact_lb is not None and (exact_lb > lv or fmt.format_big_number(exact_lb) == token):
            # the exact lower bound is consistent with (or past) the rounded line: it is closer
            step, step_approx = exact_lb, fmt.format_big_number(exact_lb) == token
        else:
            step, step_approx = lv, True
        if later is not None:
            step = max(step, later)
    elif anchors:
        step = max(v for _, v in anchors)
    if checkpoint_step is not None and (step is None or checkpoint_step > step):
        step, step_approx = checkpoint_step, False

    # ---- loss / lr / timing
    loss = lr = last_step_time = sps = samples = mem = peak = None
    subs: dict[str, float] = {}
    if n:
        lp = lines.pos[n - 1]
        kv = fmt.step_fields(text, lp)
        loss, lr = fmt.parse_float(kv.get("loss")), fmt.parse_float(kv.get("lr"))
        samples, mem = fmt.parse_float(kv.get("smp/s")), fmt.parse_float(kv.get("mem_gb"))
        subs = fmt.sub_losses(kv)
        if mem is not None:
            peak = _peak_mem(text, start)
        last_step_time = lines.ts(n - 1)
        sps = _rate(lines, log_freq)
        if sps is None:
            per_step = (fmt.parse_float(kv.get("updt_s")) or 0.0) + (fmt.parse_float(kv.get("data_s")) or 0.0)
            if per_step > 0:
                sps = 1.0 / per_step
    if bar is not None:
        sps = fmt.bar_steps_per_sec(bar) or sps
        if not n or bar.start() > lines.pos[n - 1]:
            last_step_time = window.mtime  # the bar redraws continuously: mtime is its last update

    eta = None
    if total is not None and step is not None and sps:
        eta = max(0, total - step) / sps

    # ---- finished / failure (latest attempt only)
    finished = text.find(fmt.END_OF_TRAINING, start) >= 0
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
        eval_loss=evals[-1][2] if evals else None,
        eval_loss_step=evals[-1][1] if evals else None,
        samples_per_sec=samples,
        mem_gb=mem,
        peak_mem_gb=peak,
        sub_losses=subs,
    )


def _peak_mem(text: str, start: int) -> float | None:
    """The highest ``mem_gb`` of the latest attempt's step lines in the window."""
    values = [float(m.group(1)) for m in fmt.MEM_GB_RE.finditer(text, start)]
    return max(values) if values else None
