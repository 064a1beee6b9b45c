"""Machines as data (config/machines.yaml) and the rule that picks this host's profile.

Detection order: --computer / COMPUTER -> hostname (case-insensitive, aliases) -> an unknown
host with NVIDIA GPUs (profiled from NVML) -> no GPU: the `cpu` profile.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mimic_deployment.config.loader import CONFIG_DIR, Section, load_yaml
from mimic_deployment.config.slurm import check_machine_entry
from mimic_deployment.host.gpus import GpuInfo
from mimic_deployment.util.errors import UserError

MACHINES_FILE = CONFIG_DIR / "machines.yaml"
CPU_PROFILE = "cpu"
VRAM_TOLERANCE = 0.95  # NVML reports a "24 GB" card as ~23.6 GiB usable


@dataclass(frozen=True)
class Machine:
    name: str
    hostnames: tuple[str, ...]
    gpu: str | None
    vram_gb: float | None
    gpus: int
    device: str
    num_workers: int | None
    batch_sizes: dict = field(default_factory=dict)
    auto_detect: bool = True
    description: str = ""
    launcher: str = "local"  # local or slurm (a cluster's login node submits jobs)
    slurm: dict = field(default_factory=dict)  # partition, gpus_per_run, cpus, mem, time, gres, extra


@dataclass(frozen=True)
class MachineChoice:
    machine: Machine
    reason: str  # which rule chose it, shown by --dry-run


def _parse_machine(section: Section, name: str) -> Machine:
    section.check_keys(
        required=("gpus", "device"),
        optional=("hostnames", "gpu", "vram_gb", "num_workers", "batch_sizes", "auto_detect", "description",
                  "launcher", "slurm"),
    )
    device = section.get("device", str)
    if device not in ("cuda", "cpu"):
        section.fail(f"'device' must be cuda or cpu, got {device!r}")
    gpus = section.get("gpus", int)
    if gpus < 0 or (device == "cuda") != (gpus > 0):
        section.fail(f"'gpus' is {gpus} but device is {device}", "cuda machines have gpus >= 1, cpu machines 0")
    batch_sizes = section.get("batch_sizes", dict, {}) or {}
    for policy, size in batch_sizes.items():
        if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
            section.fail(f"batch_sizes.{policy} must be a positive integer, got {size!r}")
    hostnames = section.get("hostnames", list, []) or []
    launcher = section.get("launcher", str, "local")
    if launcher not in ("local", "slurm"):
        section.fail(f"'launcher' must be local or slurm, got {launcher!r}")
    slurm = check_machine_entry(section.child("slurm", section.data["slurm"])) if section.data.get("slurm") else {}
    return Machine(
        name=name, hostnames=tuple(str(h) for h in [name, *hostnames]), gpu=section.get("gpu", str),
        vram_gb=section.get("vram_gb", (int, float)), gpus=gpus, device=device,
        num_workers=section.get("num_workers", int), batch_sizes=dict(batch_sizes),
        auto_detect=section.get("auto_detect", bool, True), description=section.get("description", str, ""),
        launcher=launcher, slurm=slurm,
    )


@functools.cache
def load_machines(path: Path = MACHINES_FILE, policy_names: tuple[str, ...] = ()) -> dict[str, Machine]:
    root = Section(path, "", load_yaml(path))
    root.check_keys(required=("machines",))
    entries = root.child("machines", root.data["machines"])
    machines = {str(n): _parse_machine(entries.child(n, body), str(n)) for n, body in entries.data.items()}
    if CPU_PROFILE not in machines:
        entries.fail(f"no '{CPU_PROFILE}' profile", "hosts without a GPU need one")
    for machine in machines.values():
        unknown = sorted(set(machine.batch_sizes) - set(policy_names)) if policy_names else []
        if unknown:
            entries.child(machine.name, {}).fail(f"batch_sizes names unknown policy {unknown[0]!r}")
    return machines


def find_by_hostname(machines: dict[str, Machine], hostname: str) -> Machine | None:
    host = hostname.lower()
    short = host.split(".")[0]
    for machine in machines.values():
        if any(alias.lower() in (host, short) for alias in machine.hostnames):
            return machine
    return None


def _host_profile_name(hostname: str) -> str:
    return re.sub(r"[^a-z0-9_-]+", "-", hostname.split(".")[0].lower()).strip("-") or "host"


def _profile_from_gpus(machines: dict[str, Machine], hostname: str, gpus: list[GpuInfo]) -> MachineChoice:
    vram = min(g.memory_gb for g in gpus)
    names = sorted({g.name for g in gpus})
    fitting = [m for m in machines.values()
               if m.auto_detect and m.vram_gb and m.vram_gb * VRAM_TOLERANCE <= vram]
    template = max(fitting, key=lambda m: m.vram_gb or 0.0, default=None)
    summary = f"{len(gpus)} x {'/'.join(names)} ({vram:.0f} GB) via NVML"
    base: dict[str, Any] = {
        "hostnames": (hostname,), "gpu": "/".join(names), "vram_gb": round(vram, 1), "gpus": len(gpus),
        "device": "cuda", "auto_detect": False, "description": "unknown host profiled by NVML",
        "launcher": "local", "slurm": {}}
    if template is None:
        machine = Machine(name=_host_profile_name(hostname), num_workers=None, **base)
        return MachineChoice(machine, f"unknown host {hostname!r}: {summary}; smaller than every known machine, "
                                      f"so each policy's own batch size")
    machine = replace(template, name=_host_profile_name(hostname), **base)
    return MachineChoice(machine, f"unknown host {hostname!r}: {summary}; batch sizes of "
                                  f"{template.name} ({template.vram_gb:g} GB fits)")


def choose_machine(machines: dict[str, Machine], *, requested: str | None, requested_from: str,
                   hostname: str, gpus: list[GpuInfo] | None) -> MachineChoice:
    """Pure: pick the machine profile. `gpus` is the NVML reading (None = not read)."""
    if requested:
        machine = machines.get(requested.lower()) or find_by_hostname(machines, requested)
        if machine is None:
            raise UserError(f"unknown computer {requested!r} (from {requested_from})",
                            hint=f"known: {', '.join(machines)}; or unset it to detect this host")
        return MachineChoice(machine, f"{requested_from}={requested}")
    machine = find_by_hostname(machines, hostname)
    if machine is not None:
        return MachineChoice(machine, f"hostname {hostname!r}")
    if gpus:
        return _profile_from_gpus(machines, hostname, gpus)
    return MachineChoice(machines[CPU_PROFILE], f"unknown host {hostname!r} with no NVIDIA GPU (NVML)")
