"""--list-groups and --list-policies (fast: config only, no NVML unless this host is unknown)."""
from __future__ import annotations

import argparse

from mimic_deployment.util.table import table


def show(args: argparse.Namespace) -> int:
    from mimic_deployment.config.catalog import load_catalog

    catalog = load_catalog(args.groups_file)
    if args.list_groups:
        print(groups_table(catalog))
    if args.list_policies:
        print(("\n" if args.list_groups else "") + policies_table(catalog, args))
    return 0


def groups_table(catalog) -> str:
    rows = []
    for name in catalog.groups.names():
        group = catalog.groups.get(name)
        rows.append((name, len(group.datasets), group.description or ""))
    return table(("GROUP", "DATASETS", "DESCRIPTION"), rows, right=(1,))


def policies_table(catalog, args: argparse.Namespace) -> str:
    from mimic_deployment.host.facts import gather_facts
    from mimic_deployment.planning.plan import RunRequest, machine_here

    facts = gather_facts(RunRequest(computer=args.computer), catalog.machines)
    here = machine_here(args.computer, facts, catalog.machines).machine
    workstations = [m for m in catalog.machines.values() if m.device == "cuda"]
    headers = ("POLICY", "TYPE", "BASE MODEL", "STEPS", "PRIORITY", *(m.name for m in workstations),
               f"HERE ({here.name})")
    rows = []
    for p in sorted(catalog.policies.values(), key=lambda p: -p.priority):
        sizes = [m.batch_sizes.get(p.name, p.batch_size) for m in workstations]
        rows.append((p.name, p.type, p.base_model or "(from scratch)", p.steps, p.stars, *sizes,
                     here.batch_sizes.get(p.name, p.batch_size)))
    right = tuple(range(3, len(headers)))
    return table(headers, rows, right=right) + "\n(batch size per machine; override with --batch-size or BATCH_SIZE)"
