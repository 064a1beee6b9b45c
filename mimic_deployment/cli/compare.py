"""`compare RUN RUN..`: runs side by side (policy, group, steps, final loss, offline error) + one PNG."""
from __future__ import annotations

import argparse
import json


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("compare", help="compare runs: steps, final loss, offline error; one PNG",
                              description="Compare runs: policy, group, steps, final training loss and the "
                                          "offline action error of each run's newest `evaluate` report. Writes "
                                          "one PNG: the loss curves overlaid and the offline errors.")
    p.add_argument("names", nargs="+", metavar="RUN")
    p.add_argument("--out", metavar="FILE.png", help="the PNG (default outputs/eval/compare/<timestamp>.png)")
    p.add_argument("--no-plot", action="store_true", help="only the table")
    p.add_argument("--json", action="store_true", help="the rows as JSON (no PNG unless --out FILE.png)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mimic_deployment.evaluation import compare

    if args.no_plot and args.out:
        from mimic_deployment.util.errors import UserError

        raise UserError("--out FILE.png and --no-plot exclude each other", hint="give one of them")
    names = list(dict.fromkeys(args.names))
    summaries = [compare.summarize(n) for n in names]
    png = None
    if not args.no_plot and (args.out or not args.json):  # JSON is for scripts: a PNG only when asked
        png = compare.plot(summaries, Path(args.out) if args.out else compare.default_png())
    if args.json:
        print(json.dumps({"runs": [s.to_dict() for s in summaries], "plot": str(png) if png else None}, indent=2))
        return 0
    print(compare.table(summaries))
    if png:
        print(f"\nplot  {png}")
    return 0
