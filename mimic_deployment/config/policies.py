"""Policies as data: config/policies.yaml, validated once at load."""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path

from mimic_deployment.config.loader import CONFIG_DIR, Section, load_yaml
from mimic_deployment.util.errors import UserError
from mimic_deployment.util.suggest import did_you_mean

POLICIES_FILE = CONFIG_DIR / "policies.yaml"
LEROBOT_TYPES = (  # the policy types LeRobot 0.4.4 registers
    "act", "diffusion", "groot", "pi0", "pi0_fast", "pi05", "smolvla", "tdmpc", "vqbet",
    "wall_x", "xvla", "sac", "reward_classifier", "sarm",
)
_ARG_KEY = re.compile(r"^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)*$")


@dataclass(frozen=True)
class Policy:
    name: str
    title: str
    description: str
    type: str
    base_model: str | None
    base_model_flag: str
    lerobot_extra: str | None
    steps: int
    save_freq: int
    batch_size: int
    num_workers: int | None
    gpus: int | str  # an int, or "all"
    priority: int
    cameras: str | None
    args: dict = field(default_factory=dict)

    @property
    def stars(self) -> str:
        return "*" * self.priority


def _parse_policy(section: Section, name: str) -> Policy:
    section.check_keys(
        required=("type", "steps", "save_freq", "batch_size"),
        optional=("title", "description", "base_model", "base_model_flag", "lerobot_extra",
                  "num_workers", "gpus", "priority", "cameras", "args"),
    )
    ptype = section.get("type", str)
    if ptype not in LEROBOT_TYPES:
        section.fail(f"type {ptype!r} is not a LeRobot 0.4.4 policy type", f"one of {', '.join(LEROBOT_TYPES)}")
    gpus = section.data.get("gpus", 1)
    if gpus != "all" and (not isinstance(gpus, int) or isinstance(gpus, bool) or gpus < 1):
        section.fail(f"'gpus' must be a positive integer or 'all', got {gpus!r}")
    priority = section.get("priority", int, 1)
    if not 1 <= priority <= 5:
        section.fail(f"'priority' must be 1..5, got {priority}")
    args = section.get("args", dict, {}) or {}
    for key in args:
        if not isinstance(key, str) or not _ARG_KEY.match(key):
            section.fail(f"args key {key!r} is not a LeRobot flag name", "write it without dashes, e.g. policy.dtype")
    return Policy(
        name=name, title=section.get("title", str, name), description=section.get("description", str, ""),
        type=ptype, base_model=section.get("base_model", str),
        base_model_flag=section.get("base_model_flag", str, "policy.path"),
        lerobot_extra=section.get("lerobot_extra", str), steps=section.positive_int("steps"),
        save_freq=section.positive_int("save_freq"), batch_size=section.positive_int("batch_size"),
        num_workers=section.get("num_workers", int), gpus=gpus, priority=priority,
        cameras=section.get("cameras", str), args=dict(args),
    )


@functools.cache
def load_policies(path: Path = POLICIES_FILE) -> dict[str, Policy]:
    root = Section(path, "", load_yaml(path))
    root.check_keys(required=("policies",))
    entries = root.child("policies", root.data["policies"])
    if not entries.data:
        entries.fail("no policies declared")
    return {str(name): _parse_policy(entries.child(name, body), str(name)) for name, body in entries.data.items()}


def get_policy(name: str, policies: dict[str, Policy] | None = None) -> Policy:
    policies = load_policies() if policies is None else policies
    if name not in policies:
        close = did_you_mean(name, policies)  # `--policy ACT`: a case slip is matched first
        hint = f"{close} " if close else ""
        raise UserError(f"unknown policy {name!r}", hint=f"{hint}known: {', '.join(policies)}")
    return policies[name]
