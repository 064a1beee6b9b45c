"""`status`: the truth about every run (a run whose processes are gone is lost, never running)."""
from __future__ import annotations

import argparse
import json
import math
import sys
import time

RECENT_SECONDS = 2 * 24 * 3600
MIN_INTERVAL = 0.1  # seconds between --watch refreshes: below it status would only busy-loop


def interval(text: str) -> float:
    """--interval: a finite number of seconds >= MIN_INTERVAL (-1, 0 and nan are mistakes)."""
    from mimic_deployment.util.errors import UserError

    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < MIN_INTERVAL:
        raise UserError(f"--interval {text}: must be a number of seconds >= {MIN_INTERVAL}",
                        hint="e.g. --interval 2, the default")
    return value


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("status", help="every run: state, step, loss, ETA, GPU memory")
    p.add_argument("names", nargs="*", help="only these runs (with details: log, output, W&B link)")
    p.add_argument("--json", action="store_true", help="machine-readable, one object per run")
    p.add_argument("--watch", action="store_true",
                   help="a live view (Ctrl-C to leave); to a file or pipe: one frame per refresh")
    p.add_argument("--interval", type=interval, default=2.0,
                   help=f"seconds between refreshes with --watch (default 2, at least {MIN_INTERVAL})")
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


def _loss(value: float | None) -> str:
    return f"{value:.3f}" if value is not None else "-"


def render(rows: list[dict], hidden: int) -> str:
    """The table; an EVAL LOSS column (LeRobot 0.6's held-out loss) only when a run logged one."""
    from mimic_deployment.runs.view import fmt_duration, gpu_memory_text, step_text
    from mimic_deployment.util.table import first_line, table

    if not rows:
        return "no runs" + (f" ({hidden} older: status --all)" if hidden else "")
    evals = any(r.get("eval_loss") is not None for r in rows)
    body = table(
        ("NAME", "STATE", "STEP", "LOSS", *(("EVAL LOSS",) if evals else ()), "ETA", "GPU MEM", "AGE", "NOTE"),
        [(r["name"], r["state"], step_text(r), _loss(r["loss"]), *((_loss(r.get("eval_loss")),) if evals else ()),
          fmt_duration(r["eta_seconds"]) if r["state"] == "running" else "-",
          gpu_memory_text(r), fmt_duration(r["age_seconds"]),
          first_line(r["reason"]) or r["wandb_url"] or "") for r in rows],
        right=(2, 3, 4, 5, 6, 7) if evals else (2, 3, 4, 5, 6),
    )
    return body + (f"\n({hidden} older runs hidden: status --all)" if hidden else "")


def _losses(row: dict) -> str:
    """`loss 0.912, kld_loss 7.561, l1_loss 0.846; eval_loss 1.050 at step 8` (what was logged)."""
    parts = [f"loss {row['loss']:.4g}"] if row.get("loss") is not None else []
    parts += [f"{k} {v:.4g}" for k, v in sorted((row.get("sub_losses") or {}).items())]
    text = ", ".join(parts)
    if row.get("eval_loss") is not None:
        text += ("; " if text else "") + f"eval_loss {row['eval_loss']:.4g} at step {row['eval_loss_step']}"
    return text


def _speed(row: dict) -> str:
    return f"{row['samples_per_sec']:g} samples/s" if row.get("samples_per_sec") is not None else ""


def details(rows: list[dict]) -> str:
    """Below the table of `status NAME`: where each run's files are, its W&B link, its Slurm job."""
    blocks = []
    for r in rows:
        lines = [f"{r['name']}:"]
        for label, value in (("log", r["log_file"]), ("output", r["output_dir"]), ("W&B", r["wandb_url"]),
                             ("losses", _losses(r)), ("speed", _speed(r))):
            if value:
                lines.append(f"  {label:<7} {value}")
        if r["slurm_job_id"]:
            lines.append(f"  {'slurm':<7} job {r['slurm_job_id']}"
                         + (f" ({r['slurm_state']})" if r["slurm_state"] else ""))
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def _frame(args: argparse.Namespace) -> str:
    rows, hidden = collect(args)
    if args.json:
        return to_json(rows)
    return render(rows, hidden) + ("\n\n" + details(rows) if args.names and rows else "")


def run(args: argparse.Namespace) -> int:
    if args.watch:
        return _watch(args)
    print(_frame(args))
    return 0


def _watch(args: argparse.Namespace) -> int:
    frame = _frame(args)  # a mistake (no run named X) is one line before anything is drawn
    if not sys.stdout.isatty():
        return _watch_plain(args, frame)
    from rich.live import Live
    from rich.text import Text

    with Live(Text(frame), auto_refresh=False) as live:
        while True:
            time.sleep(args.interval)
            live.update(Text(_frame(args) + f"\n\nrefreshed {time.strftime('%H:%M:%S')}"), refresh=True)


def _watch_plain(args: argparse.Namespace, frame: str) -> int:
    """To a file or a pipe (`status --watch > file`): plain frames, each under its time and
    followed by a blank line, flushed as written; no terminal escape codes."""
    while True:
        sys.stdout.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')}\n{frame}\n\n")
        sys.stdout.flush()
        time.sleep(args.interval)
        frame = _frame(args)
