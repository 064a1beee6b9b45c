"""Real-robot evaluation: config/robot.yaml + MODEL_PATH, EVAL_DATASET, ... -> the exact command running the policy.

The command is the engine's (evaluation/robot_engine.py): `lerobot-rollout --strategy.type=episodic`
on LeRobot 0.6, `lerobot-record` on 0.4, from the env of LEROBOT_TRAIN (or the toolkit's), or
LEROBOT_ROLLOUT / LEROBOT_RECORD. Standard library + yaml only (the dry-run never imports torch);
evaluation/robot_check.py parses a command with that LeRobot's own parser, in its own env.

Camera names. The robot config names cameras with the ROBOT names of config/cameras.yaml
(wrist_left, ...). LeRobot names each dataset feature `observation.images.<key>` after the
key of the robot's camera dict, and LeRobot refuses a policy whose image keys the recorded
dataset lacks. So the key given to LeRobot for each camera is the key the checkpoint reads:
the dataset name from cameras.yaml (wrist_left -> left_wrist) for policies trained on the dataset
keys (act, diffusion, groot), or the policy's image key for policies fine-tuned through a rename
map (xvla: front -> image). For a local checkpoint that is read from its own config.json and
train_config.json (rename_map); for a Hub id, from cameras.yaml. bi_so_follower prefixes the cameras
of each arm with the arm's name; from LeRobot 0.6 it also takes a top-level camera dict whose keys
stay as they are (robot_config.Layout.camera_field), so every camera keeps its dataset name there.
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mimic_deployment.datasets import cameras as camera_map
from mimic_deployment.evaluation.robot_config import ARMS, PER_ARM, RobotSpec, load_robot, robot_file, sdk_problem
from mimic_deployment.evaluation.robot_engine import RobotEngine, check_eval_dataset, robot_engine
from mimic_deployment.evaluation.runs import Model, resolve_model
from mimic_deployment.host import paths
from mimic_deployment.planning.settings import ROBOT
from mimic_deployment.util.errors import UserError
from mimic_deployment.util.settings import Source, SourceKind
from mimic_deployment.util.shell import quote
from mimic_deployment.util.values import hub_offline

__all__ = ["EvalRequest", "RecordPlan", "build", "check_eval_dataset", "record_command", "sdk_problem"]
IMAGE_PREFIX = "observation.images."


# --- the request ---------------------------------------------------------------------------

@dataclass
class EvalRequest:
    """Flags (None when not given) of eval-robot; env vars and defaults are resolved by `build`."""
    policy: str | None = None
    model_path: str | None = None
    eval_dataset: str | None = None
    num_episodes: str | None = None
    task: str | None = None
    episode_time_s: str | None = None
    reset_time_s: str | None = None
    fps: str | None = None
    device: str | None = None
    push_to_hub: bool | None = None
    robot_config: str | None = None


@dataclass
class RecordPlan:
    """The robot-eval command (lerobot-rollout or lerobot-record) and what it was made of."""
    argv: list[str]
    engine: RobotEngine
    model: Model
    robot: RobotSpec
    policy: str | None
    eval_dataset: str
    dataset_root: Path
    camera_keys: dict[str, str]            # robot camera -> dataset feature key (observation.images.<key>)
    sources: dict[str, Source] = field(default_factory=dict)  # setting -> where it came from
    problems: list[str] = field(default_factory=list)       # what LeRobot would refuse or fail on
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"argv": self.argv, "command": record_command(self.argv), "engine": self.engine.to_dict(),
                "policy": self.policy,
                "model": self.model.path, "model_spec": self.model.spec, "run": self.model.run,
                "checkpoint_step": self.model.step, "robot_type": self.robot.type, "robot_config": str(self.robot.path),
                "eval_dataset": self.eval_dataset, "dataset_root": str(self.dataset_root),
                "camera_keys": self.camera_keys, "sources": {k: str(v) for k, v in self.sources.items()},
                "problems": self.problems,
                "notes": self.notes}


def _expected_key(model: Model, policy: str | None, dataset_name: str) -> str:
    """The feature key (without prefix) the policy reads for this dataset camera."""
    full = IMAGE_PREFIX + dataset_name
    if model.local and model.config:
        keys = model.image_keys()
        if full in keys:
            return dataset_name
        renamed = model.rename_map().get(full)
        if renamed and renamed in keys:
            return renamed.removeprefix(IMAGE_PREFIX)
        return dataset_name
    camera_policy = _camera_policy(policy)
    mapping = camera_map.rename_map(camera_policy) if camera_policy else {}
    return mapping.get(full, full).removeprefix(IMAGE_PREFIX)


def _camera_policy(policy: str | None) -> str | None:
    if not policy:
        return None
    from mimic_deployment.config.policies import load_policies

    pol = load_policies().get(policy)
    return pol.cameras if pol else None


def _place_cameras(robot: RobotSpec, keys: dict[str, str], series: str) -> tuple[list[str], dict[str, str]]:
    """The camera flags, and robot camera -> the feature key LeRobot will actually record."""
    where = robot.layout.camera_field(series)
    if where != PER_ARM:
        cams = {keys[c.name]: c.settings for c in robot.cameras}
        return [f"--robot.{where}={_json(cams)}"], dict(keys)
    per_arm: dict[str, dict] = {arm: {} for arm in ARMS}
    recorded: dict[str, str] = {}
    for cam in robot.cameras:
        key = keys[cam.name]
        arm = next((a for a in ARMS if key.startswith(f"{a}_")), None)
        if arm is not None and (cam.arm in (None, arm)):
            local = key[len(arm) + 1:]
        else:
            arm, local = cam.arm or "left", key
        if local in per_arm[arm]:
            raise UserError(f"{robot.path}: cameras: two cameras become {arm}_{local} on {robot.type}",
                            hint="give one of them another 'arm:'")
        per_arm[arm][local] = cam.settings
        recorded[cam.name] = f"{arm}_{local}"
    flags = [f"--robot.{arm}_arm_config.cameras={_json(cams)}" for arm, cams in per_arm.items() if cams]
    return flags, recorded


def _json(value) -> str:
    return json.dumps(value, separators=(", ", ": "))


def build(request: EvalRequest, env: Mapping[str, str] | None = None) -> RecordPlan:
    """Resolve flags > env vars > defaults (settings.ROBOT), validate, and build the engine's robot-eval argv."""
    env = os.environ if env is None else env
    sources: dict[str, Source] = {}
    engine = robot_engine(env)
    rules = engine.rules

    def take(name: str, *fallbacks: tuple[Any, Source]) -> Any:
        value, sources[name] = ROBOT[name].resolve(getattr(request, name), env, *fallbacks)
        return value

    spec = take("model_path")
    if spec is None:
        raise UserError("MODEL_PATH is not set",
                        hint="export MODEL_PATH=<run name | checkpoint folder | Hub id>, or --model-path")
    repo_id = check_eval_dataset(take("eval_dataset"), rules, engine.engine.version)
    num_episodes = take("num_episodes")
    task = take("task")
    if not str(task).strip():
        raise UserError("TASK is empty", hint="the task text the policy was trained with")
    episode_time = take("episode_time_s")
    reset_time = take("reset_time_s")
    device = take("device")
    push = take("push_to_hub")
    config_path = take("robot_config")
    robot = load_robot(robot_file(config_path, env))
    fps = take("fps", (robot.fps, Source(SourceKind.ROBOT, f"robot config {robot.path.name}")))

    model = resolve_model(str(spec))
    policy = request.policy
    if policy:
        from mimic_deployment.config.policies import get_policy

        ptype = get_policy(policy).type  # unknown policy -> UserError with the list; a variant: its parent's type
        if model.policy_type and model.policy_type != ptype:
            raise UserError(f"MODEL_PATH {model.spec} is a checkpoint of policy type {model.policy_type}, not {ptype} "
                            f"({policy})",
                            hint=f"use training_scripts/{model.policy_type}/eval.sh, or --policy {model.policy_type}")
    policy = policy or model.policy_type

    dataset_names = camera_map.robot_to_dataset()
    wanted = {c.name: _expected_key(model, policy, dataset_names[c.name]) for c in robot.cameras}
    camera_flags, recorded = _place_cameras(robot, wanted, engine.series)
    problems, notes = _check(robot, model, policy, wanted, recorded, fps, engine)
    dataset_root = paths.lerobot_home() / repo_id
    if dataset_root.exists():
        problems.append(f"{dataset_root} already exists: {engine.command} creates the dataset and refuses an "
                        f"existing folder (pick another EVAL_DATASET, or move that folder away)")

    layout = robot.layout
    argv = [engine.program, *engine.fixed, f"--robot.type={robot.type}", f"--robot.id={robot.id}"]
    if layout.plugin:
        argv.append(f"--robot.discover_packages_path={layout.plugin}")
    for role, fld in layout.ports.items():
        if role in robot.ports:
            argv.append(f"--robot.{fld}={robot.ports[role]}")
    if "base" in robot.ports and "base" not in layout.ports:
        notes.append(f"port 'base' ({robot.ports['base']}) is not passed: {robot.type} drives no mobile base "
                     "(a robot plugin with a base port can: layout: in the robot config)")
    argv += camera_flags
    argv.append(f"--policy.path={model.path}")
    if device:
        argv.append(f"--policy.device={device}")
    argv += [
        f"--dataset.repo_id={repo_id}",
        f"--dataset.single_task={task}",
        f"--dataset.num_episodes={num_episodes}",
        f"--dataset.episode_time_s={episode_time}",
        f"--dataset.reset_time_s={reset_time}",
        f"--dataset.fps={fps}",
        f"--dataset.push_to_hub={'true' if push else 'false'}",
    ]
    if rules.loop_fps_flag:
        argv.append(f"--{rules.loop_fps_flag}={fps}")
    argv += rules.fixed_flags
    return RecordPlan(argv=argv, engine=engine, model=model, robot=robot, policy=policy, eval_dataset=repo_id,
                      dataset_root=dataset_root, camera_keys=recorded, sources=sources, problems=problems,
                      notes=notes)


