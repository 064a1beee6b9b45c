"""Evaluation: eval.sh / eval-robot (lerobot-rollout on LeRobot 0.6, lerobot-record on 0.4), evaluate
(offline action error), compare. The tests marked `lerobot` share two tiny ACT runs trained once for
the module. Every robot argv against both LeRobot versions' own parsers: tests/test_robot_argv.py."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, read_record, run_cli, wait_for

SCRIPTS = REPO / "mimic_deployment" / "training_scripts"
POLICIES = ("xvla", "pi05", "pi0", "groot", "act", "diffusion")
EVAL_VARS = ("MODEL_PATH", "EVAL_DATASET", "NUM_EPISODES", "TASK", "EPISODE_TIME_S", "RESET_TIME_S", "DEVICE",
             "ROBOT_CONFIG", "LEROBOT_RECORD", "LEROBOT_ROLLOUT", "PUSH_TO_HUB")
TINY_ACT = ["--policy.pretrained_backbone_weights=null", "--policy.dim_model=64", "--policy.dim_feedforward=256",
            "--policy.n_encoder_layers=1", "--policy.n_decoder_layers=1", "--policy.chunk_size=10",
            "--policy.n_action_steps=10", "--log_freq=1"]
# A stand-in for a lab's own LeRobot robot plugin (two arm ports, a base port, one flat camera dict),
# loaded by lerobot-record's parser through --robot.discover_packages_path.
PLUGIN = '''
from dataclasses import dataclass, field

from lerobot.cameras import CameraConfig
from lerobot.robots.config import RobotConfig


@RobotConfig.register_subclass("mimic_test_follower")
@dataclass
class MimicTestFollowerConfig(RobotConfig):
    left_arm_port: str = ""
    right_arm_port: str = ""
    base_port: str = ""
    cameras: dict[str, CameraConfig] = field(default_factory=dict)
'''
PLUGIN_ROBOT = """
type: mimic_test_follower
id: mimic
fps: 15
layout:
  plugin: mimic_test_robot
  ports: {left_arm: left_arm_port, right_arm: right_arm_port, base: base_port}
  cameras: cameras
  motors: 15
ports: {left_arm: /dev/ttyACM5, right_arm: /dev/ttyACM6, base: /dev/ttyACM7}
cameras:
  wrist_left:  {type: opencv, index_or_path: 0, width: 64, height: 48, fps: 15, rotation: 180, fourcc: MJPG}
  wrist_right: {type: opencv, index_or_path: /dev/video2, width: 64, height: 48, fps: 15}
  front:       {type: opencv, index_or_path: 4, width: 64, height: 48, fps: 15, color_mode: bgr}
  top:         {type: intelrealsense, serial_number_or_name: "0123456789", width: 64, height: 48, fps: 15}
"""


def clean(env: dict, **extra) -> dict:
    out = {k: v for k, v in env.items() if k not in EVAL_VARS}
    out.update(extra)
    return out


@pytest.fixture
def eval_env(toolkit_env) -> dict:
    """toolkit_env without any eval env var a developer's shell may have set."""
    return clean(toolkit_env)


def eval_sh(env: dict, policy: str = "act", *args: str, script: Path | None = None, cwd=REPO, **extra):
    return subprocess.run([str(script or SCRIPTS / policy / "eval.sh"), *args], env={**env, **extra},
                          capture_output=True, text=True, timeout=60, cwd=cwd)


def stand_in(folder: Path, name: str) -> Path:
    """A command that prints its argv as JSON: a LeRobot command with no LeRobot beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    fake = folder / name
    fake.write_text("#!/usr/bin/env python3\nimport json, sys\nprint(json.dumps(sys.argv[1:]))\n")  # no env: unknown
    fake.chmod(0o755)
    return fake


def one_line_error(out) -> str:
    assert out.returncode == 2, (out.stdout, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    return lines[0]


def fake_run(env: dict, name: str, *, checkpoint_steps=(5,), policy_type="act") -> Path:
    """A run record + LeRobot-shaped checkpoint folders (config.json only), no training."""
    outputs = Path(env["MIMIC_OUTPUTS"])
    out = outputs / "train" / name
    for step in checkpoint_steps:
        ck = out / "checkpoints" / f"{step:06d}"
        (ck / "pretrained_model").mkdir(parents=True)
        (ck / "pretrained_model" / "config.json").write_text(json.dumps({"type": policy_type}))
        (ck / "training_state").mkdir()
        (ck / "training_state" / "training_step.json").write_text(json.dumps({"step": step}))
    if checkpoint_steps:
        (out / "checkpoints" / "last").symlink_to(f"{checkpoint_steps[-1]:06d}")
    rec = outputs / "runs" / name
    rec.mkdir(parents=True)
    log = outputs / "logs" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    (rec / "run.json").write_text(json.dumps({
        "schema": 1, "name": name, "state": "finished" if checkpoint_steps else "running",
        "plan": {"name": name, "policy": policy_type, "group": "demo", "steps": 10, "save_freq": 5,
                 "output_dir": str(out), "log_file": str(log), "dataset": {}}}))
    return out


# --- eval.sh / eval-robot: fast, no LeRobot -------------------------------------------------

def test_each_policy_has_an_eval_sh_link():
    for policy in POLICIES:
        link = SCRIPTS / policy / "eval.sh"
        assert link.is_symlink() and os.readlink(link) == "../_policy_eval.sh", policy


def test_missing_model_path_is_one_line_exit_2(eval_env):
    line = one_line_error(eval_sh(eval_env, "act", "--dry-run", EVAL_DATASET="Mimic-Robotics/eval_act"))
    assert "MODEL_PATH is not set" in line


@pytest.mark.parametrize("repo_id", ["Mimic-Robotics/act_test", "rollout_act_test", "Mimic-Robotics/rollout_",
                                     "a/b/rollout_c", "Mimic-Robotics/eval_act_test"])
def test_bad_eval_dataset_is_one_line_exit_2(eval_env, repo_id):
    """LeRobot 0.6's lerobot-rollout records a policy only into a `rollout_` dataset (the default engine)."""
    out = eval_sh(eval_env, "act", "--dry-run", MODEL_PATH="lerobot/act_x", EVAL_DATASET=repo_id)
    line = one_line_error(out)
    assert "EVAL_DATASET" in line and "rollout_" in line


