"""The job side of a Slurm run: what `python -m mimic_deployment._entry slurm-job NAME` does inside the batch job.

The supervisor runs in foreground mode, so the job lasts as long as the training, and records
the run's states itself. Near the time limit Slurm sends USR1 to the batch shell, which tells
the supervisor (it stops the trainer and records the requeue) and runs `scontrol requeue`; the
job then starts again with SLURM_RESTART_COUNT=N and resumes from the last checkpoint
(LeRobot's resume). Without a checkpoint yet, the old output folder is moved to
<output_dir>.requeued-<N> (never deleted) and the run starts afresh.

Chains: afterany starts the next job whatever the previous one did, so the next job's
supervisor reads the previous run's record first and, unless --continue-on-failure, marks
itself stopped ("previous run X failed") when that run did not finish.
"""
from __future__ import annotations

import os
import signal
import socket
from pathlib import Path
from types import FrameType

import psutil

from mimic_deployment.host import procs
from mimic_deployment.host.paths import last_checkpoint_step
from mimic_deployment.launchers.slurm.client import FINAL, job_data, own_job_state, recorded_job
from mimic_deployment.logs.progress import read_progress
from mimic_deployment.planning.plan import RunPlan, resume_argv
from mimic_deployment.runs import registry
from mimic_deployment.runs.record import RunRecord, State
from mimic_deployment.runs.supervisor import Supervisor


def _move_aside(output_dir: str, restart: int) -> str | None:
    """Never delete: LeRobot refuses an existing output folder, so the unfinished one moves."""
    src = Path(output_dir)
    if not src.exists():
        return None
    dst, n = Path(f"{output_dir}.requeued-{restart}"), 1
    while dst.exists():
        n += 1
        dst = Path(f"{output_dir}.requeued-{restart}-{n}")
    src.rename(dst)
    return str(dst)


def reopen_for_requeue(record: RunRecord, restart: int, **end: object) -> str:
    """End the current attempt (if not ended) and open the one restart `restart` runs.
    Returns what the new attempt will do, for the log."""
    if not record.state.ended:
        registry.advance(record, State.STOPPED, **{"reason": "requeued by Slurm", **end})
    plan = RunPlan.from_dict(record.plan)
    step = last_checkpoint_step(plan.output_dir)
    if step is not None:
        kind, argv, what = "resume", resume_argv(plan, plan.steps), f"resume from the checkpoint at step {step}"
    else:
        moved = _move_aside(plan.output_dir, restart)
        kind, argv = "train", plan.argv
        what = "start afresh (no checkpoint yet" + (f"; the old output is {moved})" if moved else ")")
    registry.open_attempt(record, kind, argv)
    # the same job runs the new attempt; the run's total counts requeues, the attempt's own starts at 0
    record.current.extra.update(slurm_restart=restart, slurm_job=recorded_job(record))
    record.restarts += 1
    record.reason = f"requeued by Slurm (restart {restart})"
    job_data(record)["restart"] = restart
    return what


