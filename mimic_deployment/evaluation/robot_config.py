"""The robot file (config/robot.yaml): its model (robot type, ports, cameras, the layout that maps
them to one LeRobot robot config class) and its validation. Standard library + yaml only.

Every problem is a UserError naming the file, the key and the fix.
"""
from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mimic_deployment.config.loader import CONFIG_DIR, Section, load_yaml
from mimic_deployment.datasets import cameras as camera_map

ROBOT_FILE = CONFIG_DIR / "robot.yaml"
ROBOT_FILE_ENV = "ROBOT_CONFIG"
DEFAULT_FPS = 30
PER_ARM = "per_arm"
ARMS = ("left", "right")
PORT_ROLES = ("left_arm", "right_arm", "arm", "base")
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
    flat_cameras_since: str | None = None  # the LeRobot series from which a PER_ARM type also takes a
    #                                        top-level `cameras` dict whose keys are kept as they are

    def camera_field(self, series: str | None) -> str:
        """The config field of the camera dict on that LeRobot series (PER_ARM: per arm, prefixed)."""
        if self.cameras == PER_ARM and self.flat_cameras_since and series and \
                _series_key(series) >= _series_key(self.flat_cameras_since):
            return "cameras"
        return self.cameras


def _series_key(series: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in series.split("."))
    except ValueError:
        return ()


_FEETECH = ("scservo_sdk", "feetech")
KNOWN_LAYOUTS: dict[str, Layout] = {
    # lerobot/robots/bi_so_follower: two SOFollowerConfig, each with its own port and cameras;
    # features are prefixed left_/right_ (6 motors per arm: 5 joints + gripper). From 0.6 also a
    # top-level `cameras` dict (BiSOFollowerConfig.cameras) whose keys stay unprefixed.
    "bi_so_follower": Layout({"left_arm": "left_arm_config.port", "right_arm": "right_arm_config.port"},
                             PER_ARM, motors=12, sdk=_FEETECH, flat_cameras_since="0.6"),
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


def robot_file(path: str | os.PathLike | None = None, env: Mapping[str, str] | None = None) -> Path:
    """--robot-config, else $ROBOT_CONFIG, else config/robot.yaml."""
    if path:
        return Path(path).expanduser()
    env_path = (os.environ if env is None else env).get(ROBOT_FILE_ENV)
    return Path(env_path).expanduser() if env_path else ROBOT_FILE


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
    source = CAMERA_TYPES[str(ctype)]
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
            ports_sec.fail(f"missing port {role!r} ({rtype} needs {', '.join(layout.ports)})",
                           f"add '{role}: /dev/ttyACM0'")
    cams_sec = top.child("cameras", top.data["cameras"])
    if not cams_sec.data:
        cams_sec.fail("declares no camera",
                      "add e.g. 'front: {type: opencv, index_or_path: 0, width: 640, height: 480, fps: 30}'")
    cams = tuple(_camera(cams_sec, name, raw, layout) for name, raw in cams_sec.data.items())
    return RobotSpec(path=path, type=rtype, id=str(rid), fps=fps, ports=ports, cameras=cams, layout=layout)


def sdk_problem(robot: RobotSpec, engine=None) -> str | None:
    """The motor SDK the robot needs to connect, when the env that drives the robot lacks it
    (`engine`: host/engine.Engine of that env, read from its installed metadata; without a known
    LeRobot there, this process's own modules are asked)."""
    if not robot.layout.sdk:
        return None
    module, extra = robot.layout.sdk
    if engine is not None and engine.version:
        missing = engine.missing_for_extra(extra)
        if not missing:
            return None
        return (f"{robot.type} needs LeRobot's '{extra}' extra ({', '.join(missing)}), not installed in "
                f"{engine.prefix}: {engine.prefix}/bin/pip install 'lerobot[{extra}]=={engine.version}' "
                f"(in the robot computer's environment)")
    import importlib.util

    if importlib.util.find_spec(module) is None:
        return (f"{robot.type} needs the Python module {module}, not installed here "
                f"(pip install 'lerobot[{extra}]' in the robot computer's environment)")
    return None
