"""Policies as data: config/policies.yaml (variants extend a policy), validated once at load."""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from mimic_deployment.config.engines import CAPABILITIES, load_engines
from mimic_deployment.config.loader import CONFIG_DIR, Section, load_yaml
from mimic_deployment.util.errors import UserError
from mimic_deployment.util.suggest import did_you_mean

if TYPE_CHECKING:
    from mimic_deployment.config.engines import Dialect

POLICIES_FILE = CONFIG_DIR / "policies.yaml"
ENGINE_BASE = "engine"  # base_model: the engine's own (engines.yaml base_models)
_ARG_KEY = re.compile(r"^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)*$")
_KEYS = ("title", "description", "type", "base_model", "base_model_flag", "lerobot_extra", "requires", "steps",
         "save_freq", "batch_size", "num_workers", "gpus", "priority", "cameras", "args")


def all_policy_types() -> tuple[str, ...]:
    """Every policy type some LeRobot the toolkit speaks registers (the engine's own is checked at plan time)."""
    return tuple(sorted({t for d in load_engines().dialects.values() for t in d.policy_types}))


@dataclass(frozen=True)
class Policy:
    name: str
    title: str
    description: str
    type: str
    base_model: str | None  # a Hub id or folder, None (from scratch), or ENGINE_BASE
    base_model_flag: str
    lerobot_extra: str | None  # the first of `extras` (what listings show)
    steps: int
    save_freq: int
    batch_size: int
    num_workers: int | None
    gpus: int | str  # an int, or "all"
    priority: int
    cameras: str | None
    args: dict = field(default_factory=dict)
    extras: tuple[str, ...] = ()  # every LeRobot extra it needs
    requires: tuple[str, ...] = ()  # engine capabilities it needs
    extends: str | None = None  # the policy this variant starts from

    @property
    def stars(self) -> str:
        return "*" * self.priority

    def extras_for(self, dialect: Dialect) -> tuple[str, ...]:
        """The LeRobot extras it needs on that engine (in that version's names)."""
        return tuple(e for e in (dialect.extra(x) for x in self.extras) if e)

    def base_model_for(self, dialect: Dialect) -> str | None:
        """The base model on that engine: `engine` means the one its version loads (groot N1.7 on 0.6)."""
        if self.base_model != ENGINE_BASE:
            return self.base_model
        return dialect.base_models.get(self.type)

    def check_engine(self, dialect: Dialect, engine_text: str) -> None:
        """Refused at plan time: the engine lacks the policy type, its base model, or a capability."""
        fix = "point LEROBOT_TRAIN at an env with a LeRobot that has it, or pick another policy"
        if self.type not in dialect.policy_types:
            raise UserError(f"policy {self.name}: LeRobot {dialect.series}.x has no policy type {self.type!r} "
                            f"(engine: {engine_text})", hint=fix)
        if self.base_model == ENGINE_BASE and self.type not in dialect.base_models:
            raise UserError(f"policy {self.name}: config/engines.yaml declares no {self.type} base model for "
                            f"LeRobot {dialect.series}.x (engine: {engine_text})",
                            hint=f"add base_models.{self.type} to that series, or give --base-model")
        for capability in self.requires:
            if not dialect.can(capability):
                raise UserError(f"policy {self.name} needs {capability}, which LeRobot {dialect.series}.x cannot "
                                f"do (engine: {engine_text})", hint=fix)


def _strings(section: Section, key: str) -> tuple[str, ...]:
    value = section.data.get(key)
    if value is None:
        return ()
    value = [value] if isinstance(value, str) else value
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        section.fail(f"'{key}' must be a name or a list of names, got {value!r}")
    return tuple(value)


def _parse_policy(section: Section, name: str, parent: str | None) -> Policy:
    section.check_keys(required=("type", "steps", "save_freq", "batch_size"), optional=_KEYS)
    ptype = section.get("type", str)
    known = all_policy_types()
    if ptype not in known:
        section.fail(f"type {ptype!r} is not a policy type of any LeRobot the toolkit speaks",
                     f"one of {', '.join(known)}")
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
    requires = _strings(section, "requires")
    for capability in requires:
        if capability not in CAPABILITIES:
            section.fail(f"requires {capability!r}, which is not an engine capability",
                         f"one of {', '.join(CAPABILITIES)}")
    extras = _strings(section, "lerobot_extra")
    return Policy(
        name=name, title=section.get("title", str, name), description=section.get("description", str, ""),
        type=ptype, base_model=section.get("base_model", str),
        base_model_flag=section.get("base_model_flag", str, "policy.path"),
        lerobot_extra=extras[0] if extras else None, extras=extras, requires=requires,
        steps=section.positive_int("steps"), save_freq=section.positive_int("save_freq"),
        batch_size=section.positive_int("batch_size"), num_workers=section.get("num_workers", int), gpus=gpus,
        priority=priority, cameras=section.get("cameras", str), args=dict(args), extends=parent,
    )


def _resolved(entries: Section, name: str, seen: tuple[str, ...] = ()) -> dict:
    """A policy's entry with what it extends filled in (a chain of variants is followed)."""
    section = entries.child(name, entries.data[name])
    body = dict(section.data)
    parent = body.pop("extends", None)
    if parent is None:
        return body
    if not isinstance(parent, str) or parent not in entries.data:
        section.fail(f"extends {parent!r}, which is not a policy of this file", f"one of {', '.join(entries.data)}")
    if parent in seen or parent == name:
        section.fail(f"extends {parent!r}, which extends it back", "a variant extends a policy, never itself")
    merged = _resolved(entries, parent, (*seen, name))
    args = {**(merged.get("args") or {}), **(body.pop("args", None) or {})}
    merged.pop("title", None)
    merged.update(body)
    merged["args"] = args
    return merged


@functools.cache
def load_policies(path: Path = POLICIES_FILE) -> dict[str, Policy]:
    root = Section(path, "", load_yaml(path))
    root.check_keys(required=("policies",))
    entries = root.child("policies", root.data["policies"])
    if not entries.data:
        entries.fail("no policies declared")
    policies = {}
    for name, body in entries.data.items():
        parent = entries.child(name, body).data.get("extends")
        policies[str(name)] = _parse_policy(entries.child(name, _resolved(entries, name)), str(name), parent)
    return policies


def get_policy(name: str, policies: dict[str, Policy] | None = None) -> Policy:
    policies = load_policies() if policies is None else policies
    if name not in policies:
        close = did_you_mean(name, policies)  # `--policy ACT`: a case slip is matched first
        hint = f"{close} " if close else ""
        raise UserError(f"unknown policy {name!r}", hint=f"{hint}known: {', '.join(policies)}")
    return policies[name]
