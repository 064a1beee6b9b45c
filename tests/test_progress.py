"""progress.py against realistic lerobot 0.4.4 log text (formats copied from lerobot_train.py,
utils/logging_utils.py, utils/utils.py:init_logging, rl/wandb_utils.py, tqdm's format_meter), and
against real LeRobot 0.6.1 logs (tests/fixtures/logs/: a tiny ACT trained 8 steps on the demo data
with log_freq=2, one of them with --dataset.eval_split=0.34 --eval_steps=2; trimmed: one of the two
torchcodec warnings a machine without FFmpeg prints before the start is kept)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from pprint import pformat

import pytest

from mimic_deployment.host.paths import newest_checkpoint_step
from mimic_deployment.logs import lerobot_format as F
from mimic_deployment.logs import markers
from mimic_deployment.logs import progress as P
from mimic_deployment.logs import tail as T
from mimic_deployment.logs.progress import Progress, read_progress
from mimic_deployment.logs.tail import tail_lines

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "logs"
LOG_061 = FIXTURES / "lerobot-0.6.1-act.log"
LOG_061_EVAL = FIXTURES / "lerobot-0.6.1-act-eval-split.log"

BS = 8
FRAMES = 20_000
EPISODES = 50


# ----------------------------------------------------------------------- lerobot-format helpers


def lerobot_format_big_number(num, precision=0):  # verbatim copy of lerobot.utils.utils
    suffixes = ["", "K", "M", "B", "T", "Q"]
    divisor = 1000.0
    for suffix in suffixes:
        if abs(num) < divisor:
            return f"{num:.{precision}f}{suffix}"
        num /= divisor
    return num


def ts(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def info(msg: str, t: float = 1_800_000_000, where: str = "ot_train.py:435", level: str = "INFO") -> str:
    # init_logging: f"{record.levelname} {pid_str}{dt} {fnameline[-15:]:>15} {record.getMessage()}"
    return f"{level} {ts(t)} {where[-15:]:>15} {msg}\n"


def step_line(step: int, t: float, loss: float = 0.5, lr: float = 1e-5, updt: float = 0.25, data: float = 0.02) -> str:
    samples = step * BS
    episodes = samples / (FRAMES / EPISODES)
    msg = " ".join(
        [
            f"step:{lerobot_format_big_number(step)}",
            f"smpl:{lerobot_format_big_number(samples)}",
            f"ep:{lerobot_format_big_number(episodes)}",
            f"epch:{samples / FRAMES:.2f}",
            f"loss:{loss:.3f}",
            f"grdn:{941.041:.3f}",
            f"lr:{lr:0.1e}",
            f"updt_s:{updt:.3f}",
            f"data_s:{data:.3f}",
        ]
    )
    return info(msg, t)


def bar(n: int, total: int, rate: float | None = 3.3) -> str:
    """One tqdm redraw as it lands in a file: '\\r' + bar, no newline."""
    pct = int(100 * n / total)
    filled = n * 10 // total
    body = "█" * filled + " " * (10 - filled)
    if rate is None:
        r = "?step/s"
    elif rate >= 1:
        r = f"{rate:5.2f}step/s"
    else:
        r = f"{1 / rate:5.2f}s/step"
    return f"\rTraining: {pct:3d}%|{body}| {n}/{total} [00:10<00:10, {r}]"


def start_block(steps: int, t: float = 1_800_000_000, log_freq: int = 200, resume: bool = False) -> str:
    cfg = {
        "batch_size": BS,
        "dataset": {"repo_id": "lab/pick_place", "root": None},
        "log_freq": log_freq,
        "output_dir": "outputs/train/run1",
        "policy": {"type": "act", "device": "cuda"},
        "resume": resume,
        "save_freq": 1000,
        "steps": steps,
        "wandb": {"enable": True, "project": "mimic"},
    }
    out = info(pformat(cfg), t, where="/x/lerobot/scripts/lerobot_train.py:197")
    out += info(
        "Track this run --> \x1b[1m\x1b[33mhttps://wandb.ai/lab/mimic/runs/abc123\x1b[0m",
        t,
        where="/x/lerobot/rl/wandb_utils.py:118",
    )
    out += info("Creating dataset", t, where="ot_train.py:217")
    out += info("Creating policy", t, where="ot_train.py:235")
    out += info("Creating optimizer and scheduler", t, where="ot_train.py:290")
    out += info("\x1b[1m\x1b[33mOutput dir:\x1b[0m outputs/train/run1", t, where="ot_train.py:325")
    out += info(f"cfg.steps={steps} ({lerobot_format_big_number(steps)})", t, where="ot_train.py:332")
    out += info(f"dataset.num_frames={FRAMES} ({lerobot_format_big_number(FRAMES)})", t, where="ot_train.py:333")
    out += info(f"dataset.num_episodes={EPISODES}", t, where="ot_train.py:334")
    out += info(f"Effective batch size: {BS} x 1 = {BS}", t, where="ot_train.py:337")
    out += info("num_learnable_params=13806031 (14M)", t, where="ot_train.py:338")
    out += info("num_total_params=13806031 (14M)", t, where="ot_train.py:339")
    out += info(f"Start offline training on a fixed dataset, with effective batch size: {BS}", t,
                where="ot_train.py:403")
    return out


def training(first: int, last: int, log_freq: int, t0: float, sec_per_step: float, save_freq: int = 0,
             with_bar: bool = False, total: int = 0, resume_from: int = 0) -> str:
    out = []
    for s in range(first, last + 1):
        t = t0 + (s - first) * sec_per_step
        if with_bar:
            out.append(bar(s - resume_from, total - resume_from, 1 / sec_per_step))
        if s % log_freq == 0:
            out.append(step_line(s, t))
        if save_freq and s % save_freq == 0:
            out.append(info(f"Checkpoint policy after step {s}", t, where="ot_train.py:455"))
    return "".join(out)


def oom_traceback(prefix: str = "") -> str:
    return "".join(
        prefix + ln + "\n"
        for ln in [
            "Traceback (most recent call last):",
            '  File "/x/lerobot/scripts/lerobot_train.py", line 416, in train',
            "    train_tracker, output_dict = update_policy(",
            "                                 ^^^^^^^^^^^^^^",
            "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 MiB. GPU 0 has a total "
            "capacity of 79.25 GiB of which 3.50 MiB is free.",
        ]
    )


def value_error_traceback() -> str:
    return (
        "Traceback (most recent call last):\n"
        '  File "/x/bin/lerobot-train", line 10, in <module>\n'
        "    sys.exit(main())\n"
        '  File "/x/lerobot/datasets/lerobot_dataset.py", line 99, in __init__\n'
        "    raise ValueError(msg)\n"
        "ValueError: Feature mismatch in observation.images.wrist\n"
    )


def write(path, text: str):
    path.write_bytes(text.encode("utf-8"))
    return path


def make_checkpoint(output_dir, step: int, total: int = 100_000, link: bool = True):
    d = output_dir / "checkpoints" / f"{step:0{max(6, len(str(total)))}d}"
    (d / "training_state").mkdir(parents=True)
    (d / "training_state" / "training_step.json").write_text(json.dumps({"step": step}, indent=4))
    if link:
        last = output_dir / "checkpoints" / "last"
        if last.is_symlink():
            last.unlink()
        last.symlink_to(d.relative_to(d.parent))
    return d


T0 = 1_800_000_000.0


# ----------------------------------------------------------------------------------------- tests


def test_format_big_number_matches_lerobot_copy():
    for n in [0, 4, 999, 1000, 1499, 1500, 2500, 10_000, 999_499, 999_500, 999_999, 1_000_000, 2_500_000, 3 * 10**9]:
        assert F.format_big_number(n) == lerobot_format_big_number(n), n
    assert F.parse_big_number("2K") == (2000, True)
    assert F.parse_big_number("999") == (999, False)
    assert F.parse_big_number("3M") == (3_000_000, True)


@pytest.mark.lerobot
def test_format_big_number_matches_real_lerobot():
    utils = pytest.importorskip("lerobot.utils.utils")
    for n in [0, 999, 1000, 1500, 2500, 999_999, 10**6, 123_456_789]:
        assert F.format_big_number(n) == utils.format_big_number(n)


def test_empty_and_missing_log(tmp_path):
    missing = read_progress(tmp_path / "nope.log")
    assert missing == Progress()
    empty = read_progress(write(tmp_path / "empty.log", ""))
    assert empty.step is None and empty.total_steps is None and empty.failure is None
    assert empty.started_count == 0 and not empty.finished
    assert json.loads(json.dumps(empty.to_dict()))["step"] is None
    assert read_progress(None, total_steps_hint=10).total_steps == 10
    garbage = read_progress(write(tmp_path / "bin.log", "\x00\xff" * 1000 + "\r\r\n"))
    assert garbage.step is None


def test_fresh_run_with_tqdm_bar(tmp_path):
    text = start_block(6, T0, log_freq=2) + training(1, 3, 2, T0, 2.0, with_bar=True, total=6)
    p = read_progress(write(tmp_path / "run.log", text), now=time.time())
    assert p.step == 3 and not p.step_approx
    assert p.total_steps == 6
    assert p.steps_per_sec == pytest.approx(0.5)  # bar shows '2.00s/step'
    assert p.eta_seconds == pytest.approx(6.0)
    assert p.loss == 0.5 and p.lr == 1e-5
    assert p.wandb_url == "https://wandb.ai/lab/mimic/runs/abc123"
    assert p.started_count == 1
    assert p.failure is None and not p.finished
    # the bar is the last thing written: its update time is the file's mtime
    assert p.last_step_time == pytest.approx(os.path.getmtime(tmp_path / "run.log"))
    assert p.fraction == 0.5


def test_bar_after_resume_counts_from_resume_step(tmp_path):
    out = tmp_path / "train"
    make_checkpoint(out, 4000, total=6000)
    text = start_block(6000, T0, log_freq=500, resume=True) + training(
        4001, 4250, 500, T0, 0.1, with_bar=True, total=6000, resume_from=4000
    )
    p = read_progress(write(tmp_path / "run.log", text), output_dir=out)
    assert p.step == 4250 and not p.step_approx
    assert p.checkpoint_step == 4000
    assert p.steps_per_sec == pytest.approx(10.0)
    assert p.eta_seconds == pytest.approx(175.0)


def test_finished_run(tmp_path):
    text = start_block(6, T0, log_freq=2) + training(1, 6, 2, T0, 1.0, save_freq=6, with_bar=True, total=6)
    text += "\n" + info("End of training", T0 + 6, where="ot_train.py:529")
    p = read_progress(write(tmp_path / "run.log", text))
    assert p.finished and p.failure is None
    assert p.step == 6 and p.eta_seconds == 0
    assert p.last_step_time == _local(T0 + 5)


def _local(t: float) -> float:
    return time.mktime(time.strptime(ts(t), "%Y-%m-%d %H:%M:%S"))


def test_k_rounded_steps_reconstructed_exactly_with_log_freq(tmp_path):
    # Slurm: no bar. log_freq=200 -> 1200 prints as '1K', 1600 as '2K'.
    text = start_block(100_000, T0, log_freq=200) + training(1, 5400, 200, T0, 0.5)
    p = read_progress(write(tmp_path / "run.log", text), now=_local(T0 + 5399 * 0.5) + 30)
    assert p.step == 5400 and not p.step_approx
    assert p.total_steps == 100_000
    assert p.steps_per_sec == pytest.approx(2.0, rel=0.01)
    assert p.eta_seconds == pytest.approx((100_000 - 5400) / p.steps_per_sec)
    assert p.last_step_time == _local(T0 + 5399 * 0.5)
    assert p.age_seconds == pytest.approx(30)


def test_k_rounded_step_is_approximate_without_anchor(tmp_path):
    # only the tail of a long run, no config dump, no checkpoint line: '5K' is all we know
    text = "".join(step_line(s, T0 + s) for s in range(4400, 5401, 200))
    p = read_progress(write(tmp_path / "run.log", text), total_steps_hint=10_000)
    assert p.step == 5000 and p.step_approx
    assert p.total_steps == 10_000
    # 1000 steps of rounding error over a 1000-step span: too rough; falls back to updt_s+data_s
    assert p.steps_per_sec == pytest.approx(1 / 0.27)


def test_approximate_step_never_below_checkpoint(tmp_path):
    out = tmp_path / "train"
    make_checkpoint(out, 2000)
    make_checkpoint(out, 2600)
    text = "".join(step_line(s, T0 + s) for s in (2200, 2400))  # both print '2K'
    p = read_progress(write(tmp_path / "run.log", text), output_dir=out)
    assert p.checkpoint_step == 2600
    assert p.step == 2600 and not p.step_approx


def test_checkpoint_line_is_an_exact_anchor(tmp_path):
    text = "".join(step_line(s, T0 + s) for s in (2200, 2400))
    text += info("Checkpoint policy after step 2500", T0 + 2500, where="ot_train.py:455")
    p = read_progress(write(tmp_path / "run.log", text))
    assert p.step == 2500 and not p.step_approx


def test_checkpoint_dirs(tmp_path):
    out = tmp_path / "train"
    assert newest_checkpoint_step(out) is None
    assert newest_checkpoint_step(None) is None
    make_checkpoint(out, 100)
    make_checkpoint(out, 200)
    assert os.readlink(out / "checkpoints" / "last") == "000200"  # relative, like lerobot
    assert newest_checkpoint_step(out) == 200
    # a newer numbered dir still being written: 'last' is the truth
    (out / "checkpoints" / "000300" / "training_state").mkdir(parents=True)
    assert newest_checkpoint_step(out) == 200
    # no 'last' link: highest numbered complete one
    (out / "checkpoints" / "last").unlink()
    assert newest_checkpoint_step(out) == 200
    make_checkpoint(out, 400, link=False)
    assert newest_checkpoint_step(out) == 400
    # the log-less fallback
    p = read_progress(tmp_path / "missing.log", output_dir=out, total_steps_hint=1000)
    assert p.step == 400 and p.checkpoint_step == 400 and p.total_steps == 1000


@pytest.mark.parametrize(
    "tail, label, needle",
    [
        (oom_traceback(), "CUDA out of memory", "torch.OutOfMemoryError: CUDA out of memory"),
        (oom_traceback("[rank0]: "), "CUDA out of memory", "CUDA out of memory. Tried to allocate 20.00 MiB"),
        (value_error_traceback(), "crashed", "ValueError: Feature mismatch"),
        (
            "Traceback (most recent call last):\n  File \"x.py\", line 1, in f\n"
            "NotImplementedError: Training with use_peft is not supported\n",
            "crashed",
            "NotImplementedError: Training with use_peft",
        ),
        (
            "FileExistsError: Output directory outputs/train/run1 already exists and resume is False.\n",
            "crashed",
            "FileExistsError: Output directory",
        ),
        ("Traceback (most recent call last):\n  File \"x.py\", line 1, in f\n", "crashed", "File \"x.py\""),
        (info("NCCL watchdog timed out", T0, level="ERROR"), "error", "NCCL watchdog timed out"),
        ("Traceback (most recent call last):\n  File \"x.py\"\nKeyboardInterrupt\n", "interrupted",
         "KeyboardInterrupt"),
    ],
)
def test_failures(tmp_path, tail, label, needle):
    text = start_block(1000, T0, log_freq=100) + training(1, 300, 100, T0, 0.1, with_bar=True, total=1000)
    text += tail
    text += bar(300, 1000) + "\n"  # tqdm.close() redraws once after the crash: no progress
    p = read_progress(write(tmp_path / "run.log", text))
    assert p.failure is not None
    assert p.failure.startswith(label + ": ")
    assert needle in p.failure
    assert len(p.failure) <= F.FAILURE_MAX_CHARS
    assert p.step == 300


def test_weights_not_loaded(tmp_path):
    # printed by pi05's from_pretrained during "Creating policy", i.e. before cfg.steps
    text = start_block(1000, T0, log_freq=100)
    text = text.replace(
        "ot_train.py:235 Creating policy\n",
        "ot_train.py:235 Creating policy\n"
        "Could not load state dict from remote files: 401 Client Error: Unauthorized for url: "
        "https://huggingface.co/lerobot/pi05_base/resolve/main/model.safetensors\n"
        "Returning model without loading pretrained weights\n",
    )
    text += training(1, 200, 100, T0, 0.1)
    p = read_progress(write(tmp_path / "run.log", text))
    assert p.failure.startswith("pretrained weights not loaded (random init): Could not load state dict")
    assert p.step == 200


def test_nonfatal_traceback_followed_by_progress_is_ignored(tmp_path):
    text = start_block(1000, T0, log_freq=100) + training(1, 200, 100, T0, 0.1)
    text += "wandb: ERROR upload failed\n" + value_error_traceback()
    text += training(201, 400, 100, T0 + 20, 0.1)
    p = read_progress(write(tmp_path / "run.log", text))
    assert p.failure is None and p.step == 400


def test_appended_second_attempt_supersedes_earlier_failure(tmp_path):
    out = tmp_path / "train"
    make_checkpoint(out, 1000, total=2000)
    first = "[mimic] attempt 1 starting: lerobot-train --policy.type=act\n"
    first += start_block(2000, T0, log_freq=100) + training(1, 1100, 100, T0, 0.1, save_freq=1000)
    first += oom_traceback()
    first += "[mimic] attempt 1 exited with code 1; restarting in 30s\n"
    log = write(tmp_path / "run.log", first)
    p = read_progress(log, output_dir=out)
    assert p.failure.startswith("CUDA out of memory")  # an exit/restart note is not a start
    assert p.started_count == 1

    # attempt 2 starts: before it logs anything, the old failure is gone, step = resume point
    second = "[mimic] attempt 2 starting (resume): lerobot-train --resume=true\n"
    write(log, first + second)
    p = read_progress(log, output_dir=out)
    assert p.failure is None and p.step == 1000 and not p.finished

    second += start_block(2000, T0 + 500, log_freq=100, resume=True)
    second += training(1001, 1500, 100, T0 + 500, 0.1)
    write(log, first + second)
    p = read_progress(log, output_dir=out)
    assert p.failure is None
    assert p.started_count == 2
    assert p.step == 1500 and not p.step_approx  # '2K' reconstructed from the resume point
    assert p.total_steps == 2000


def test_new_attempt_after_finished(tmp_path):
    text = start_block(6, T0, log_freq=2) + training(1, 6, 2, T0, 1.0)
    text += info("End of training", T0 + 7)
    assert read_progress(write(tmp_path / "a.log", text)).finished
    text += start_block(12, T0 + 100, log_freq=2) + training(1, 4, 2, T0 + 100, 1.0)
    p = read_progress(write(tmp_path / "a.log", text))
    assert not p.finished and p.step == 4 and p.total_steps == 12 and p.started_count == 2


def test_wandb_view_run_line(tmp_path):
    text = info("cfg.steps=10 (10)") + (
        "wandb: 🚀 View run \x1b[33mact_odin_all\x1b[0m at: "
        "\x1b[34m\x1b[4mhttps://wandb.ai/lab/mimic/runs/zz9\x1b[0m\n"
    )
    assert read_progress(write(tmp_path / "w.log", text)).wandb_url == "https://wandb.ai/lab/mimic/runs/zz9"
    text = "wandb: 🚀 View run at https://wandb.ai/lab/mimic/runs/q1\n"
    assert read_progress(write(tmp_path / "w.log", text)).wandb_url == "https://wandb.ai/lab/mimic/runs/q1"


def _big_log(path, total_steps: int, preface: str = "") -> int:
    """A multi-MB log: start block in the head, then step lines well past the tail window."""
    with open(path, "w", encoding="utf-8") as f:
        f.write(preface)
        f.write(start_block(total_steps, T0, log_freq=10))
        s = 0
        while f.tell() < 3 * 1024 * 1024:
            chunk = []
            for _ in range(1000):
                s += 10
                chunk.append(step_line(s, T0 + s / 10))  # 10 steps/s
            f.write("".join(chunk))
    return s


def test_multi_mb_log_start_not_in_tail(tmp_path):
    log = tmp_path / "big.log"
    last = _big_log(log, 500_000)
    assert log.stat().st_size > 3 * T.TAIL_BYTES
    p = read_progress(log, total_steps_hint=400_000)
    assert p.total_steps == 400_000  # no start marker in the tail: the hint wins over the head
    assert p.started_count == 1  # the head's
    assert p.wandb_url == "https://wandb.ai/lab/mimic/runs/abc123"  # from the head
    printed = lerobot_format_big_number(last)
    assert printed.endswith("K") and p.step == int(printed[:-1]) * 1000
    assert p.step_approx
    assert p.steps_per_sec == pytest.approx(10.0, rel=0.05)
    assert read_progress(log).total_steps == 500_000  # no hint: the head's cfg.steps


def test_rounded_tail_counted_from_a_checkpoint_line_before_the_tail(tmp_path):
    # Slurm, 2M+ steps: every step line in the tail prints '2M'; the last checkpoint line is
    # ~1 MB before the tail; log_freq comes from the config dump in the head.
    log = tmp_path / "big.log"
    with open(log, "w", encoding="utf-8") as f:
        f.write(start_block(3_000_000, T0, log_freq=10))
        f.write("".join(step_line(s, T0 + s / 10) for s in range(10, 20_001, 10)))
        f.write(info("Checkpoint policy after step 2000000", T0 + 200_000, where="ot_train.py:455"))
        f.write("".join(step_line(s, T0 + s / 10) for s in range(2_000_010, 2_090_001, 10)))
    assert log.stat().st_size > T.HEAD_BYTES + 4 * T.TAIL_BYTES
    p = read_progress(log, total_steps_hint=3_000_000)
    assert p.step == 2_090_000 and not p.step_approx
    assert p.steps_per_sec == pytest.approx(10.0, rel=0.05)
    # a start (cfg.steps=) between the anchor and the tail voids it
    text = log.read_text()
    cut = text.index("step:2M smpl:", text.index("Checkpoint policy after step 2000000") + 200_000)
    text = text[:cut] + "INFO 2026-01-01 00:00:00 ot_train.py:332 cfg.steps=3000000 (3M)\n" + text[cut:]
    write(log, text)
    p = read_progress(log, total_steps_hint=3_000_000)
    assert p.step == 2_000_000 and p.step_approx


def test_multi_mb_log_without_start_anywhere_uses_hint(tmp_path):
    log = tmp_path / "big.log"
    _big_log(log, 500_000, preface="x" * (T.HEAD_BYTES + 10) + "\n")
    p = read_progress(log, total_steps_hint=123_456)
    assert p.total_steps == 123_456 and p.started_count == 0
    assert read_progress(log).total_steps is None


def test_warning_flood_extends_backwards_boundedly(tmp_path):
    log = tmp_path / "flood.log"
    with open(log, "w") as f:
        f.write(start_block(10_000, T0, log_freq=100))
        f.write(training(1, 700, 100, T0, 0.1))
        warn = "/x/torch/utils/data.py:12: UserWarning: something deprecated per batch\n"
        f.write(warn * ((T.TAIL_BYTES + 600_000) // len(warn)))
    p = read_progress(log)
    assert p.step == 700 and p.total_steps == 10_000 and p.loss == 0.5
    # beyond the bounded extension there is nothing to find: None, no full read
    with open(log, "a") as f:
        f.write(warn * ((T.EXTEND_BYTES * (T.MAX_EXTENDS + 1)) // len(warn)))
    p = read_progress(log)
    assert p.step is None and p.total_steps == 10_000


def test_reads_are_bounded(tmp_path, monkeypatch):
    log = tmp_path / "big.log"
    _big_log(log, 500_000)
    read_sizes = []
    real_open = open

    class Spy:
        def __init__(self, f):
            self.f = f

        def read(self, n=-1):
            assert n is not None and n >= 0, "whole-file read"
            data = self.f.read(n)
            read_sizes.append(len(data))
            return data

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *a):
            self.f.close()

    monkeypatch.setattr(T, "open", lambda *a, **k: Spy(real_open(*a, **k)), raising=False)
    read_progress(log)
    tail_lines(log, 20)
    # head + tail + the bounded search for an exact anchor (none in this log) + tail_lines' chunk
    size = log.stat().st_size
    assert sum(read_sizes) <= T.HEAD_BYTES + T.TAIL_BYTES + min(P.ANCHOR_SEARCH_BYTES, size) + 64 * 1024


def test_tail_lines(tmp_path):
    assert tail_lines(tmp_path / "missing.log", 5) == []
    assert tail_lines(write(tmp_path / "e.log", ""), 5) == []
    text = "".join(f"line {i}\n" for i in range(10)) + bar(1, 6) + bar(2, 6) + step_line(2, T0).rstrip("\n")
    log = write(tmp_path / "t.log", text)
    got = tail_lines(log, 3)
    assert got[:2] == ["line 8", "line 9"]
    assert got[2].startswith("Training:  33%|") and "step:2 smpl:16" in got[2]
    assert tail_lines(log, 0) == []
    assert len(tail_lines(log, 100)) == 11
    big = tmp_path / "big.log"
    with open(big, "w") as f:
        for i in range(200_000):
            f.write(f"row {i}\n")
    assert tail_lines(big, 4) == [f"row {i}" for i in range(199_996, 200_000)]
    assert tail_lines(big, 30_000)[0] == "row 170000"


def test_no_heavy_imports():
    code = (
        "import sys, mimic_deployment.logs.progress; "
        "bad = [m for m in ('torch', 'lerobot', 'rich', 'numpy', 'yaml') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(P.__file__))))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stdout + r.stderr


def test_dangling_last_link_falls_back_to_numbered(tmp_path):
    out = tmp_path / "train"
    make_checkpoint(out, 100)
    (out / "checkpoints" / "last").unlink()
    (out / "checkpoints" / "last").symlink_to("000999")  # dangling
    assert newest_checkpoint_step(out) == 100


def test_failure_of_new_attempt_before_cfg_steps(tmp_path):
    # attempt 2 dies while loading the dataset (before cfg.steps is logged): its failure shows,
    # attempt 1's OOM does not
    text = "[mimic] attempt 1 starting\n" + start_block(1000, T0) + training(1, 200, 100, T0, 0.1)
    text += oom_traceback()
    text += "[mimic] attempt 2 starting (resume)\n"
    text += info("{'batch_size': 8,\n 'log_freq': 100}", T0 + 60, where="/x/lerobot_train.py:197")
    text += info("Creating dataset", T0 + 61, where="ot_train.py:217")
    text += value_error_traceback()
    p = read_progress(write(tmp_path / "run.log", text))
    assert p.failure == "crashed: ValueError: Feature mismatch in observation.images.wrist"
    assert p.started_count == 1 and p.step is None


def test_to_dict_fields(tmp_path):
    d = read_progress(write(tmp_path / "r.log", start_block(10, T0, log_freq=2) + training(1, 4, 2, T0, 1.0))).to_dict()
    assert set(d) == {
        "step", "step_approx", "total_steps", "loss", "lr", "last_step_time", "steps_per_sec", "eta_seconds",
        "checkpoint_step", "finished", "failure", "wandb_url", "started_count", "age_seconds",
        "eval_loss", "eval_loss_step", "samples_per_sec", "mem_gb", "peak_mem_gb", "sub_losses",
    }
    assert d["eval_loss"] is None and d["sub_losses"] == {} and d["samples_per_sec"] is None  # a 0.4 log
    assert d["step"] == 4 and d["total_steps"] == 10 and d["steps_per_sec"] == pytest.approx(1.0, rel=0.5)


# ------------------------------------------------------------------ attempt-start marker


def mimic(msg: str, t: float = T0) -> str:
    """A supervisor line as runs/supervisor.py `say` writes it."""
    return f"[mimic] {ts(t)} {msg}\n"


def test_marker_lines_round_trip():
    line = markers.attempt_start_line(2, at=T0)
    assert line == f"[mimic] ==> v{markers.MARKER_VERSION} attempt 2 start {int(T0)}\n"
    assert markers.restart_start_line(1, at=T0).startswith("[mimic] ==> v1 restart 1 start ")
    text = "x\n" + line + "y\n[mimic] ==> v7 whatever a later version writes\n"
    assert markers.attempt_starts(text) == [2, 2 + len(line) + 2]
    assert markers.attempt_starts("a [mimic] ==> v1 attempt 1 start 1\n") == []  # only at a line start


def test_not_starting_line_is_not_a_start(tmp_path):
    # a second supervisor (a Slurm requeue, a duplicate start) refuses a finished run
    text = mimic("=== run1: attempt 1 (train) starting, supervisor pid 1 ===")
    text += start_block(6, T0, log_freq=2) + training(1, 6, 2, T0, 1.0) + info("End of training", T0 + 7)
    text += mimic("=== run1: finished ===", T0 + 8)
    for refusal in ("not starting: the run is finished", "not starting: previous run a failed (the chain stops)"):
        p = read_progress(write(tmp_path / "run.log", text + mimic(refusal, T0 + 60)))
        assert p.finished and p.step == 6, refusal
    # the same after a crash: the failure stays
    crashed = mimic("=== run1: attempt 1 (train) starting, supervisor pid 1 ===")
    crashed += start_block(1000, T0) + training(1, 200, 100, T0, 0.1) + oom_traceback()
    p = read_progress(write(tmp_path / "run.log", crashed + mimic("not starting: the run is failed", T0 + 60)))
    assert p.failure.startswith("CUDA out of memory")


def _restart_log(new_format: bool) -> str:
    """Attempt 1 crashes with an OOM after a checkpoint at 1000; the supervisor restarts it."""
    text = markers.attempt_start_line(1, at=T0) if new_format else ""
    text += mimic("=== run1: attempt 1 (train) starting, supervisor pid 1 ===")
    text += mimic("preparing the dataset: lab/pick_place")
    text += mimic("running: lerobot-train --policy.type=act")
    text += start_block(2000, T0, log_freq=100) + training(1, 1100, 100, T0, 0.1, save_freq=1000)
    text += oom_traceback()
    text += mimic("trainer exited with code 1", T0 + 200)
    return text


def _restart(new_format: bool) -> str:
    text = markers.restart_start_line(1, at=T0 + 200) if new_format else ""
    text += mimic("restart 1 of 1 starting: resuming from the last checkpoint", T0 + 200)
    return text + mimic("running: lerobot-train --config_path=x/train_config.json --resume=true", T0 + 200)


@pytest.mark.parametrize("new_format", [False, True], ids=["old-format", "new-format"])
def test_attempt_starts_old_and_new_format(tmp_path, new_format):
    out = tmp_path / "train"
    make_checkpoint(out, 1000, total=2000)
    first = _restart_log(new_format)
    p = read_progress(write(tmp_path / "run.log", first), output_dir=out)
    assert p.failure.startswith("CUDA out of memory") and p.started_count == 1

    # restarted, nothing logged by the trainer yet: the old failure is gone, step = resume point
    second = _restart(new_format)
    p = read_progress(write(tmp_path / "run.log", first + second), output_dir=out)
    assert p.failure is None and p.step == 1000 and not p.finished

    second += start_block(2000, T0 + 300, log_freq=100, resume=True) + training(1001, 1500, 100, T0 + 300, 0.1)
    p = read_progress(write(tmp_path / "run.log", first + second), output_dir=out)
    assert p.failure is None and p.started_count == 2
    assert p.step == 1500 and not p.step_approx and p.total_steps == 2000


def test_marker_log_ignores_start_words_after_a_marker(tmp_path):
    # once a supervisor writes markers, a legacy-looking line after one is not a start
    text = markers.attempt_start_line(1, at=T0) + start_block(1000, T0) + training(1, 200, 100, T0, 0.1)
    text += oom_traceback() + mimic("attempt 2 starting (a note, not the marker)", T0 + 60)
    assert markers.attempt_starts(text) == [0]
    assert read_progress(write(tmp_path / "run.log", text)).failure.startswith("CUDA out of memory")


def test_upgraded_run_old_attempt_then_new_marker(tmp_path):
    # launched before the marker existed, resumed after: the old start lines, then a marker
    text = _restart_log(False) + markers.attempt_start_line(2, at=T0 + 300)
    text += mimic("=== run1: attempt 2 (resume) starting, supervisor pid 2 ===", T0 + 300)
    starts = markers.attempt_starts(text)
    assert len(starts) == 2 and text[starts[-1]:].startswith("[mimic] ==> v1 attempt 2")
    assert read_progress(write(tmp_path / "run.log", text)).failure is None


# ------------------------------------------------------------------ LeRobot 0.6.1 logs (real)


def test_real_061_log():
    """0.6's step line (smp/s, the policy's sub-losses) read from a real log; the torchcodec
    tracebacks printed before the start are no failure."""
    text = LOG_061.read_text()
    assert "Traceback" in text.split("cfg.steps=")[0]  # the fixture keeps what a machine without FFmpeg logs
    p = read_progress(LOG_061)
    assert (p.step, p.total_steps, p.finished, p.failure) == (8, 8, True, None)
    assert p.loss == pytest.approx(76.457) and p.lr == pytest.approx(1e-5)
    assert p.samples_per_sec == 6.0 and p.sub_losses == {"l1_loss": 0.846, "kld_loss": 7.561}
    assert p.eval_loss is None and p.eval_loss_step is None and p.mem_gb is None and p.peak_mem_gb is None
    # the fields of one real step line: smp/s is its own field (not `s`), sub-losses are not step fields
    line = next(ln for ln in text.splitlines() if "step:6 " in ln)
    fields = F.step_fields(line, line.index("step:6"))
    assert fields["smp/s"] == "5" and "s" not in fields and fields["updt_s"] == "0.371"
    assert F.sub_losses(fields) == {"l1_loss": 0.972, "kld_loss": 7.376}


def test_real_061_eval_split_log(tmp_path):
    """`step N: eval_loss=X` (0.6 with --dataset.eval_split and --eval_steps): the last one of the attempt."""
    p = read_progress(LOG_061_EVAL)
    assert (p.step, p.finished, p.failure) == (8, True, None)
    assert p.eval_loss == pytest.approx(1.0495) and p.eval_loss_step == 8
    assert F.eval_losses(LOG_061_EVAL.read_text())[0][1:] == (2, pytest.approx(1.0404))
    # a log cut after step 4's eval line: the eval loss so far
    text = LOG_061_EVAL.read_text()
    at = text.index("step 4: eval_loss=")
    early = read_progress(write(tmp_path / "cut.log", text[: text.index("\n", at) + 1]))
    assert early.eval_loss == pytest.approx(1.0441) and early.eval_loss_step == 4 and not early.finished


def test_061_mem_gb_on_cuda(tmp_path):
    """On CUDA 0.6 logs `mem_gb:` (AverageMeter("mem_gb", ":.2f"), registered after smp/s, before the
    sub-losses): the real log with it added where lerobot_train.py puts it."""
    lines, gb = [], iter(["1.25", "3.50", "2.75", "2.80"])
    for ln in LOG_061.read_text().splitlines(keepends=True):
        if " smp/s:" in ln:
            head, _, rest = ln.partition(" smp/s:")
            value, _, subs = rest.partition(" ")
            ln = f"{head} smp/s:{value} mem_gb:{next(gb)} {subs}"
        lines.append(ln)
    p = read_progress(write(tmp_path / "cuda.log", "".join(lines)))
    assert p.mem_gb == 2.80 and p.peak_mem_gb == 3.50
    assert p.sub_losses == {"l1_loss": 0.846, "kld_loss": 7.561} and p.samples_per_sec == 6.0


def test_eval_loss_of_an_earlier_attempt_does_not_count(tmp_path):
    """An appended attempt (a resume) that has not evaluated yet shows no eval loss of the old one."""
    text = LOG_061_EVAL.read_text() + markers.attempt_start_line(2, at=T0) + start_block(20, T0, log_freq=2)
    p = read_progress(write(tmp_path / "two.log", text))
    assert p.started_count == 2 and p.eval_loss is None and not p.finished


def test_eval_loss_lines_are_exact_anchors(tmp_path):
    """With K-rounded step lines, an eval line's exact step counts as a checkpoint line does."""
    log_freq = 500
    text = start_block(5000, T0, log_freq=log_freq)
    text += step_line(1000, T0 + 1) + info("step 1000: eval_loss=0.5000", T0 + 1, where="ot_train.py:673")
    text += step_line(1500, T0 + 2)
    p = read_progress(write(tmp_path / "k.log", text))
    assert p.step == 1500 and not p.step_approx and p.eval_loss == 0.5 and p.eval_loss_step == 1000
    nan = F.eval_losses(info("step 7: eval_loss=nan", T0))[0][2]
    assert nan != nan  # lerobot_train.py formats a NaN loss `nan`: read as NaN, not skipped


