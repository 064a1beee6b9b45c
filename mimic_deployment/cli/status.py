"""`status`: the truth about every run (a run whose processes are gone is lost, never running)."""
from __future__ import annotations

import argparse
import json
import time

RECENT_SECONDS = 2 * 24 * 3600


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("status", help="every run: state, step, loss, ETA, GPU memory")
    p.add_argument("names", nargs="*", help="only these runs")
    p.add_argument("--json", action="store_true", help="machine-readable, one object per run")
    p.add_argument("--watch", action="store_true", help="a live view (Ctrl-C to leave)")
    p.add_argument("--interval", type=float, default=2.0, help="seconds between refreshes with --watch")
    p.add_argument("--all", action="store_true", help="also runs that ended more than two days ago")
    p.set_defaults(run=run)


def collect(args: argparse.Namespace) -> tuple[list[dict], int]:
    from mimic_deployment.runs import registry
    from mimic_deployment.runs.view import collect_rows

    def gpu_memory() -> dict[int, float]:
        from mimic_deployment.host.gpus import process_memory_gb  # NVML only when a live run may be on a GPU

        return process_memory_gb()

    rows, hidden, missing = collect_rows(args.names or None, None if args.all or args.names else RECENT_SECONDS,
                                         gpu_memory)
    if missing:
        registry.require(missing[0])  # the one "no run named X" error, with its close matches
    return rows, hidden


def to_json(rows: list[dict]) -> str:
    """A JSON array, one run per line (json's C encoder; indent= would use the slow Python one)."""
    return "[\n" + ",\n".join(json.dumps(r) for r in rows) + "\n]" if rows else "[]"


def render(rows: list[dict], hidden: int) -> str:
    from mimic_deployment.runs.view import fmt_duration, step_text
    from mimic_deployment.util.table import table

    if not rows:
        return "no runs" + (f" ({hidden} older: status --all)" if hidden else "")
    body = table(
        ("NAME", "STATE", "STEP", "LOSS", "ETA", "GPU MEM", "AGE", "NOTE"),
        [(r["name"], r["state"], step_text(r), f"{r['loss']:.3f}" if r["loss"] is not None else "-",
          fmt_duration(r["eta_seconds"]) if r["state"] == "running" else "-",
          f"{r['gpu_memory_gb']:.1f} GB" if r["gpu_memory_gb"] else "-", fmt_duration(r["age_seconds"]),
          r["reason"] or "") for r in rows],
        right=(2, 3, 4, 5, 6),
    )
    return body + (f"\n({hidden} older runs hidden: status --all)" if hidden else "")


def run(args: argparse.Namespace) -> int:
    if args.watch:
        return _watch(args)
    rows, hidden = collect(args)
    print(to_json(rows) if args.json else render(rows, hidden))
    return 0


def _watch(args: argparse.Namespace) -> int:
    from rich.live import Live
    from rich.text import Text

    with Live(Text(render(*collect(args))), auto_refresh=False) as live:
        while True:
            time.sleep(args.interval)
            live.update(Text(render(*collect(args)) + f"\n\nrefreshed {time.strftime('%H:%M:%S')}"), refresh=True)
