"""`datasets demo|list|gc|fetch`: demo data, the merged-dataset cache, downloads."""
from __future__ import annotations

import argparse
import sys
import time


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("datasets", help="demo datasets, the merged-dataset cache, downloads")
    sub = p.add_subparsers(dest="datasets_command", metavar="ACTION", parser_class=type(p))
    demo = sub.add_parser("demo", help="create the tiny synthetic 'demo' group (mimic-demo/demo_a, demo_b: "
                          "four mp4 cameras, 15-D state/action)")
    demo.add_argument("--root", help="folder to create them in (default: the LeRobot home)")
    demo.add_argument("--force", action="store_true", help="re-create them even if they exist")
    demo.set_defaults(run=run_demo)
    lst = sub.add_parser("list", help="merged group datasets in the cache")
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(run=run_list)
    gc = sub.add_parser("gc", help="delete interrupted merges and all but the newest merge of each group")
    gc.add_argument("--dry-run", action="store_true", help="only say what would be deleted")
    gc.add_argument("--all", action="store_true", help="also the newest merge of each group")
    gc.add_argument("--include-linked", action="store_true",
                    help="also merges a run's dataset link points at (a running run would break)")
    gc.set_defaults(run=run_gc)
    fetch = sub.add_parser("fetch", help="download a group's datasets that are not here yet")
    fetch.add_argument("groups", nargs="+", metavar="GROUP")
    fetch.add_argument("--dataset-root", help="also look for local copies here")
    fetch.set_defaults(run=run_fetch)
    p.set_defaults(run=lambda args: (p.print_help(), 0)[1])


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def run_demo(args: argparse.Namespace) -> int:
    from mimic_deployment.datasets.demo import generate_demo

    generate_demo(args.root, force=args.force, log=print)
    return 0


def run_list(args: argparse.Namespace) -> int:
    import json

    from mimic_deployment.datasets.merge import list_merged
    from mimic_deployment.host import paths

    entries = list_merged()
    if args.json:
        print(json.dumps([{"path": str(e.path), "group": e.group, "fingerprint": e.fp, "size_bytes": e.size_bytes,
                           "complete": e.complete, "mtime": e.mtime} for e in entries], indent=2))
        return 0
    if not entries:
        print(f"no merged datasets in {paths.merged_home()}")
        return 0
    print(f"{'group':24} {'fingerprint':12} {'size':>9}  {'state':11} {'modified':16}  path")
    for e in entries:
        state = "complete" if e.complete else "interrupted"
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(e.mtime))
        print(f"{e.group:24} {e.fp:12} {_size(e.size_bytes):>9}  {state:11} {when:16}  {e.path}")
    return 0


def run_gc(args: argparse.Namespace) -> int:
    from mimic_deployment.datasets.merge import gc

    removed = gc(keep_latest_per_group=not args.all, dry_run=args.dry_run,
                 keep_linked=not args.include_linked, log=print)
    verb = "would delete" if args.dry_run else "deleted"
    for e in removed:
        print(f"{verb} {e.path} ({_size(e.size_bytes)}{'' if e.complete else ', interrupted'})")
    total = sum(e.size_bytes for e in removed)
    print(f"{verb} {len(removed)} folder{'s' if len(removed) != 1 else ''}, {_size(total)}")
    return 0


def run_fetch(args: argparse.Namespace) -> int:
    from mimic_deployment.config.groups import load_groups
    from mimic_deployment.datasets.sources import ensure_available
    from mimic_deployment.util.errors import UserError

    config = load_groups()
    local = [g for g in args.groups if config.get(g).local]
    if local:
        raise UserError(f"group {local[0]} is generated locally (local: true), not downloaded",
                        hint="run: python -m mimic_deployment datasets demo")
    ids = config.resolve(args.groups)
    found = ensure_available(ids, args.dataset_root, online=True, group=" ".join(args.groups),
                             log=lambda m: print(m, file=sys.stderr, flush=True))
    for rid, path in found.items():
        print(f"{rid}: {path}")
    return 0
