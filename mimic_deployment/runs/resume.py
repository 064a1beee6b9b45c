"""The resume protocol: check a run can continue, open its next attempt, start its owner."""
from __future__ import annotations

import os
from dataclasses import dataclass

from mimic_deployment.host import procs
from mimic_deployment.planning.plan import RunPlan, resume_argv
from mimic_deployment.runs import registry, tracking
from mimic_deployment.runs.record import RunRecord
from mimic_deployment.util.errors import UserError


@dataclass(frozen=True)
class ResumeRequest:
    name: str
    steps: int | None = None  # train up to this step (None: the run's target, the latest one asked for)
    max_restarts: int | None = None  # None: keep the run's
    foreground: bool = False
    wait: bool = False


@dataclass(frozen=True)
class Reopened:
    record: RunRecord
    from_step: int
    to_step: int


def reopen(request: ResumeRequest) -> Reopened:
    """Everything that can be refused is refused before the record changes; then the new attempt."""
    from mimic_deployment.host.gpus import read_gpus
    from mimic_deployment.runs.launch import LaunchOptions, assign_gpus, check_gpus_here

    name = request.name
    record = tracking.refresh(registry.require(name))
    plan = RunPlan.from_dict(record.plan)
    if not record.state.ended:
        raise UserError(f"run {name!r} is {record.state.value}", hint=f"stop it first: stop {name}")
    step = tracking.last_checkpoint_step(plan.output_dir)
    if step is None:
        raise UserError(f"run {name!r} has no checkpoint to resume from",
                        hint=f"the first is saved at step {plan.save_freq}; start it again with --tag")
    target = request.steps or plan.steps
    if step >= target:
        raise UserError(f"run {name!r} is already at step {step} of {target}",
                        hint="give --steps N (N larger) to train further")
    if request.max_restarts is not None and request.max_restarts < 0:
        raise UserError("--max-restarts must be >= 0")
    slurm = record.launcher == "slurm"  # a new job: its GPUs come from the allocation
    if slurm and request.foreground:
        raise UserError("--foreground runs here, not on Slurm", hint=f"follow the job with `logs {name} -f`")
    options = LaunchOptions(wait=request.wait, foreground=request.foreground)
    gpus = [] if slurm or plan.device != "cuda" else read_gpus()
    if not slurm:
        check_gpus_here([plan], gpus)  # a GPU run resumed on a host without one would train on the CPU
    devices = None if slurm else assign_gpus([plan], options, gpus)[0]

    def change(r: RunRecord) -> None:
        # --steps always: without it LeRobot trains to the steps of the checkpoint's config, which
        # is the target of the attempt that saved it, not a later `resume --steps N`
        registry.open_attempt(r, "resume", resume_argv(plan, target))
        r.launched_by = procs.identity(os.getpid())  # owner until the supervisor takes over
        r.plan["steps"] = target  # the run's target from now on (status, restarts, later resumes)
        r.cuda_visible_devices = devices
        if request.max_restarts is not None:
            r.max_restarts = request.max_restarts

    return Reopened(registry.update(name, change), from_step=step, to_step=target)


def start(record: RunRecord) -> RunRecord:
    """Hand the reopened attempt to its launcher (detached); the record with what it started."""
    started = tracking.launcher_of(record).start([record], sequential=False, continue_on_failure=False)
    return registry.update(record.name, lambda r: r.set(**started[record.name]))
