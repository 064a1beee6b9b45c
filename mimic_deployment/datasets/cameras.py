"""The one camera mapping (config/cameras.yaml): robot config <-> dataset <-> pretrained policy.

CLI fast path: yaml + standard library only.
"""
from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path

from mimic_deployment.config.loader import CONFIG_DIR, Section, load_yaml

CAMERAS_FILE = CONFIG_DIR / "cameras.yaml"
IMAGE_PREFIX = "observation.images."
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class CameraMap:
    path: Path
    robot_to_dataset: dict[str, str]
    policies: dict[str, dict[str, str]]  # policy -> {dataset camera: policy image key}

    @property
    def dataset_cameras(self) -> list[str]:
        return list(self.robot_to_dataset.values())


def _name(section: Section, key, value, what: str) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        section.fail(f"{key!r}: {what} must be a plain camera name (letters, digits, _), got {value!r}",
                     "write it without the observation.images. prefix")
    return value


def _parse(path: Path) -> CameraMap:
    top = Section(path, "", load_yaml(path))
    top.check_keys(required=("cameras",), optional=("policies",))
    cams = top.child("cameras", top.data["cameras"])
    robot_to_dataset: dict[str, str] = {}
    for robot_name, ds_name in cams.data.items():
        _name(cams, robot_name, robot_name, "a robot camera name")
        _name(cams, robot_name, ds_name, "its dataset camera name")
        if ds_name in robot_to_dataset.values():
            cams.fail(f"{robot_name!r}: dataset camera {ds_name!r} is already mapped from another robot camera")
        robot_to_dataset[robot_name] = ds_name
    if not robot_to_dataset:
        cams.fail("declares no camera", "add e.g. 'front: front'")
    declared = set(robot_to_dataset.values())
    policies: dict[str, dict[str, str]] = {}
    pols = top.child("policies", top.data.get("policies") or {})
    for pname, mapping in pols.data.items():
        sec = pols.child(str(pname), mapping if mapping is not None else {})
        out: dict[str, str] = {}
        for ds_name, key in sec.data.items():
            if ds_name not in declared:
                sec.fail(f"unknown camera {ds_name!r}: not a dataset camera declared under 'cameras'",
                         f"one of {', '.join(sorted(declared))}")
            _name(sec, ds_name, key, "the policy's image key")
            if key in out.values():
                sec.fail(f"{ds_name!r}: image key {key!r} is used twice")
            out[ds_name] = key
        policies[str(pname)] = out
    return CameraMap(path=path, robot_to_dataset=robot_to_dataset, policies=policies)


@functools.lru_cache(maxsize=8)
def _load_cached(path: str, mtime_ns: int) -> CameraMap:
    return _parse(Path(path))


def load(path: str | Path | None = None) -> CameraMap:
    """Parse and validate the camera file (cached until the file changes)."""
    path = Path(path) if path else CAMERAS_FILE
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        mtime = -1  # load_yaml raises the UserError
    return _load_cached(str(path), mtime)


def robot_to_dataset(path: str | Path | None = None) -> dict[str, str]:
    """{robot-config camera name: dataset camera name}, e.g. wrist_left -> left_wrist."""
    return dict(load(path).robot_to_dataset)


def dataset_to_robot(path: str | Path | None = None) -> dict[str, str]:
    return {v: k for k, v in load(path).robot_to_dataset.items()}


def policy_names(path: str | Path | None = None) -> list[str]:
    return list(load(path).policies)


def source_cameras(policy_name: str, path: str | Path | None = None) -> list[str]:
    """The dataset cameras this policy is fed (empty for policies not in the file)."""
    return list(load(path).policies.get(policy_name, {}))


def rename_map(policy_name: str | None, path: str | Path | None = None) -> dict[str, str]:
    """Full feature keys for --rename_map, e.g. observation.images.front -> observation.images.image.

    {} for a policy the file does not list (it takes the dataset keys as they are).
    """
    if not policy_name:
        return {}
    mapping = load(path).policies.get(policy_name, {})
    return {f"{IMAGE_PREFIX}{src}": f"{IMAGE_PREFIX}{dst}" for src, dst in mapping.items()}


def rename_map_arg(policy_name: str | None, path: str | Path | None = None) -> str | None:
    """The value of LeRobot's --rename_map (JSON), or None when there is nothing to rename."""
    m = rename_map(policy_name, path)
    return json.dumps(m, separators=(",", ":")) if m else None
