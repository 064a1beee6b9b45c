"""`evaluate RUN|PATH [..] --dataset-group G`: offline action error of checkpoints on recorded episodes."""
from __future__ import annotations

import argparse
import json
import sys


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("evaluate", help="offline evaluation: a checkpoint's actions vs recorded episodes",
                              description="Run each checkpoint over dataset episodes (as lerobot-record runs it on "
                                          "the robot) and report the L1 / MSE action error per dimension and per "
                                          "episode: report.json and PNG plots.")
    p.add_argument("models", nargs="+", metavar="RUN|PATH",
                   help="a run name (its last checkpoint), a checkpoint folder, or a Hub id")
    data = p.add_argument_group("data (default: the run's own group)")
    data.add_argument("--dataset-group", metavar="G", help="evaluate on this group's dataset (merged if several)")
    data.add_argument("--dataset", metavar="ID|DIR", help="evaluate on one dataset instead (a local id or folder)")
    data.add_argument("--episodes", metavar="0,1,5-7|all",
                      help="episode indices (default: those held out of training, else the last 5)")
    data.add_argument("--groups-file", help="dataset groups YAML (env DATASET_GROUPS_FILE)")
    data.add_argument("--dataset-root", help="folder holding local datasets as <root>/<namespace>/<name>")
    data.add_argument("--video-backend", choices=("torchcodec", "pyav"),
                      help="for video datasets (LeRobot's default: torchcodec)")
    p.add_argument("--device", help="cpu, cuda, cuda:1, mps (env DEVICE; default: cuda when available, else cpu)")
    p.add_argument("--out", metavar="DIR",
                   help="where report.json and the PNGs go (default outputs/eval/<run>/<timestamp>/)")
    p.add_argument("--joints", type=int, default=4, metavar="N", help="joints in the actions plot (default 4)")
    p.add_argument("--json", action="store_true", help="print the reports as JSON")
    p.set_defaults(run=run)


def _eps(episodes: list[int]) -> str:
    """[0,1,2,5] -> '0-2,5'."""
    out: list[str] = []
    if not episodes:
        return ""
    start = prev = episodes[0]
    for e in episodes[1:]:
        if e == prev + 1:
            prev = e
            continue
        out.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = e
    out.append(str(start) if start == prev else f"{start}-{prev}")
    return ",".join(out)


def render(report: dict) -> str:
    from mimic_deployment.util.table import table

    ov = report["overall"]
    norm = f"  (MSE / dataset variance {ov['mse_normalized']:.4g})" if "mse_normalized" in ov else ""
    head = (f"{report['run'] or report['model']}  "
            f"({report['policy_type']}, checkpoint step {report['checkpoint_step']}) "
            f"on {report['dataset']['repo_id']}, episodes {_eps(report['episodes'])}: {ov['frames']} frames, "
            f"{'held out' if report['held_out'] else 'NOT held out'} ({report['held_out_reason']})")
    rows = [[e["episode"], e["frames"], f"{e['l1']:.4g}", f"{e['mse']:.4g}"] for e in report["per_episode"]]
    worst = sorted(report["per_dim"], key=lambda d: -d["l1"])[:3]
    lines = [head, f"  L1 {ov['l1']:.4g}  MSE {ov['mse']:.4g}{norm}"]
    if report.get("eval_loss") is not None:
        lines.append(f"  eval_loss {report['eval_loss']:.4g} (logged by LeRobot at step {report['eval_loss_step']} "
                     f"on the eval_split={report.get('eval_split') or '?'} held-out episodes)")
    lines.append("")
    lines += ["  " + ln for ln in table(["EPISODE", "FRAMES", "L1", "MSE"], rows, right=(0, 1, 2, 3)).splitlines()]
    lines += ["", "  largest L1: " + ", ".join(f"{d['name']} {d['l1']:.3g}" for d in worst)]
    plots = report["plots"]
    lines += [f"  report  {report['dir']}/report.json"]
    lines += [f"  plot    {path}" for path in plots.values()]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mimic_deployment.evaluation import offline
    from mimic_deployment.evaluation.runs import resolve_model
    from mimic_deployment.runs import registry
    from mimic_deployment.util.errors import UserError

    if args.dataset and args.dataset_group:
        raise UserError("--dataset and --dataset-group exclude each other")
    if args.joints < 1:
        raise UserError(f"--joints {args.joints}: must be >= 1")
    episodes = offline.parse_episodes(args.episodes)
    # everything that can be checked without LeRobot first: models, then data
    models = [resolve_model(spec, what="RUN|PATH") for spec in dict.fromkeys(args.models)]
    from mimic_deployment.util.values import hub_offline

    hub = [m.path for m in models if not m.local]
    if hub and hub_offline():
        raise UserError(f"{hub[0]} is a Hub id and HF_HUB_OFFLINE is set: LeRobot cannot download it",
                        hint="download it first (huggingface-cli download), then pass the folder")
    jobs = []
    for model in models:
        record = registry.read(model.run) if model.run else None
        data = offline.resolve_dataset(group=args.dataset_group, dataset=args.dataset, record=record,
                                       dataset_root=args.dataset_root, groups_file=args.groups_file,
                                       log=lambda m: print(m, file=sys.stderr))
        jobs.append((model, record, data))
    labels = [m.label for m in models]
    if len(set(labels)) != len(labels) and args.out:
        raise UserError("two models with the same name and one --out", hint="evaluate them one at a time")
    reports = []
    for model, record, data in jobs:
        if args.out:
            out = Path(args.out) if len(models) == 1 else Path(args.out) / model.label
        else:
            out = offline.default_out_dir(model)
        report = offline.evaluate(model, data, episodes=episodes, device=args.device or offline.env_device(),
                                  out_dir=out.absolute(), record=record, video_backend=args.video_backend,
                                  joints=args.joints, log=lambda m: print(m, file=sys.stderr))
        reports.append(report)
        if not args.json:
            print(render(report) + ("\n" if len(models) > 1 else ""), flush=True)
    if args.json:
        print(json.dumps(reports if len(reports) > 1 else reports[0], indent=2))
    return 0