class SlurmSupervisor(Supervisor):
    """The supervisor inside a batch job: USR1 means "requeued", and Slurm's own verdict
    (time limit, scancel) names why the run was stopped."""

    def __init__(self, name: str, restart: int):
        super().__init__(name, echo=False)  # stdout is the log already
        self.restart, self.requeue = restart, False

    def run(self, resume_steps: int | None = None) -> int:
        signal.signal(signal.SIGUSR1, self._on_usr1)
        return super().run(resume_steps)

    def _gpu_env(self) -> dict:
        return {}  # Slurm sets CUDA_VISIBLE_DEVICES for the allocation

    def _on_usr1(self, signum: int, frame: FrameType | None) -> None:
        self.requeue = True
        self._on_signal(signum, frame)

    def finish(self, code: int | None, reason: str | None = None) -> int:
        self._sweep()
        if self.requeue and code != 0:
            return self._requeued(code)
        record = registry.read(self.name)
        requested = record is not None and record.stop_requested
        if self.stop_signal == signal.SIGTERM and not requested:
            state, why = own_job_state()  # while it ends the job is COMPLETING; the reason says why
            if state == "TIMEOUT" or why == "TimeLimit":  # the limit came before USR1 could requeue
                self.stop_signal = None
                return super().finish(code or 1, reason=FINAL["TIMEOUT"][1])
            if state in ("COMPLETING", "CANCELLED"):
                reason = reason or "cancelled in Slurm (scancel)"
            elif state == "PREEMPTED" or why == "Preempted":
                reason = reason or FINAL["PREEMPTED"][1]
        return super().finish(code, reason)

    def _requeued(self, code: int | None) -> int:
        progress = read_progress(self.plan.log_file, self.plan.output_dir, self.plan.steps)
        done: dict[str, str] = {}

        def change(r: RunRecord) -> None:
            if not r.state.ended:
                done["what"] = reopen_for_requeue(r, self.restart + 1, ended_at=registry.now(), exit_code=code,
                                                  progress=progress.to_dict())
        self.update(change)
        self.say(f"=== {self.name}: requeued by Slurm; restart {self.restart + 1} will "
                 f"{done.get('what', 'find the run ended')} ===")
        return 0

    def _sweep(self) -> None:
        """Processes of the run that escaped the trainer's tree (Slurm's linuxproc tracking
        loses reparented ones): end them. Never the job shell or its own helpers."""
        me = psutil.Process()
        ancestors = {p.pid for p in me.parents()}
        shell = me.ppid()
        left = []
        for p in procs.marked_processes(self.marker):
            try:
                chain = {a.pid for a in p.parents()}
            except psutil.Error:
                continue
            if p.pid in ancestors or (shell in chain and me.pid not in chain):
                continue
            left.append(p)
        if not left:
            return
        self.say(f"ending {len(left)} leftover process(es) of the run: {sorted(p.pid for p in left)}")
        for p in left:
            try:
                p.terminate()
            except psutil.Error:
                pass
        _, alive = psutil.wait_procs(left, timeout=3)
        for p in alive:
            try:
                p.kill()
            except psutil.Error:
                pass


def job_main(name: str) -> int:
    """Inside the batch job: decide what this start of the job does, then supervise it."""
    restart = int(os.environ.get("SLURM_RESTART_COUNT") or 0)
    job = os.environ.get("SLURM_JOB_ID", "?")
    decision: dict[str, str] = {}

    def decide(r: RunRecord) -> None:
        slurm = job_data(r)  # edited in place, by reopen_for_requeue too
        state = r.state
        if r.stop_requested:
            if not state.ended:
                registry.advance(r, State.STOPPED, reason="stopped by request")
            decision["skip"] = "a stop was requested"
            return
        if restart > slurm.get("restart", 0):  # requeued, and nobody opened the attempt yet
            if state is State.FINISHED or state is State.FAILED:
                decision["skip"] = f"the run is {state.value}"
                return
            decision["what"] = reopen_for_requeue(r, restart)
            state = State.QUEUED
        after = slurm.get("after")
        if after and not slurm.get("continue_on_failure") and state is State.QUEUED:
            before = registry.read(after)
            before_state = before.state.value if before else "missing"
            if before_state != State.FINISHED.value:
                registry.advance(r, State.STOPPED, reason=f"previous run {after} {before_state}")
                decision["skip"] = (f"previous run {after} {before_state} "
                                    "(the chain stops; --continue-on-failure goes on)")
                return
        if state is not State.QUEUED:
            decision["skip"] = f"the run is {state.value}"
        slurm.update(node=socket.gethostname(), job_id=slurm.get("job_id") or job)

    registry.update(name, decide)
    supervisor = SlurmSupervisor(name, restart)
    where = f"Slurm job {job} (restart {restart}) on {socket.gethostname()}"
    gpus = os.environ.get("CUDA_VISIBLE_DEVICES")
    supervisor.say(where + (f", CUDA_VISIBLE_DEVICES={gpus}" if gpus is not None else ""))
    if "what" in decision:
        supervisor.say(f"requeued: this attempt will {decision['what']}")
    if "skip" in decision:
        supervisor.say(f"not starting: {decision['skip']}")
        return 0
    return supervisor.run()
