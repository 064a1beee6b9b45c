"""smolvla trains on CPU through the toolkit with the real lerobot-train, offline, at a reduced size:
what it would fetch from the Hub (lerobot/smolvla_base and its SmolVLM2 backbone) is a tiny random
stand-in of the same classes in the run's HF hub cache (tests/standins.py)."""
from __future__ import annotations

import json
import re
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, read_record, run_cli, wait_state

pytestmark = pytest.mark.lerobot

STANDINS = REPO / "tests" / "standins.py"
# Reduced size on top of the base's config: images resized to 64x64 instead of 512x512 (the stand-in
# VLM's vision encoder: 16 patches, 4 tokens per camera) and action chunks of 10 instead of 50.
REDUCED = ["--policy.resize_imgs_with_padding=[64,64]", "--policy.chunk_size=10", "--policy.n_action_steps=10",
           "--log_freq=1"]
STEP_LINE = re.compile(r"ot_train\.py:\d+ step:(\d+) .*\bloss:([0-9.]+)")


@pytest.fixture
def smolvla_env(demo_env) -> tuple[dict, dict]:
    """The demo datasets, the real lerobot-train, and the smolvla stand-ins in the run's HF hub cache
    ($HF_HOME/hub, where huggingface_hub looks when HF_HUB_CACHE is not set)."""
    env = dict(demo_env)
    env.pop("LEROBOT_TRAIN")
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):  # a developer's own cache must not be read
        env.pop(var, None)
    hub = Path(env["HF_HOME"]) / "hub"
    out = subprocess.run([sys.executable, str(STANDINS), "smolvla", str(hub)], env=env, capture_output=True,
                         text=True, timeout=300, cwd=REPO)
    assert out.returncode == 0, out.stderr[-3000:]
    return env, json.loads(out.stdout.strip().splitlines()[-1])  # repo id -> its snapshot folder


def tensors(path: Path) -> dict[str, bytes]:
    """Every tensor of a safetensors file as its raw bytes (the format: 8-byte header size, JSON header)."""
    data = path.read_bytes()
    size = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + size])
    header.pop("__metadata__", None)
    return {key: data[8 + size + info["data_offsets"][0]:8 + size + info["data_offsets"][1]]
            for key, info in header.items()}


def test_smolvla_from_base_trains_on_merged_demo_group(smolvla_env):
    """The policy as declared (lerobot/smolvla_base, the smolvla rename map), detached, 4 steps on the merged
    two-dataset demo group: finished, four step lines, checkpoints 2 and 4 of a smolvla that started from the
    base (its frozen VLM weights are the base's) and learned (its action expert's weights moved)."""
    env, standins = smolvla_env
    base = Path(standins["lerobot/smolvla_base"])
    out = run_cli(env, "--policy", "smolvla", "--dataset-group", "demo", "--steps", "4", "--save-freq", "2",
                  "--batch-size", "2", "--num-workers", "0", "--", *REDUCED)
    assert out.returncode == 0, out.stderr
    assert "launched smolvla_cpu_demo" in out.stdout
    row = wait_state(env, "smolvla_cpu_demo", ("finished", "failed", "lost"), timeout=600)
    record = read_record(env, "smolvla_cpu_demo")
    log = Path(record["plan"]["log_file"]).read_text()
    assert row["state"] == "finished", log[-3000:]
    assert row["step"] == 4 and row["total_steps"] == 4 and record["exit_code"] == 0

    argv = record["plan"]["argv"]
    assert "--policy.path=lerobot/smolvla_base" in argv and "--policy.device=cpu" in argv
    assert any(a.startswith("--rename_map=") and "observation.images.camera1" in a for a in argv)
    steps = [(int(step), float(loss)) for step, loss in STEP_LINE.findall(log)]
    assert [step for step, _ in steps] == [1, 2, 3, 4], log[-3000:]
    assert all(loss > 0 for _, loss in steps)
    assert "Loading  HuggingFaceTB/SmolVLM2-500M-Video-Instruct weights" in log  # the stand-in, from the cache
    assert "merged 2 datasets" in log and "dataset.num_episodes=6" in log
    assert "Checkpoint policy after step 4" in log and "End of training" in log

    checkpoints = Path(record["plan"]["output_dir"]) / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir() if p.name.isdigit()) == ["000002", "000004"]
    model = checkpoints / "000004" / "pretrained_model"
    for name in ("config.json", "model.safetensors", "train_config.json", "policy_preprocessor.json",
                 "policy_postprocessor.json"):
        assert (model / name).is_file(), name
    config = json.loads((model / "config.json").read_text())
    assert config["type"] == "smolvla" and config["chunk_size"] == 10
    assert config["resize_imgs_with_padding"] == [64, 64]
    assert config["output_features"]["action"]["shape"] == [15]  # the demo's action, not the base's 6
    assert sorted(k for k in config["input_features"] if "images" in k) == [
        f"observation.images.camera{i}" for i in (1, 2, 3)]
    state = json.loads((checkpoints / "000004" / "training_state" / "training_step.json").read_text())
    assert state["step"] == 4

    trained, started = tensors(model / "model.safetensors"), tensors(base / "model.safetensors")
    assert trained.keys() == started.keys()
    frozen = [k for k in trained if ".vlm.model.vision_model." in k]
    expert = ("model.action_in_proj.", "model.action_out_proj.")
    learned = [k for k in trained if ".lm_expert." in k or k.startswith(expert)]
    assert frozen and learned
    assert all(trained[k] == started[k] for k in frozen)  # train_expert_only: the VLM is the base's
    assert any(trained[k] != started[k] for k in learned)  # four optimizer steps moved the action expert
