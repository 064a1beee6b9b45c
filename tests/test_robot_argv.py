"""The robot-evaluation argv, fed to the parser of the LeRobot that runs it, in that LeRobot's own env.

LeRobot 0.6.1 (.venv): `lerobot-rollout --strategy.type=episodic`, parsed as lerobot_rollout.main does
(register_third_party_plugins, parser.wrap() -> RolloutConfig, whose __post_init__ checks the
strategy, requires a robot and loads the policy config from --policy.path); LeRobot 0.4.4 (the
lerobot-0.4 env): `lerobot-record` -> RecordConfig + sanity_check_dataset_name. Each case goes through
the real entry point (`training_scripts/<policy>/eval.sh --check --json`, LEROBOT_TRAIN naming the
engine), which runs evaluation/robot_harness.py in that engine's interpreter: one subprocess per case,
nothing connects to a robot. The checkpoints are folders holding the config.json that version's own
policy config class writes (features shaped like the robot: 12 motors for bi_so_follower, 15 for the
plugin robot); xvla / pi05 also get the train_config.json rename map their fine-tuning writes.

The harness must refuse what LeRobot refuses: a misspelt flag, and a dataset name against the
command's own rule (0.6: `rollout_`, read from build_rollout_context's source; 0.4: `eval_`).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, TOOLKIT_VARS

pytestmark = [pytest.mark.lerobot, pytest.mark.timeout(1800)]

SCRIPTS = REPO / "mimic_deployment" / "training_scripts"
CAMERAS = ("front", "top", "left_wrist", "right_wrist")
XVLA_KEYS = {"front": "image", "left_wrist": "image2", "right_wrist": "image3"}
PI_KEYS = {"front": "base_0_rgb", "left_wrist": "left_wrist_0_rgb", "right_wrist": "right_wrist_0_rgb"}
# policy -> (config class, image keys the checkpoint reads, rename map of its training)
POLICIES = {
    "act": ("lerobot.policies.act.configuration_act:ACTConfig", {c: c for c in CAMERAS}),
    "diffusion": ("lerobot.policies.diffusion.configuration_diffusion:DiffusionConfig", {c: c for c in CAMERAS}),
    "xvla": ("lerobot.policies.xvla.configuration_xvla:XVLAConfig", XVLA_KEYS),
    "pi05": ("lerobot.policies.pi05.configuration_pi05:PI05Config", PI_KEYS),
    "pi0": ("lerobot.policies.pi0.configuration_pi0:PI0Config", PI_KEYS),
    "pi0_fast": ("lerobot.policies.pi0_fast.configuration_pi0_fast:PI0FastConfig", PI_KEYS),
    "smolvla": ("lerobot.policies.smolvla.configuration_smolvla:SmolVLAConfig",
                {"front": "camera1", "left_wrist": "camera2", "right_wrist": "camera3"}),
    "groot": ("lerobot.policies.groot.configuration_groot:GrootConfig", {c: c for c in CAMERAS}),
}
# variants evaluate as the policy type they extend (their checkpoints are of that type)
VARIANTS = {"xvla_lora": "xvla", "pi05_expert_only": "pi05"}
# what 0.4.4's PyPI wheel cannot run (no `pi` extra; groot needs flash-attn, which does not build):
# not checked on that engine
NOT_ON_04 = {"pi05", "pi0", "pi0_fast", "groot", "pi05_expert_only"}
MAKE_CHECKPOINTS = r'''
import importlib, json, os, sys
from pathlib import Path
from lerobot.configs.types import FeatureType, PolicyFeature

spec = json.loads(os.environ["SPEC"])
for name, (cls_path, keys, dim) in spec["checkpoints"].items():
    module, _, cls = cls_path.partition(":")
    cfg = getattr(importlib.import_module(module), cls)()
    cfg.input_features = {f"observation.images.{k}": PolicyFeature(type=FeatureType.VISUAL, shape=(3, 48, 64))
                          for k in keys.values()}
    cfg.input_features["observation.state"] = PolicyFeature(type=FeatureType.STATE, shape=(dim,))
    cfg.output_features = {"action": PolicyFeature(type=FeatureType.ACTION, shape=(dim,))}
    folder = Path(spec["root"]) / name
    cfg.save_pretrained(folder)
    renames = {f"observation.images.{c}": f"observation.images.{k}" for c, k in keys.items() if c != k}
    (folder / "train_config.json").write_text(json.dumps({"rename_map": renames}))
print("ok")
'''
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
  wrist_left:  {type: opencv, index_or_path: 0, width: 64, height: 48, fps: 15, rotation: 180}
  wrist_right: {type: opencv, index_or_path: /dev/video2, width: 64, height: 48, fps: 15}
  front:       {type: opencv, index_or_path: 4, width: 64, height: 48, fps: 15}
  top:         {type: intelrealsense, serial_number_or_name: "0123456789", width: 64, height: 48, fps: 15}
"""