@pytest.mark.parametrize("repo_id", ["Mimic-Robotics/act_test", "Mimic-Robotics/rollout_act", "Mimic-Robotics/eval_"])
def test_eval_prefix_on_lerobot_04(eval_env, tmp_path, repo_id):
    """lerobot-record (0.4) wants `eval_`; the toolkit says so itself, before LeRobot would."""
    env = dict(eval_env, LEROBOT_RECORD=str(stand_in(tmp_path, "lerobot-record")))
    line = one_line_error(eval_sh(env, "act", "--dry-run", MODEL_PATH="lerobot/act_x", EVAL_DATASET=repo_id))
    assert "EVAL_DATASET" in line and "must start with 'eval_'" in line and "lerobot-record refuses" in line


@pytest.mark.parametrize("var,value", [("NUM_EPISODES", "0"), ("NUM_EPISODES", "ten"), ("EPISODE_TIME_S", "-1"),
                                       ("RESET_TIME_S", "x")])
def test_bad_numbers_are_one_line_exit_2(eval_env, var, value):
    out = eval_sh(eval_env, "act", "--dry-run", MODEL_PATH="lerobot/act_x", EVAL_DATASET="ns/rollout_x", **{var: value})
    flag = "--" + var.lower().replace("_", "-")
    assert f"{flag}/{var}" in one_line_error(out)  # the flag and the env var together: either sets it
    out = eval_sh(eval_env, "act", "--dry-run", flag, value, MODEL_PATH="lerobot/act_x", EVAL_DATASET="ns/rollout_x")
    assert f"{flag}/{var}" in one_line_error(out)


def test_eval_sh_finds_the_repo_from_anywhere(eval_env, tmp_path):
    """From another directory, by a relative path, and through a user's own link to eval.sh."""
    env = dict(eval_env, MODEL_PATH="lerobot/pi05_x", EVAL_DATASET="ns/rollout_pi05")
    mine = tmp_path / "bin" / "pi05-eval"
    mine.parent.mkdir()
    mine.symlink_to(SCRIPTS / "pi05" / "eval.sh")
    relative = os.path.relpath(SCRIPTS / "pi05" / "eval.sh", tmp_path)
    for script, cwd in ((SCRIPTS / "pi05" / "eval.sh", "/"), (Path(relative), tmp_path), (mine, "/")):
        out = eval_sh(env, "pi05", "--dry-run", "--json", script=script, cwd=cwd)
        assert out.returncode == 0, out.stderr
        plan = json.loads(out.stdout)
        assert plan["policy"] == "pi05" and plan["model"] == "lerobot/pi05_x"
        assert plan["argv"][0].endswith("lerobot-rollout") and os.path.isabs(plan["argv"][0])
        assert plan["argv"][1] == "--strategy.type=episodic"
        # pi05's image keys come from cameras.yaml: the wrist cameras under its own names
        assert plan["camera_keys"]["wrist_left"] == "left_wrist_0_rgb"


