"""All declared config in one place: policies, machines, dataset groups, lab settings."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from mimic_deployment.config.groups import GroupsConfig, load_groups
from mimic_deployment.config.lab import LabSettings, load_lab
from mimic_deployment.config.machines import Machine, load_machines
from mimic_deployment.config.policies import Policy, load_policies


@dataclass(frozen=True)
class Catalog:
    policies: dict[str, Policy]
    machines: dict[str, Machine]
    groups: GroupsConfig
    lab: LabSettings

    def rename_maps(self, policy_names: Iterable[str]) -> dict[str, dict[str, str]]:
        wanted = [n for n in policy_names if n in self.policies and self.policies[n].cameras]
        if not wanted:
            return {}
        from mimic_deployment.datasets.cameras import rename_map

        return {name: rename_map(self.policies[name].cameras) for name in wanted}


def load_catalog(groups_file: str | Path | None = None) -> Catalog:
    policies = load_policies()
    return Catalog(policies=policies, machines=load_machines(policy_names=tuple(policies)),
                   groups=load_groups(groups_file), lab=load_lab())
