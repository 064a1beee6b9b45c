"""Lab-wide settings (config/lab.yaml)."""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from mimic_deployment.config.loader import CONFIG_DIR, Section, load_yaml

LAB_FILE = CONFIG_DIR / "lab.yaml"


@dataclass(frozen=True)
class LabSettings:
    hub_org: str
    wandb_project: str
    merged_namespace: str


@functools.cache
def load_lab(path: Path = LAB_FILE) -> LabSettings:
    section = Section(path, "", load_yaml(path))
    section.check_keys(required=("hub_org", "wandb_project", "merged_namespace"))
    return LabSettings(section.get("hub_org", str), section.get("wandb_project", str),
                       section.get("merged_namespace", str))
