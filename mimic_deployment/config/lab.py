"""Lab-wide settings (config/lab.yaml, or $MIMIC_LAB_FILE): Hub org, W&B project, the notify hook."""
from __future__ import annotations

import functools
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from mimic_deployment.config.loader import CONFIG_DIR, Section, load_yaml

LAB_FILE = CONFIG_DIR / "lab.yaml"
LAB_FILE_ENV = "MIMIC_LAB_FILE"
END_STATES = ("finished", "failed", "stopped", "lost")  # the ends a notify hook can be run on
NOTIFY_TIMEOUT = 30.0
_NOTIFY_EXAMPLE = 'notify: {command: ["/path/to/post-to-chat", "--channel", "robots"], on: [failed, lost]}'


@dataclass(frozen=True)
class NotifyHook:
    """A command run once when a run ends: an argv (never shell code), the ends it runs on, its time limit."""

    command: tuple[str, ...]
    on: frozenset[str]
    timeout: float


@dataclass(frozen=True)
class LabSettings:
    hub_org: str
    wandb_project: str
    merged_namespace: str
    notify: NotifyHook | None = None


def lab_path() -> Path:
    """$MIMIC_LAB_FILE if set (a lab's own settings, tests), else the lab.yaml beside this module."""
    override = os.environ.get(LAB_FILE_ENV)
    return Path(override).expanduser() if override else LAB_FILE


def load_lab(path: Path | None = None) -> LabSettings:
    return _load(path or lab_path())


@functools.cache
def _load(path: Path) -> LabSettings:
    section = Section(path, "", load_yaml(path))
    section.check_keys(required=("hub_org", "wandb_project", "merged_namespace"), optional=("notify",))
    notify = section.data.get("notify")
    return LabSettings(section.get("hub_org", str), section.get("wandb_project", str),
                       section.get("merged_namespace", str),
                       None if notify is None else _notify_hook(section.child("notify", notify)))


def _notify_hook(hook: Section) -> NotifyHook:
    if True in hook.data and "on" not in hook.data:  # YAML 1.1 reads a bare `on:` key as the boolean true
        hook.data["on"] = hook.data.pop(True)
    hook.check_keys(required=("command",), optional=("on", "timeout"))
    command = hook.data["command"]
    if isinstance(command, str):
        hook.fail("'command' must be a list of arguments, not a shell command line",
                  f"write each argument as an item: {_NOTIFY_EXAMPLE}")
    if not isinstance(command, list) or not command:
        hook.fail(f"'command' must be a non-empty list of arguments, got {command!r}", f"for example {_NOTIFY_EXAMPLE}")
    for arg in command:
        if not isinstance(arg, str) or not arg:
            hook.fail(f"'command': argument {arg!r} is not a non-empty string",
                      "quote it (YAML reads true, 1, null as other types)")
    if any("\0" in a for a in command):
        hook.fail("'command' holds a NUL character")
    program = command[0]
    if "/" in program and not os.path.isabs(os.path.expanduser(program)):
        hook.fail(f"'command': {program!r} is a relative path (runs end in another working directory)",
                  "give an absolute path, or a command found on PATH")
    if shutil.which(os.path.expanduser(program)) is None:
        hook.fail(f"'command': {program!r} is not an executable file or a command on PATH",
                  "check the path and its execute permission: chmod +x")
    on = hook.data.get("on", list(END_STATES))
    if isinstance(on, str):
        on = [on]
    if not isinstance(on, list) or not on or not all(isinstance(s, str) for s in on):
        hook.fail(f"'on' must be a list of run ends, got {on!r}", f"any of: {', '.join(END_STATES)}")
    unknown = [s for s in on if s not in END_STATES]
    if unknown:
        hook.fail(f"'on': {unknown[0]!r} is not a run end", f"any of: {', '.join(END_STATES)}")
    timeout = hook.data.get("timeout", NOTIFY_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 3600:
        hook.fail(f"'timeout' must be a number of seconds between 0 and 3600, got {timeout!r}", "e.g. timeout: 30")
    return NotifyHook(command=(os.path.expanduser(program), *command[1:]), on=frozenset(on), timeout=float(timeout))