def test_dry_run_argv_from_env_vars_and_flags(eval_env):
    """The default engine (the toolkit's LeRobot 0.6.1): lerobot-rollout --strategy.type=episodic."""
    env = dict(eval_env, MODEL_PATH="Mimic-Robotics/act_odin_demo", EVAL_DATASET="Mimic-Robotics/rollout_act_demo",
               NUM_EPISODES="3", TASK="Hand over the red block", EPISODE_TIME_S="45", RESET_TIME_S="12.5")
    out = eval_sh(env, "act", "--dry-run", "--json", "--num-episodes", "4", "--device", "cuda")
    assert out.returncode == 0, out.stderr
    plan = json.loads(out.stdout)
    argv = plan["argv"]
    assert Path(argv[0]).resolve() == (Path(sys.executable).parent / "lerobot-rollout").resolve()
    assert argv[1] == "--strategy.type=episodic"
    assert plan["engine"]["version"] == "0.6.1" and plan["engine"]["dialect"] == "0.6"
    assert all(a.startswith("--") and "=" in a for a in argv[1:])  # every flag --key=value
    flags = dict(a[2:].split("=", 1) for a in argv[1:])
    assert flags["robot.type"] == "bi_so_follower" and flags["robot.id"] == "mimic_follower"
    assert flags["robot.left_arm_config.port"] == "/dev/ttyACM0"
    assert flags["robot.right_arm_config.port"] == "/dev/ttyACM1"
    assert "robot.base_port" not in flags and any("base" in n for n in plan["notes"])
    # 0.6's bi_so_follower takes a top-level camera dict whose keys stay as they are
    cams = json.loads(flags["robot.cameras"])
    assert list(cams) == ["left_wrist", "right_wrist", "front", "top"]
    assert cams["left_wrist"] == {"type": "opencv", "index_or_path": "/dev/video0", "width": 640, "height": 480,
                                  "fps": 30}
    assert "robot.left_arm_config.cameras" not in flags
    assert not any("camera" in p for p in plan["problems"]), plan["problems"]  # only: offline, a Hub id
    assert flags["policy.path"] == "Mimic-Robotics/act_odin_demo" and flags["policy.device"] == "cuda"
    assert flags["dataset.repo_id"] == "Mimic-Robotics/rollout_act_demo"
    assert flags["dataset.single_task"] == "Hand over the red block"
    assert flags["dataset.num_episodes"] == "4"  # flag beats env
    assert flags["dataset.episode_time_s"] == "45" and flags["dataset.reset_time_s"] == "12.5"
    assert flags["dataset.push_to_hub"] == "false"
    # the control loop's own fps, and the dataset named exactly EVAL_DATASET (no date stamp appended)
    assert flags["fps"] == flags["dataset.fps"] == "30" and flags["dataset.no_stamp"] == "true"
    assert plan["sources"]["num_episodes"] == "flag" and plan["sources"]["task"] == "env TASK"
    assert plan["camera_keys"] == {"wrist_left": "left_wrist", "wrist_right": "right_wrist", "front": "front",
                                   "top": "top"}
    # the text form is the same command, copy-pasteable, under the engine it runs on
    text = eval_sh(env, "act", "--dry-run").stdout
    assert "--dataset.num_episodes=3" in text and "'--dataset.single_task=Hand over the red block'" in text
    assert "engine      LeRobot 0.6.1 (" in text and "lerobot-rollout from the toolkit's env" in text


def test_dry_run_argv_on_lerobot_04(eval_env, tmp_path):
    """With LEROBOT_RECORD (a 0.4 command): lerobot-record's argv, cameras per arm."""
    fake = stand_in(tmp_path, "lerobot-record")
    env = dict(eval_env, MODEL_PATH="Mimic-Robotics/act_odin_demo", EVAL_DATASET="Mimic-Robotics/eval_act_demo",
               LEROBOT_RECORD=str(fake))
    plan = json.loads(eval_sh(env, "act", "--dry-run", "--json", "--device", "cuda").stdout)
    argv = plan["argv"]
    assert argv[0] == str(fake) and plan["engine"]["dialect"] == "0.4" and plan["engine"]["origin"] == "LEROBOT_RECORD"
    flags = dict(a[2:].split("=", 1) for a in argv[1:])
    assert "strategy.type" not in flags and "fps" not in flags and "dataset.no_stamp" not in flags
    left = json.loads(flags["robot.left_arm_config.cameras"])
    assert left["wrist"] == {"type": "opencv", "index_or_path": "/dev/video0", "width": 640, "height": 480, "fps": 30}
    assert flags["policy.device"] == "cuda" and flags["dataset.fps"] == "30"
    # bi_so_follower 0.4 prefixes every camera with its arm: front / top cannot keep their dataset names
    assert plan["camera_keys"] == {"wrist_left": "left_wrist", "wrist_right": "right_wrist",
                                   "front": "left_front", "top": "right_top"}
    assert any("front, top" in p and "LeRobot 0.6" in p for p in plan["problems"])


