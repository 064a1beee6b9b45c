"""Launchers: how a planned run is started, judged alive, and stopped (local, slurm)."""
from __future__ import annotations

from mimic_deployment.launchers.base import Launcher


def get_launcher(name: str) -> Launcher:
    if name == "local":
        from mimic_deployment.launchers.local import LocalLauncher

        return LocalLauncher()
    if name == "slurm":
        from mimic_deployment.launchers.slurm import SlurmLauncher

        return SlurmLauncher()
    from mimic_deployment.util.errors import UserError

    raise UserError(f"unknown launcher {name!r}", hint="local or slurm")
