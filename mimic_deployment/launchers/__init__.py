"""Launchers: how a planned run is started, judged alive, and stopped (local, slurm)."""
from __future__ import annotations

from mimic_deployment.launchers.base import Launcher
from mimic_deployment.launchers.local import LocalLauncher
from mimic_deployment.util.errors import UserError

__all__ = ["Launcher", "LocalLauncher", "get_launcher"]


def get_launcher(name: str) -> Launcher:
    if name == "local":
        return LocalLauncher()
    if name == "slurm":
        # here, not at the top: the Slurm side loads the planner, which `status` of local runs never needs
        from mimic_deployment.launchers.slurm import SlurmLauncher

        return SlurmLauncher()
    raise UserError(f"unknown launcher {name!r}", hint="local or slurm")
