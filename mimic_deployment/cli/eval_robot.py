"""`eval-robot --policy P [--dry-run | --check]`: run a policy on the real robot with lerobot-record.

Driven by env vars, as the per-policy eval.sh scripts always were (flags win):
MODEL_PATH (required), EVAL_DATASET (required, namespace/eval_<name>), NUM_EPISODES (10),
TASK, EPISODE_TIME_S (60), RESET_TIME_S (30), DEVICE, PUSH_TO_HUB (false), ROBOT_CONFIG.
"""
from __future__ import annotations

import argparse
import json
import os
import sys


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("eval-robot", help="evaluate a policy on the real robot (lerobot-record)",
                              description="Run a trained policy on the robot with lerobot-record and record "
                                          "the episodes as an eval_ dataset. Each setting: flag > env var > default.")
    p.add_argument("--policy", help="policy name (set by training_scripts/<policy>/eval.sh); "
                                    "checked against the checkpoint's type")
    p.add_argument("--model-path", metavar="M", help="env MODEL_PATH: a run name, a checkpoint folder or a Hub id")
    p.add_argument("--eval-dataset", metavar="NS/eval_NAME", help="env EVAL_DATASET: the dataset to record")
    p.add_argument("--num-episodes", metavar="N", help="env NUM_EPISODES (default 10)")
    p.add_argument("--task", help='env TASK (default "Bimanual blue block handover from left to right hand")')
    p.add_argument("--episode-time-s", metavar="S", help="env EPISODE_TIME_S: seconds per episode (default 60)")
    p.add_argument("--reset-time-s", metavar="S", help="env RESET_TIME_S: seconds to reset between episodes (default 30)")
    p.add_argument("--fps", metavar="N", help="recording fps (default: fps: of the robot config)")
    p.add_argument("--device", help="env DEVICE: --policy.device (default: the checkpoint's)")
    p.add_argument("--push-to-hub", dest="push_to_hub", action="store_const", const=True,
                   help="env PUSH_TO_HUB: upload the recorded dataset (default: no)")
    p.add_argument("--no-push-to-hub", dest="push_to_hub", action="store_const", const=False)
    p.add_argument("--robot-config", metavar="FILE", help="env ROBOT_CONFIG (default mimic_deployment/config/robot.yaml)")
    show = p.add_argument_group("show instead of running")
    show.add_argument("--dry-run", action="store_true", help="print the lerobot-record command, run nothing")
    show.add_argument("--check", action="store_true",
                      help="parse the command with LeRobot's own lerobot-record parser (no robot needed; slow: imports LeRobot)")
    show.add_argument("--json", action="store_true", help="with --dry-run or --check: JSON")
    p.set_defaults(run=run)


def render(plan) -> str:
    from mimic_deployment.evaluation.robot import shell_command

    m = plan.model
    origin = f"run {m.run}" if m.run else ("Hub" if not m.local else "local checkpoint")
    step = f", step {m.step}" if m.step is not None else ""
    lines = [f"eval-robot {plan.policy or '?'} on {plan.robot.type} ({plan.robot.id})",
             f"  model       {m.path} ({origin}{step}; MODEL_PATH from {plan.sources['model_path']})",
             f"  dataset     {plan.eval_dataset} -> {plan.dataset_root}",
             f"  robot       {plan.robot.path}",
             "  cameras     " + ", ".join(f"{c} -> observation.images.{k}" for c, k in plan.camera_keys.items())]
    lines += [f"  note        {n}" for n in plan.notes]
    lines += [f"  PROBLEM     {p}" for p in plan.problems]
    lines += ["  command:", "    " + shell_command(plan.argv, indent="      ")]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from mimic_deployment.util.errors import UserError
    from mimic_deployment.evaluation import robot

    if args.json and not (args.dry_run or args.check):
        raise UserError("--json needs --dry-run or --check")
    request = robot.EvalRequest(
        policy=args.policy, model_path=args.model_path, eval_dataset=args.eval_dataset,
        num_episodes=args.num_episodes, task=args.task, episode_time_s=args.episode_time_s,
        reset_time_s=args.reset_time_s, fps=args.fps, device=args.device, push_to_hub=args.push_to_hub,
        robot_config=args.robot_config)
    plan = robot.build(request)
    if args.check:
        parsed = robot.parse_with_lerobot(plan.argv[1:])
        if args.json:
            print(json.dumps({"plan": plan.to_dict(), "lerobot": parsed}, indent=2))
        else:
            pol = parsed["policy"] or {}
            print(f"lerobot-record's parser accepted the command: robot {parsed['robot']['type']} "
                  f"({parsed['robot']['id']}), policy {pol.get('type')} from {pol.get('pretrained_path')}, "
                  f"dataset {parsed['dataset']['repo_id']}, cameras {', '.join(parsed['recorded_cameras'])}")
            for problem in plan.problems:
                print(f"PROBLEM {problem}")
        return 0
    if args.dry_run:
        print(json.dumps(plan.to_dict(), indent=2) if args.json else render(plan))
        return 0
    if plan.problems:
        more = f" (and {len(plan.problems) - 1} more)" if len(plan.problems) > 1 else ""
        raise UserError(plan.problems[0] + more, hint="see --dry-run")
    sdk = robot.sdk_problem(plan.robot)
    if sdk:
        raise UserError(sdk)
    if not os.access(plan.argv[0], os.X_OK):
        raise UserError(f"{plan.argv[0]} not found", hint="install lerobot==0.4.4 (make env), or set LEROBOT_RECORD")
    print(render(plan), file=sys.stderr, flush=True)
    sys.stdout.flush()
    os.execv(plan.argv[0], plan.argv)
    return 0  # not reached
