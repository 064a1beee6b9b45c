"""CPU seconds per training step of ACT and diffusion through the toolkit, under the pinned torch (2.10, the
main env) and under torch 2.11 (what LeRobot 0.6.1 would install), in one run: the figure behind the pin.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_engine.py [--steps N] [--policies act,diffusion] [--no-build]

The torch 2.11 env is a sibling of the main one under the env home (MIMIC_ENV_HOME, else
~/.cache/mimic-deployment): built once, on first use, as `uv pip sync locks/main.txt` then torch 2.11 with
its matching torchvision and torchcodec from PyPI (the same source as the pinned torch), and reused. Each
(policy, torch) trains the video demo through `train_manager.sh --foreground` with LEROBOT_TRAIN at that
env's lerobot-train, at the policy's default size (batch 2, no ImageNet download); a run's figure is the
median of LeRobot's own per-step time (`updt_s` + `data_s`, every step logged) after two warm-up steps.
With --repeat R the two torches take turns R times and the best run of each counts (a busy machine
only ever slows a run down). A plain resnet18 training loop in each env is timed first, the same way.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
TM = REPO / "mimic_deployment" / "train_manager.sh"
OTHER_TORCH = ("torch==2.11.*", "torchvision==0.26.*", "torchcodec==0.11.*")  # the builds made for each other
WARMUP = 2
# Default-size policies; only what keeps them offline (no ImageNet weights) and logs every step.
POLICY_ARGS = {"act": ["--policy.pretrained_backbone_weights=null"], "diffusion": []}
STEP_LINE = re.compile(r"step:(\d+) smpl:\S+ ep:\S+ epch:\S+ .*?updt_s:([\d.]+) data_s:([\d.]+)")


def _ensure_env_module():
    spec = importlib.util.spec_from_file_location("ensure_env", REPO / "scripts" / "ensure_env.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules["ensure_env"] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def torch_version(python: Path) -> str:
    out = subprocess.run([str(python), "-c", "import importlib.metadata as m; print(m.version('torch'))"],
                         capture_output=True, text=True, timeout=120)
    return out.stdout.strip() or "?"


def other_torch_env(build: bool) -> Path | None:
    """The sibling env with torch 2.11 (built here when missing and `build`), or None."""
    ee = _ensure_env_module()
    spec = ee.ENVS["main"]
    digest = hashlib.sha256(spec.lock.read_bytes() + " ".join(OTHER_TORCH).encode()).hexdigest()[:12]
    env = ee.env_home() / "envs" / f"bench-torch2.11-py{spec.python}-{digest}"
    marker = env / ee.COMPLETE_MARKER
    if marker.exists():
        return env
    if not build:
        return None
    env.parent.mkdir(parents=True, exist_ok=True)
    with ee._locked(env.parent / f"{env.name}.lock"):
        if not marker.exists():
            print(f"building the torch 2.11 env (once): {env}", flush=True)
            if env.exists():
                import shutil

                shutil.rmtree(env)
            ee.run([ee.find_python(spec.python), "-m", "venv", str(env)])
            python = str(env / "bin" / "python")
            ee.run([ee.uv(), "pip", "sync", "--quiet", "--python", python, str(spec.lock)])
            ee.run([ee.uv(), "pip", "install", "--quiet", "--python", python, *OTHER_TORCH])
            marker.write_text(json.dumps({"lock": spec.lock.name, "torch": OTHER_TORCH}) + "\n")
    return env


RESNET = """
import time, torch, torchvision
torch.manual_seed(0)
m, x = torchvision.models.resnet18(), torch.randn(8, 3, 160, 160)
opt = torch.optim.SGD(m.parameters(), lr=0.01)
times = []
for i in range(6):
    t = time.perf_counter(); opt.zero_grad(); m(x).sum().backward(); opt.step(); times.append(time.perf_counter() - t)
print(min(times[1:]))
"""


def resnet_seconds(python: Path) -> float:
    """Best of five resnet18 training steps (batch 8, 160x160), after one warm-up."""
    out = subprocess.run([str(python), "-c", RESNET], capture_output=True, text=True, timeout=1800)
    return float(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else float("nan")


def make_demo(home: Path, env: dict) -> None:
    subprocess.run([sys.executable, "-m", "mimic_deployment", "datasets", "demo", "--root", str(home)],
                   env=env, cwd=REPO, check=True, capture_output=True)


def step_seconds(log: str) -> list[float]:
    """LeRobot's own time of each logged step (update + data), in step order."""
    seen: dict[int, float] = {}
    for m in STEP_LINE.finditer(log):
        seen[int(m.group(1))] = float(m.group(2)) + float(m.group(3))
    return [seen[s] for s in sorted(seen)]