@pytest.fixture(scope="module", params=["0.6", "0.4"])
def engine(request, tmp_path_factory) -> dict:
    """One LeRobot env, its checkpoints (written by its own config classes) and a clean CLI env."""
    if request.param == "0.6":
        prefix = Path(sys.executable).parent.parent
    else:
        prefix = request.getfixturevalue("engine04")
    tmp = tmp_path_factory.mktemp(f"robot-{request.param}")
    checkpoints = {f"{p}_12": (cls, keys, 12) for p, (cls, keys) in POLICIES.items()}
    checkpoints["act_15"] = (POLICIES["act"][0], POLICIES["act"][1], 15)
    if request.param == "0.4":
        for policy in NOT_ON_04 & set(POLICIES):
            checkpoints.pop(f"{policy}_12")
    made = subprocess.run([str(prefix / "bin" / "python"), "-c", MAKE_CHECKPOINTS], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "HF_HUB_OFFLINE": "1",
                                            "SPEC": json.dumps({"root": str(tmp / "ck"), "checkpoints": checkpoints})})
    assert made.returncode == 0, made.stderr[-3000:]
    (tmp / "plug" / "mimic_test_robot").mkdir(parents=True)
    (tmp / "plug" / "mimic_test_robot" / "__init__.py").write_text(PLUGIN)
    (tmp / "robot.yaml").write_text(PLUGIN_ROBOT)
    env = {k: v for k, v in os.environ.items() if k not in TOOLKIT_VARS + ("MODEL_PATH", "EVAL_DATASET", "TASK",
                                                                          "ROBOT_CONFIG", "DEVICE", "NUM_EPISODES")}
    env.update({"MIMIC_OUTPUTS": str(tmp / "outputs"), "HF_LEROBOT_HOME": str(tmp / "home"), "HF_HUB_OFFLINE": "1",
                "HF_HOME": str(tmp / "hf"), "PYTHONPATH": f"{tmp / 'plug'}{os.pathsep}{REPO}",
                "LEROBOT_TRAIN": str(prefix / "bin" / "lerobot-train")})
    version = "0.6.1" if request.param == "0.6" else "0.4.4"
    prefix_rule = "rollout_" if request.param == "0.6" else "eval_"
    return {"series": request.param, "version": version, "prefix": prefix_rule, "env": env, "tmp": tmp,
            "command": "lerobot-rollout" if request.param == "0.6" else "lerobot-record"}


def eval_sh(env: dict, policy: str, *args: str, **extra) -> subprocess.CompletedProcess:
    return subprocess.run([str(SCRIPTS / policy / "eval.sh"), *args], env={**env, **extra}, capture_output=True,
                          text=True, timeout=900, cwd=REPO)


def check(engine: dict, policy: str, checkpoint: str, *args: str, dataset: str | None = None) -> dict:
    out = eval_sh(engine["env"], policy, "--check", "--json", "--device", "cpu", *args,
                  MODEL_PATH=str(engine["tmp"] / "ck" / checkpoint),
                  EVAL_DATASET=dataset or f"ns/{engine['prefix']}{policy}_test")
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)


