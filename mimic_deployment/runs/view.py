"""One row per run for status and history: state (judged live), progress, ETA, GPU memory, eval loss."""
from __future__ import annotations

import json
import os
import time
from collections.abc import Callable

from mimic_deployment.runs import registry, tracking
from mimic_deployment.runs.record import RunRecord, State
from mimic_deployment.util.atomic import atomic_write_json

# Rows of ended runs, cached for `status` over many runs (parsing a thousand records costs more
# than the whole target): runs/.status-rows.json, each row keyed by its record file's identity
# (inode, mtime, size). An end is final, and every rewrite of a record (a resume) is an atomic
# replace that changes the key, so a cached row is used only while its record is unchanged.
ROW_CACHE = ".status-rows.json"
ROW_CACHE_VERSION = 1  # rows are also dropped whenever the code that makes them (this file, tracking.py) changes


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


def _progress(record: RunRecord) -> dict:
    if record.state is not State.RUNNING and record.progress:
        return record.progress
    if record.state is State.QUEUED:
        return {}
    from mimic_deployment.logs.progress import read_progress

    plan = record.plan
    return read_progress(plan["log_file"], plan["output_dir"], plan["steps"]).to_dict()


def _gpu_memory(record: RunRecord, per_pid: dict[int, float]) -> float | None:
    if not per_pid or record.state is not State.RUNNING:
        return None
    from mimic_deployment.host import procs

    pids = {p.pid for p in procs.run_processes(record.supervisor, None)}
    total = sum(per_pid.get(pid, 0.0) for pid in pids)
    return total or None


def _slurm_job(record: RunRecord) -> tuple[str, str] | None:
    """(state, reason) of a Slurm run's job, from the one squeue answer status shares."""
    if record.launcher != "slurm" or record.state.ended:
        return None
    from mimic_deployment.launchers.slurm import job_info

    return job_info(record)


def run_row(record: RunRecord, per_pid: dict[int, float] | None = None, now: float | None = None) -> dict:
    record = tracking.refresh(record)
    plan, progress = record.plan, _progress(record)
    job = _slurm_job(record)
    waiting = tracking.launcher_of(record).waiting_reason(record)
    now = time.time() if now is None else now
    total = progress.get("total_steps") or plan["steps"]
    return {
        "name": record.name, "state": record.state.value, "launcher": record.launcher,
        "pid": tracking.owner_pid(record), "step": progress.get("step"), "total_steps": total,
        "loss": progress.get("loss"), "eta_seconds": progress.get("eta_seconds"),
        "gpu_memory_gb": _gpu_memory(record, per_pid or {}), "created_at": record.created_at,
        "started_at": record.started_at, "ended_at": record.ended_at,
        "age_seconds": now - (record.created_at or now), "exit_code": record.exit_code,
        "restarts": record.restarts, "attempts": len(record.attempts),
        "reason": record.reason or progress.get("failure") or waiting, "wandb_url": record.wandb_url
        or progress.get("wandb_url"), "policy": plan["policy"], "group": plan["group"],
        "computer": plan["computer"], "log_file": plan["log_file"], "output_dir": plan["output_dir"],
        "slurm_job_id": (record.slurm or {}).get("job_id"), "slurm_state": job[0] if job else None,
        **{key: progress.get(key) for key in LOG_NUMBERS}, "sub_losses": progress.get("sub_losses") or {},
    }


# The numbers of the log a row carries as they are (logs/progress.py; None when not logged): 0.6's
# held-out loss, samples/s and GPU memory as LeRobot reports it (peak allocated by torch).
LOG_NUMBERS = ("eval_loss", "eval_loss_step", "samples_per_sec", "mem_gb", "peak_mem_gb")


CORRUPT = "corrupt"  # the state shown for a run whose run.json cannot be read


def corrupt_row(name: str, why: str, mtime: float, now: float) -> dict:
    """The row of a run whose record cannot be read: its name, why, and whether its processes
    (found by the marker file beside the record) still run; every other field unknown."""
    marker = registry.marker_of(name)
    live = 0
    if marker:
        from mimic_deployment.host import procs  # psutil: only for the rare corrupt record

        live = len(procs.marked_processes(marker))
    if live:
        what = f"{live} of its processes still run: `stop {name}` ends them by their marker"
    elif marker:
        what = f"none of its processes runs (`stop {name}` ends any by their marker)"
    else:
        what = "no marker file beside it: its processes cannot be found"
    row: dict = dict.fromkeys(("launcher", "pid", "step", "total_steps", "loss", "eta_seconds", "gpu_memory_gb",
                               "created_at", "started_at", "ended_at", "exit_code", "wandb_url", "policy",
                               "group", "computer", "log_file", "output_dir", "slurm_job_id", "slurm_state",
                               *LOG_NUMBERS))
    row.update(name=name, state=CORRUPT, age_seconds=now - mtime, restarts=0, attempts=0,
               reason=f"{why}; {what}", sub_losses={})
    return row