def _check(robot: RobotSpec, model: Model, policy: str | None, wanted: dict[str, str], recorded: dict[str, str],
           fps: int, engine: RobotEngine):
    """What LeRobot would refuse (problems) and what is worth knowing (notes)."""
    problems: list[str] = []
    notes: list[str] = []
    have = {IMAGE_PREFIX + k for k in recorded.values()}
    if model.local and model.config:
        expected = model.image_keys()
    else:  # a Hub id: what cameras.yaml says the policy reads (every dataset camera, or its rename map's)
        mapping = camera_map.rename_map(_camera_policy(policy)) if _camera_policy(policy) else {}
        expected = sorted(set(mapping.values())) if mapping else [IMAGE_PREFIX + k for k in wanted.values()]
    missing = [k for k in expected if k not in have]
    if missing:
        names = ", ".join(k.removeprefix(IMAGE_PREFIX) for k in missing)
        recorded_as = ", ".join(f"{c} -> {k}" for c, k in recorded.items())
        fix = (f"{robot.type} on LeRobot {engine.engine.version or engine.series} names every camera "
               "<arm>_<name>; use LeRobot 0.6 (top-level cameras keep their names) or your robot's own "
               "LeRobot type (layout: in the robot config)" if robot.layout.camera_field(engine.series) == PER_ARM
               else "add those cameras to the robot config")
        problems.append(f"the policy reads camera(s) {names} but the robot records {recorded_as} ({fix})")
    if model.local and model.written_by() == "0.6" and engine.series == "0.4":
        problems.append(f"the checkpoint was written by LeRobot 0.6, which LeRobot {engine.engine.version or '0.4'} "
                        f"cannot load (its config has fields 0.4 does not know): run it with a 0.6 engine "
                        f"(unset {'LEROBOT_RECORD' if engine.origin == 'LEROBOT_RECORD' else 'LEROBOT_TRAIN'})")
    if model.local and model.config:
        motors = robot.layout.motors
        for key, section, what in (("observation.state", "input_features", "state"),
                                   ("action", "output_features", "action")):
            dim = model.feature_dim(key, section)
            if motors and dim and dim != motors:
                problems.append(f"the policy's {what} has {dim} values but {robot.type} has {motors} motors")
    if not model.local and hub_offline():
        problems.append(f"{model.path} is a Hub id and HF_HUB_OFFLINE is set: LeRobot cannot download it "
                        "(download it first, or unset HF_HUB_OFFLINE)")
    if not model.local:
        notes.append(f"{model.path} is a Hub id: its image keys are assumed from config/cameras.yaml "
                     f"({', '.join(sorted(wanted.values()))})")
    if model.run:
        from mimic_deployment.runs import registry

        record = registry.read(model.run)
        root = (((record.plan if record else None) or {}).get("dataset") or {}).get("root")
        info = Path(root) / "meta" / "info.json" if root else None
        try:
            train_fps = json.loads(info.read_text()).get("fps") if info else None
        except (OSError, ValueError):
            train_fps = None
        if train_fps and int(train_fps) != fps:
            notes.append(f"recording at {fps} fps but run {model.run} trained on {train_fps} fps data "
                         f"(set fps: in the robot config, or --fps)")
    return problems, notes


def record_command(argv: list[str], indent: str = "  ") -> str:
    """Copy-pasteable: the program on the first line, then one flag per line (the camera flags are
    long JSON: util.shell.shell_command's grouping would put them all on the program's line)."""
    return (" \\\n" + indent).join(quote(a) for a in argv)