@pytest.mark.parametrize("policy", [*POLICIES, *VARIANTS])
def test_default_robot_argv_is_accepted(engine, policy):
    """bi_so_follower: the command its LeRobot runs policies with, the cameras named as predicted."""
    if engine["series"] == "0.4" and policy in NOT_ON_04:
        pytest.skip(f"LeRobot 0.4.4 from PyPI cannot run {policy} (no `pi` extra; groot needs flash-attn)")
    ptype = VARIANTS.get(policy, policy)
    result = check(engine, policy, f"{ptype}_12", dataset=f"ns/{engine['prefix']}{policy}_test")
    plan, parsed = result["plan"], result["lerobot"]
    assert plan["engine"]["version"] == engine["version"] and Path(plan["argv"][0]).name == engine["command"]
    assert parsed["command"] == engine["command"] and parsed["robot"]["type"] == "bi_so_follower"
    assert parsed["policy"]["type"] == ptype and parsed["policy"]["device"] == "cpu"
    assert parsed["dataset"]["repo_id"] == f"ns/{engine['prefix']}{policy}_test"
    assert parsed["dataset"]["fps"] == 30 and parsed["dataset"]["push_to_hub"] is False
    # what LeRobot will name the recorded features is what eval-robot predicted
    assert parsed["recorded_cameras"] == sorted(plan["camera_keys"].values())
    wanted = {f"observation.images.{k}" for k in POLICIES[ptype][1].values()}
    recorded = {f"observation.images.{k}" for k in parsed["recorded_cameras"]}
    assert parsed["dataset_rule"]["prefix"] == engine["prefix"]  # the toolkit's rule is LeRobot's own
    if engine["series"] == "0.6":
        assert parsed["strategy"] == "episodic" and parsed["fps"] == 30 and parsed["dataset"]["no_stamp"] is True
        assert wanted <= recorded and plan["problems"] == []  # every camera the policy reads is recorded
    elif policy in ("act", "diffusion"):  # 0.4: bi_so_follower prefixes front/top with an arm: flagged
        assert not wanted <= recorded and any("front, top" in p for p in plan["problems"])


def test_plugin_robot_argv_is_accepted(engine):
    """A lab's own robot type (a plugin LeRobot imports by --robot.discover_packages_path), flat cameras."""
    result = check(engine, "act", "act_15", "--robot-config", str(engine["tmp"] / "robot.yaml"))
    plan, parsed = result["plan"], result["lerobot"]
    assert plan["problems"] == [], plan["problems"]
    assert parsed["robot"]["type"] == "mimic_test_follower" and parsed["robot"]["config"]["base_port"] == "/dev/ttyACM7"
    assert parsed["robot"]["config"]["cameras"]["left_wrist"]["rotation"] == 180
    assert parsed["recorded_cameras"] == sorted(CAMERAS)
    assert [k.removeprefix("observation.images.") for k in parsed["policy"]["image_keys"]] == parsed["recorded_cameras"]
    assert parsed["dataset"]["fps"] == 15
    if engine["series"] == "0.6":
        assert parsed["fps"] == 15


def test_the_harness_refuses_what_lerobot_refuses(engine):
    """A misspelt flag, and a dataset named by the other version's rule: refused by that LeRobot."""
    from mimic_deployment.evaluation.robot_check import parse_with_lerobot
    from mimic_deployment.evaluation.robot_engine import robot_engine
    from mimic_deployment.util.errors import UserError

    dry = eval_sh(engine["env"], "act", "--dry-run", "--json", MODEL_PATH=str(engine["tmp"] / "ck" / "act_12"),
                  EVAL_DATASET=f"ns/{engine['prefix']}act_test")
    argv = json.loads(dry.stdout)["argv"][1:]
    runner = robot_engine(engine["env"])
    assert runner.engine.version == engine["version"]
    env = engine["env"]
    bad_flag = [a.replace("--dataset.num_episodes=", "--dataset.num_episodez=") for a in argv]
    with pytest.raises(UserError, match="num_episodez"):
        parse_with_lerobot(runner, bad_flag, env)
    other = "eval_" if engine["prefix"] == "rollout_" else "rollout_"
    renamed = [a.replace(f"ns/{engine['prefix']}act_test", f"ns/{other}act_test") for a in argv]
    with pytest.raises(UserError, match=engine["prefix"]):
        parse_with_lerobot(runner, renamed, env)
