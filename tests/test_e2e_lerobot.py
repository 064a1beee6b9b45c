"""End to end with the real lerobot-train on CPU, on the generated demo datasets (merged group)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import marked_pids, read_record, run_cli, wait_for, wait_state

pytestmark = pytest.mark.lerobot

# A tiny ACT: trains a step in well under a second on a CPU (offline: no ImageNet backbone).
TINY_ACT = ["--policy.pretrained_backbone_weights=null", "--policy.dim_model=64", "--policy.dim_feedforward=256",
            "--policy.n_encoder_layers=1", "--policy.n_decoder_layers=1", "--policy.chunk_size=10",
            "--policy.n_action_steps=10", "--log_freq=1"]


@pytest.fixture
def real_env(demo_env) -> dict:
    env = dict(demo_env)
    env.pop("LEROBOT_TRAIN")  # the real lerobot-train of the project's environment
    return env


def checkpoint_steps(output_dir: str) -> list[int]:
    folder = Path(output_dir) / "checkpoints"
    return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit()) if folder.exists() else []


def test_act_detached_on_merged_group_finishes(real_env):
    """Launch detached on the two-dataset demo group (merged by the prepare step), with a rename map."""
    rename = json.dumps({"observation.images.top": "observation.images.overhead"})
    out = run_cli(real_env, "--policy", "act", "--dataset-group", "demo", "--steps", "4", "--save-freq", "2",
                  "--batch-size", "2", "--num-workers", "0", "--", *TINY_ACT, f"--rename_map={rename}")
    assert out.returncode == 0, out.stderr
    assert "launched act_cpu_demo" in out.stdout
    wait_state(real_env, "act_cpu_demo", "running", timeout=60)
    row = wait_state(real_env, "act_cpu_demo", ("finished", "failed"), timeout=600)
    record = read_record(real_env, "act_cpu_demo")
    log = Path(record["plan"]["log_file"]).read_text()
    assert row["state"] == "finished", log[-3000:]
    assert row["step"] == 4 and row["total_steps"] == 4
    assert checkpoint_steps(record["plan"]["output_dir"]) == [2, 4]
    assert "merged 2 datasets" in log and "dataset.num_episodes=6" in log  # 3 + 3 episodes
    assert record["lerobot_version"] == "0.4.4" and record["exit_code"] == 0
    link = Path(record["plan"]["dataset"]["root"])
    assert link.is_symlink() and (link / "meta" / "info.json").exists()


def test_stop_mid_run_then_resume_to_the_end(real_env):
    out = run_cli(real_env, "--policy", "act", "--dataset-group", "one", "--steps", "12", "--save-freq", "2",
                  "--batch-size", "2", "--num-workers", "0", "--", *TINY_ACT)
    assert out.returncode == 0, out.stderr
    record = read_record(real_env, "act_cpu_one")
    output_dir = record["plan"]["output_dir"]
    last = Path(output_dir) / "checkpoints" / "last" / "pretrained_model" / "train_config.json"
    wait_for(last.exists, timeout=600, what="a first complete checkpoint")  # `last` moves after a save

    stop = run_cli(real_env, "stop", "act_cpu_one", "--timeout", "20")
    assert stop.returncode == 0, stop.stderr
    record = read_record(real_env, "act_cpu_one")
    assert record["state"] == "stopped"
    assert marked_pids(record["marker"]) == []  # no process of the tree left
    assert json.loads(last.read_text())["steps"] == 12 and max(checkpoint_steps(output_dir)) < 12

    resume = run_cli(real_env, "resume", "act_cpu_one")
    assert resume.returncode == 0, resume.stderr
    row = wait_state(real_env, "act_cpu_one", ("finished", "failed"), timeout=900)
    record = read_record(real_env, "act_cpu_one")
    log = Path(record["plan"]["log_file"]).read_text()
    assert row["state"] == "finished", log[-3000:]
    assert row["step"] == 12
    assert max(checkpoint_steps(output_dir)) == 12
    assert [a["kind"] for a in record["attempts"]] == ["train", "resume"]
    assert log.count("attempt 1 (train) starting") == 1 and log.count("attempt 2 (resume) starting") == 1