def test_robot_eval_command_overrides(eval_env, tmp_path):
    """LEROBOT_ROLLOUT names the 0.6 command itself; the two overrides exclude each other; an
    override must be the command its LeRobot runs policies with."""
    rollout = stand_in(tmp_path / "a", "lerobot-rollout")
    env = dict(eval_env, MODEL_PATH="lerobot/act_x", EVAL_DATASET="ns/rollout_act", LEROBOT_ROLLOUT=str(rollout))
    plan = json.loads(eval_sh(env, "act", "--dry-run", "--json").stdout)
    assert plan["argv"][:2] == [str(rollout), "--strategy.type=episodic"] and plan["engine"]["dialect"] == "0.6"
    both = dict(env, LEROBOT_RECORD=str(stand_in(tmp_path / "b", "lerobot-record")))
    assert "both set" in one_line_error(eval_sh(both, "act", "--dry-run"))
    # the toolkit's own env is LeRobot 0.6.1, whose lerobot-record no longer runs a policy
    real_record = Path(sys.executable).parent / "lerobot-record"
    line = one_line_error(eval_sh(dict(env, LEROBOT_ROLLOUT="", LEROBOT_RECORD=str(real_record)), "act", "--dry-run"))
    assert "belongs to LeRobot 0.6.1, which runs a policy on the robot with lerobot-rollout" in line
    assert "LEROBOT_ROLLOUT" in line
    # LEROBOT_TRAIN's env decides when no override is set: a stand-in trainer -> the default dialect
    fake_train = stand_in(tmp_path / "c" / "bin", "lerobot-train")
    plan = json.loads(eval_sh(dict(env, LEROBOT_ROLLOUT="", LEROBOT_TRAIN=str(fake_train)), "act", "--dry-run",
                              "--json").stdout)
    assert plan["argv"][0] == str(fake_train.parent / "lerobot-rollout") and plan["engine"]["version"] is None


def test_run_name_means_its_last_checkpoint(eval_env):
    out_dir = fake_run(eval_env, "act_odin_demo", checkpoint_steps=(5, 10))
    env = dict(eval_env, EVAL_DATASET="ns/rollout_act")
    plan = json.loads(eval_sh(env, "act", "--dry-run", "--json", MODEL_PATH="act_odin_demo").stdout)
    assert plan["model"] == str(out_dir / "checkpoints" / "last" / "pretrained_model")
    assert plan["run"] == "act_odin_demo" and plan["checkpoint_step"] == 10
    # a checkpoints/NNN folder -> its pretrained_model; a training output dir -> checkpoints/last
    for given, want in ((out_dir / "checkpoints" / "000005", out_dir / "checkpoints" / "000005" / "pretrained_model"),
                        (out_dir, out_dir / "checkpoints" / "last" / "pretrained_model")):
        plan = json.loads(eval_sh(env, "act", "--dry-run", "--json", MODEL_PATH=str(given)).stdout)
        assert plan["model"] == str(want) and plan["run"] == "act_odin_demo"
    # the checkpoint's policy type must match the eval.sh used
    assert "policy type act, not xvla" in one_line_error(eval_sh(env, "xvla", "--dry-run", MODEL_PATH="act_odin_demo"))


def test_run_without_checkpoint_or_unknown_name(eval_env):
    fake_run(eval_env, "act_odin_new", checkpoint_steps=())
    env = dict(eval_env, EVAL_DATASET="ns/rollout_act")
    assert "has no checkpoint yet" in one_line_error(eval_sh(env, "act", "--dry-run", MODEL_PATH="act_odin_new"))
    assert "no run, folder or Hub id" in one_line_error(eval_sh(env, "act", "--dry-run", MODEL_PATH="act_nope"))
    assert "not a checkpoint" in one_line_error(eval_sh(env, "act", "--dry-run", MODEL_PATH=str(REPO / "docs")))


def test_existing_eval_dataset_folder_is_refused_before_running(eval_env):
    (Path(eval_env["HF_LEROBOT_HOME"]) / "ns" / "rollout_again").mkdir(parents=True)
    env = dict(eval_env, MODEL_PATH="lerobot/act_x", EVAL_DATASET="ns/rollout_again",
               ROBOT_CONFIG=str(REPO / "mimic_deployment" / "config" / "robot.yaml"))
    assert "already exists" in json.dumps(json.loads(eval_sh(env, "act", "--dry-run", "--json").stdout)["problems"])
    assert "error: " in one_line_error(eval_sh(env, "act"))  # without --dry-run: refused, nothing started


@pytest.mark.parametrize("change,expect", [
    (lambda y: y.replace("wrist_left:", "left_cam:"), "cameras: unknown camera 'left_cam'"),
    (lambda y: y.replace("  right_arm: /dev/ttyACM1\n", ""), "ports: missing port 'right_arm'"),
    (lambda y: y.replace("type: bi_so_follower", "type: lekiwi"), "robot type 'lekiwi' has no known layout"),
    (lambda y: y.replace("width: 640, height: 480, fps: 30, arm: left", "width: 0, height: 480, fps: 30"),
     "cameras.front: 'width' must be a positive integer"),
    (lambda y: y.replace("arm: right", "arm: middle"), "cameras.top: 'arm' must be left or right"),
    (lambda y: y.replace("fps: 30       ", "fps: thirty "), "'fps' must be int"),
])
def test_robot_config_errors_name_file_key_and_fix(eval_env, tmp_path, change, expect):
    text = (REPO / "mimic_deployment" / "config" / "robot.yaml").read_text()
    bad = tmp_path / "robot.yaml"
    bad.write_text(change(text))
    out = eval_sh(eval_env, "act", "--dry-run", MODEL_PATH="lerobot/act_x", EVAL_DATASET="ns/rollout_x",
                  ROBOT_CONFIG=str(bad))
    line = one_line_error(out)
    assert str(bad) in line and expect in line, line