def _finished_run(env: dict, name: str, log: Path) -> None:
    """A finished run's record whose log is `log` (copied), as the CLI reads it."""
    import shutil

    outputs = Path(env["MIMIC_OUTPUTS"])
    (outputs / "logs").mkdir(parents=True, exist_ok=True)
    shutil.copy(log, outputs / "logs" / f"{name}.log")
    (outputs / "runs" / name).mkdir(parents=True)
    (outputs / "runs" / name / "run.json").write_text(json.dumps({
        "schema": 1, "name": name, "state": "finished", "created_at": time.time() - 60, "ended_at": time.time(),
        "plan": {"name": name, "policy": "act", "group": "demo", "steps": 8, "save_freq": 4, "computer": "cpu",
                 "output_dir": str(outputs / "train" / name), "log_file": str(outputs / "logs" / f"{name}.log"),
                 "dataset": {}}}))


def test_status_shows_the_061_numbers(toolkit_env):
    """`status`: an EVAL LOSS column when a run logged one; --json: eval_loss, samples/s, GPU memory,
    sub-losses; `status NAME`: the losses and speed."""
    from conftest import run_cli

    _finished_run(toolkit_env, "act_split", LOG_061_EVAL)
    _finished_run(toolkit_env, "act_plain", LOG_061)
    rows = {r["name"]: r for r in json.loads(run_cli(toolkit_env, "status", "--json").stdout)}
    split, plain = rows["act_split"], rows["act_plain"]
    assert split["eval_loss"] == pytest.approx(1.0495) and split["eval_loss_step"] == 8
    assert plain["eval_loss"] is None and plain["samples_per_sec"] == 6.0
    assert plain["sub_losses"] == {"l1_loss": 0.846, "kld_loss": 7.561}
    assert plain["mem_gb"] is None and plain["peak_mem_gb"] is None  # a CPU run
    table = run_cli(toolkit_env, "status").stdout.splitlines()
    assert "EVAL LOSS" in table[0]
    assert "1.050" in next(ln for ln in table if ln.startswith("act_split"))
    detail = run_cli(toolkit_env, "status", "act_split").stdout
    assert "losses  loss 72.19, kld_loss 7.14, l1_loss 0.791; eval_loss 1.05 at step 8" in detail
    assert "speed   6 samples/s" in detail
    # no run logged an eval loss: no such column
    only_plain = run_cli(toolkit_env, "status", "act_plain").stdout
    assert "EVAL LOSS" not in only_plain and "8/8" in only_plain
