"""`check GROUP [GROUP..] [--policy P] [--dataset-root DIR]`: can these datasets train together?
`check --config [FILE]`: lint a dataset groups file. `check --policy P`: is P ready to train here?

From local metadata only (meta/info.json, meta/stats.json, the engine's installed files): no LeRobot
import, no download (the policy's preflight may try a TCP connect to the Hub when a model it loads is
missing and HF_HUB_OFFLINE is unset). Exit 0 when compatible; 2 (a UserError) when not, after printing the table. With
groups, --policy also prints the policy's preflight on this host's engine (the launch refuses it when
not ready); alone, that preflight is the check.
"""
from __future__ import annotations

import argparse

_DEFAULT = object()


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "check", help="check that a dataset group's datasets can be merged and trained on",
        description="Compare the datasets of one or more groups (fps, robot type, features, shapes, "
                    "cameras, stats) from their local metadata, or lint a groups file with --config.")
    p.add_argument("groups", nargs="*", metavar="GROUP",
                   help="dataset group name(s); a 'namespace/name' dataset id is taken as itself")
    p.add_argument("--policy", help="also check what this policy needs (a policies.yaml name or a LeRobot type): "
                                    "its dataset needs, and what its trainer needs on this host's engine")
    p.add_argument("--dataset-root", help="folder holding the datasets (<root>/<namespace>/<name>), "
                                          "or one dataset folder")
    p.add_argument("--config", nargs="?", const=_DEFAULT, default=None, metavar="FILE",
                   help="lint this groups file (default: the active one) and resolve GROUPs from it")
    p.set_defaults(run=run)


def _policy(name: str | None) -> tuple[str | None, str | None]:
    """(LeRobot policy type, cameras.yaml policy key) for --policy."""
    if not name:
        return None, None
    from mimic_deployment.config.policies import all_policy_types, get_policy, load_policies

    policies = load_policies()
    if name in policies:
        return policies[name].type, policies[name].cameras
    if name in all_policy_types():
        return name, None
    get_policy(name, policies)  # raises the UserError with a suggestion
    return None, None


def _lint(path) -> int:
    from mimic_deployment.config.groups import default_groups_path, lint_groups_file, load_groups
    from mimic_deployment.util.errors import UserError

    path = default_groups_path() if path is _DEFAULT else path
    problems = lint_groups_file(path)
    for line in problems:
        print(line)
    if problems:
        n = len(problems)
        raise UserError(f"{path}: {n} problem{'s' if n != 1 else ''}", hint="fix the lines above")
    config = load_groups(path)
    names = config.names()
    total = len({rid for g in names for rid in config.get(g).datasets})
    print(f"{path}: OK, {len(names)} groups, {total} distinct datasets")
    return 0


def run(args: argparse.Namespace) -> int:
    from mimic_deployment.util.errors import UserError

    if args.config is None and not args.groups and args.policy:
        print(_engine_line(args.policy, strict=True))
        return 0
    if args.config is None and not args.groups:
        raise UserError("check: name at least one dataset group, or --config [FILE] to lint a groups file",
                        hint="e.g. `check demo --policy act`")
    if args.config is not None:
        _lint(args.config)
        if not args.groups:
            return 0
    from mimic_deployment.datasets import sources
    from mimic_deployment.datasets.meta import render_report
    from mimic_deployment.datasets.prepare import check, incompatible_error

    ids, label, local = _resolve(args)
    found, missing = sources.resolve_local(ids, args.dataset_root)
    if missing:
        fetch_group = None if any("/" in g for g in args.groups) else " ".join(args.groups)
        raise sources.missing_error(missing, args.dataset_root, fetch_group,
                                    "check reads local metadata only", local)
    policy_type, camera_policy = _policy(args.policy)
    report = check(label, found, policy_type, camera_policy)
    print(render_report(report))
    if not report.ok:
        raise incompatible_error(label, report)
    if args.policy:
        print(_engine_line(args.policy, strict=False))
    return 0


def _engine_line(name: str, strict: bool) -> str:
    """The policy's preflight on this host's engine (LEROBOT_TRAIN's env, else the toolkit's), as
    --list-policies' READY and the launch see it; strict: a missing thing is the error."""
    from mimic_deployment.config.machines import load_machines
    from mimic_deployment.config.policies import get_policy, load_policies
    from mimic_deployment.host.engine import engine_of
    from mimic_deployment.host.facts import gather_facts
    from mimic_deployment.planning import preflight
    from mimic_deployment.planning.plan import RunRequest

    policies = load_policies()
    if name not in policies and not strict:
        return f"policy {name}: a LeRobot type, not a policy of config/policies.yaml (its trainer is not checked)"
    policy = get_policy(name, policies)
    facts = gather_facts(RunRequest(computer="cpu"), load_machines(policy_names=tuple(policies)))  # no NVML
    engine = facts.engine or engine_of(facts.lerobot_train)
    if not engine.version:
        return f"policy {name}: trainer not checked ({engine.describe()})"
    missing = preflight.policy_check(policy, engine, facts.env)
    if missing and strict:
        raise missing.error()
    where = f"on LeRobot {engine.version} ({engine.prefix})"
    return f"policy {name} {where}: " + (f"not ready: {missing.error()}" if missing else "ready")


def _resolve(args) -> tuple[list[str], str, bool]:
    """(dataset ids, a label for messages, whether every group is generated locally)."""
    names = [g for g in args.groups if "/" not in g]
    ids_direct = [g for g in args.groups if "/" in g]
    ids: list[str] = []
    local = False
    if names:
        from mimic_deployment.config.groups import load_groups

        path = None if args.config in (None, _DEFAULT) else args.config
        config = load_groups(path)
        ids = config.resolve(names)
        local = all(config.get(n).local for n in names)
    ids = list(dict.fromkeys(ids + ids_direct))
    return ids, "+".join(args.groups), local and not ids_direct
