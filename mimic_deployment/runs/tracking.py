"""The truth about a recorded run: a run whose owner is gone without a recorded end is lost."""
from __future__ import annotations

from mimic_deployment.host import paths
from mimic_deployment.runs import registry
from mimic_deployment.runs.registry import State


def launcher_of(record: dict):
    from mimic_deployment.launchers import get_launcher

    return get_launcher(record.get("launcher", "local"))


def refresh(record: dict) -> dict:
    """Judge liveness; persist `lost` (under the lock, judged again there) when the owner is gone."""
    if State(record["state"]).ended or launcher_of(record).alive(record) is not False:
        return record

    def mark_lost(r: dict) -> None:
        launcher = launcher_of(r)
        if not State(r["state"]).ended and launcher.alive(r) is False:
            verdict = getattr(launcher, "verdict", None)  # slurm: the job's final state, if Slurm still has it
            state, reason = verdict(r) if verdict else (State.LOST, "its processes are gone without a recorded end")
            if registry.advance(r, state, reason=reason):
                store_progress(r)

    try:
        return registry.update(record["name"], mark_lost)
    except OSError:  # read-only outputs or a full disk: still report the truth
        return {**record, "state": State.LOST.value}


def store_progress(record: dict) -> None:
    """An end recorded by someone other than the supervisor (lost, stopped after SIGKILL) keeps
    the run's last progress too, so that `status` never reads the logs of ended runs again."""
    if record.get("progress"):
        return
    from mimic_deployment.logs.progress import read_progress

    plan = record["plan"]
    progress = read_progress(plan["log_file"], plan["output_dir"], plan["steps"])
    record["progress"] = progress.to_dict()
    record["wandb_url"] = record.get("wandb_url") or progress.wandb_url


def last_checkpoint_step(output_dir: str) -> int | None:
    config = paths.last_checkpoint_config(output_dir)
    if not config.exists():
        return None
    try:
        return int(config.parents[1].resolve().name)  # the numbered folder `last` points at
    except ValueError:
        return -1


def owner_pid(record: dict) -> int | None:
    owner = record.get("supervisor") or record.get("queue") or record.get("launched_by") or {}
    return owner.get("pid")
