"""Which LeRobot a `lerobot-train` belongs to, read from its environment's installed metadata (never imported).

An engine is the Python environment that holds a `lerobot-train`: the toolkit's own (.venv), another
env a lab built, or a fork installed in editable mode. Everything here reads files only — the
script's shebang, `pyvenv.cfg`, `*.dist-info/METADATA` — so planning, the dry-run and status stay
fast and never import torch or lerobot. Which flags that version speaks is config/engines.yaml's job.
"""
from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path

from mimic_deployment.util import markers

# `Requires-Dist: name[extras] (version spec) ; marker`
_REQUIRES = re.compile(r"^Requires-Dist:\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[([^\]]*)\])?[^;]*(?:;\s*(.*))?$")


def normalize(dist: str) -> str:
    """PEP 503 name: `Flash_Attn` and `flash-attn` are one distribution."""
    return re.sub(r"[-_.]+", "-", dist).lower()


@dataclass(frozen=True)
class Engine:
    """One environment's LeRobot. `version` is None when no LeRobot install is found beside the
    command (a stand-in trainer in tests, a wrapper script): the plan then says so."""

    lerobot_train: str  # the command as given (absolute when it was found)
    version: str | None
    prefix: str | None  # the environment's root (sys.prefix of its interpreter)
    python: str | None  # that environment's interpreter
    site_packages: str | None

    @property
    def python_version(self) -> str | None:
        """`3.11` from the env's lib/python3.11/site-packages."""
        match = re.search(r"python(\d+\.\d+)", self.site_packages or "")
        return match.group(1) if match else None

    @property
    def series(self) -> str | None:
        """`0.6` for 0.6.1: the key of the dialect table."""
        if not self.version:
            return None
        parts = self.version.split(".")
        return ".".join(parts[:2]) if len(parts) >= 2 else None

    def bin(self, name: str) -> str | None:
        """A console script of the same environment (`accelerate`, `lerobot-rollout`), if installed."""
        if not self.prefix:
            return None
        path = Path(self.prefix) / "bin" / name
        return str(path) if path.exists() else None

    def installed(self) -> dict[str, str]:
        """Every distribution of the environment: normalized name -> version."""
        return _installed(self.site_packages) if self.site_packages else {}

    def provides_extra(self, extra: str) -> bool:
        """Whether this LeRobot declares `[extra]` at all (0.4.4 has no `pi`)."""
        meta = self._lerobot_metadata() or ""
        return any(normalize(line.split(":", 1)[1].strip()) == normalize(extra)
                   for line in meta.splitlines() if line.startswith("Provides-Extra:"))

    def extra_requirements(self, extra: str) -> list[str]:
        """The distributions LeRobot's `[extra]` needs on this machine, from LeRobot's own METADATA (so a
        new or changed extra is known without a toolkit change); extras that name other extras
        (`lerobot[transformers-dep]`) are followed."""
        meta = self._lerobot_metadata()
        if meta is None:
            return []
        requires = [m.groups() for m in map(_REQUIRES.match, meta.splitlines()) if m]
        here = markers.environment(self.python_version)  # the engine's Python, not the toolkit's
        wanted: set[str] = set()
        todo, seen = [normalize(extra)], set()
        while todo:
            current = todo.pop()
            if current in seen:
                continue
            seen.add(current)
            for dist, inner, marker in requires:
                if not marker or current not in marker or not markers.holds(marker, {**here, "extra": current}):
                    continue
                if normalize(dist) == "lerobot":
                    todo += [normalize(e) for e in inner.split(",") if e.strip()]
                else:
                    wanted.add(normalize(dist))
        return sorted(wanted)

    def missing_for_extra(self, extra: str) -> list[str]:
        have = self.installed()
        return [dist for dist in self.extra_requirements(extra) if dist not in have]

    def to_dict(self) -> dict:
        return {"lerobot_train": self.lerobot_train, "version": self.version, "prefix": self.prefix,
                "python": self.python}

    def describe(self) -> str:
        if not self.version:
            return f"unknown (no LeRobot install found beside {self.lerobot_train})"
        return f"LeRobot {self.version} in {self.prefix}"

    def _lerobot_metadata(self) -> str | None:
        return _lerobot_metadata(self.site_packages) if self.site_packages else None


@functools.cache
def _lerobot_metadata(site_packages: str) -> str | None:
    """LeRobot's METADATA text in a site-packages (read once per process)."""
    for name, _, folder in _dist_infos(site_packages):
        if normalize(name) == "lerobot":
            try:
                return (Path(site_packages) / folder / "METADATA").read_text(errors="replace")
            except OSError:
                return None
    return None


def _dist_infos(site_packages: str) -> list[tuple[str, str, str]]:
    """(name, version, folder) of every `*.dist-info` folder."""
    found = []
    try:
        entries = os.listdir(site_packages)
    except OSError:
        return []
    for entry in entries:
        if not entry.endswith(".dist-info"):
            continue
        stem = entry[: -len(".dist-info")]
        name, _, version = stem.partition("-")
        found.append((name, version, entry))
    return found


@functools.cache
def _installed(site_packages: str) -> dict[str, str]:
    return {normalize(name): version for name, version, _ in _dist_infos(site_packages)}


def _interpreter_of(script: Path) -> Path | None:
    """The interpreter a console script runs: its shebang (`#!/env/bin/python3.12`)."""
    try:
        with open(script, "rb") as handle:
            first = handle.readline(512)
    except OSError:
        return None
    if not first.startswith(b"#!"):
        return None
    words = first[2:].decode(errors="replace").split()
    if not words:
        return None
    if Path(words[0]).name == "env":  # `#!/usr/bin/env python3`: not tied to an environment
        return None
    return Path(words[0])


def _prefix_of(interpreter: Path) -> Path | None:
    """The environment an interpreter belongs to: the folder above its bin/ holding pyvenv.cfg (a venv)
    or a lib/pythonX.Y (a base install). Links are followed for the base install only (a venv's
    python is a link to the base interpreter, and the venv is the environment)."""
    for candidate in (interpreter.parent.parent, interpreter.resolve().parent.parent):
        if (candidate / "pyvenv.cfg").exists() or list(candidate.glob("lib/python3*/site-packages")):
            return candidate
    return None


def _site_packages(prefix: Path) -> Path | None:
    found = sorted(prefix.glob("lib/python3*/site-packages"))
    return found[-1] if found else None


@functools.cache
def engine_of(lerobot_train: str) -> Engine:
    """The engine a `lerobot-train` command belongs to, from files only."""
    script = Path(lerobot_train)
    if not script.is_absolute():
        from shutil import which

        found = which(lerobot_train)
        script = Path(found) if found else script
    interpreter = _interpreter_of(script) if script.exists() else None
    prefix = _prefix_of(interpreter) if interpreter else None
    if prefix is None and script.exists() and script.parent.name == "bin":
        prefix = script.parent.parent if (script.parent.parent / "pyvenv.cfg").exists() else None
    site = _site_packages(prefix) if prefix else None
    version = _installed(str(site)).get("lerobot") if site else None
    python = str(interpreter) if interpreter else (str(prefix / "bin" / "python") if prefix else None)
    return Engine(lerobot_train=str(script), version=version, prefix=str(prefix) if prefix else None,
                  python=python, site_packages=str(site) if site else None)
