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
import re
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mimic_deployment.host import paths
from mimic_deployment.config.loader import CONFIG_DIR, Section, load_yaml
from mimic_deployment.datasets import cameras as camera_map
from mimic_deployment.util.errors import UserError
from mimic_deployment.evaluation.runs import Model, resolve_model

ROBOT_FILE = CONFIG_DIR / "robot.yaml"
ROBOT_FILE_ENV = "ROBOT_CONFIG"
DEFAULT_TASK = "Bimanual blue block handover from left to right hand"
DEFAULT_NUM_EPISODES = 10
DEFAULT_EPISODE_TIME_S = 60
DEFAULT_RESET_TIME_S = 30
DEFAULT_FPS = 30
IMAGE_PREFIX = "observation.images."
PER_ARM = "per_arm"
ARMS = ("left", "right")
PORT_ROLES = ("left_arm", "right_arm", "arm", "base")
EVAL_DATASET_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9_][A-Za-z0-9_.-]*\Z")
_TYPE_RE = re.compile(r"[a-z][a-z0-9_]*\Z")
_FIELD_RE = re.compile(r"[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)*\Z")


@dataclass(frozen=True)
class Layout:
    """How port roles and cameras become flags of one LeRobot robot config class."""
    ports: dict[str, str]        # port role -> config field (dotted), e.g. left_arm -> left_arm_config.port
    cameras: str                 # config field of the camera dict, or PER_ARM (bi_so_follower)
    motors: int | None = None    # state/action size the robot reports, when known
    plugin: str | None = None    # --robot.discover_packages_path
    sdk: tuple[str, str] | None = None  # (python module, lerobot extra) the robot needs to connect


_FEETECH = ("scservo_sdk", "feetech")
KNOWN_LAYOUTS: dict[str, Layout] = {
    # lerobot/robots/bi_so_follower: two SOFollowerConfig, each with its own port and cameras;
    # features are prefixed left_/right_ (6 motors per arm: 5 joints + gripper).
    "bi_so_follower": Layout({"left_arm": "left_arm_config.port", "right_arm": "right_arm_config.port"},
                             PER_ARM, motors=12, sdk=_FEETECH),
    "so100_follower": Layout({"arm": "port"}, "cameras", motors=6, sdk=_FEETECH),
    "so101_follower": Layout({"arm": "port"}, "cameras", motors=6, sdk=_FEETECH),
}
CAMERA_TYPES = {"opencv": "index_or_path", "intelrealsense": "serial_number_or_name"}
CAMERA_OPTIONAL = ("rotation", "color_mode", "fourcc", "warmup_s", "arm")
ROTATIONS = (0, 90, 180, -90)


@dataclass(frozen=True)
class Camera:
    name: str                    # robot name (cameras.yaml)
    settings: dict               # what goes to LeRobot: type, index_or_path|serial..., width, height, fps, ...
    arm: str | None = None


@dataclass(frozen=True)
class RobotSpec:
    path: Path
    type: str
    id: str
    fps: int
    ports: dict[str, str]
    cameras: tuple[Camera, ...]
    layout: Layout


def robot_file(path: str | os.PathLike | None = None) -> Path:
    if path:
        return Path(path).expanduser()
    env = os.environ.get(ROBOT_FILE_ENV)
    return Path(env).expanduser() if env else ROBOT_FILE


def _positive(sec: Section, key: str, kind=int):
    value = sec.data.get(key)
    if isinstance(value, bool) or not isinstance(value, kind) or value <= 0:
        sec.fail(f"{key!r} must be a positive {'integer' if kind is int else 'number'}, got {value!r}")
    return value