def test_plugin_layout_records_the_dataset_camera_names(eval_env, tmp_path):
    robot = tmp_path / "robot.yaml"
    robot.write_text(PLUGIN_ROBOT)
    out = eval_sh(eval_env, "diffusion", "--dry-run", "--json", "--robot-config", str(robot),
                  MODEL_PATH="lerobot/diffusion_x", EVAL_DATASET="ns/rollout_diffusion", HF_HUB_OFFLINE="0")
    plan = json.loads(out.stdout)
    flags = dict(a[2:].split("=", 1) for a in plan["argv"][1:])
    assert flags["robot.discover_packages_path"] == "mimic_test_robot"
    assert (flags["robot.left_arm_port"], flags["robot.right_arm_port"], flags["robot.base_port"]) == \
        ("/dev/ttyACM5", "/dev/ttyACM6", "/dev/ttyACM7")
    assert list(json.loads(flags["robot.cameras"])) == ["left_wrist", "right_wrist", "front", "top"]
    assert flags["dataset.fps"] == "15" and plan["problems"] == []


@pytest.mark.parametrize("var,command,dataset", [("LEROBOT_RECORD", "lerobot-record", "ns/eval_act"),
                                                  ("LEROBOT_ROLLOUT", "lerobot-rollout", "ns/rollout_act")])
def test_without_dry_run_it_execs_exactly_the_dry_run_command(eval_env, tmp_path, var, command, dataset):
    robot = tmp_path / "robot.yaml"
    robot.write_text(PLUGIN_ROBOT)
    fake = stand_in(tmp_path, command)
    env = dict(eval_env, MODEL_PATH="lerobot/act_x", EVAL_DATASET=dataset, ROBOT_CONFIG=str(robot), **{var: str(fake)})
    # offline, a Hub id cannot be downloaded: refused; online it runs
    assert "HF_HUB_OFFLINE is set" in one_line_error(eval_sh(env, "act"))
    env["HF_HUB_OFFLINE"] = "0"
    planned = json.loads(eval_sh(env, "act", "--dry-run", "--json").stdout)["argv"]
    ran = eval_sh(env, "act")
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout) == planned[1:] and planned[0] == str(fake)
    assert "--robot.type=mimic_test_follower" in ran.stderr  # what runs is shown first
    # the default robot (bi_so_follower) on 0.4 cannot record the cameras an act policy reads: refused
    env.pop("ROBOT_CONFIG")
    (tmp_path / "ck").mkdir()
    (tmp_path / "ck" / "config.json").write_text(json.dumps({"type": "act", "input_features": {
        "observation.images.front": {"type": "VISUAL", "shape": [3, 48, 64]},
        "observation.state": {"type": "STATE", "shape": [12]}},
        "output_features": {"action": {"type": "ACTION", "shape": [12]}}}))
    if command == "lerobot-record":
        line = one_line_error(eval_sh(env, "act", MODEL_PATH=str(tmp_path / "ck")))
        assert "reads camera(s) front" in line and "left_front" in line
    else:  # 0.6: the motor SDK of the toolkit's env is asked (the stand-in has no LeRobot beside it)
        out = eval_sh(env, "act", MODEL_PATH=str(tmp_path / "ck"))
        import importlib.util

        if importlib.util.find_spec("scservo_sdk") is None:
            assert "needs the Python module scservo_sdk" in one_line_error(out)
        else:
            assert out.returncode == 0, out.stderr


def test_a_06_checkpoint_on_lerobot_04_is_refused(eval_env, tmp_path):
    """LeRobot 0.4.4 cannot load what 0.6 wrote (its config has pretrained_revision)."""
    robot = tmp_path / "robot.yaml"
    robot.write_text(PLUGIN_ROBOT)
    ck = tmp_path / "ck"
    ck.mkdir()
    (ck / "config.json").write_text(json.dumps({"type": "act", "pretrained_revision": None}))
    env = dict(eval_env, MODEL_PATH=str(ck), EVAL_DATASET="ns/eval_act", ROBOT_CONFIG=str(robot),
               LEROBOT_RECORD=str(stand_in(tmp_path, "lerobot-record")))
    assert "written by LeRobot 0.6" in one_line_error(eval_sh(env, "act"))


def test_loss_curve_rebuilds_rounded_steps(tmp_path):
    from mimic_deployment.evaluation.runs import loss_curve

    log = tmp_path / "x.log"
    lines = ["INFO 2026-11-21 00:00:00 ot_train.py:197 {'batch_size': 8, 'log_freq': 200, 'steps': 3000}"]
    for step in range(200, 1801, 200):
        shown = f"{step}" if step < 1000 else f"{round(step / 1000)}K"
        lines.append(f"Training: 1%|x| 1/9 [00:01<00:01, 1.0step/s]INFO 2026-11-21 00:00:01 ot_train.py:435 "
                     f"step:{shown} smpl:1K ep:3 epch:0.1 loss:{10 / step:.6f} grdn:1.0 lr:1.0e-05")
    log.write_text("\n".join(lines) + "\n")
    curve = loss_curve(log)
    assert [s for s, _ in curve] == list(range(200, 1801, 200))
    assert curve[0][1] == pytest.approx(0.05) and curve[-1][1] == pytest.approx(10 / 1800, rel=1e-3)
    assert loss_curve(tmp_path / "missing.log") == []


