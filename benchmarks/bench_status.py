"""Benchmark: `status` over 1,000 recorded runs, as a real process, vs. the cost of starting Python.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_status.py [--runs 1000] [--repeat 11] [--keep-dir DIR] [--profile]

Builds a temp MIMIC_OUTPUTS holding realistic records (plans from a real --dry-run of a 20-dataset
group on a GPU machine profile): mostly ended runs with their stored progress, plus runs that
are `running` under a LIVE supervisor identity (a sleeping process this script starts, so they
stay running on every pass instead of being judged lost once), with a real multi-MB log and a
checkpoint each, and a few `queued` runs waiting in a live queue. Then it times (median wall of
`--repeat` subprocess calls) `python -m mimic_deployment status --all --json`, `status` and
`python -c pass`. Target: status <= 300 ms median.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from mimic_deployment.logs.progress import Progress  # noqa: E402
from mimic_deployment.util.atomic import atomic_write_json  # noqa: E402

TARGET_MS = 300
DAY = 86400.0


def plan_template(env: dict) -> dict:
    """A real plan (xvla on a 20-dataset group, GPU machine profile) from the CLI's dry run."""
    out = subprocess.run([sys.executable, "-m", "mimic_deployment", "--policy", "xvla", "--dataset-group", "drift",
                          "--computer", "odin", "--dry-run", "--json"], env=env, capture_output=True, text=True,
                         cwd=REPO)
    if out.returncode != 0:
        raise SystemExit(f"dry run failed: {out.stderr.strip()}")
    return json.loads(out.stdout)[0]


def replace_name(obj, old: str, new: str):
    if isinstance(obj, str):
        return obj.replace(old, new)
    if isinstance(obj, list):
        return [replace_name(v, old, new) for v in obj]
    if isinstance(obj, dict):
        return {k: replace_name(v, old, new) for k, v in obj.items()}
    return obj


def step_line(step: int, t: float, steps: int) -> str:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))
    return (f"INFO {stamp} ot_train.py:435 step:{step} smpl:{step * 32} ep:{step // 50} epch:{step / 5000:.2f} "
            f"loss:{max(0.01, 5 * (1 - step / steps)):.3f} grdn:12.345 lr:1.0e-04 updt_s:0.250 data_s:0.010\n")


