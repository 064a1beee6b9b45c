"""Shared fixtures: every test gets its own outputs/, LeRobot home and merge cache (env vars),
and runs the real entry points as real processes."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TRAIN_MANAGER = REPO / "mimic_deployment" / "train_manager.sh"
FAKE_TRAINER = REPO / "tests" / "fake_trainer.py"
LAB_GROUPS = REPO / "tests" / "fixtures" / "lab-groups"

# Env vars of the toolkit that a developer's shell may have set: tests start from none of them. Every
# setting of the train, robot-evaluation and Slurm tables is added below, so a new setting is never missed.
TOOLKIT_VARS = ("BATCH_SIZE", "NUM_WORKERS", "STEPS", "SAVE_FREQ", "COMPUTER", "DATASET_GROUP", "NUM_GPUS",
                "HF_ORG", "BASE_MODEL", "PUSH_TO_HUB", "WANDB_ENABLE", "LAUNCHER", "LEROBOT_TRAIN",
                "EVAL_SPLIT", "EVAL_STEPS", "PUSH_CHECKPOINTS", "LEROBOT_ROLLOUT", "LEROBOT_RECORD",
                "DATASET_GROUPS_FILE", "MIMIC_OUTPUTS", "HF_LEROBOT_HOME", "MIMIC_MERGED_HOME", "MIMIC_PROG",
                "MIMIC_LAB_FILE", "WANDB_API_KEY", "WANDB_MODE", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")


def _setting_vars() -> tuple[str, ...]:
    from mimic_deployment.config.slurm import SETTINGS
    from mimic_deployment.planning.settings import ROBOT, TRAIN

    return tuple(s.env for table in (TRAIN, ROBOT, SETTINGS) for s in table.values() if s.env)


TOOLKIT_VARS = tuple(dict.fromkeys(TOOLKIT_VARS + _setting_vars()))


@pytest.fixture(scope="session")
def engine04() -> Path:
    """The LeRobot 0.4.4 environment (`make test` builds it): its root, holding bin/lerobot-train and
    bin/python. Skips, with the reason, where it is not built."""
    found = subprocess.run([sys.executable, str(REPO / "scripts" / "ensure_env.py"), "--find", "lerobot-0.4"],
                           capture_output=True, text=True, timeout=60)
    path = Path(found.stdout.strip()) if found.returncode == 0 and found.stdout.strip() else None
    if path is None or not (path / "bin" / "lerobot-train").exists():
        pytest.skip("the LeRobot 0.4.4 environment is not built (`make env-lerobot-0.4` builds it)"
                    + (f": {found.stderr.strip().splitlines()[-1]}" if found.stderr.strip() else ""))
    return path


@pytest.fixture(scope="session")
def demo_home(tmp_path_factory) -> Path:
    """A LeRobot home holding the two demo datasets (generated once per test session)."""
    home = tmp_path_factory.mktemp("lerobot_home")
    subprocess.run([sys.executable, "-c", "from mimic_deployment.datasets.demo import generate_demo; "
                    f"generate_demo({str(home)!r})"], check=True, cwd=REPO, capture_output=True,
                   env={**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"})
    return home


@pytest.fixture
def toolkit_env(tmp_path, monkeypatch) -> dict:
    """A clean environment for the CLI: its own outputs, LeRobot home and merge cache, offline."""
    for var in TOOLKIT_VARS:
        monkeypatch.delenv(var, raising=False)
    env = {k: v for k, v in os.environ.items() if k not in TOOLKIT_VARS}
    env.update({
        "MIMIC_OUTPUTS": str(tmp_path / "outputs"), "HF_LEROBOT_HOME": str(tmp_path / "lerobot_home"),
        "MIMIC_MERGED_HOME": str(tmp_path / "merged"), "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled",
        "HF_HOME": str(tmp_path / "hf_home"), "PYTHONPATH": str(REPO),
    })
    for key in ("MIMIC_OUTPUTS", "HF_LEROBOT_HOME", "MIMIC_MERGED_HOME", "HF_HUB_OFFLINE", "HF_HOME"):
        monkeypatch.setenv(key, env[key])
    return env


@pytest.fixture
def demo_env(toolkit_env, demo_home, tmp_path) -> dict:
    """toolkit_env + the demo datasets + a groups file with a one-dataset group `one` and `demo`,
    and the fake trainer in place of lerobot-train."""
    groups = tmp_path / "groups.yaml"
    groups.write_text("groups:\n"
                      "  one: {datasets: [mimic-demo/demo_a], local: true}\n"
                      "  two: {datasets: [mimic-demo/demo_b], local: true}\n"
                      "  demo: {datasets: [mimic-demo/demo_a, mimic-demo/demo_b], local: true}\n")
    toolkit_env.update({"HF_LEROBOT_HOME": str(demo_home), "DATASET_GROUPS_FILE": str(groups),
                        "LEROBOT_TRAIN": str(FAKE_TRAINER)})
    return toolkit_env


def run_cli(env: dict, *args: str, script: Path = TRAIN_MANAGER, timeout: float = 120, **extra_env):
    """The real entry point as a real process."""
    return subprocess.run([str(script), *args], env={**env, **extra_env}, capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


def read_record(env: dict, name: str) -> dict:
    return json.loads((Path(env["MIMIC_OUTPUTS"]) / "runs" / name / "run.json").read_text())


def wait_for(predicate, timeout: float = 60, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def wait_state(env: dict, name: str, states, timeout: float = 60) -> dict:
    states = {states} if isinstance(states, str) else set(states)

    def check():
        out = run_cli(env, "status", name, "--json")
        rows = json.loads(out.stdout) if out.returncode == 0 else []
        return rows[0] if rows and rows[0]["state"] in states else None

    return wait_for(check, timeout, 0.3, f"{name} to be {states}")


def pid_alive(pid: int) -> bool:
    """A live process (not a zombie), read from /proc."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
    except OSError:
        return False


def marked_pids(marker: str) -> list[int]:
    """Every live process whose environment carries the run's marker (read from /proc)."""
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
