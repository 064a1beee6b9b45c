"""The truth about a recorded run: a run whose owner is gone without a recorded end is lost
(or finished, when its log and last checkpoint say it trained to the end)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from mimic_deployment.host import paths, procs
from mimic_deployment.runs import registry
from mimic_deployment.runs.record import RunRecord, State

if TYPE_CHECKING:
    from mimic_deployment.launchers.base import Launcher
    from mimic_deployment.logs.progress import Progress

SUPERVISOR_LOST = ("trained to the end, but its supervisor was lost before recording the end "
                   "(exit code unknown)")


def launcher_of(record: RunRecord) -> Launcher:
    from mimic_deployment.launchers import get_launcher  # launchers import runs: resolved at call time

    return get_launcher(record.launcher or "local")


def refresh(record: RunRecord) -> RunRecord:
    """Judge liveness; persist the end (under the lock, judged again there) when the owner is gone:
    `lost`, or `finished` when the run trained to the end unseen. Whatever still carries the run's
    marker (a stray worker) is ended then."""
    if record.state.ended or launcher_of(record).alive(record) is not False:
        return record
    ended = []

    def mark_lost(r: RunRecord) -> None:
        from mimic_deployment.logs.progress import trained_to_the_end

        launcher = launcher_of(r)
        if not r.state.ended and launcher.alive(r) is False:
            state, reason = launcher.verdict(r)  # slurm: the job's final state, if Slurm still has it
            progress = _progress(r)
            if state is State.LOST and trained_to_the_end(progress, r.plan["output_dir"], r.plan["steps"]):
                state, reason = State.FINISHED, SUPERVISOR_LOST
            if registry.advance(r, state, reason=reason):
                store_progress(r, progress)
                ended.append(r.marker)

    try:
        record = registry.update(record.name, mark_lost)
    except OSError:  # read-only outputs or a full disk: still report the truth
        return record.judged(State.LOST)
    for marker in ended:
        procs.reap_marked(marker)
    return record


def _progress(record: RunRecord) -> Progress:
    from mimic_deployment.logs.progress import read_progress

    plan = record.plan
    return read_progress(plan["log_file"], plan["output_dir"], plan["steps"])


def store_progress(record: RunRecord, progress: Progress | None = None) -> None:
    """An end recorded by someone other than the supervisor (lost, stopped after SIGKILL) keeps
    the run's last progress too, so that `status` never reads the logs of ended runs again."""
    if record.progress:
        return
    progress = progress or _progress(record)
    record.progress = progress.to_dict()
    record.wandb_url = record.wandb_url or progress.wandb_url


def last_checkpoint_step(output_dir: str) -> int | None:
    config = paths.last_checkpoint_config(output_dir)
    if not config.exists():
        return None
    try:
        return int(config.parents[1].resolve().name)  # the numbered folder `last` points at
    except ValueError:
        return -1


def owner_pid(record: RunRecord) -> int | None:
    owner = record.supervisor or record.queue or record.launched_by or {}
    return owner.get("pid")