def test_default_episodes_are_the_held_out_ones():
    from mimic_deployment.evaluation.offline import EvalDataset, choose_episodes, parse_episodes
    from mimic_deployment.evaluation.runs import Model

    data = EvalDataset(repo_id="ns/d", root=Path("/data/ns/d"), group="g", how="test")
    subset = Model(spec="x", path="/x", local=True,
                   train_config={"dataset": {"repo_id": "ns/d", "episodes": [0, 1, 2]}})
    assert choose_episodes(None, 5, subset, data) == ([3, 4], True, "not in the checkpoint's training episodes")
    everything = Model(spec="x", path="/x", local=True, train_config={"dataset": {"repo_id": "ns/d", "episodes": None}})
    episodes, held_out, _ = choose_episodes(None, 12, everything, data)
    assert episodes == [7, 8, 9, 10, 11] and held_out is False
    assert parse_episodes("0,2-4,2") == [0, 2, 3, 4] and parse_episodes("all") == "all"


def test_eval_split_episodes_are_lerobots():
    """0.6's --dataset.eval_split=F holds out the last ceil(n * F) episodes of each task
    (lerobot/datasets/factory.py:make_train_eval_datasets): evaluate's default is exactly those."""
    from mimic_deployment.evaluation.offline import EvalDataset, choose_episodes, split_episodes
    from mimic_deployment.evaluation.runs import Model

    tasks = [["pick"], ["place"], ["pick"], ["pick"], ["place"], ["pick"], ["place"]]  # pick: 0,2,3,5 place: 1,4,6
    assert split_episodes(tasks, None, 7, 0.34) == [3, 5, 4, 6]  # ceil(4 * .34) = 2, ceil(3 * .34) = 2
    assert split_episodes(tasks, [0, 1, 2, 3], 7, 0.5) == [2, 3, 1]  # only the episodes it trained from
    data = EvalDataset(repo_id="ns/d", root=Path("/data/ns/d"), group="g", how="test")
    model = Model(spec="x", path="/x", local=True,
                  train_config={"dataset": {"repo_id": "ns/d", "episodes": None, "eval_split": 0.34}})
    held = split_episodes(tasks, None, 7, 0.34)
    assert choose_episodes(None, 7, model, data, held) == \
        ([3, 4, 5, 6], True, "held out by the training's eval_split=0.34")
    assert choose_episodes([0, 3], 7, model, data, held) == ([0, 3], False, "1 of them seen in training")
    assert choose_episodes([4], 7, model, data, held)[1] is True


def test_evaluate_and_compare_refuse_unknown_things_fast(eval_env):
    fake_run(eval_env, "act_odin_demo")
    t0 = time.monotonic()
    assert "unknown dataset group" in one_line_error(
        run_cli(eval_env, "evaluate", "act_odin_demo", "--dataset-group", "nope"))
    assert "no run, folder or Hub id" in one_line_error(run_cli(eval_env, "evaluate", "nope_run"))
    assert "no run named 'nope'" in one_line_error(run_cli(eval_env, "compare", "act_odin_demo", "nope"))
    assert time.monotonic() - t0 < 30  # refused before torch / lerobot are imported


# --- the real thing: two tiny ACT runs, LeRobot's parser, offline evaluation, compare -------

@pytest.fixture(scope="module")
def trained(tmp_path_factory, demo_home) -> dict:
    """Two real runs on the demo group (2 and 8 steps), trained at the same time, once per module."""
    tmp = tmp_path_factory.mktemp("eval")
    groups = tmp / "groups.yaml"
    groups.write_text("groups:\n  demo: {datasets: [mimic-demo/demo_a, mimic-demo/demo_b], local: true}\n")
    env = {k: v for k, v in os.environ.items() if k not in EVAL_VARS + ("LEROBOT_TRAIN", "COMPUTER", "STEPS",
                                                                      "BATCH_SIZE", "NUM_WORKERS", "SAVE_FREQ")}
    env.update({"MIMIC_OUTPUTS": str(tmp / "outputs"), "HF_LEROBOT_HOME": str(demo_home),
                "MIMIC_MERGED_HOME": str(tmp / "merged"), "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled",
                "HF_HOME": str(tmp / "hf_home"), "PYTHONPATH": str(REPO), "DATASET_GROUPS_FILE": str(groups),
                "OMP_NUM_THREADS": "1"})  # two trainings share the CPU
    # s8 holds out the last ceil(6 * 0.34) = 3 of the 6 demo episodes and logs eval_loss at steps 4 and 8
    runs = {"act_cpu_demo_s2": ("2", "2", ()),
            "act_cpu_demo_s8": ("8", "4", ("--eval-split", "0.34", "--eval-steps", "4"))}
    for name, (steps, save, more) in runs.items():
        out = run_cli(env, "--policy", "act", "--dataset-group", "demo", "--steps", steps, "--save-freq", save,
                      "--batch-size", "2", "--num-workers", "0", "--tag", name.rsplit("_", 1)[1], *more,
                      "--", *TINY_ACT)
        assert out.returncode == 0, out.stderr

    def ended():
        states = {n: read_record(env, n)["state"] for n in runs}
        return states if all(s in ("finished", "failed", "stopped", "lost") for s in states.values()) else None

    states = wait_for(ended, timeout=900, interval=1, what="both training runs to end")
    for name in runs:
        rec = read_record(env, name)
        assert states[name] == "finished", Path(rec["plan"]["log_file"]).read_text()[-3000:]
    env.pop("OMP_NUM_THREADS")
    return {"env": env, "tmp": tmp, "records": {n: read_record(env, n) for n in runs}}


