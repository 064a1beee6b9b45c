"""LeRobot dialects as data: config/engines.yaml, validated once at load; the dialect of an engine."""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

from mimic_deployment.config.loader import CONFIG_DIR, Section, load_yaml
from mimic_deployment.util.errors import UserError

ENGINES_FILE = CONFIG_DIR / "engines.yaml"
CAPABILITIES = ("eval_split", "push_checkpoints", "rename_map_from_scratch", "peft")


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
    # policy type -> {Hub repo loaded at start: the policy flag that names another instead, or None}
    loads: dict[str, dict[str, str | None]] = field(default_factory=dict)
    backbone_weights: dict[str, str] = field(default_factory=dict)  # policy type -> torchvision weights file
    extras: dict[str, str | None] = field(default_factory=dict)  # a policy's extra -> this version's (None: core)

    def flag(self, canonical: str) -> str:
        """This version's spelling of a canonical (0.6) flag key (`env_eval_freq` -> `eval_freq` on 0.4)."""
        return self.renamed_flags.get(canonical, canonical)

    def can(self, capability: str) -> bool:
        return self.capabilities[capability]

    def extra(self, name: str) -> str | None:
        """This version's name for a policy's LeRobot extra; None: its packages are LeRobot's own dependencies."""
        return self.extras.get(name, name)


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

    def series_of(self, version: str | None) -> str:
        """The dialect key of a recorded version: its series when the toolkit speaks it, else the default."""
        series = ".".join((version or "").split(".")[:2])
        return series if series in self.dialects else self.default


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


def _loads(section: Section) -> dict[str, dict[str, str | None]]:
    value = section.get("loads", dict, {}) or {}
    for ptype, repos in value.items():
        if not isinstance(repos, dict) or not all(
                isinstance(repo, str) and (flag is None or isinstance(flag, str)) for repo, flag in repos.items()):
            section.fail(f"loads.{ptype} must map each Hub repo id to the policy flag that names it, or null",
                         "e.g. xvla: {facebook/bart-large: policy.tokenizer_name}")
    return {str(k): dict(v) for k, v in value.items()}


def _extras(section: Section) -> dict[str, str | None]:
    value = section.get("extras", dict, {}) or {}
    if not all(isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in value.items()):
        section.fail("'extras' must map a policy's LeRobot extra to this version's name, or null",
                     "e.g. diffusion: null (its packages are LeRobot's own dependencies there)")
    return dict(value)


def _parse(section: Section, series: str) -> Dialect:
    section.check_keys(required=("versions", "python", "commands", "policy_types", "capabilities"),
                       optional=("renamed_flags", "base_models", "loads", "backbone_weights", "extras"))
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
                   loads=_loads(section), backbone_weights=_mapping(section, "backbone_weights"),
                   extras=_extras(section))


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
