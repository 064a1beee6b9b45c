"""LeRobot dialects as data: config/engines.yaml, validated once at load; the dialect of an engine."""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

from mimic_deployment.config.loader import CONFIG_DIR, Section, load_yaml
from mimic_deployment.util.errors import UserError

ENGINES_FILE = CONFIG_DIR / "engines.yaml"
CAPABILITIES = ("eval_split", "push_checkpoints", "rename_map_from_scratch")


@dataclass(frozen=True)
class Dialect:
    series: str  # "0.6"
    versions: tuple[str, ...]
    python: str
    train_command: str
    robot_eval_command: tuple[str, ...]
    renamed_flags: dict[str, str] = field(default_factory=dict)
    policy_types: tuple[str, ...] = ()
    base_models: dict[str, str] = field(default_factory=dict)
    capabilities: dict[str, bool] = field(default_factory=dict)
    loads: dict[str, tuple[str, ...]] = field(default_factory=dict)  # policy type -> Hub repos loaded at start
    backbone_weights: dict[str, str] = field(default_factory=dict)  # policy type -> torchvision weights file

    def flag(self, canonical: str) -> str:
        """This version's spelling of a canonical (0.6) flag key (`env_eval_freq` -> `eval_freq` on 0.4)."""
        return self.renamed_flags.get(canonical, canonical)

    def can(self, capability: str) -> bool:
        return self.capabilities[capability]


@dataclass(frozen=True)
class Engines:
    default: str
    dialects: dict[str, Dialect]

    def dialect(self, series: str | None) -> Dialect:
        """The dialect of a LeRobot series; None (no LeRobot found beside the command) is the default's."""
        key = series or self.default
        if key not in self.dialects:
            known = ", ".join(f"{s}.x" for s in self.dialects)
            raise UserError(f"LeRobot {key}.x is not a version the toolkit speaks (it speaks {known})",
                            hint=f"point LEROBOT_TRAIN at an env with one of those, or declare {key} in {ENGINES_FILE}")
        return self.dialects[key]


def _strings(section: Section, key: str) -> tuple[str, ...]:
    value = section.get(key, list, [])
    if not all(isinstance(v, str) and v for v in value):
        section.fail(f"'{key}' must be a list of strings")
    return tuple(value)


def _mapping(section: Section, key: str) -> dict[str, str]:
    value = section.get(key, dict, {}) or {}
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        section.fail(f"'{key}' must map names to names")
    return dict(value)


def _lists(section: Section, key: str) -> dict[str, tuple[str, ...]]:
    value = section.get(key, dict, {}) or {}
    if not all(isinstance(v, list) and all(isinstance(w, str) for w in v) for v in value.values()):
        section.fail(f"'{key}' must map each policy type to a list of Hub repo ids")
    return {str(k): tuple(v) for k, v in value.items()}


def _parse(section: Section, series: str) -> Dialect:
    section.check_keys(required=("versions", "python", "commands", "policy_types", "capabilities"),
                       optional=("renamed_flags", "base_models", "loads", "backbone_weights"))
    commands = section.child("commands", section.data["commands"])
    commands.check_keys(required=("train", "robot_eval"))
    robot_eval = commands.data["robot_eval"]
    if not isinstance(robot_eval, list) or not robot_eval or not all(isinstance(w, str) for w in robot_eval):
        commands.fail("'robot_eval' must be a list: the command and its fixed arguments")
    caps = section.child("capabilities", section.data["capabilities"])
    caps.check_keys(required=CAPABILITIES)
    if not all(isinstance(v, bool) for v in caps.data.values()):
        caps.fail("capabilities are true or false")
    return Dialect(series=series, versions=_strings(section, "versions"), python=section.get("python", str),
                   train_command=commands.get("train", str), robot_eval_command=tuple(robot_eval),
                   renamed_flags=_mapping(section, "renamed_flags"), policy_types=_strings(section, "policy_types"),
                   base_models=_mapping(section, "base_models"), capabilities=dict(caps.data),
                   loads=_lists(section, "loads"), backbone_weights=_mapping(section, "backbone_weights"))


@functools.cache
def load_engines(path: Path = ENGINES_FILE) -> Engines:
    root = Section(path, "", load_yaml(path))
    root.check_keys(required=("default", "engines"))
    entries = root.child("engines", root.data["engines"])
    dialects = {str(series): _parse(entries.child(str(series), body), str(series))
                for series, body in entries.data.items()}
    default = root.get("default", str)
    if default not in dialects:
        root.fail(f"default {default!r} is not one of the engines", f"one of {', '.join(dialects)}")
    return Engines(default=default, dialects=dialects)
