"""--list-groups and --list-policies (fast: config and the engine's files only, no NVML unless this host
is unknown, no torch or lerobot import); READY is the launch's own preflight per policy on this engine."""
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
    from mimic_deployment.host.engine import engine_of
    from mimic_deployment.host.facts import gather_facts
    from mimic_deployment.planning import preflight
    from mimic_deployment.planning.plan import RunRequest, machine_here

    facts = gather_facts(RunRequest(computer=args.computer), catalog.machines)
    here = machine_here(args.computer, facts, catalog.machines).machine
    engine = facts.engine or engine_of(facts.lerobot_train)
    dialect = preflight.dialect_or_none(engine)
    workstations = [m for m in catalog.machines.values() if m.device == "cuda"]
    headers = ("POLICY", "TYPE", "BASE MODEL", "STEPS", "PRIORITY", *(m.name for m in workstations),
               f"HERE ({here.name})", "READY")
    rows = []
    for p in sorted(catalog.policies.values(), key=lambda p: -p.priority):
        sizes = [m.batch_sizes.get(p.name, p.batch_size) for m in workstations]
        base = p.base_model_for(dialect) if dialect else p.base_model  # groot's `engine`: N1.7 on 0.6
        rows.append((p.name, p.type, base or "(from scratch)", p.steps, p.stars, *sizes,
                     here.batch_sizes.get(p.name, p.batch_size), preflight.ready(p, engine, facts.env)))
    right = tuple(range(3, len(headers) - 1))
    return (table(headers, rows, right=right) + "\n(batch size per machine; override with --batch-size or BATCH_SIZE)"
            + "\n" + _ready_note(engine, facts.env))


def _ready_note(engine, env) -> str:
    from mimic_deployment.planning import preflight

    if not engine.version:
        return f"(READY: nothing checked, {engine.describe()})"
    off = preflight.offline(env)
    return (f"(READY: with LeRobot {engine.version} in {engine.prefix}, HF cache {preflight.hf_hub_cache(env)}"
            f"{', ' + off if off else ''}; a launch refuses what is not ready, with the fix)")