def gpu_memory_text(row: dict) -> str:
    """What the process holds now (NVML, live runs), else the peak LeRobot logged (0.6 on CUDA)."""
    if row.get("gpu_memory_gb"):
        return f"{row['gpu_memory_gb']:.1f} GB"
    peak = row.get("peak_mem_gb") or row.get("mem_gb")
    return f"{peak:.1f} GB peak" if peak else "-"


def step_text(row: dict) -> str:
    if row["step"] is None and row["total_steps"] is None:
        return "-"
    if row["step"] is None:
        return f"-/{row['total_steps']}"
    return f"{row['step']}/{row['total_steps']}"


def _key(st: os.stat_result) -> list[int]:
    return [st.st_ino, st.st_mtime_ns, st.st_size]


def _cache_version() -> str:
    code = [os.stat(__file__).st_mtime_ns, os.stat(tracking.__file__).st_mtime_ns]
    return f"{ROW_CACHE_VERSION}:{code[0]}:{code[1]}"


def _load_cache(file: str, version: str) -> dict:
    try:
        with open(file, "rb") as handle:
            data = json.loads(handle.read())
        return data["rows"] if data.get("version") == version else {}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def collect_rows(names: list[str] | None = None, recent_seconds: float | None = None,
                 gpu_memory: Callable[[], dict[int, float]] | None = None,
                 now: float | None = None) -> tuple[list[dict], int, list[str]]:
    """Rows of every recorded run (or of `names`), sorted by creation; with `recent_seconds`,
    runs that ended longer ago are left out and counted. Returns (rows, left out, missing names).
    Live states are judged on every call; only rows of ended runs come from the cache."""
    now = time.time() if now is None else now
    entries = registry.scan(names)
    cache_file = os.path.join(str(registry.runs_dir()), ROW_CACHE)
    version = _cache_version()
    cache = _load_cache(cache_file, version) if entries else {}
    kept = dict(cache) if names is not None else {}
    rows, hidden, todo = [], 0, []

    def too_old(row: dict) -> bool:  # a corrupt record is never hidden: it may hide a live run
        return (recent_seconds is not None and row["state"] != CORRUPT and State(row["state"]).ended
                and now - (row["ended_at"] or now) >= recent_seconds)

    mtimes: dict[str, float] = {}

    for name, file, st in entries:
        hit = cache.get(name)
        if hit and hit.get("key") == _key(st):
            kept[name] = hit
            row = dict(hit["row"], age_seconds=now - (hit["row"]["created_at"] or now))
        else:
            record = registry.read_file(file)
            if record is None:
                why = registry.unreadable_reason(file)
                if why:  # the file changed between scan and read when no reason is found
                    mtimes[name] = st.st_mtime
                    rows.append(corrupt_row(name, why, st.st_mtime, now))
                continue
            todo.append((name, _key(st), record))
            continue
        if too_old(row):
            hidden += 1
        else:
            rows.append(row)
    if todo:
        live_cuda = any(r.state is State.RUNNING and r.plan.get("device") == "cuda" for _, _, r in todo)
        per_pid = gpu_memory() if gpu_memory and live_cuda else {}
        for name, key, record in todo:
            row = run_row(record, per_pid, now)
            if record.state.ended and row["state"] == record.state.value:  # as read: the key is its file's
                kept[name] = {"key": key, "row": {k: v for k, v in row.items() if k != "age_seconds"}}
            if too_old(row):
                hidden += 1
            else:
                rows.append(row)
    if kept != cache:
        try:
            atomic_write_json(registry.runs_dir() / ROW_CACHE, {"version": version, "rows": kept},
                                       indent=None)
        except OSError:  # read-only outputs: no cache, same answer
            pass
    found = {name for name, _, _ in entries}
    missing = [n for n in (names or []) if n not in found]
    return sorted(rows, key=lambda r: r["created_at"] or mtimes.get(r["name"], 0)), hidden, missing
