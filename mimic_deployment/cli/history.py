"""`history`: every run ever recorded here, with each of its attempts (restarts included) and how each ended."""
from __future__ import annotations

import argparse
import json
import time


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("history", help="all past runs: attempts, restarts, total time, exit code, reason")
    p.add_argument("--json", action="store_true", help="one object per run, with its attempts")
    p.add_argument("--policy", help="only this policy")
    p.set_defaults(run=run)


def _seconds(started: float | None, ended: float | None, now: float) -> float | None:
    return None if started is None else max(0.0, (ended or now) - started)


def runs(policy: str | None = None, now: float | None = None) -> list[dict]:
    """One object per run, oldest first: the run's judged state and step (as `status` shows them),
    its total time over all attempts, its restarts, and every attempt with its own outcome."""
    from mimic_deployment.runs import registry
    from mimic_deployment.runs.view import CORRUPT, collect_rows
    from mimic_deployment.util.secrets import redact_argv

    now = time.time() if now is None else now
    rows = {r["name"]: r for r in collect_rows()[0]}  # judges live runs first (a lost run is recorded so)
    out = []
    for record in registry.read_all():
        row = rows.get(record.name)
        if row is None or (policy and row["policy"] != policy):
            continue
        attempts: list[dict] = []
        for number, attempt in enumerate(record.attempts, 1):
            current = number == len(record.attempts)
            attempts.append({
                "number": number, "kind": attempt.kind, "state": row["state"] if current else attempt.state.value,
                "queued_at": attempt.queued_at, "started_at": attempt.started_at, "ended_at": attempt.ended_at,
                "seconds": _seconds(attempt.started_at, attempt.ended_at, now), "exit_code": attempt.exit_code,
                "reason": (row["reason"] if current else None) or attempt.reason,
                "argv": redact_argv(attempt.argv),
            })
        started = [a["started_at"] for a in attempts if a["started_at"] is not None]
        out.append({
            "name": record.name, "state": row["state"], "policy": row["policy"], "group": row["group"],
            "computer": row["computer"], "launcher": row["launcher"], "step": row["step"],
            "total_steps": row["total_steps"], "created_at": record.created_at,
            "started_at": min(started) if started else None, "ended_at": row["ended_at"],
            "total_seconds": sum(a["seconds"] or 0.0 for a in attempts) if started else None,
            "restarts": record.restarts, "exit_code": row["exit_code"], "reason": row["reason"],
            "wandb_url": row["wandb_url"], "log_file": row["log_file"], "output_dir": row["output_dir"],
            "attempts": attempts,
        })
    for row in rows.values():  # a run whose record cannot be read stays in history, as corrupt
        if row["state"] == CORRUPT and not policy:
            out.append({**row, "created_at": now - row["age_seconds"], "total_seconds": None, "attempts": []})
    return sorted(out, key=lambda r: r["created_at"] or 0)


def _when(at: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(at)) if at else "-"


def render(items: list[dict]) -> str:
    """A row per run (its attempts, restarts and total time), then a row per attempt under runs
    that had more than one."""
    from mimic_deployment.runs.view import fmt_duration, step_text
    from mimic_deployment.util.table import first_line, table

    lines: list[tuple[object, ...]] = []
    for r in items:
        lines.append((r["name"], r["state"], step_text(r), len(r["attempts"]), r["restarts"], _when(r["started_at"]),
                      fmt_duration(r["total_seconds"]), "-" if r["exit_code"] is None else r["exit_code"],
                      first_line(r["reason"]) or r["wandb_url"] or ""))
        if len(r["attempts"]) > 1:
            for a in r["attempts"]:
                lines.append((f"  #{a['number']} {a['kind']}", a["state"], "", "", "", _when(a["started_at"]),
                              fmt_duration(a["seconds"]), "-" if a["exit_code"] is None else a["exit_code"],
                              first_line(a["reason"])))
    return table(("NAME", "STATE", "STEP", "ATTEMPTS", "RESTARTS", "STARTED", "TIME", "EXIT", "NOTE"), lines,
                 right=(2, 3, 4, 6, 7))


def run(args: argparse.Namespace) -> int:
    items = runs(args.policy)
    if args.json:
        print("[\n" + ",\n".join(json.dumps(r) for r in items) + "\n]" if items else "[]")
        return 0
    print(render(items) if items else "no runs yet")
    return 0
