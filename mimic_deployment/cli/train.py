"""`train` (the default command of train_manager.sh): plan runs, show them, or launch them."""
from __future__ import annotations

import argparse
import json

from mimic_deployment.util.errors import UserError
from mimic_deployment.planning.plan import SETTINGS, RunRequest


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("train", help="plan and launch training runs (the default command)",
                              description="Plan and launch LeRobot training runs. Every setting: "
                                          "flag > env var > machine default > policy default.")
    what = p.add_argument_group("what to train")
    what.add_argument("--policy", action="append", metavar="P[,P..]", help="policy name(s), comma-separated")
    what.add_argument("--dataset-group", metavar="G[,G..]", help="dataset group(s) (env DATASET_GROUP)")
    what.add_argument("--tag", help="suffix for the run name: <policy>_<computer>_<group>_<tag>")
    what.add_argument("--groups-file", help="dataset groups YAML (env DATASET_GROUPS_FILE)")
    what.add_argument("--dataset-root", help="folder holding local datasets as <root>/<namespace>/<name>")
    how = p.add_argument_group("settings (each also an env var)")
    for name, (flag, var, _) in SETTINGS.items():
        how.add_argument(flag, dest=name, metavar="N", help=f"env {var}")
    how.add_argument("--computer", help="machine profile (env COMPUTER; default: detect this host)")
    how.add_argument("--hf-org", help="Hub organisation of the run's repo id (env HF_ORG)")
    how.add_argument("--base-model", help="pretrained model or checkpoint to start from (env BASE_MODEL)")
    how.add_argument("--push-to-hub", dest="push_to_hub", action="store_const", const=True,
                     help="push the final model (env PUSH_TO_HUB; default: when a HF token is present)")
    how.add_argument("--no-push-to-hub", dest="push_to_hub", action="store_const", const=False)
    how.add_argument("--wandb", dest="wandb", action="store_const", const=True,
                     help="log to W&B (env WANDB_ENABLE; default: when a W&B key is present)")
    how.add_argument("--no-wandb", dest="wandb", action="store_const", const=False)
    run_how = p.add_argument_group("how to run")
    run_how.add_argument("--sequential", action="store_true",
                         help="one run after another (the default for several runs on a machine with <= 1 GPU)")
    run_how.add_argument("--parallel", action="store_true", help="several runs at once (each on its own GPUs)")
    run_how.add_argument("--continue-on-failure", action="store_true", help="a sequence goes on after a failed run")
    run_how.add_argument("--max-restarts", default="0", metavar="N",
                         help="after a crash, resume from the last checkpoint up to N times (default 0)")
    run_how.add_argument("--foreground", action="store_true", help="stay attached until the runs end")
    run_how.add_argument("--wait", action="store_true", help="wait for busy GPUs instead of refusing")
    run_how.add_argument("--launcher", help="local or slurm (env LAUNCHER; default: the machine's, else local)")
    slurm = p.add_argument_group("Slurm job (with --launcher slurm; default: the machine's slurm entry)")
    slurm.add_argument("--partition", help="partition (env SBATCH_PARTITION)")
    slurm.add_argument("--gpus", metavar="N", help="GPUs of the run (--gres=gpu:N; sets --num-gpus)")
    slurm.add_argument("--cpus", metavar="N", help="CPUs of the run (--cpus-per-task)")
    slurm.add_argument("--mem", help="memory per node, e.g. 64G (env SBATCH_MEM_PER_NODE)")
    slurm.add_argument("--time", help="time limit, e.g. 24:00:00 or 1-00:00:00 (env SBATCH_TIMELIMIT); "
                                      "the job requeues itself and resumes before it")
    show = p.add_argument_group("show instead of launching")
    show.add_argument("--dry-run", action="store_true", help="print the resolved plans, launch nothing")
    show.add_argument("--json", action="store_true", help="with --dry-run: a JSON array of plans")
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
        flags={name: getattr(args, name) for name in SETTINGS}, computer=args.computer, tag=args.tag,
        hf_org=args.hf_org, base_model=args.base_model, push_to_hub=args.push_to_hub, wandb=args.wandb,
        dataset_root=args.dataset_root, extra_args=tuple(getattr(args, "extra_args", ())),
        launcher=args.launcher, slurm={k: getattr(args, k) for k in ("partition", "gpus", "cpus", "mem", "time")},
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
        from mimic_deployment.planning.render import dry_run_report

        print(json.dumps([p.to_dict() for p in plans], indent=2) if args.json else dry_run_report(plans))
        return 0
    return launch_plans(plans, args, facts)


def launch_options(args: argparse.Namespace, plans, facts):
    from mimic_deployment.runs.launch import LaunchOptions
    from mimic_deployment.util.values import parse_count

    if args.sequential and args.parallel:
        raise UserError("--sequential and --parallel exclude each other")
    launcher = plans[0].launcher  # resolved by the plan: flag > env LAUNCHER > machine > local
    if launcher == "slurm" and args.foreground:
        raise UserError("--foreground runs here, not on Slurm", hint="follow the job with `logs NAME -f`")
    max_gpus = max(len(facts.gpus or []), max(p.num_gpus for p in plans))
    # Slurm schedules the jobs by their resources: chained only when asked (--sequential)
    sequential = args.sequential or (len(plans) > 1 and not args.parallel and max_gpus <= 1 and launcher == "local")
    return LaunchOptions(launcher=launcher, sequential=sequential, continue_on_failure=args.continue_on_failure,
                         max_restarts=parse_count(args.max_restarts, "--max-restarts", 0),
                         foreground=args.foreground, wait=args.wait)


def launch_plans(plans, args: argparse.Namespace, facts) -> int:
    from mimic_deployment.runs.launch import launch, run_foreground

    options = launch_options(args, plans, facts)
    records = launch(plans, options)
    if options.foreground:
        code = run_foreground([r["name"] for r in records], options.continue_on_failure)
        from mimic_deployment.cli import status

        print("\n" + status.render(*status.collect(argparse.Namespace(names=[r["name"] for r in records], all=True))))
        return code
    print_launched(records)
    return 0


def print_launched(records: list[dict]) -> None:
    from mimic_deployment.runs import tracking
    from mimic_deployment.cli import PROG

    for r in records:
        slurm = r.get("slurm") or {}
        where = f"queue position {r['queue']['position'] + 1}/{r['queue']['size']}" if r.get("queue") else \
            f"Slurm job {slurm['job_id']}" + (f", after {slurm['after']}" if slurm.get("after") else "") \
            if slurm.get("job_id") else f"pid {tracking.owner_pid(r)}"
        print(f"launched {r['name']} ({where})\n  log     {r['plan']['log_file']}")
    first = records[0]["name"]
    print(f"  follow  {PROG} logs {first} -f\n  status  {PROG} status\n"
          f"  stop    {PROG} stop {first if len(records) == 1 else '--all'}")
