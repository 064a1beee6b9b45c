"""Real-robot evaluation: config/robot.yaml + MODEL_PATH, EVAL_DATASET, ... -> the exact
`lerobot-record` command that runs a policy on the robot and records the episodes.

Standard library + yaml only (the dry-run never imports torch); `parse_with_lerobot` imports
LeRobot to parse a command exactly as lerobot-record does, without connecting anything.

Camera names. The robot config names cameras with the ROBOT names of config/cameras.yaml
(wrist_left, ...). lerobot-record names each dataset feature `observation.images.<key>` after the
key of the robot's camera dict, and LeRobot refuses a policy whose image keys the recorded
dataset lacks. So the key given to LeRobot for each camera is the key the checkpoint reads:
the dataset name from cameras.yaml (wrist_left -> left_wrist) for policies trained on the dataset
keys (act, diffusion, groot), or the policy's image key for policies fine-tuned through a rename
map (xvla: front -> image). For a local checkpoint that is read from its own config.json and
train_config.json (rename_map); for a Hub id, from cameras.yaml.
"""
from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mimic_deployment.datasets import cameras as camera_map
from mimic_deployment.evaluation.robot_config import ARMS, PER_ARM, RobotSpec, load_robot, robot_file, sdk_problem
from mimic_deployment.evaluation.runs import Model, resolve_model
from mimic_deployment.host import paths
from mimic_deployment.planning.settings import ROBOT
from mimic_deployment.util.errors import UserError
from mimic_deployment.util.names import is_repo_id
from mimic_deployment.util.settings import Source, SourceKind
from mimic_deployment.util.shell import quote
from mimic_deployment.util.values import hub_offline

__all__ = ["EvalRequest", "RecordPlan", "build", "check_eval_dataset", "parse_with_lerobot", "record_command",
           "sdk_problem"]
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
    argv: list[str]
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
        return {"argv": self.argv, "command": record_command(self.argv), "policy": self.policy,
                "model": self.model.path, "model_spec": self.model.spec, "run": self.model.run,
                "checkpoint_step": self.model.step, "robot_type": self.robot.type, "robot_config": str(self.robot.path),
                "eval_dataset": self.eval_dataset, "dataset_root": str(self.dataset_root),
                "camera_keys": self.camera_keys, "sources": {k: str(v) for k, v in self.sources.items()},
                "problems": self.problems,
                "notes": self.notes}


def check_eval_dataset(repo_id: str | None) -> str:
    """`namespace/eval_<name>`, as lerobot-record requires when a policy drives the robot."""
    repo_id = (repo_id or "").strip()
    if not repo_id:
        raise UserError("EVAL_DATASET is not set",
                        hint="set it to namespace/eval_<name>, e.g. Mimic-Robotics/eval_act_test")
    if not is_repo_id(repo_id):
        raise UserError(f"EVAL_DATASET={repo_id!r} is not a dataset id 'namespace/eval_<name>'",
                        hint="e.g. Mimic-Robotics/eval_act_test")
    namespace, name = repo_id.split("/")
    if not name.startswith("eval_") or name == "eval_":
        raise UserError(f"EVAL_DATASET={repo_id!r}: the dataset name must start with 'eval_' "
                        "(lerobot-record refuses a policy run into any other name)",
                        hint=f"e.g. {namespace}/eval_{name.removeprefix('eval_') or 'test'}")
    return repo_id


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