def _layout(top: Section, rtype: str) -> Layout:
    raw = top.data.get("layout")
    if raw is None:
        if rtype not in KNOWN_LAYOUTS:
            top.fail(f"'type': robot type {rtype!r} has no known layout (known: {', '.join(KNOWN_LAYOUTS)})",
                     "add a 'layout:' section (ports: role -> config field, cameras: config field), "
                     "see the end of config/robot.yaml")
        return KNOWN_LAYOUTS[rtype]
    sec = top.child("layout", raw)
    sec.check_keys(required=("ports", "cameras"), optional=("plugin", "motors"))
    ports = sec.child("ports", sec.data["ports"])
    mapping = {}
    for role, fld in ports.data.items():
        if role not in PORT_ROLES:
            ports.fail(f"unknown port role {role!r}", f"roles: {', '.join(PORT_ROLES)}")
        if not isinstance(fld, str) or not _FIELD_RE.match(fld):
            ports.fail(f"{role!r} must name a field of the robot config (e.g. left_arm_port), got {fld!r}")
        mapping[role] = fld
    cams = sec.get("cameras", str)
    if cams != PER_ARM and not _FIELD_RE.match(cams):
        sec.fail(f"'cameras' must name the robot config field holding the camera dict, got {cams!r}",
                 "usually: cameras")
    plugin = sec.get("plugin", str)
    motors = sec.positive_int("motors")
    return Layout(mapping, cams, motors=motors, plugin=plugin)


def _camera(cams: Section, name, raw, layout: Layout) -> Camera:
    robot_names = camera_map.robot_to_dataset()
    if name not in robot_names:
        cams.fail(f"unknown camera {name!r}: cameras are keyed by the robot names of "
                  f"{camera_map.CAMERAS_FILE.name} ({', '.join(robot_names)})",
                  f"rename it, or add it to {camera_map.CAMERAS_FILE}")
    sec = cams.child(str(name), raw)
    ctype = sec.data.get("type")
    if ctype not in CAMERA_TYPES:
        sec.fail(f"'type' must be one of {', '.join(CAMERA_TYPES)}, got {ctype!r}")
    source = CAMERA_TYPES[ctype]
    sec.check_keys(required=("type", source, "width", "height", "fps"), optional=CAMERA_OPTIONAL)
    settings: dict[str, Any] = {"type": ctype}
    value = sec.data[source]
    if isinstance(value, bool) or not isinstance(value, (int, str)) or value == "":
        sec.fail(f"{source!r} must be a device index or a path (/dev/video0), got {value!r}")
    settings[source] = value
    for key in ("width", "height", "fps"):
        settings[key] = _positive(sec, key)
    if "rotation" in sec.data:
        if sec.data["rotation"] not in ROTATIONS or isinstance(sec.data["rotation"], bool):
            sec.fail(f"'rotation' must be one of {', '.join(map(str, ROTATIONS))}, got {sec.data['rotation']!r}")
        settings["rotation"] = sec.data["rotation"]
    if "color_mode" in sec.data:
        if sec.data["color_mode"] not in ("rgb", "bgr"):
            sec.fail(f"'color_mode' must be rgb or bgr, got {sec.data['color_mode']!r}")
        settings["color_mode"] = sec.data["color_mode"]
    if "fourcc" in sec.data:
        fourcc = sec.data["fourcc"]
        if not isinstance(fourcc, str) or len(fourcc) != 4:
            sec.fail(f"'fourcc' must be a 4-character code like MJPG, got {fourcc!r}")
        settings["fourcc"] = fourcc
    if "warmup_s" in sec.data:
        warm = sec.data["warmup_s"]
        if isinstance(warm, bool) or not isinstance(warm, int) or warm < 0:
            sec.fail(f"'warmup_s' must be a whole number of seconds >= 0, got {warm!r}")
        settings["warmup_s"] = warm
    arm = sec.data.get("arm")
    if arm is not None:
        if layout.cameras != PER_ARM:
            sec.fail("'arm' is only for robot types with cameras per arm (bi_so_follower)", "remove it")
        if arm not in ARMS:
            sec.fail(f"'arm' must be left or right, got {arm!r}")
    return Camera(name=str(name), settings=settings, arm=arm)


