"""`train` (the default command of train_manager.sh): plan runs, show them, or launch them."""
from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

from mimic_deployment.config import slurm as slurmconf
from mimic_deployment.planning.plan import RunRequest
from mimic_deployment.planning.settings import COUNTS, FLAG_VALUES, TRAIN
from mimic_deployment.util.errors import UserError
from mimic_deployment.util.settings import add_flags

if TYPE_CHECKING:  # the annotation only: launching loads the registry, planning does not
    from mimic_deployment.runs.record import RunRecord


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("train", help="plan and launch training runs (the default command)",
                              description="Plan and launch LeRobot training runs. Every setting: "
                                          "flag > env var > machine default > policy default.")
    what = p.add_argument_group("what to train")
    what.add_argument("--policy", action="append", metavar="P[,P..]", help="policy name(s), comma-separated")
    add_flags(what, [TRAIN["dataset_group"]])
    what.add_argument("--tag", help="suffix for the run name: <policy>_<computer>_<group>_<tag>")
    what.add_argument("--groups-file", help="dataset groups YAML (env DATASET_GROUPS_FILE)")
    what.add_argument("--dataset-root", help="folder holding local datasets as <root>/<namespace>/<name>")
    how = p.add_argument_group("settings (each also an env var)")
    add_flags(how, [TRAIN[name] for name in (*COUNTS, "computer", "hf_org", "base_model", "push_to_hub", "wandb")])
    lerobot06 = p.add_argument_group("LeRobot 0.6 features (refused on an engine without them)")
    add_flags(lerobot06, [TRAIN[name] for name in ("eval_split", "eval_steps", "push_checkpoints")])
    run_how = p.add_argument_group("how to run")
    run_how.add_argument("--sequential", action="store_true",
                         help="one run after another (the default for several runs on a machine with <= 1 GPU)")
    run_how.add_argument("--parallel", action="store_true", help="several runs at once (each on its own GPUs)")
    run_how.add_argument("--continue-on-failure", action="store_true", help="a sequence goes on after a failed run")
    run_how.add_argument("--max-restarts", default="0", metavar="N",
                         help="after a crash, resume from the last checkpoint up to N times (default 0)")
    run_how.add_argument("--foreground", action="store_true", help="stay attached until the runs end")
    run_how.add_argument("--wait", action="store_true", help="wait for busy GPUs instead of refusing")
    add_flags(run_how, [TRAIN["launcher"]])
    slurm = p.add_argument_group("Slurm job (with --launcher slurm; default: the machine's slurm entry)")
    add_flags(slurm, slurmconf.SETTINGS.values())
    show = p.add_argument_group("show instead of launching")
    show.add_argument("--dry-run", action="store_true",
                      help="print the resolved plans and how the launch would go, launch nothing; what the launch "
                           "would refuse (a run of that name, busy or missing GPUs, clashing flags) is its last "
                           "line, '(launch would be refused: ...)' (exit 0 either way: the plans were made; "
                           "Slurm itself is not asked)")
    show.add_argument("--json", action="store_true",
                      help="with --dry-run: a JSON array of plans (a refusal goes to stderr)")
    show.add_argument("--list-groups", action="store_true", help="list the dataset groups")
    show.add_argument("--list-policies", action="store_true", help="list the policies")
    from mimic_deployment.cli import COMMANDS

    others = "\n".join(f"  {name:<11} {summary}" for name, (_, summary) in COMMANDS.items() if name != "train")
    p.epilog = ("Arguments after `--` are passed to lerobot-train as they are (--key=value).\n\n"
                f"Other commands (COMMAND --help for each):\n{others}")
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.set_defaults(run=run)


def _policies(values: list[str] | None) -> tuple[str, ...]:
    if values and len(values) > 1:
        raise UserError(f"--policy given {len(values)} times ({', '.join(values)})",
                        hint="give one comma-separated list; a per-policy train.sh already sets its policy")
    return tuple(p.strip() for p in (values[0].split(",") if values else []) if p.strip())