def _place_cameras(robot: RobotSpec, keys: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """The camera flags, and robot camera -> the feature key LeRobot will actually record."""
    if robot.layout.cameras != PER_ARM:
        cams = {keys[c.name]: c.settings for c in robot.cameras}
        return [f"--robot.{robot.layout.cameras}={_json(cams)}"], dict(keys)
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


def _lerobot_record() -> str:
    return os.environ.get("LEROBOT_RECORD") or str(Path(sys.executable).parent / "lerobot-record")


def build(request: EvalRequest, env: Mapping[str, str] | None = None) -> RecordPlan:
    """Resolve flags > env vars > defaults (settings.ROBOT), validate, and build the lerobot-record argv."""
    env = os.environ if env is None else env
    sources: dict[str, Source] = {}

    def take(name: str, *fallbacks: tuple[Any, Source]) -> Any:
        value, sources[name] = ROBOT[name].resolve(getattr(request, name), env, *fallbacks)
        return value

    spec = take("model_path")
    if spec is None:
        raise UserError("MODEL_PATH is not set",
                        hint="export MODEL_PATH=<run name | checkpoint folder | Hub id>, or --model-path")
    repo_id = check_eval_dataset(take("eval_dataset"))
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

        get_policy(policy)  # unknown policy -> UserError with the list
        if model.policy_type and model.policy_type != policy:
            raise UserError(f"MODEL_PATH {model.spec} is a checkpoint of policy type {model.policy_type}, not {policy}",
                            hint=f"use training_scripts/{model.policy_type}/eval.sh, or --policy {model.policy_type}")
    policy = policy or model.policy_type

    dataset_names = camera_map.robot_to_dataset()
    wanted = {c.name: _expected_key(model, policy, dataset_names[c.name]) for c in robot.cameras}
    camera_flags, recorded = _place_cameras(robot, wanted)
    problems, notes = _check(robot, model, policy, wanted, recorded, fps)
    dataset_root = paths.lerobot_home() / repo_id
    if dataset_root.exists():
        problems.append(f"{dataset_root} already exists: lerobot-record creates the dataset and refuses an "
                        f"existing folder (pick another EVAL_DATASET, or move that folder away)")

    layout = robot.layout
    argv = [_lerobot_record(), f"--robot.type={robot.type}", f"--robot.id={robot.id}"]
    if layout.plugin:
        argv.append(f"--robot.discover_packages_path={layout.plugin}")
    for role, fld in layout.ports.items():
        if role in robot.ports:
            argv.append(f"--robot.{fld}={robot.ports[role]}")
    if "base" in robot.ports and "base" not in layout.ports:
        notes.append(f"port 'base' ({robot.ports['base']}) is not passed: {robot.type} drives no mobile base "
                     "(no LeRobot 0.4.4 robot type drives two arms and a base)")
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
    return RecordPlan(argv=argv, model=model, robot=robot, policy=policy, eval_dataset=repo_id,
                      dataset_root=dataset_root, camera_keys=recorded, sources=sources, problems=problems,
                      notes=notes)


def _check(robot: RobotSpec, model: Model, policy: str | None, wanted: dict[str, str], recorded: dict[str, str],
           fps: int):
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
        fix = (f"{robot.type} names every camera <arm>_<name>; use your robot's own LeRobot type "
               "(layout: in the robot config)" if robot.layout.cameras == PER_ARM
               else "add those cameras to the robot config")
        problems.append(f"the policy reads camera(s) {names} but the robot records {recorded_as} ({fix})")
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


def parse_with_lerobot(argv: list[str]) -> dict:
    """Parse `argv` (without the program) exactly as lerobot-record does, connecting nothing.

    Same path as lerobot_record.main: third-party plugins, then parser.wrap() -> RecordConfig,
    whose __post_init__ loads the policy config from --policy.path; then LeRobot's own dataset
    name check. Returns the parsed fields. Imports LeRobot (slow).
    """
    from dataclasses import asdict

    saved = sys.argv
    sys.argv = ["lerobot-record", *argv]
    try:
        from lerobot.configs import parser
        from lerobot.scripts import lerobot_record
        from lerobot.utils.control_utils import sanity_check_dataset_name
        from lerobot.utils.import_utils import register_third_party_plugins

        register_third_party_plugins()

        def _parse(cfg):
            return cfg

        # parser.wrap reads the config class from the annotation (a string under `from __future__`)
        _parse.__annotations__ = {"cfg": lerobot_record.RecordConfig}
        _parse = parser.wrap()(_parse)

        try:
            cfg = _parse()  # type: ignore[call-arg]  # parser.wrap() fills cfg from sys.argv
            sanity_check_dataset_name(cfg.dataset.repo_id, cfg.policy)
        except SystemExit as exc:
            raise UserError(f"lerobot-record's parser refused the command (exit {exc.code}; "
                            "its message is above)") from None
        except (ValueError, TypeError, FileNotFoundError, OSError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UserError(f"lerobot-record's parser refused the command: {type(exc).__name__}: {first}") from None
    finally:
        sys.argv = saved

    robot = cfg.robot
    cams: dict[str, str] = {}
    if hasattr(robot, "left_arm_config"):
        for arm in ARMS:
            sub = getattr(robot, f"{arm}_arm_config")
            cams.update({f"{arm}_{k}": type(v).__name__ for k, v in (sub.cameras or {}).items()})
    elif getattr(robot, "cameras", None):
        cams = {k: type(v).__name__ for k, v in robot.cameras.items()}

    def plain(v):
        return json.loads(json.dumps(v, default=str))

    return {
        "robot": {"type": robot.type, "id": robot.id, "config": plain(asdict(robot))},
        "recorded_cameras": sorted(cams),
        "policy": None if cfg.policy is None else {
            "type": cfg.policy.type, "pretrained_path": str(cfg.policy.pretrained_path), "device": cfg.policy.device,
            "image_keys": sorted(k for k, v in cfg.policy.input_features.items() if v.type.value == "VISUAL")},
        "dataset": plain(asdict(cfg.dataset)),
    }
