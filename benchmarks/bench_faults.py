"""Fault loop: launch, kill -9 at a random moment, status, stop, status; count what must never happen.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_faults.py [--cycles 30] [--seed S] [--lerobot-home DIR]

Each cycle launches one run of the fake trainer (tests/fake_trainer.py: plain, FAKE_CHILD=1, a
helper in its own session, or FAKE_HANG=1, a trainer that ignores SIGTERM) through
train_manager.sh, SIGKILLs its supervisor or its trainer at a random moment (or nothing), then
runs `status NAME --json`, `stop NAME` and `status NAME --json`, and counts:

  orphans       processes still carrying the run's marker once `stop` has returned
  wrong states  a state that is not a truthful one for what was done (see TRUTHFUL)
  tracebacks    "Traceback" on the stderr of any CLI call
  failed calls  a launch, status or stop that exited non-zero

It prints the counts, and a line for each thing that went wrong; exit status 1 if any count is
not zero. About 3 s a cycle on two cores. tests/test_faults_procs.py runs 5 cycles of it.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TRAIN_MANAGER = REPO / "mimic_deployment" / "train_manager.sh"
FAKE_TRAINER = REPO / "tests" / "fake_trainer.py"
UNSET = ("BATCH_SIZE", "NUM_WORKERS", "STEPS", "SAVE_FREQ", "COMPUTER", "DATASET_GROUP", "NUM_GPUS", "HF_ORG",
         "BASE_MODEL", "PUSH_TO_HUB", "WANDB_ENABLE", "LAUNCHER", "LEROBOT_TRAIN", "DATASET_GROUPS_FILE",
         "MIMIC_OUTPUTS", "HF_LEROBOT_HOME", "MIMIC_MERGED_HOME", "MIMIC_PROG", "MIMIC_LAB_FILE", "WANDB_API_KEY",
         "HF_TOKEN", "MIMIC_RUN_MARKER")
VARIANTS = {"plain": {}, "child": {"FAKE_CHILD": "1"}, "hang": {"FAKE_HANG": "1"}}
FAULTS = ("none", "supervisor", "trainer")
# The truthful end for what was done. A killed supervisor: `lost` once its processes are gone, or
# `stopped` when the trainer outlived it (FAKE_HANG ignores PDEATHSIG's SIGTERM) and `stop` ended it.
# A killed trainer (or prepare step): the supervisor records `failed`, or `stopped` when the stop
# came first. Between the kill and the stop, `status` may also still show the run queued or running.
TRUTHFUL = {"none": {"stopped"}, "supervisor": {"lost", "stopped"}, "trainer": {"failed", "stopped"}}
CALL_TIMEOUT = 60


def marked_pids(marker: str) -> list[int]:
    """Live (not zombie) processes whose environment carries the run's marker, read from /proc."""
    want = f"MIMIC_RUN_MARKER={marker}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                environ = f.read().split(b"\0")
            with open(f"/proc/{entry}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if want in environ and state not in (b"Z", b"X"):
            found.append(int(entry))
    return found


class Loop:
    def __init__(self, env: dict, seed: int):
        self.env, self.rng = env, random.Random(seed)
        self.counts = {"orphans": 0, "wrong states": 0, "tracebacks": 0, "failed calls": 0}
        self.problems: list[str] = []

    def problem(self, kind: str, what: str, n: int = 1) -> None:
        self.counts[kind] += n
        self.problems.append(f"{kind}: {what}")

    def cli(self, *args: str, **extra: str) -> subprocess.CompletedProcess:
        out = subprocess.run([str(TRAIN_MANAGER), *args], env={**self.env, **extra}, capture_output=True,
                             text=True, timeout=CALL_TIMEOUT, cwd=REPO)
        if "Traceback" in out.stderr:
            self.problem("tracebacks", f"{' '.join(args)}: {out.stderr.strip()[-300:]}")
        return out

    def record(self, name: str) -> dict:
        return json.loads((Path(self.env["MIMIC_OUTPUTS"]) / "runs" / name / "run.json").read_text())

    def state(self, name: str, when: str) -> str | None:
        out = self.cli("status", name, "--json")
        if out.returncode != 0:
            self.problem("failed calls", f"status {name} ({when}): {out.stderr.strip()}")
            return None
        return json.loads(out.stdout)[0]["state"]

    def cycle(self, i: int) -> str:
        variant, fault = self.rng.choice(sorted(VARIANTS)), self.rng.choice(FAULTS)
        what = f"cycle {i} ({variant}, kill {fault})"
        out = self.cli("--policy", "act", "--dataset-group", "one", "--steps", "2000", "--save-freq", "5",
                       "--tag", f"f{i}", FAKE_STEP_SECONDS="0.02", **VARIANTS[variant])
        names = [line.split()[1] for line in out.stdout.splitlines() if line.startswith("launched ")]
        if out.returncode != 0 or len(names) != 1:
            self.problem("failed calls", f"{what}: launch: {out.stderr.strip()}")
            return what
        name = names[0]
        marker = self.record(name)["marker"]
        self.kill(name, fault)
        time.sleep(self.rng.uniform(0, 0.5))
        mid = self.state(name, "after the kill")
        if mid is not None and mid not in TRUTHFUL[fault] | {"queued", "running"}:
            self.problem("wrong states", f"{what}: status after the kill says {mid}")
        out = self.cli("stop", name, "--timeout", "1")
        if out.returncode != 0:
            self.problem("failed calls", f"{what}: stop: {out.stdout.strip()} {out.stderr.strip()}")
        left = marked_pids(marker)
        if left:
            self.problem("orphans", f"{what}: PIDs {left} carry the marker after `stop`", len(left))
            for pid in left:  # the next cycles must not count them again
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        final = self.state(name, "after the stop")
        recorded = self.record(name)["state"]
        if final not in TRUTHFUL[fault] or recorded != final:
            self.problem("wrong states", f"{what}: ends {final} (recorded {recorded}), truthful: {TRUTHFUL[fault]}")
        return f"{what}: {mid} -> {out.stdout.strip()} -> {final}"

    def kill(self, name: str, fault: str) -> None:
        """SIGKILL the run's supervisor (any moment from its start) or trainer (once it has one)."""
        if fault == "none":
            time.sleep(self.rng.uniform(0, 2.0))
            return
        if fault == "supervisor":
            time.sleep(self.rng.uniform(0, 2.5))
            ident = self.record(name)["supervisor"]
        else:
            deadline = time.monotonic() + 15
            while not (ident := self.record(name).get("trainer")) and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(self.rng.uniform(0, 1.5))
            ident = self.record(name).get("trainer") or ident  # the prepare step, or the trainer after it
        if ident:
            try:
                os.kill(ident["pid"], signal.SIGKILL)
            except ProcessLookupError:
                pass


def make_env(work: Path, lerobot_home: Path | None) -> dict:
    if lerobot_home is None:
        lerobot_home = work / "lerobot_home"
        subprocess.run([sys.executable, "-c", "from mimic_deployment.datasets.demo import generate_demo; "
                        f"generate_demo({str(lerobot_home)!r})"], check=True, cwd=REPO, capture_output=True,
                       env={**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"})
    groups = work / "groups.yaml"
    groups.write_text("groups:\n  one: {datasets: [mimic-demo/demo_a], local: true}\n")
    env = {k: v for k, v in os.environ.items() if k not in UNSET}
    env.update({"MIMIC_OUTPUTS": str(work / "outputs"), "HF_LEROBOT_HOME": str(lerobot_home),
                "MIMIC_MERGED_HOME": str(work / "merged"), "HF_HOME": str(work / "hf_home"), "HF_HUB_OFFLINE": "1",
                "WANDB_MODE": "disabled", "PYTHONPATH": str(REPO), "DATASET_GROUPS_FILE": str(groups),
                "LEROBOT_TRAIN": str(FAKE_TRAINER)})
    return env


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=30)
    parser.add_argument("--seed", type=int, default=None, help="default: random (printed, to repeat a run)")
    parser.add_argument("--lerobot-home", type=Path, default=None,
                        help="a LeRobot home that already holds the demo datasets (default: generate them)")
    parser.add_argument("--verbose", action="store_true", help="a line per cycle")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench_faults_") as tmp:
        loop = Loop(make_env(Path(tmp), args.lerobot_home), seed)
        try:
            for i in range(args.cycles):
                line = loop.cycle(i)
                if args.verbose:
                    print(line, flush=True)
        finally:
            loop.cli("stop", "--all", "--timeout", "2")
    print(f"fault loop: {args.cycles} cycles in {time.monotonic() - start:.1f} s (seed {seed})")
    for kind, count in loop.counts.items():
        print(f"  {kind:<13} {count}")
    for line in loop.problems:
        print("  " + line)
    return 1 if any(loop.counts.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