def load_robot(path: str | os.PathLike | None = None) -> RobotSpec:
    """Parse and validate the robot file; every problem is a UserError naming file, key and fix."""
    path = robot_file(path)
    top = Section(path, "", load_yaml(path))
    top.check_keys(required=("type", "id", "ports", "cameras"), optional=("fps", "layout"))
    rtype = top.get("type", str)
    if not _TYPE_RE.match(rtype):
        top.fail(f"'type' must be a LeRobot robot type like bi_so_follower, got {rtype!r}")
    rid = top.get("id", (str, int))
    if rid == "" or (isinstance(rid, str) and re.search(r"\s", rid)):
        top.fail(f"'id' must be a name without spaces (it names the calibration files), got {rid!r}")
    fps = top.positive_int("fps", DEFAULT_FPS)
    layout = _layout(top, rtype)
    ports_sec = top.child("ports", top.data["ports"])
    ports: dict[str, str] = {}
    for role, device in ports_sec.data.items():
        allowed = list(layout.ports) + (["base"] if "base" not in layout.ports else [])
        if role not in allowed:
            ports_sec.fail(f"unknown port role {role!r} for {rtype}", f"roles: {', '.join(allowed)}")
        if not isinstance(device, str) or not device.strip():
            ports_sec.fail(f"{role!r} must be a device path like /dev/ttyACM0, got {device!r}")
        ports[role] = device
    for role in layout.ports:
        if role not in ports:
            ports_sec.fail(f"missing port {role!r} ({rtype} needs {', '.join(layout.ports)})", f"add '{role}: /dev/ttyACM0'")
    cams_sec = top.child("cameras", top.data["cameras"])
    if not cams_sec.data:
        cams_sec.fail("declares no camera", "add e.g. 'front: {type: opencv, index_or_path: 0, width: 640, height: 480, fps: 30}'")
    cams = tuple(_camera(cams_sec, name, raw, layout) for name, raw in cams_sec.data.items())
    return RobotSpec(path=path, type=rtype, id=str(rid), fps=fps, ports=ports, cameras=cams, layout=layout)


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
    sources: dict[str, str] = field(default_factory=dict)   # setting -> where it came from
    problems: list[str] = field(default_factory=list)       # what LeRobot would refuse or fail on
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"argv": self.argv, "command": shell_command(self.argv), "policy": self.policy,
                "model": self.model.path, "model_spec": self.model.spec, "run": self.model.run,
                "checkpoint_step": self.model.step, "robot_type": self.robot.type, "robot_config": str(self.robot.path),
                "eval_dataset": self.eval_dataset, "dataset_root": str(self.dataset_root),
                "camera_keys": self.camera_keys, "sources": self.sources, "problems": self.problems,
                "notes": self.notes}


def _setting(flag, var: str, default, env=None) -> tuple[Any, str]:
    env = os.environ if env is None else env
    if flag is not None:
        return flag, "flag"
    if env.get(var, "").strip():
        return env[var].strip(), f"env {var}"
    return default, "default"


def _positive_int(value, where: str, name: str) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        number = 0
    if number <= 0:
        raise UserError(f"{name}={value!r} ({where}) must be a positive integer")
    return number


def _positive_seconds(value, where: str, name: str) -> int | float:
    try:
        number = float(str(value).strip())
    except ValueError:
        number = -1.0
    if not number > 0 or number == float("inf"):
        raise UserError(f"{name}={value!r} ({where}) must be a positive number of seconds")
    return int(number) if number.is_integer() else number


def check_eval_dataset(repo_id: str | None) -> str:
    """`namespace/eval_<name>`, as lerobot-record requires when a policy drives the robot."""
    repo_id = (repo_id or "").strip()
    if not repo_id:
        raise UserError("EVAL_DATASET is not set", hint="set it to namespace/eval_<name>, e.g. Mimic-Robotics/eval_act_test")
    if not EVAL_DATASET_RE.match(repo_id):
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


