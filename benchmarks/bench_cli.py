"""Wall time of the CLI's fast path, against the same interpreter's bare start.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_cli.py [--runs N] [--target-ms MS]

Each command runs N times as a fresh process (median reported), with COMPUTER unset so machine
detection (hostname, then NVML) is part of the cost. Then each is run once more under
`-X importtime` to show that none imports torch, lerobot or numpy, and what its slowest imports are.
Exit status 1 if a figure misses the target or a heavy module is imported.
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
POLICIES = "act,xvla,pi05,pi0,groot,diffusion"
COMMANDS = [
    ("python -c pass", ["-c", "pass"]),
    ("--list-groups", ["-m", "mimic_deployment", "--list-groups"]),
    ("--list-policies", ["-m", "mimic_deployment", "--list-policies"]),
    ("--dry-run 6 policies x 2 groups", ["-m", "mimic_deployment", "--policy", POLICIES,
                                         "--dataset-group", "high_quality,demo", "--dry-run"]),
]
HEAVY = ("torch", "lerobot", "numpy")
UNSET = ("COMPUTER", "BATCH_SIZE", "NUM_WORKERS", "STEPS", "SAVE_FREQ", "DATASET_GROUP", "NUM_GPUS", "HF_ORG",
         "DATASET_GROUPS_FILE", "LAUNCHER")


def bench_env(outputs: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in UNSET}
    env.update({"PYTHONPATH": str(REPO), "MIMIC_OUTPUTS": outputs, "HF_HUB_OFFLINE": "1"})
    return env


def time_once(args: list[str], env: dict) -> tuple[float, float]:
    """(wall, CPU user+sys) seconds of one run. CPU time is less sensitive to a busy machine."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run([sys.executable, *args], env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({result.returncode}): {result.stderr.strip()[-500:]}")
    return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def importtime(args: list[str], env: dict) -> list[tuple[int, int, str]]:
    """(self us, cumulative us, module) for every import of one run."""
    result = subprocess.run([sys.executable, "-X", "importtime", *args], env=env, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    rows = []
    for line in result.stderr.splitlines():
        if not line.startswith("import time:"):
            continue
        parts = [p.strip() for p in line[len("import time:"):].split("|")]
        if len(parts) == 3 and parts[0].isdigit():
            rows.append((int(parts[0]), int(parts[1]), parts[2].strip()))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--target-ms", type=float, default=150.0)
    parser.add_argument("--top", type=int, default=8, help="slowest imports shown per command")
    args = parser.parse_args()

    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        env = bench_env(str(Path(tmp) / "outputs"))
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(f"interpreter {sys.executable}  runs {args.runs}  cpus {os.cpu_count()}  load {load:.1f}  "
              f"PYTHONDONTWRITEBYTECODE={os.environ.get('PYTHONDONTWRITEBYTECODE', '')}")
        print(f"{'command':34} {'median':>7} {'min':>7} {'max':>7} {'cpu':>7}  target (median wall)")
        for label, cmd in COMMANDS:
            time_once(cmd, env)  # warm the file cache
            runs = [time_once(cmd, env) for _ in range(args.runs)]
            walls = [w * 1000 for w, _ in runs]
            median, cpu = statistics.median(walls), statistics.median(c * 1000 for _, c in runs)
            verdict = "PASS" if median <= args.target_ms else "FAIL"
            failed |= verdict == "FAIL"
            print(f"{label:34} {median:5.0f}ms {min(walls):5.0f}ms {max(walls):5.0f}ms {cpu:5.0f}ms"
                  f"  <= {args.target_ms:.0f}ms {verdict}")

        print("\nimports (-X importtime, one run each):")
        for label, cmd in COMMANDS[1:]:
            rows = importtime(cmd, env)
            heavy = sorted({m for _, _, m in rows if m.split(".")[0] in HEAVY})
            total = sum(s for s, _, _ in rows) / 1000
            failed |= bool(heavy) or not rows
            state = "FAIL: imports " + ", ".join(heavy) if heavy else "PASS: no torch/lerobot/numpy"
            print(f"  {label:34} {len(rows):4d} modules, {total:5.0f}ms in imports  {state}")
            top = sorted(rows, key=lambda r: -r[0])[: args.top]
            print("    slowest (self): " + ", ".join(f"{m} {s / 1000:.1f}ms" for s, _, m in top))
        created = list((Path(tmp) / "outputs").rglob("*")) if (Path(tmp) / "outputs").exists() else []
        if created:
            failed = True
            print(f"FAIL: the fast path wrote {len(created)} file(s) under MIMIC_OUTPUTS")
    print("\nRESULT:", "FAIL" if failed else "PASS")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
