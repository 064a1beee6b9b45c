"""Command line: one module per command, each with `add_parser(subparsers)` and `run(args) -> int`.

`main` is the single boundary where a UserError becomes one line on stderr and exit code 2.
Command modules keep heavy imports inside `run` so that building the parser stays cheap.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Any

from mimic_deployment.util.errors import USER_ERROR_EXIT, UserError

# command -> (module in this package, one-line summary for --help). Order = order in --help.
# Only the chosen command's module is imported: `status` must not pay for `train`'s imports.
COMMANDS = {
    "train": ("train", "plan and launch training runs (the default command)"),
    "status": ("status", "every run: state, step, loss, ETA, GPU memory"),
    "logs": ("logs", "show or follow a run's log"),
    "stop": ("stop", "stop runs completely (queued ones are cancelled)"),
    "resume": ("resume", "continue a run from its last checkpoint"),
    "history": ("history", "all past runs: attempts, duration, exit code"),
    "forget": ("forget", "move an ended run aside so that its name is free"),
    "check": ("check", "dataset compatibility of a group; lint a groups file"),
    "datasets": ("datasets", "demo datasets, the merged-dataset cache, downloads"),
    "evaluate": ("evaluate", "offline evaluation of a checkpoint on recorded episodes"),
    "compare": ("compare", "compare runs: steps, final loss, offline error"),
    "eval-robot": ("eval_robot", "evaluate a policy on the real robot (lerobot-record)"),
}

# How the user called us, for the hints we print (the shell entry points set it).
PROG = os.environ.get("MIMIC_PROG") or "python -m mimic_deployment"

# train_manager.sh's historical interface: flags without a command mean `train`.
DEFAULT_COMMAND = "train"


class _Parser(argparse.ArgumentParser):
    """Every parser and subparser: no abbreviations (`--step 5` must not silently mean --steps)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)

    def error(self, message: str):  # argparse's own usage errors: one line, exit 2
        raise UserError(f"{self.prog}: {message}", hint=f"see {self.prog} --help")


def build_parser(prog: str = "mimic", command: str | None = None) -> argparse.ArgumentParser:
    """The full parser of `command`; the other commands are named with their summary only."""
    parser = _Parser(prog=prog, description="Plan, launch, track and evaluate LeRobot training runs.")
    subparsers = parser.add_subparsers(dest="command", parser_class=_Parser, metavar="COMMAND")
    for name, (module, summary) in COMMANDS.items():
        if name == command:
            importlib.import_module(f"{__name__}.{module}").add_parser(subparsers)
        else:
            subparsers.add_parser(name, help=summary, add_help=False)
    return parser


def _with_default_command(argv: list[str]) -> list[str]:
    if not argv:
        return argv
    if argv[0] in ("-h", "--help"):  # the flags users know (train's), then the other commands
        return [DEFAULT_COMMAND, *argv]
    if argv[0].startswith("-"):
        return [DEFAULT_COMMAND, *argv]
    return argv


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []  # passed to lerobot-train as they are
    argv = argv[: argv.index("--")] if "--" in argv else argv
    try:
        argv = _with_default_command(argv)
        args = build_parser(prog, argv[0] if argv else None).parse_args(argv)
        args.extra_args = extra
        if extra and args.command != "train":
            raise UserError(f"arguments after `--` are only for training, not for {args.command}")
        if not getattr(args, "command", None):
            build_parser(prog).print_help()
            return 0
        return int(args.run(args) or 0)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USER_ERROR_EXIT
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `... | head`
        return 0