def write_running_log(path: Path, name: str, steps: int, at_step: int, now: float, size_mb: float) -> None:
    """A log as a live run has it: supervisor header, config dump, cfg.steps, W&B link, then step
    lines (log_freq 200) and checkpoint lines up to `at_step`, padded with warnings to `size_mb`."""
    lines = [f"[mimic] 2026-11-20 10:00:00 === {name}: attempt 1 (train) starting, supervisor pid 1 ===\n",
             f"INFO 2026-11-20 10:00:05 ot_train.py:197 {{'batch_size': 32, 'log_freq': 200, 'steps': {steps}}}\n",
             f"INFO 2026-11-20 10:00:05 ot_train.py:203 cfg.steps={steps} ({steps // 1000}K)\n",
             f"wandb: Track this run --> https://wandb.ai/mimic/lerobot/runs/{name}\n"]
    n_lines = max(1, at_step // 200)
    warn = "WARNING 2026-11-20 10:00:06 warnings.py:110 UserWarning: something noisy happened in a dataloader\n"
    pad_per_step = max(0, int(size_mb * 1e6 / n_lines) // len(warn) - 1)
    for i in range(1, n_lines + 1):
        step = i * 200
        lines.append(step_line(step, now - (at_step - step) * 0.26, steps))
        lines.append(warn * pad_per_step)
        if step % 5000 == 0:
            lines.append(f"INFO 2026-11-20 10:00:07 ot_train.py:300 Checkpoint policy after step {step}\n")
    path.write_text("".join(lines))


def write_checkpoint(output_dir: Path, step: int) -> None:
    ck = output_dir / "checkpoints" / f"{step:06d}"
    (ck / "pretrained_model").mkdir(parents=True, exist_ok=True)
    (ck / "training_state").mkdir(parents=True, exist_ok=True)
    (ck / "pretrained_model" / "train_config.json").write_text("{}")
    (ck / "training_state" / "training_step.json").write_text(json.dumps({"step": step}))
    (output_dir / "checkpoints" / "last").symlink_to(f"{step:06d}")


def build(outputs: Path, n: int, template: dict, sleeper_ident: dict, seed: int = 0) -> dict[str, int]:
    rng = random.Random(seed)
    now = time.time()
    counts: dict[str, int] = {}
    n_running = max(1, n // 50)  # 20 of 1000
    n_queued = max(1, n // 100)  # 10 of 1000
    host = socket.gethostname()
    queue_ident = {**sleeper_ident, "position": 0, "size": n_queued, "log": str(outputs / "logs" / "queue_x.log")}
    for d in ("runs", "logs", "train"):
        (outputs / d).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        name = f"{template['policy']}_{template['computer']}_{template['group']}_b{i:04d}"
        plan = replace_name(template, template["name"], name)
        plan = replace_name(plan, str(Path(template["log_file"]).parent.parent), str(outputs))
        steps = rng.choice([30000, 50000, 100000])
        plan["steps"] = steps
        if i < n_running:
            state = "running"
        elif i < n_running + n_queued:
            state = "queued"
        else:
            state = rng.choices(["finished", "failed", "stopped", "lost"], [90, 5, 3, 2])[0]
        counts[state] = counts.get(state, 0) + 1
        created = now - (rng.uniform(0, 600) if state in ("running", "queued") else rng.uniform(0, 60 * DAY))
        started = created + rng.uniform(1, 30)
        step = steps if state == "finished" else rng.randrange(1000, steps)
        record = {
            "schema": 1, "name": name, "created_at": round(created, 3), "updated_at": round(started, 3),
            "host": host, "restarts": 0, "state": state, "launcher": "local", "plan": plan,
            "marker": f"{name}:{uuid.uuid4().hex[:12]}", "max_restarts": 0, "toolkit_commit": "0123456789ab",
            "lerobot_version": "0.4.4", "gpus": [], "cuda_visible_devices": "0", "wait_for_gpus": False,
            "attempts": [{"kind": "train", "argv": plan["argv"], "queued_at": round(created, 3)}],
            "stop_requested": state == "stopped", "supervisor": None, "trainer": None,
            "started_at": None, "ended_at": None, "exit_code": None, "reason": None,
        }
        log = Path(plan["log_file"])
        if state == "queued":
            record["queue"] = {**queue_ident, "position": i - n_running}
        elif state == "running":
            record.update(started_at=round(started, 3), supervisor=dict(sleeper_ident), trainer=dict(sleeper_ident))
            at = rng.randrange(5000, steps - 5000) // 200 * 200
            write_running_log(log, name, steps, at, now, size_mb=rng.choice([1, 2, 5]))
            write_checkpoint(Path(plan["output_dir"]), at // 5000 * 5000)
        else:
            ended = started + rng.uniform(600, 2 * DAY)
            code = {"finished": 0, "failed": 1, "stopped": -15, "lost": None}[state]
            reason = {"finished": None, "failed": "crashed: RuntimeError: CUDA error: an illegal memory access",
                      "stopped": "stopped by SIGTERM", "lost": "its processes are gone without a recorded end"}[state]
            progress = Progress(step=step, total_steps=steps, loss=round(rng.uniform(0.01, 1), 3), lr=1e-4,
                                last_step_time=ended, steps_per_sec=3.9, eta_seconds=None,
                                checkpoint_step=step // 5000 * 5000, finished=state == "finished",
                                failure=reason if state == "failed" else None,
                                wandb_url=f"https://wandb.ai/mimic/lerobot/runs/{name}", started_count=1)
            record.update(started_at=round(started, 3), ended_at=round(ended, 3), exit_code=code, reason=reason,
                          progress=progress.to_dict(),  # lost too: `status` stores it when it judges
                          wandb_url=progress.wandb_url,
                          supervisor={"pid": 10 ** 6 + i, "create_time": started},
                          trainer={"pid": 10 ** 6 + n + i, "create_time": started + 1})
            log.write_text(f"[mimic] === {name}: attempt 1 (train) starting ===\n" + step_line(step, ended, steps))
        rd = outputs / "runs" / name
        rd.mkdir()
        (rd / ".lock").touch()
        atomic_write_json(rd / "run.json", record)
    return counts


def timed(argv: list[str], env: dict, repeat: int) -> tuple[float, list[float], subprocess.CompletedProcess]:
    walls, out = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        out = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=REPO)
        walls.append((time.perf_counter() - start) * 1000)
        if out.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed: {out.stderr.strip()}")
    return statistics.median(walls), walls, out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=11)
    ap.add_argument("--keep-dir", help="build the outputs here and keep them (default: a temp dir, deleted)")
    ap.add_argument("--profile", action="store_true", help="also print a cProfile of one `status --all --json`")
    args = ap.parse_args()

    tmp = Path(args.keep_dir or tempfile.mkdtemp(prefix="bench_status_"))
    outputs = tmp / "outputs"
    if outputs.exists():
        shutil.rmtree(outputs)
    env = {k: v for k, v in os.environ.items()
           if k not in ("COMPUTER", "DATASET_GROUP", "LEROBOT_TRAIN", "PYTHONDONTWRITEBYTECODE")}
    # bytecode cached as in normal use (a sandbox may set PYTHONDONTWRITEBYTECODE), kept out of the repo
    env.update(PYTHONPYCACHEPREFIX=str(tmp / "pycache"), PYTHONPATH=str(REPO), MIMIC_OUTPUTS=str(outputs),
               HF_HUB_OFFLINE="1", HF_HOME=str(tmp / "hf"), HF_LEROBOT_HOME=str(tmp / "lerobot"),
               MIMIC_MERGED_HOME=str(tmp / "merged"))
    sleeper = subprocess.Popen(["sleep", "3600"])  # the live "supervisor" of the running runs
    try:
        import psutil

        ident = {"pid": sleeper.pid, "create_time": psutil.Process(sleeper.pid).create_time()}
        t0 = time.perf_counter()
        counts = build(outputs, args.runs, plan_template(env), ident)
        size = sum(f.stat().st_size for f in (outputs / "logs").iterdir()) / 1e6
        print(f"built {args.runs} records in {time.perf_counter() - t0:.1f}s: "
              + ", ".join(f"{v} {k}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))
              + f"; logs {size:.0f} MB")
        py = [sys.executable]
        status = py + ["-m", "mimic_deployment", "status"]
        empty_env = {**env, "MIMIC_OUTPUTS": str(tmp / "empty_outputs")}
        cases = [("python -c pass", py + ["-c", "pass"], env),
                 ("status, no runs", status + ["--all", "--json"], empty_env),  # the CLI's own floor: imports
                 ("status --all --json", status + ["--all", "--json"], env),
                 ("status", status, env)]
        subprocess.run(status + ["--all", "--json"], env=env, capture_output=True, cwd=REPO)  # warm caches
        results = {}
        for label, argv, case_env in cases:
            median, walls, out = timed(argv, case_env, args.repeat)
            results[label] = median
            extra = ""
            if label == "status --all --json":
                rows = json.loads(out.stdout)
                states = {}
                for r in rows:
                    states[r["state"]] = states.get(r["state"], 0) + 1
                extra = f"  ({len(rows)} rows: {states})"
            elif label == "status":
                extra = f"  ({len(out.stdout.splitlines())} lines)"
            print(f"{label:<22} median {median:7.1f} ms   min {min(walls):7.1f}   max {max(walls):7.1f}{extra}")
        if args.profile:
            prof = subprocess.run(py + ["-m", "cProfile", "-s", "tottime", "-m", "mimic_deployment", "status", "--all",
                                        "--json"], env=env, capture_output=True, text=True, cwd=REPO)
            print(prof.stdout[prof.stdout.index("   Ordered by"):][:4000])
            imports = subprocess.run(py + ["-X", "importtime", "-m", "mimic_deployment", "status", "--all", "--json"],
                                     env=env, capture_output=True, text=True, cwd=REPO).stderr.splitlines()
            timings = [ln for ln in imports if ln.startswith("import time:") and "|" in ln and "cumulative" not in ln]
            top = sorted(timings, key=lambda ln: -int(ln.split("|")[1]))[:8]
            print("slowest imports (cumulative us):\n" + "\n".join(top))
        worst = max(results["status --all --json"], results["status"])
        verdict = "OK" if worst <= TARGET_MS else "MISSED"
        print(f"target: status <= {TARGET_MS} ms median -> {verdict} (worst {worst:.1f} ms, "
              f"{worst - results['python -c pass']:.1f} ms above a bare Python start)")
        return 0 if verdict == "OK" else 1
    finally:
        sleeper.kill()
        sleeper.wait()
        if not args.keep_dir:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