def train(env: dict, policy: str, lerobot_train: Path, steps: int, tag: str) -> tuple[float, float]:
    """(median s/step after warm-up, wall seconds of the whole run) of one foreground run."""
    args = ["--policy", policy, "--dataset-group", "demo", "--steps", str(steps), "--save-freq", str(steps),
            "--batch-size", "2", "--num-workers", "0", "--tag", tag, "--foreground",
            "--", *POLICY_ARGS[policy], "--log_freq=1"]
    start = time.perf_counter()
    out = subprocess.run([str(TM), *args], env={**env, "LEROBOT_TRAIN": str(lerobot_train)}, cwd=REPO,
                         capture_output=True, text=True, timeout=3600)
    wall = time.perf_counter() - start
    name = f"{policy}_cpu_demo_{tag}"
    log_file = Path(env["MIMIC_OUTPUTS"]) / "logs" / f"{name}.log"
    log = log_file.read_text(errors="replace") if log_file.exists() else out.stdout + out.stderr
    times = step_seconds(log)[WARMUP:]
    if out.returncode != 0 or not times:
        raise RuntimeError(f"{name} failed (exit {out.returncode}); log tail:\n{log[-2000:]}")
    return statistics.median(times), wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=8, help="steps per run (the first two are warm-up)")
    parser.add_argument("--policies", default="act,diffusion")
    parser.add_argument("--no-build", action="store_true", help="skip torch 2.11 when its env is not built yet")
    parser.add_argument("--repeat", type=int, default=1, help="take turns this many times; the best run counts")
    args = parser.parse_args()
    policies = [p for p in args.policies.split(",") if p]
    unknown = [p for p in policies if p not in POLICY_ARGS]
    if unknown or args.steps <= WARMUP:
        print(f"error: policies are {', '.join(POLICY_ARGS)}; --steps must be > {WARMUP}", file=sys.stderr)
        return 2
    envs = [Path(sys.prefix)]
    other = other_torch_env(build=not args.no_build)
    if other is None:
        print("torch 2.11 env not built (--no-build): only the pinned torch is measured", flush=True)
    else:
        envs.append(other)
    with tempfile.TemporaryDirectory(prefix="bench-engine-") as tmp:
        base = {k: v for k, v in os.environ.items() if k not in ("COMPUTER", "BATCH_SIZE", "NUM_WORKERS", "STEPS",
                                                                  "SAVE_FREQ", "DATASET_GROUPS_FILE", "LEROBOT_TRAIN")}
        base.update({"PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled",
                     "MIMIC_OUTPUTS": f"{tmp}/outputs", "HF_LEROBOT_HOME": f"{tmp}/lerobot",
                     "MIMIC_MERGED_HOME": f"{tmp}/merged"})
        make_demo(Path(tmp) / "lerobot", base)
        versions = [torch_version(e / "bin" / "python") for e in envs]
        print(f"CPU: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start; "
              f"{args.steps} steps per run, batch 2, the video demo (4 cameras 48x64)", flush=True)
        rows = [("resnet18", [min(resnet_seconds(e / "bin" / "python") for _ in range(args.repeat)) for e in envs])]
        print("  resnet18 loop: " + ", ".join(f"torch {v} {f:.2f} s/step" for v, f in zip(versions, rows[0][1])),
              flush=True)
        for policy in policies:
            figures = [float("inf")] * len(envs)
            for turn in range(args.repeat):
                for i, (env_dir, version) in enumerate(zip(envs, versions)):
                    tag = f"t{version.replace('.', '').replace('+', '')}-{turn}-{time.strftime('%H%M%S')}"
                    per_step, wall = train(base, policy, env_dir / "bin" / "lerobot-train", args.steps, tag)
                    figures[i] = min(figures[i], per_step)
                    print(f"  {policy:10} torch {version:14} {per_step:7.2f} s/step  (run {wall:.0f} s wall, "
                          f"load {os.getloadavg()[0]:.1f})", flush=True)
            rows.append((policy, figures))
    print(f"\n{'POLICY':10} " + " ".join(f"{'torch ' + v:>22}" for v in versions) +
          ("   RATIO" if len(versions) > 1 else ""))
    for policy, figures in rows:
        ratio = f"   {figures[1] / figures[0]:.1f}x" if len(figures) > 1 and figures[0] > 0 else ""
        print(f"{policy:10} " + " ".join(f"{f'{v:.2f} s/step':>22}" for v in figures) + ratio)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