def check_json(out) -> dict:
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.mark.lerobot
def test_rollout_argv_parses_with_lerobot_for_the_default_robot(trained):
    """eval-robot --check: the toolkit's LeRobot 0.6.1 parses its lerobot-rollout argv, in its own env."""
    env = trained["env"]
    out = eval_sh(env, "act", "--check", "--json", "--device", "cpu", MODEL_PATH="act_cpu_demo_s8",
                  EVAL_DATASET="Mimic-Robotics/rollout_act_demo", NUM_EPISODES="2", EPISODE_TIME_S="20")
    result = check_json(out)
    plan, parsed = result["plan"], result["lerobot"]
    output_dir = Path(trained["records"]["act_cpu_demo_s8"]["plan"]["output_dir"])
    ckpt = output_dir / "checkpoints" / "last" / "pretrained_model"
    assert plan["model"] == str(ckpt) and plan["checkpoint_step"] == 8
    assert parsed["command"] == "lerobot-rollout" and parsed["strategy"] == "episodic"
    assert parsed["robot"]["type"] == "bi_so_follower" and parsed["robot"]["id"] == "mimic_follower"
    cfg = parsed["robot"]["config"]
    assert cfg["left_arm_config"]["port"] == "/dev/ttyACM0" and cfg["right_arm_config"]["port"] == "/dev/ttyACM1"
    assert sorted(cfg["cameras"]) == ["front", "left_wrist", "right_wrist", "top"]
    # what LeRobot will name the features: exactly what eval-robot predicted, and what the policy reads
    assert parsed["recorded_cameras"] == sorted(plan["camera_keys"].values())
    assert [k.removeprefix("observation.images.") for k in parsed["policy"]["image_keys"]] == parsed["recorded_cameras"]
    assert parsed["policy"]["type"] == "act" and parsed["policy"]["pretrained_path"] == str(ckpt)
    assert parsed["policy"]["device"] == "cpu" and parsed["device"] == "cpu" and parsed["fps"] == 30
    ds = parsed["dataset"]
    assert ds["repo_id"] == "Mimic-Robotics/rollout_act_demo" and ds["num_episodes"] == 2 and ds["no_stamp"] is True
    assert ds["single_task"] == "Bimanual blue block handover from left to right hand"
    assert ds["episode_time_s"] == 20 and ds["reset_time_s"] == 30 and ds["push_to_hub"] is False
    assert parsed["dataset_rule"]["prefix"] == "rollout_"  # read from LeRobot's own build_rollout_context


@pytest.mark.lerobot
def test_rollout_argv_parses_with_lerobot_for_a_plugin_robot(trained, tmp_path):
    """With a flat camera dict the recorded features are the dataset names the policy was trained on;
    the plugin is imported by LeRobot itself (--robot.discover_packages_path) in the engine's env."""
    (tmp_path / "plug" / "mimic_test_robot").mkdir(parents=True)
    (tmp_path / "plug" / "mimic_test_robot" / "__init__.py").write_text(PLUGIN)
    robot = tmp_path / "robot.yaml"
    robot.write_text(PLUGIN_ROBOT)
    env = dict(trained["env"], PYTHONPATH=f"{tmp_path / 'plug'}{os.pathsep}{REPO}")
    out = eval_sh(env, "act", "--check", "--json", "--robot-config", str(robot),
                  MODEL_PATH="act_cpu_demo_s2", EVAL_DATASET="ns/rollout_act_plugin")
    result = check_json(out)
    plan, parsed = result["plan"], result["lerobot"]
    assert plan["problems"] == [], plan["problems"]
    assert parsed["robot"]["type"] == "mimic_test_follower"
    assert parsed["robot"]["config"]["base_port"] == "/dev/ttyACM7"
    assert parsed["robot"]["config"]["cameras"]["left_wrist"]["rotation"] == 180
    assert parsed["recorded_cameras"] == ["front", "left_wrist", "right_wrist", "top"]
    assert [k.removeprefix("observation.images.") for k in parsed["policy"]["image_keys"]] == parsed["recorded_cameras"]
    assert parsed["dataset"]["fps"] == 15 and parsed["fps"] == 15