def request_from_args(args: argparse.Namespace) -> RunRequest:
    groups = tuple(g.strip() for g in (args.dataset_group or "").split(",") if g.strip())
    return RunRequest(
        policies=_policies(args.policy), groups=groups,
        flags={name: getattr(args, name) for name in FLAG_VALUES}, computer=args.computer, tag=args.tag,
        hf_org=args.hf_org, base_model=args.base_model, push_to_hub=args.push_to_hub,
        push_checkpoints=args.push_checkpoints, wandb=args.wandb,
        dataset_root=args.dataset_root, extra_args=tuple(getattr(args, "extra_args", ())),
        launcher=args.launcher, slurm={k: getattr(args, k) for k in slurmconf.SETTINGS},
    )


def make_plans(args: argparse.Namespace):
    from mimic_deployment.config.catalog import load_catalog
    from mimic_deployment.host.facts import gather_facts
    from mimic_deployment.planning.plan import build_plans

    catalog = load_catalog(args.groups_file)
    request = request_from_args(args)
    facts = gather_facts(request, catalog.machines)
    plans = build_plans(request, facts, policies=catalog.policies, machines=catalog.machines,
                        groups=catalog.groups, lab=catalog.lab, rename_maps=catalog.rename_maps(request.policies))
    return plans, catalog, facts


def run(args: argparse.Namespace) -> int:
    if args.list_groups or args.list_policies:
        from mimic_deployment.cli import listing

        return listing.show(args)
    if args.json and not args.dry_run:
        raise UserError("--json needs --dry-run")
    plans, catalog, facts = make_plans(args)
    if args.dry_run:
        return dry_run(plans, args, facts)
    return launch_plans(plans, args, facts)


def launch_options(args: argparse.Namespace, plans, facts):
    from mimic_deployment.runs.launch import launch_options as options

    return options(plans, len(facts.gpus or []), sequential=args.sequential, parallel=args.parallel,
                   foreground=args.foreground, continue_on_failure=args.continue_on_failure,
                   max_restarts=args.max_restarts, wait=args.wait)


def dry_run(plans, args: argparse.Namespace, facts) -> int:
    """The plans, then what the launch would do or the first thing it would refuse, in its words."""
    import sys

    from mimic_deployment.planning.render import dry_run_report
    from mimic_deployment.runs import launch

    try:
        options = launch_options(args, plans, facts)
        verdict, refused = launch.describe(plans, options, launch.check(plans, options)[1]), None
    except UserError as exc:
        verdict, refused = None, f"launch would be refused: {exc}"
    if args.json:
        print(json.dumps([p.to_dict() for p in plans], indent=2))
        if refused:
            print(refused, file=sys.stderr)
    else:
        print(f"{dry_run_report(plans)}\n({refused or verdict})")  # in parentheses, like the line above
    return 0


def launch_plans(plans, args: argparse.Namespace, facts) -> int:
    from mimic_deployment.runs.launch import launch, run_foreground

    options = launch_options(args, plans, facts)
    records = launch(plans, options)
    if options.foreground:
        code = run_foreground([r.name for r in records], options.continue_on_failure)
        from mimic_deployment.cli import status

        print("\n" + status.render(*status.collect(argparse.Namespace(names=[r.name for r in records], all=True))))
        return code
    print_launched(records)
    return 0


def print_launched(records: Sequence[RunRecord]) -> None:
    from mimic_deployment.cli import PROG
    from mimic_deployment.runs import tracking

    for r in records:
        slurm = r.slurm or {}
        if r.queue:
            where = f"queue position {r.queue['position'] + 1}/{r.queue['size']}"
        elif slurm.get("job_id"):
            where = f"Slurm job {slurm['job_id']}" + (f", after {slurm['after']}" if slurm.get("after") else "")
        else:
            where = f"pid {tracking.owner_pid(r)}"
        print(f"launched {r.name} ({where})\n  log     {r.plan['log_file']}")
    first = records[0].name
    print(f"  follow  {PROG} logs {first} -f\n  status  {PROG} status\n"
          f"  stop    {PROG} stop {first if len(records) == 1 else '--all'}")
