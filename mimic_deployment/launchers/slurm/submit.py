"""The Slurm launcher on the login node: submits a batch job per run, tracks it through squeue, stops it with scancel.

The plan becomes a batch script (script.sbatch_script, saved as outputs/runs/<name>/job.sbatch),
checked with `sbatch --test-only` before any name is claimed, then submitted with
`sbatch --parsable`; the job id goes into the record (record.slurm["job_id"]). `--sequential`
chains the jobs with --dependency=afterany (the job side stops the chain after a failure).

Liveness: a run's job is alive while squeue lists it in a non-final state; one squeue answer
(client.SqueueCache) serves every unfinished Slurm run. A job that left squeue is judged from the
record the supervisor wrote; with no recorded end it is mapped from Slurm's final state
(client.FINAL: TIMEOUT -> failed "timeout", CANCELLED -> stopped, ...) or, gone entirely, lost.
"""
from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

from mimic_deployment.launchers.base import Launcher
from mimic_deployment.launchers.slurm import client
from mimic_deployment.launchers.slurm.script import SCRIPT_FILE, sbatch_argv, sbatch_script
from mimic_deployment.planning.plan import RunPlan
from mimic_deployment.runs import registry
from mimic_deployment.runs.record import RunRecord, State

KILL_WAIT = 35.0  # after scancel: Slurm's KillWait (30 s by default) and a margin


def unfinished_job_ids() -> set[str]:
    """Job ids of every Slurm run not ended yet: what one squeue call asks about."""
    ids = set()
    for r in registry.read_all():
        job = client.recorded_job(r)
        if r.launcher == "slurm" and job and not r.state.ended:
            ids.add(job)
    return ids


SQUEUE = client.SqueueCache(also=unfinished_job_ids)  # one per process: `status` shares it across rows


def job_table(ids: Iterable[str | None], fresh: bool = False) -> client.JobTable | None:
    """{job id: (state, reason)} from the shared squeue answer (see client.SqueueCache.table)."""
    return SQUEUE.table(ids, fresh)


def job_info(record: RunRecord) -> tuple[str, str] | None:
    """(Slurm state, reason) of the run's job from the shared squeue answer, or None."""
    job = client.recorded_job(record)
    jobs = job_table([job]) if job else None
    return jobs.get(job) if jobs and job else None


def _end(name: str, state: State, reason: str) -> None:
    registry.update(name, lambda r: registry.advance(r, state, reason=reason))


class SlurmLauncher(Launcher):
    name = "slurm"

    def check(self, plans: list[RunPlan]) -> None:
        """`sbatch --test-only` for each plan, before any name is claimed: a refusal records nothing."""
        sbatch = client.find_tool("sbatch")
        for plan in plans:
            proc = client.call([sbatch, *sbatch_argv(None, test_only=True)], stdin=sbatch_script(plan))
            if proc.returncode != 0:
                raise client.refused(plan.name, proc)

    def start(self, records: list[RunRecord], *, sequential: bool, continue_on_failure: bool) -> dict[str, dict]:
        sbatch = client.find_tool("sbatch")
        previous: tuple[str, str] | None = None
        for i, record in enumerate(records):
            name, plan = record.name, RunPlan.from_dict(record.plan)
            script = Path(plan.record_dir) / SCRIPT_FILE
            script.write_text(sbatch_script(plan))
            after, after_job = previous if sequential and previous else (None, None)
            info = {"script": str(script), "job_id": None, "restart": 0, "after": after, "after_job": after_job,
                    "continue_on_failure": continue_on_failure}

            def prepared(r: RunRecord, info: dict = info) -> None:
                client.job_data(r).update(info)
            registry.update(name, prepared)  # what the job needs is recorded before it can start
            proc = client.call([sbatch, *sbatch_argv(script, dependency=after_job, marker=record.marker)])
            if proc.returncode != 0:
                error = client.refused(name, proc)
                _end(name, State.FAILED, f"sbatch: {error.message}")
                for rest in records[i + 1:]:
                    _end(rest.name, State.STOPPED, f"not submitted: {name} was refused")
                raise error
            job = client.parse_job_id(proc.stdout)

            def submitted(r: RunRecord, job: str = job) -> None:
                slurm = client.job_data(r)
                slurm.update(job_id=job, submitted_at=registry.now(), jobs=[*slurm.get("jobs", []), job])
                r.current.extra["slurm_job"] = job  # the job that runs this attempt
            registry.update(name, submitted)
            previous = (name, job)
        return {r.name: {} for r in records}

    def alive(self, record: RunRecord) -> bool | None:
        job = client.recorded_job(record)
        if not job or client.attempt_job(record) != job:
            return None  # this attempt is not submitted yet (a resume between its record and sbatch)
        jobs = job_table([job])
        if jobs is None:
            return None
        info = jobs.get(job)
        return info is not None and info[0] in client.ACTIVE

    def verdict(self, record: RunRecord) -> tuple[State, str]:
        """The end of a run whose job ended without a recorded end (see client.FINAL)."""
        info = job_info(record)
        state, reason = client.final_state(info[0] if info else None)
        if info and info[1] and info[1] != "None" and state is not State.LOST:
            reason += f" ({info[1]})"
        return state, reason

    def waiting_reason(self, record: RunRecord) -> str | None:
        """Why Slurm keeps the run's job pending (its squeue reason), e.g. "Slurm: pending (Resources)"."""
        if record.state.ended:
            return None
        job = job_info(record)
        return f"Slurm: {job[0].lower()} ({job[1]})" if job and job[0] == "PENDING" and job[1] != "None" else None

    def stop(self, record: RunRecord, timeout: float) -> list[int]:
        """scancel, then wait until the job has left its active states (its processes are gone)."""
        job = client.recorded_job(record)
        if not job:
            return []
        client.scancel(job)
        deadline = time.monotonic() + timeout + KILL_WAIT
        while time.monotonic() < deadline:
            jobs = job_table([job], fresh=True)
            if jobs is not None and (job not in jobs or jobs[job][0] not in client.ACTIVE):
                return []
            time.sleep(0.3)
        return [int(job)]
