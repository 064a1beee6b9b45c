#!/usr/bin/env python3
"""`make gpu-check`: on an NVIDIA machine, a run through the toolkit trains as fast as its argv by hand.

Reads NVML (no GPU: one line, exit 2, nothing written), makes the video demo data in a work folder, and
for act, diffusion and smolvla (reduced): plans the run with the detected GPU (dry-run), trains it for
200 steps through the toolkit (a detached run, as a user launches one), then by hand with the same argv
and env, and prints the steps/s of both (target: within 2 %) and the peak GPU memory `status` showed
while it trained. Both speeds are timed the same way: the arrival of LeRobot's step lines in the log
(`--log_freq=10`), after a warm-up (the first fifth). Offline by default (HF_HUB_OFFLINE=1): nothing is downloaded.

  scripts/gpu_check.py [--steps N] [--policies act,diffusion,smolvla] [--workdir DIR] [--keep] [--online]
  scripts/gpu_check.py --cpu --steps 4 --policies act    # the same procedure on the CPU (to try the script)

Exit: 0 all within the target, 1 a run failed or a speed is off the target, 2 no GPU (or a usage error).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
TM = REPO / "mimic_deployment" / "train_manager.sh"
TARGET = 0.02  # toolkit vs by hand, relative
STEP_RE = re.compile(rb"step:(\d+) smpl:\S+ ep:\S+ epch:")  # logs.lerobot_format.STEP_RE, below 1000 steps


@dataclass(frozen=True)
class Case:
    """One policy of the check: the flags after `--` that make it trainable here (offline, reduced)."""

    policy: str
    lerobot_args: tuple[str, ...] = ()
    skip: str | None = None  # why it is not run (yet)
    prepare: object = None  # callable(workdir, env) -> extra env: local stand-ins for what comes from the Hub


def smolvla_stand_ins(workdir: Path, env: dict) -> dict:
    """tests/standins.py's tiny SmolVLM2 and smolvla_base in a fresh HF hub cache of the work folder (offline,
    the toolkit's code path is the real one: `--policy.path=lerobot/smolvla_base` resolves to them)."""
    hf_home = workdir / "hf_home"
    env = {k: v for k, v in env.items() if k not in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE")}
    env["HF_HOME"] = str(hf_home)
    out = subprocess.run([sys.executable, str(REPO / "tests" / "standins.py"), "smolvla", str(hf_home / "hub")],
                         env=env, capture_output=True, text=True, timeout=600, cwd=REPO)
    if out.returncode != 0:
        raise RuntimeError(f"smolvla stand-ins failed: {out.stderr.strip()[-500:]}")
    return {"HF_HOME": str(hf_home), "HF_HUB_CACHE": str(hf_home / "hub")}


CASES = {
    # Full size; ResNet18 from scratch (offline: no ImageNet download). 4 cameras, chunk 100.
    "act": Case("act", ("--policy.pretrained_backbone_weights=null",)),
    # Full size; the plan itself turns the ImageNet weights off and group norm on (same recipe on 0.4 and 0.6).
    "diffusion": Case("diffusion"),
    # Reduced (issue #10, helper E5's recipe: tests/test_smolvla_lerobot.py REDUCED and tests/standins.py): the
    # base's config with 64x64 images for the stand-in VLM's vision encoder and action chunks of 10.
    "smolvla": Case("smolvla", ("--policy.resize_imgs_with_padding=[64,64]", "--policy.chunk_size=10",
                                "--policy.n_action_steps=10"), prepare=smolvla_stand_ins),
}


@dataclass
class Timing:
    """When each step line arrived (monotonic seconds), read from a growing log file."""

    steps: list[tuple[int, float]] = field(default_factory=list)

    def steps_per_s(self, total: int) -> float | None:
        warm = max(2 * log_freq(total), total // 5)
        timed = [(s, t) for s, t in self.steps if s >= warm] or self.steps
        if len(timed) < 2 or timed[-1][1] <= timed[0][1]:
            return None
        return (timed[-1][0] - timed[0][0]) / (timed[-1][1] - timed[0][1])


def log_freq(steps: int) -> int:
    """A step line every 10 steps (200 steps: 20 timestamps), every step for a short try."""
    return max(1, min(10, steps // 20))


def follow(path: Path, done: threading.Event, timing: Timing, poll: float = 0.02) -> None:
    """Tail `path` until `done` is set, stamping each new step line when it is first seen."""
    offset, rest = 0, b""
    while True:
        finished = done.is_set()
        try:
            with open(path, "rb") as handle:
                handle.seek(offset)
                chunk = handle.read()
        except FileNotFoundError:
            chunk = b""
        now = time.monotonic()
        offset += len(chunk)
        data = rest + chunk
        cut = max(data.rfind(b"\n"), data.rfind(b"\r"))
        complete, rest = (data[:cut + 1], data[cut + 1:]) if cut >= 0 else (b"", data)
        for match in STEP_RE.finditer(complete):
            step = int(match.group(1))
            if not timing.steps or step > timing.steps[-1][0]:
                timing.steps.append((step, now))
        if finished:
            return
        time.sleep(poll)


def tm(env: dict, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(TM), *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO)


def fail(message: str, code: int = 1) -> int:
    print(f"error: gpu-check: {message}", file=sys.stderr, flush=True)
    return code


def status_row(env: dict, name: str) -> dict | None:
    out = tm(env, "status", name, "--json", timeout=60)
    rows = json.loads(out.stdout) if out.returncode == 0 and out.stdout.strip() else []
    return rows[0] if rows else None


def through_toolkit(env: dict, args: list[str], name: str, timeout: float) -> tuple[Timing, dict, float | None]:
    """Launch detached; time its log; poll status for the GPU memory. (timing, final row, peak GB seen)."""
    out = tm(env, *args)
    if out.returncode != 0:
        raise RuntimeError(f"launch of {name} refused: {out.stderr.strip()}")
    record = json.loads((Path(env["MIMIC_OUTPUTS"]) / "runs" / name / "run.json").read_text())
    timing, done = Timing(), threading.Event()
    reader = threading.Thread(target=follow, args=(Path(record["plan"]["log_file"]), done, timing), daemon=True)
    reader.start()
    peak, row, deadline = None, None, time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = status_row(env, name) or row
        if row and row.get("gpu_memory_gb") is not None:
            peak = max(peak or 0.0, float(row["gpu_memory_gb"]))
        if row and row["state"] not in ("queued", "running"):
            break
        time.sleep(2)
    else:
        tm(env, "stop", name)
        raise RuntimeError(f"{name} did not end within {timeout:.0f}s (stopped)")
    done.set()
    reader.join()
    if not row or row["state"] != "finished":
        raise RuntimeError(f"{name} ended {row and row['state']}: see {record['plan']['log_file']}")
    return timing, row, peak


def by_hand(env: dict, name: str, workdir: Path, timeout: float) -> Timing:
    """The recorded run's argv and env, as a person would paste them from the dry-run, into a new output_dir."""
    record = json.loads((Path(env["MIMIC_OUTPUTS"]) / "runs" / name / "run.json").read_text())
    output = workdir / "by-hand" / name
    argv = [f"--output_dir={output}" if a.startswith("--output_dir=") else a for a in record["plan"]["argv"]]
    hand_env = {**env, **record["plan"]["env"]}
    if record.get("cuda_visible_devices") is not None:
        hand_env["CUDA_VISIBLE_DEVICES"] = str(record["cuda_visible_devices"])
    log = workdir / "by-hand" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    timing, done = Timing(), threading.Event()
    reader = threading.Thread(target=follow, args=(log, done, timing), daemon=True)
    with open(log, "wb") as sink:
        proc = subprocess.Popen(argv, env=hand_env, stdout=sink, stderr=subprocess.STDOUT, cwd=workdir)
        reader.start()
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            code = -9
    done.set()
    reader.join()
    if code != 0:
        raise RuntimeError(f"{name} by hand exited with {code}: see {log}")
    return timing


def check_case(case: Case, env: dict, steps: int, tag: str, workdir: Path, cpu: bool, timeout: float) -> dict:
    args = ["--policy", case.policy, "--dataset-group", "demo", "--steps", str(steps), "--save-freq", str(steps),
            "--tag", tag, "--", *case.lerobot_args, f"--log_freq={log_freq(steps)}"]
    if case.prepare is not None:
        env = {**env, **(case.prepare(workdir, env) or {})}  # type: ignore[operator]
    dry = tm(env, *args[:args.index("--")], "--dry-run", "--json", *args[args.index("--"):])
    if dry.returncode != 0:
        raise RuntimeError(f"plan of {case.policy} refused: {dry.stderr.strip()}")
    plan = json.loads(dry.stdout)[0]
    if plan["device"] != "cuda" and not cpu:
        raise RuntimeError(f"{case.policy} was planned on {plan['device']} ({plan['computer_reason']})")
    print(f"{case.policy}: {plan['name']} on {plan['computer']} ({plan['gpu'] or 'CPU'}; "
          f"{plan['computer_reason']}), batch {plan['batch_size']}, {plan['num_workers']} workers, "
          f"{plan['num_gpus'] if plan['device'] == 'cuda' else 0} GPU(s), LeRobot {plan['engine'].get('version')}",
          flush=True)
    toolkit, row, peak = through_toolkit(env, args, plan["name"], timeout)
    hand = by_hand(env, plan["name"], workdir, timeout)
    return {"policy": case.policy, "name": plan["name"], "toolkit": toolkit.steps_per_s(steps),
            "by_hand": hand.steps_per_s(steps), "peak_gb": peak, "lerobot_peak_gb": row.get("peak_mem_gb")}


def report(results: list[dict]) -> bool:
    print(f"\n{'POLICY':10} {'TOOLKIT steps/s':>16} {'BY HAND steps/s':>16} {'DIFF':>8}  PEAK GPU MEM (status)")
    ok = True
    for r in results:
        if r.get("skip"):
            print(f"{r['policy']:10} skipped: {r['skip']}")
            continue
        if r.get("error"):
            ok = False
            print(f"{r['policy']:10} FAILED: {r['error']}")
            continue
        a, b = r["toolkit"], r["by_hand"]
        diff = (a - b) / b if a and b else None
        ok = ok and diff is not None and abs(diff) <= TARGET
        mem = f"{r['peak_gb']:.1f} GB" if r["peak_gb"] is not None else "-"
        if r["lerobot_peak_gb"] is not None:
            mem += f" (LeRobot's peak allocated {r['lerobot_peak_gb']:.1f} GB)"
        print(f"{r['policy']:10} {a or 0:16.2f} {b or 0:16.2f} "
              f"{f'{diff:+.1%}' if diff is not None else '?':>8}  {mem}")
    print(f"\ntarget: within {TARGET:.0%}: {'met' if ok else 'NOT met'}")
    return ok


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="gpu_check.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--policies", default=",".join(CASES))
    parser.add_argument("--workdir", help="where the data, runs and logs go (default: a new temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--online", action="store_true", help="let LeRobot reach the Hub (default: offline)")
    parser.add_argument("--cpu", action="store_true", help="run the procedure on the CPU (no NVML check)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per run")
    args = parser.parse_args(argv)
    unknown = [p for p in args.policies.split(",") if p not in CASES]
    if unknown:
        return fail(f"unknown policy {unknown[0]!r}: one of {', '.join(CASES)}", 2)
    from mimic_deployment.host.gpus import driver_present, read_gpus

    gpus = read_gpus()
    if not gpus and not args.cpu:
        why = "no NVIDIA driver" if not driver_present() else "the driver reports no device"
        return fail(f"NVML finds no NVIDIA GPU ({why}): run it on an NVIDIA machine", 2)
    for g in gpus:
        print(f"GPU {g.index}: {g.name}, {g.memory_gb:.0f} GiB, {g.used_gb:.1f} GiB in use", flush=True)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="mimic-gpu-check-")).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    # this checkout first, then whatever the caller had (a lab's fork of LeRobot, packages carried in)
    pythonpath = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "PYTHONPATH": pythonpath, "MIMIC_OUTPUTS": str(workdir / "outputs"),
           "HF_LEROBOT_HOME": str(workdir / "lerobot"), "MIMIC_MERGED_HOME": str(workdir / "merged"),
           "WANDB_MODE": os.environ.get("WANDB_MODE", "disabled")}
    if not args.online:
        env["HF_HUB_OFFLINE"] = "1"
    for var in ("LEROBOT_TRAIN", "BATCH_SIZE", "NUM_WORKERS", "STEPS", "SAVE_FREQ", "NUM_GPUS", "DATASET_GROUP",
                "DATASET_GROUPS_FILE"):
        env.pop(var, None)  # the check plans as the toolkit does by default on this machine
    print(f"work folder: {workdir}", flush=True)
    made = subprocess.run([sys.executable, "-m", "mimic_deployment", "datasets", "demo", "--root",
                           env["HF_LEROBOT_HOME"]], env=env, capture_output=True, text=True, cwd=REPO)
    if made.returncode != 0:
        return fail(f"the demo data could not be made: {made.stderr.strip()[-500:]}")
    tag = time.strftime("gpucheck-%Y%m%d-%H%M%S")
    results = []
    for policy in args.policies.split(","):
        case = CASES[policy]
        if case.skip:
            results.append({"policy": policy, "skip": case.skip})
            continue
        try:
            results.append(check_case(case, env, args.steps, tag, workdir, args.cpu, args.timeout))
        except (RuntimeError, subprocess.TimeoutExpired, OSError, ValueError) as exc:
            results.append({"policy": policy, "error": str(exc)})
        print(f"  -> {json.dumps(results[-1])}", flush=True)  # each result as it comes: a cut-off check keeps them
    ok = report(results)
    if not args.keep and not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
