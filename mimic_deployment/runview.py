"""One row per run for status and history: state (judged live), progress, ETA, GPU memory."""
from __future__ import annotations

import time

from . import tracking
from .registry import State


def fmt_duration(seconds: float | None) -> str:
    if seconds is None or seconds < 0:
        return "-"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, _ = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h" if days else f"{hours}h{minutes:02d}m" if hours else f"{minutes}m"


def _progress(record: dict) -> dict:
    if State(record["state"]) is not State.RUNNING and record.get("progress"):
        return record["progress"]
    if State(record["state"]) is State.QUEUED:
        return {}
    from .progress import read_progress

    plan = record["plan"]
    return read_progress(plan["log_file"], plan["output_dir"], plan["steps"]).to_dict()


def _gpu_memory(record: dict, per_pid: dict[int, float]) -> float | None:
    if not per_pid or record["state"] != State.RUNNING.value:
        return None
    from . import procs

    pids = {p.pid for p in procs.run_processes(record.get("supervisor"), None)}
    total = sum(per_pid.get(pid, 0.0) for pid in pids)
    return total or None


def _slurm_job(record: dict) -> tuple[str, str] | None:
    """(state, reason) of a Slurm run's job, from the one squeue answer status shares."""
    if record.get("launcher") != "slurm" or State(record["state"]).ended:
        return None
    from .launchers.slurm import job_info

    return job_info(record)


def run_row(record: dict, per_pid: dict[int, float] | None = None, now: float | None = None) -> dict:
    record = tracking.refresh(record)
    plan, progress = record["plan"], _progress(record)
    job = _slurm_job(record)
    waiting = f"Slurm: {job[0].lower()} ({job[1]})" if job and job[0] == "PENDING" and job[1] != "None" else None
    now = time.time() if now is None else now
    total = progress.get("total_steps") or plan["steps"]
    return {
        "name": record["name"], "state": record["state"], "launcher": record.get("launcher", "local"),
        "pid": tracking.owner_pid(record), "step": progress.get("step"), "total_steps": total,
        "loss": progress.get("loss"), "eta_seconds": progress.get("eta_seconds"),
        "gpu_memory_gb": _gpu_memory(record, per_pid or {}), "created_at": record.get("created_at"),
        "started_at": record.get("started_at"), "ended_at": record.get("ended_at"),
        "age_seconds": now - record.get("created_at", now), "exit_code": record.get("exit_code"),
        "restarts": record.get("restarts", 0), "attempts": len(record.get("attempts", [])),
        "reason": record.get("reason") or progress.get("failure") or waiting, "wandb_url": record.get("wandb_url")
        or progress.get("wandb_url"), "policy": plan["policy"], "group": plan["group"],
        "computer": plan["computer"], "log_file": plan["log_file"], "output_dir": plan["output_dir"],
        "slurm_job_id": (record.get("slurm") or {}).get("job_id"), "slurm_state": job[0] if job else None,
    }


def step_text(row: dict) -> str:
    if row["step"] is None:
        return f"-/{row['total_steps']}"
    return f"{row['step']}/{row['total_steps']}"
