"""Launchers: how a planned run is started, judged alive, and stopped (local, slurm)."""
from __future__ import annotations

from .base import Launcher


def get_launcher(name: str) -> Launcher:
    if name == "local":
        from .local import LocalLauncher

        return LocalLauncher()
    if name == "slurm":
        from .slurm import SlurmLauncher

        return SlurmLauncher()
    from ..errors import UserError

    raise UserError(f"unknown launcher {name!r}", hint="local or slurm")
