"""Benchmark: read_progress on a multi-GB LeRobot log vs. the cost of starting Python.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_progress.py [--size-gb 2] [--calls 50] [--keep-dir DIR]

Writes a real log (config dump + cfg.steps in the head, realistic step lines, a checkpoint line
and the tail of a running attempt) into a temp dir, times ``read_progress`` on it, and deletes it.
The file was just written, so reads come from the page cache (as for a live run's log).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

from mimic_deployment.logs.progress import read_progress

BS, FRAMES, EPISODES = 32, 1_500_000, 3_000
T0 = 1_800_000_000.0


def fmt_big(num: float) -> str:  # lerobot.utils.utils.format_big_number, precision 0
    for suffix in ("", "K", "M", "B", "T", "Q"):
        if abs(num) < 1000.0:
            return f"{num:.0f}{suffix}"
        num /= 1000.0
    return str(num)


def info(msg: str, t: float, where: str = "ot_train.py:435") -> str:
    return f"INFO {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(t))} {where[-15:]:>15} {msg}\n"


def step_line(step: int, t: float) -> str:
    samples = step * BS
    return info(
        f"step:{fmt_big(step)} smpl:{fmt_big(samples)} ep:{fmt_big(samples / (FRAMES / EPISODES))} "
        f"epch:{samples / FRAMES:.2f} loss:{0.05 + 1 / (1 + step / 1000):.3f} grdn:{12.5:.3f} "
        f"lr:{2.5e-5:0.1e} updt_s:{0.412:.3f} data_s:{0.013:.3f}",
        t,
    )


def write_log(path: str, size_bytes: int, total_steps: int = 3_000_000, log_freq: int = 10) -> int:
    head = info(
        "{'batch_size': 32,\n 'dataset': {'repo_id': 'lab/odin_all'},\n 'log_freq': 10,\n"
        " 'policy': {'type': 'pi05'},\n 'save_freq': 20000,\n 'steps': 3000000}",
        T0,
        "/x/lerobot/scripts/lerobot_train.py:197",
    )
    head += info("Track this run --> https://wandb.ai/lab/mimic/runs/bench01", T0, "/x/rl/wandb_utils.py:118")
    head += info(f"cfg.steps={total_steps} ({fmt_big(total_steps)})", T0, "ot_train.py:332")
    # One ~8 MiB block of step lines, written over and over (step numbers repeat; the file's
    # bytes are realistic, which is all the reader sees outside the head and tail).
    block_lines, step = [], 0
    size = 0
    while size < 8 * 1024 * 1024:
        step += log_freq
        block_lines.append(step_line(step, T0 + step * 0.4))
        size += len(block_lines[-1])
    block = "".join(block_lines).encode()
    with open(path, "wb", buffering=0) as f:
        f.write(head.encode())
        while f.tell() + len(block) < size_bytes:
            f.write(block)
        # the live tail: steps continuing past a checkpoint
        last = 2_000_000
        tail = [info("Checkpoint policy after step 1980000", T0 + 1_980_000 * 0.4, "ot_train.py:455")]
        tail += [step_line(s, T0 + s * 0.4) for s in range(1_980_010, last + 1, log_freq)]
        f.write("".join(tail).encode())
    return last


def median_ms(fn, n: int) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-gb", type=float, default=2.0)
    ap.add_argument("--calls", type=int, default=50)
    ap.add_argument("--python-runs", type=int, default=20)
    ap.add_argument("--keep-dir", help="write the log here instead of a temp dir")
    args = ap.parse_args()

    tmp = None if args.keep_dir else tempfile.TemporaryDirectory(prefix="bench_progress_")
    d = args.keep_dir or tmp.name
    path = os.path.join(d, "run.log")
    try:
        t = time.perf_counter()
        expected = write_log(path, int(args.size_gb * 1024**3))
        size = os.path.getsize(path)
        print(f"wrote {size / 1024**3:.2f} GiB log in {time.perf_counter() - t:.1f} s: {path}")

        p = read_progress(path)
        print(f"read_progress -> step={p.step} (approx={p.step_approx}, expected {expected}) "
              f"total={p.total_steps} steps/s={p.steps_per_sec and round(p.steps_per_sec, 2)} "
              f"eta={p.eta_seconds and round(p.eta_seconds)} s wandb={p.wandb_url}")
        ok = p.step == expected and not p.step_approx and p.total_steps == 3_000_000

        progress_ms = median_ms(lambda: read_progress(path), args.calls)
        env = dict(os.environ)
        python_ms = median_ms(lambda: subprocess.run([sys.executable, "-c", "pass"], check=True, env=env),
                              args.python_runs)
        import_ms = median_ms(
            lambda: subprocess.run([sys.executable, "-c", "import mimic_deployment.logs.progress"],
                                   check=True, env=env),
            max(5, args.python_runs // 2),
        )
        print(f"python -c pass: median {python_ms:.1f} ms ({args.python_runs} runs)")
        print(f"python -c 'import mimic_deployment.logs.progress': median {import_ms:.1f} ms")
        print(f"progress from a {size / 1024**3:.0f} GB log: median {progress_ms:.2f} ms "
              f"(target <= 50 ms) over {args.calls} calls: {'OK' if progress_ms <= 50 else 'SLOW'}")
        if not ok:
            print("WRONG RESULT: step/total do not match the log", file=sys.stderr)
            return 1
        return 0 if progress_ms <= 50 else 1
    finally:
        if os.path.exists(path):
            os.remove(path)
        if tmp is not None:
            tmp.cleanup()


if __name__ == "__main__":
    sys.exit(main())