@pytest.mark.lerobot
def test_evaluate_two_checkpoints_then_compare(trained):
    from PIL import Image

    env = trained["env"]
    s8_step4 = Path(trained["records"]["act_cpu_demo_s8"]["plan"]["output_dir"]) / "checkpoints" / "000004"
    out = run_cli(env, "evaluate", "act_cpu_demo_s8", str(s8_step4), "act_cpu_demo_s2", "--dataset-group", "demo",
                  "--device", "cpu", "--json", timeout=600)
    assert out.returncode == 0, out.stderr
    reports = json.loads(out.stdout)
    by_step = {(r["run"], r["checkpoint_step"]): r for r in reports}
    assert set(by_step) == {("act_cpu_demo_s8", 8), ("act_cpu_demo_s8", 4), ("act_cpu_demo_s2", 2)}
    for r in reports:
        split = r["run"] == "act_cpu_demo_s8"  # trained with --eval-split 0.34: its held-out episodes
        episodes = [3, 4, 5] if split else [1, 2, 3, 4, 5]
        assert r["dataset"]["repo_id"] == "mimic-merged/demo" and r["episodes"] == episodes
        if split:
            assert r["held_out"] is True and "eval_split=0.34" in r["held_out_reason"] and r["eval_split"] == 0.34
            assert r["eval_loss_step"] == r["checkpoint_step"] and r["eval_loss"] > 0  # as LeRobot logged it
        else:
            assert r["held_out"] is False and "seen in training" in r["held_out_reason"]
            assert r["eval_loss"] is None and r["eval_split"] is None
        assert len(r["per_dim"]) == 15 and r["per_dim"][0]["name"] == "left_joint_1"
        assert [e["episode"] for e in r["per_episode"]] == episodes
        assert all(e["frames"] == 20 and len(e["l1_per_dim"]) == 15 for e in r["per_episode"])
        assert r["overall"]["frames"] == 20 * len(episodes) and r["overall"]["l1"] > 0 and r["overall"]["mse"] > 0
        on_disk = json.loads((Path(r["dir"]) / "report.json").read_text())
        assert on_disk["overall"] == r["overall"]
        assert set(r["plots"]) == {"actions", "errors", "loss"}
        for png in r["plots"].values():
            with Image.open(png) as im:
                assert im.format == "PNG" and im.size[0] > 200 and im.size[1] > 200
    s2, s8 = by_step[("act_cpu_demo_s2", 2)], by_step[("act_cpu_demo_s8", 8)]
    assert s2["overall"]["l1"] != s8["overall"]["l1"] and s2["overall"]["mse"] != s8["overall"]["mse"]
    assert Path(s8["dir"]).parent == Path(env["MIMIC_OUTPUTS"]) / "eval" / "act_cpu_demo_s8"

    png = trained["tmp"] / "compare.png"
    cmp = run_cli(env, "compare", "act_cpu_demo_s2", "act_cpu_demo_s8", "--out", str(png))
    assert cmp.returncode == 0, cmp.stderr
    rows = {line.split()[0]: line for line in cmp.stdout.splitlines() if line.startswith("act_cpu_demo_")}
    assert set(rows) == {"act_cpu_demo_s2", "act_cpu_demo_s8"}
    assert " 2/2 " in rows["act_cpu_demo_s2"] and " 8/8 " in rows["act_cpu_demo_s8"]
    assert f"{s2['overall']['l1']:.4g}" in rows["act_cpu_demo_s2"]
    assert "EVAL LOSS" in cmp.stdout and f"{s8['eval_loss']:.4g}" in rows["act_cpu_demo_s8"]
    with Image.open(png) as im:
        assert im.size[0] > 200 and im.size[1] > 200
    data = json.loads(run_cli(env, "compare", "act_cpu_demo_s2", "act_cpu_demo_s8", "--json", "--no-plot").stdout)
    finals = {r["name"]: r["final_loss"] for r in data["runs"]}
    assert all(isinstance(v, float) for v in finals.values())
    evals = {r["name"]: r for r in data["runs"]}
    assert evals["act_cpu_demo_s2"]["eval_loss"] is None
    assert evals["act_cpu_demo_s8"]["eval_loss"] == s8["eval_loss"] and evals["act_cpu_demo_s8"]["eval_loss_step"] == 8
    assert [p[0] for p in evals["act_cpu_demo_s8"]["eval_curve"]] == [4, 8]
    # and status: the run's last eval loss, in the table and in --json
    rows = {r["name"]: r for r in json.loads(run_cli(env, "status", "--json").stdout)}
    assert rows["act_cpu_demo_s8"]["eval_loss"] == s8["eval_loss"] and rows["act_cpu_demo_s2"]["eval_loss"] is None
    assert rows["act_cpu_demo_s8"]["samples_per_sec"] is not None
    assert "EVAL LOSS" in run_cli(env, "status").stdout
