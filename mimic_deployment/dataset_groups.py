#!/usr/bin/env python3
"""Dataset group resolver: print the repo ids of dataset groups.

    python3 mimic_deployment/dataset_groups.py GROUP [GROUP ...] [--format list|json|cli]
    python3 mimic_deployment/dataset_groups.py --list-groups [--format json]
    python -m mimic_deployment.dataset_groups ...

--format list: one id per line; json: a JSON array; cli: one Python-list literal for LeRobot,
e.g. --dataset.repo_id="$(python3 mimic_deployment/dataset_groups.py high_quality --format cli)".
The groups file is --config PATH, else $DATASET_GROUPS_FILE, else dataset_groups.yaml here.
User mistakes print one `error: ...` line on stderr and exit 2.
"""
from __future__ import annotations

import sys

if __name__ == "__main__" and not __package__:
    # Run by path: Python put this folder first on sys.path, where our module names
    # (datasets/, gpus, ...) would shadow real packages. Put the repo root there instead.
    from pathlib import Path

    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse

from mimic_deployment.util.errors import USER_ERROR_EXIT, UserError

FORMATS = ("list", "json", "cli")


def format_ids(ids: list[str], fmt: str) -> str:
    """Render repo ids as `list` (lines), `json` (array) or `cli` (one-line list literal)."""
    if fmt == "list":
        return "\n".join(ids)
    if fmt == "json":
        import json

        return json.dumps(ids)
    if fmt == "cli":
        # No spaces, so it survives unquoted in a shell; ids are validated to hold no quotes.
        return "[" + ",".join(f"'{repo_id}'" for repo_id in ids) + "]"
    raise UserError(f"unknown format {fmt!r}", hint=f"use one of: {', '.join(FORMATS)}")


def groups_table(config) -> str:
    """Aligned text table of a GroupsConfig: name, dataset count, description."""
    rows = [("GROUP", "DATASETS", "DESCRIPTION")]
    for name in config.names():
        group = config.get(name)
        note = " [local]" if group.local else ""
        rows.append((name, str(len(group.datasets)), (group.description + note).strip()))
    width = max(len(row[0]) for row in rows)
    return "\n".join(f"{n:<{width}}  {c:>8}  {d}".rstrip() for n, c, d in rows)


def groups_json(config) -> str:
    import json

    return json.dumps({name: {"description": config.get(name).description, "local": config.get(name).local,
                              "datasets": list(config.get(name).datasets)} for name in config.names()}, indent=2)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse would print usage and exit; we want one line
        raise UserError(message, hint="see --help")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="dataset_groups.py", allow_abbrev=False,  # `--form` must not mean --format
                     description="Print the dataset repo ids of dataset groups.",
                     epilog="Groups file: --config PATH, else $DATASET_GROUPS_FILE, else the "
                            "dataset_groups.yaml beside this script.")
    parser.add_argument("groups", nargs="*", metavar="GROUP", help="group names; ids are merged in order, once each")
    parser.add_argument("--format", choices=FORMATS, default="list", help="output format (default: list)")
    parser.add_argument("--list-groups", action="store_true", help="list the groups: name, count, description")
    parser.add_argument("--config", metavar="PATH", help="groups file to read")
    return parser


def _run(argv: list[str] | None) -> str:
    args = _parser().parse_args(argv)
    if not args.groups and not args.list_groups:
        raise UserError("name at least one dataset group", hint="list them with --list-groups")
    try:
        from mimic_deployment.config.groups import load_groups
    except ModuleNotFoundError as exc:  # the system python3 without pyyaml
        if exc.name != "yaml":
            raise
        raise UserError(f"pyyaml is not installed for {sys.executable}",
                        hint="pip install pyyaml, or run with the project's .venv/bin/python") from None
    config = load_groups(args.config)
    if args.list_groups:
        return groups_json(config) if args.format == "json" else groups_table(config)
    return format_ids(config.resolve(args.groups), args.format)


def main(argv: list[str] | None = None) -> int:
    try:
        output = _run(argv)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USER_ERROR_EXIT
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else 0
    print(output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
