"""End to end with the real lerobot-train on CPU, on the generated video demo datasets (merged group):
LeRobot 0.6.1 of the toolkit's env (ACT, diffusion, stop and resume) and LeRobot 0.4.4 of its own env
through LEROBOT_TRAIN (train, then resume); plus the set-up entry points (make, gpu-check) where they
stop with one line."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, marked_pids, read_record, run_cli, wait_for, wait_state

# A tiny ACT: trains a step in well under a second on a CPU (offline: no ImageNet backbone).
TINY_ACT = ["--policy.pretrained_backbone_weights=null", "--policy.dim_model=64", "--policy.dim_feedforward=256",
            "--policy.n_encoder_layers=1", "--policy.n_decoder_layers=1", "--policy.chunk_size=10",
            "--policy.n_action_steps=10", "--log_freq=1"]
# A tiny diffusion policy: one small ResNet for the four cameras, a two-level U-Net, ten noise steps.
# (The plan already sets the backbone weights off and group norm on: the same recipe on 0.4 and 0.6.)
TINY_DIFFUSION = ["--policy.horizon=16", "--policy.n_action_steps=8", "--policy.down_dims=[32,64]",
                  "--policy.diffusion_step_embed_dim=32", "--policy.spatial_softmax_num_keypoints=8",
                  "--policy.use_separate_rgb_encoder_per_camera=false", "--policy.num_train_timesteps=10",
                  "--log_freq=1"]
SMALL = ["--batch-size", "2", "--num-workers", "0"]


@pytest.fixture
def real_env(demo_env) -> dict:
    env = dict(demo_env)
    env.pop("LEROBOT_TRAIN")  # the real lerobot-train of the project's environment
    return env


def checkpoint_steps(output_dir: str) -> list[int]:
    folder = Path(output_dir) / "checkpoints"
    return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit()) if folder.exists() else []


def finished(env: dict, name: str, timeout: float = 900) -> tuple[dict, dict, str]:
    """Wait for the run's end; (status row, record, log) once it has finished, else fail with its log."""
    row = wait_state(env, name, ("finished", "failed", "lost", "stopped"), timeout=timeout)
    record = read_record(env, name)
    log = Path(record["plan"]["log_file"]).read_text()
    assert row["state"] == "finished", log[-4000:]
    return row, record, log


@pytest.mark.lerobot
def test_act_detached_on_merged_video_group_finishes(real_env):
    """Launch detached on the two-dataset demo group (four mp4 cameras each, merged by the prepare step)."""
    out = run_cli(real_env, "--policy", "act", "--dataset-group", "demo", "--steps", "4", "--save-freq", "2",
                  *SMALL, "--", *TINY_ACT)
    assert out.returncode == 0, out.stderr
    assert "launched act_cpu_demo" in out.stdout
    row, record, log = finished(real_env, "act_cpu_demo")
    assert row["step"] == 4 and row["total_steps"] == 4
    assert checkpoint_steps(record["plan"]["output_dir"]) == [2, 4]
    assert "merged 2 datasets" in log and "dataset.num_episodes=6" in log  # 3 + 3 episodes
    assert record["lerobot_version"] == "0.6.1" and record["exit_code"] == 0
    assert record["plan"]["engine"]["version"] == "0.6.1"
    link = Path(record["plan"]["dataset"]["root"])
    assert link.is_symlink() and (link / "meta" / "info.json").exists()
    info = json.loads((link / "meta" / "info.json").read_text())
    assert {ft["dtype"] for key, ft in info["features"].items() if key.startswith("observation.images.")} == {"video"}
    assert len(list(link.glob("videos/*/chunk-000/file-000.mp4"))) == 4


@pytest.mark.lerobot
def test_diffusion_trains_on_the_video_demo(real_env):
    out = run_cli(real_env, "--policy", "diffusion", "--dataset-group", "one", "--steps", "3", "--save-freq", "3",
                  *SMALL, "--", *TINY_DIFFUSION)
    assert out.returncode == 0, out.stderr
    row, record, log = finished(real_env, "diffusion_cpu_one")
    assert row["step"] == 3 and checkpoint_steps(record["plan"]["output_dir"]) == [3]
    argv = record["plan"]["argv"]
    assert "--policy.type=diffusion" in argv and "--policy.pretrained_backbone_weights=null" in argv
    config = json.loads((Path(record["plan"]["output_dir"]) / "checkpoints" / "last" / "pretrained_model"
                         / "config.json").read_text())
    assert config["type"] == "diffusion" and config["down_dims"] == [32, 64] and config["use_group_norm"] is True
    assert sorted(config["input_features"]) == ["observation.images.front", "observation.images.left_wrist",
                                                "observation.images.right_wrist", "observation.images.top",
                                                "observation.state"]


@pytest.mark.lerobot
def test_stop_mid_run_then_resume_to_the_end(real_env):
    out = run_cli(real_env, "--policy", "act", "--dataset-group", "one", "--steps", "12", "--save-freq", "2",
                  *SMALL, "--", *TINY_ACT)
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
    row, record, log = finished(real_env, "act_cpu_one")
    assert row["step"] == 12
    assert max(checkpoint_steps(output_dir)) == 12
    assert [a["kind"] for a in record["attempts"]] == ["train", "resume"]
    assert log.count("attempt 1 (train) starting") == 1 and log.count("attempt 2 (resume) starting") == 1