def build(request: EvalRequest, env: dict | None = None) -> RecordPlan:
    """Resolve flags > env vars > defaults, validate, and build the lerobot-record argv."""
    env = os.environ if env is None else env
    sources: dict[str, str] = {}

    def take(name, flag, var, default):
        value, where = _setting(flag, var, default, env)
        sources[name] = where
        return value, where

    spec, where = take("model_path", request.model_path, "MODEL_PATH", None)
    if spec is None:
        raise UserError("MODEL_PATH is not set", hint="export MODEL_PATH=<run name | checkpoint folder | Hub id>, or --model-path")
    repo_id, _ = take("eval_dataset", request.eval_dataset, "EVAL_DATASET", None)
    repo_id = check_eval_dataset(repo_id)
    n, w = take("num_episodes", request.num_episodes, "NUM_EPISODES", DEFAULT_NUM_EPISODES)
    num_episodes = _positive_int(n, w, "NUM_EPISODES")
    task, _ = take("task", request.task, "TASK", DEFAULT_TASK)
    if not str(task).strip():
        raise UserError("TASK is empty", hint="the task text the policy was trained with")
    t, w = take("episode_time_s", request.episode_time_s, "EPISODE_TIME_S", DEFAULT_EPISODE_TIME_S)
    episode_time = _positive_seconds(t, w, "EPISODE_TIME_S")
    t, w = take("reset_time_s", request.reset_time_s, "RESET_TIME_S", DEFAULT_RESET_TIME_S)
    reset_time = _positive_seconds(t, w, "RESET_TIME_S")
    device, _ = take("device", request.device, "DEVICE", None)
    push, where_push = take("push_to_hub", request.push_to_hub, "PUSH_TO_HUB", False)
    if isinstance(push, str):
        low = push.lower()
        if low not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
            raise UserError(f"PUSH_TO_HUB={push!r} must be true or false")
        push = low in ("1", "true", "yes", "on")

    robot = load_robot(request.robot_config)
    sources["robot_config"] = "flag" if request.robot_config else (f"env {ROBOT_FILE_ENV}" if env.get(ROBOT_FILE_ENV) else "default")
    fps = robot.fps
    if request.fps is not None:
        fps, sources["fps"] = _positive_int(request.fps, "flag", "--fps"), "flag"
    else:
        sources["fps"] = f"robot config {robot.path.name}"

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
    if not model.local and os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        problems.append(f"{model.path} is a Hub id and HF_HUB_OFFLINE is set: LeRobot cannot download it "
                        "(download it first, or unset HF_HUB_OFFLINE)")
    if not model.local:
        notes.append(f"{model.path} is a Hub id: its image keys are assumed from config/cameras.yaml "
                     f"({', '.join(sorted(wanted.values()))})")
    if model.run:
        from mimic_deployment.runs import registry

        record = registry.read(model.run) or {}
        root = ((record.get("plan") or {}).get("dataset") or {}).get("root")
        info = Path(root) / "meta" / "info.json" if root else None
        try:
            train_fps = json.loads(info.read_text()).get("fps") if info else None
        except (OSError, ValueError):
            train_fps = None
        if train_fps and int(train_fps) != fps:
            notes.append(f"recording at {fps} fps but run {model.run} trained on {train_fps} fps data "
                         f"(set fps: in the robot config, or --fps)")
    return problems, notes


def sdk_problem(robot: RobotSpec) -> str | None:
    """The motor SDK the robot needs to connect, when it is not installed."""
    if not robot.layout.sdk:
        return None
    import importlib.util

    module, extra = robot.layout.sdk
    if importlib.util.find_spec(module) is None:
        return (f"{robot.type} needs the Python module {module}, not installed here "
                f"(pip install 'lerobot[{extra}]==0.4.4' in the robot computer's environment)")
    return None


def shell_command(argv: list[str], indent: str = "  ") -> str:
    """Copy-pasteable: the program on the first line, one flag per line."""
    return (" \\\n" + indent).join(shlex.quote(a) for a in argv)


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
            cfg = _parse()
            sanity_check_dataset_name(cfg.dataset.repo_id, cfg.policy)
        except SystemExit as exc:
            raise UserError(f"lerobot-record's parser refused the command (exit {exc.code}; its message is above)") from None
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