@pytest.mark.lerobot
def test_lerobot_04_engine_trains_the_demo_act_and_resumes_it(real_env, engine04):
    """LEROBOT_TRAIN at the LeRobot 0.4.4 env: planned in its dialect, trained by it on the video demo merged
    by the toolkit's 0.6.1, then resumed by it (its checkpoint's train_config.json says `eval_freq`)."""
    env = {**real_env, "LEROBOT_TRAIN": str(engine04 / "bin" / "lerobot-train")}
    args = ["--policy", "act", "--dataset-group", "demo", "--steps", "4", "--save-freq", "2", *SMALL, "--", *TINY_ACT]
    dry = run_cli(env, *args[:-len(TINY_ACT) - 1], "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"engine      LeRobot 0.4.4 ({engine04})" in dry.stdout
    out = run_cli(env, *args)
    assert out.returncode == 0, out.stderr
    row, record, log = finished(env, "act_cpu_demo")
    assert row["step"] == 4 and checkpoint_steps(record["plan"]["output_dir"]) == [2, 4]
    assert record["lerobot_version"] == "0.4.4"
    assert (record["plan"]["engine"]["version"], record["plan"]["engine"]["dialect"]) == ("0.4.4", "0.4")
    assert record["plan"]["argv"][0] == env["LEROBOT_TRAIN"]
    assert "dataset.num_episodes=6" in log
    saved = json.loads((Path(record["plan"]["output_dir"]) / "checkpoints" / "last" / "pretrained_model"
                        / "train_config.json").read_text())
    assert "eval_freq" in saved and "env_eval_freq" not in saved  # written by 0.4.4

    resume = run_cli(env, "resume", "act_cpu_demo", "--steps", "6")
    assert resume.returncode == 0, resume.stderr
    row, record, log = finished(env, "act_cpu_demo")
    assert row["step"] == 6 and checkpoint_steps(record["plan"]["output_dir"]) == [2, 4, 6]
    assert [a["kind"] for a in record["attempts"]] == ["train", "resume"]
    resumed = record["attempts"][1]["argv"]
    assert resumed[0] == env["LEROBOT_TRAIN"] and "--resume=true" in resumed and "--steps=6" in resumed
    assert record["lerobot_version"] == "0.4.4"


# -- the set-up entry points stop with one line --------------------------------------------------

def test_make_env_without_python312_is_one_line(tmp_path):
    """No Python 3.12 anywhere it is looked for: `make env` shows ensure_env.py's one line, exits 2 and
    builds nothing."""
    if not shutil.which("make"):
        pytest.skip("make is not installed")
    system = [p for p in ("/usr/local/bin/python3.12", "/usr/bin/python3.12") if os.path.exists(p)]
    if system:
        pytest.skip(f"{system[0]} exists: ensure_env.py would find it and build the env")
    bare = tmp_path / "bin"
    bare.mkdir()
    for tool in ("make", "sh", "bash", "date"):
        found = shutil.which(tool)
        if found:
            (bare / tool).symlink_to(found)
    (bare / "python3").symlink_to(sys.executable)  # the interpreter that runs ensure_env.py, not a 3.12 to find
    env = {"PATH": str(bare), "HOME": str(tmp_path / "home"), "MIMIC_ENV_HOME": str(tmp_path / "envs")}
    before = os.readlink(REPO / ".venv") if (REPO / ".venv").is_symlink() else None
    out = subprocess.run(["make", "--no-print-directory", "env"], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 2, out.stdout + out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Python 3.12 is needed and none was found" in errors[0], out.stderr
    assert "MIMIC_PYTHON312" in errors[0] and "Traceback" not in out.stderr
    assert not list((tmp_path / "envs" / "envs").glob("main-*/bin"))  # nothing built
    assert (os.readlink(REPO / ".venv") if (REPO / ".venv").is_symlink() else None) == before


def test_gpu_check_without_a_gpu_is_one_line(tmp_path):
    """`make gpu-check` on a machine where NVML finds no NVIDIA GPU: one line, exit 2, nothing written."""
    from mimic_deployment.host.gpus import read_gpus

    if read_gpus():
        pytest.skip("NVML finds a GPU here: gpu-check would run (scripts/gpu_check.py, minutes)")
    env = {**os.environ, "PYTHONPATH": str(REPO), "MIMIC_OUTPUTS": str(tmp_path / "outputs")}
    out = subprocess.run([sys.executable, str(REPO / "scripts" / "gpu_check.py")], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: gpu-check: NVML finds no NVIDIA GPU"), out.stderr
    assert out.stdout == "" and not (tmp_path / "outputs").exists()
    if shutil.which("make"):  # what `make gpu-check` runs (not run here: its `env` step may build an env)
        dry = subprocess.run(["make", "-n", "--no-print-directory", "gpu-check"], cwd=REPO, capture_output=True,
                             text=True, timeout=60)
        assert dry.returncode == 0 and ".venv/bin/python scripts/gpu_check.py" in dry.stdout, dry.stdout + dry.stderr
