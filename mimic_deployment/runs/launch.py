"""Launching planned runs: refuse collisions and busy GPUs, claim each name, start the owner."""
from __future__ import annotations

import importlib.metadata
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from mimic_deployment.host import procs
from mimic_deployment.host.facts import toolkit_commit
from mimic_deployment.host.gpus import GpuInfo, is_busy, read_gpus
from mimic_deployment.planning.plan import RunPlan
from mimic_deployment.runs import registry, tracking
from mimic_deployment.runs.record import Attempt, RunRecord, State
from mimic_deployment.util.errors import UserError


@dataclass(frozen=True)
class LaunchOptions:
    launcher: str = "local"
    sequential: bool = False
    continue_on_failure: bool = False
    max_restarts: int = 0
    foreground: bool = False
    wait: bool = False


def check_collision(plan: RunPlan) -> None:
    record = registry.read(plan.name)
    if record is not None:
        record = tracking.refresh(record)
        state, step = record.state.value, tracking.last_checkpoint_step(plan.output_dir)
        if not record.state.ended:
            raise UserError(f"run {plan.name!r} is {state} (pid {tracking.owner_pid(record)})",
                            hint=f"follow it with `logs {plan.name} -f`, stop it with `stop {plan.name}`, "
                                 f"or start another with --tag")
        if state != State.FINISHED.value and step is not None:
            raise UserError(f"run {plan.name!r} is {state} with a checkpoint at step {step}",
                            hint=f"continue it with `resume {plan.name}`, or start a new run with --tag")
        raise UserError(f"run {plan.name!r} already exists ({state})", hint="start a new run with --tag NAME")
    if Path(plan.output_dir).exists():
        raise UserError(f"{plan.output_dir} already exists but has no run record",
                        hint="start a new run with --tag NAME (LeRobot never reuses an output folder)")


def assign_gpus(plans: list[RunPlan], options: LaunchOptions, gpus: list[GpuInfo]) -> list[str | None]:
    """CUDA_VISIBLE_DEVICES for each plan. Sequential runs share the first free ones."""
    if all(p.device == "cpu" for p in plans):
        return [None] * len(plans)
    if not gpus:  # a named GPU machine on a host where NVML sees nothing: let CUDA decide
        return [None] * len(plans)
    free = [g for g in gpus if not is_busy(g)]
    busy = [g for g in gpus if is_busy(g)]
    wanted = max(p.num_gpus for p in plans) if options.sequential else sum(p.num_gpus for p in plans)
    if len(free) < wanted and not options.wait:
        detail = "; ".join(f"GPU {g.index} {g.used_gb:.1f} GB used by PID(s) {list(g.processes) or '?'}" for g in busy)
        raise UserError(f"{wanted} free GPU(s) needed, {len(free)} free ({detail})",
                        hint="wait for them with --wait, or queue with --sequential")
    if options.sequential or len(free) < wanted:
        ids = ",".join(str(g.index) for g in (free or gpus)[: max(p.num_gpus for p in plans)])
        return [ids] * len(plans)
    out: list[str | None] = []
    cursor = 0
    for plan in plans:
        out.append(",".join(str(g.index) for g in free[cursor: cursor + plan.num_gpus]))
        cursor += plan.num_gpus
    return out


def _lerobot_version() -> str | None:
    try:
        return importlib.metadata.version("lerobot")
    except importlib.metadata.PackageNotFoundError:
        return None


def _record(plan: RunPlan, options: LaunchOptions, devices: str | None, gpus: list[GpuInfo]) -> RunRecord:
    plan_dict = plan.to_dict()
    plan_dict["env"] = registry.scrub_env(plan_dict["env"])
    return RunRecord(
        name=plan.name, launcher=options.launcher, plan=plan_dict,
        marker=f"{plan.name}:{uuid.uuid4().hex[:12]}", max_restarts=options.max_restarts,
        toolkit_commit=toolkit_commit(), lerobot_version=_lerobot_version(),
        gpus=[g.to_dict() for g in gpus if devices and str(g.index) in devices.split(",")],
        cuda_visible_devices=devices, wait_for_gpus=options.wait,
        attempts=[Attempt(kind="train", argv=list(plan.argv), queued_at=registry.now())],
        # owner of the queued record until a supervisor (or queue) takes over: without it, a
        # `status` in that window (or while --foreground runs an earlier run) judged it lost
        launched_by=procs.identity(os.getpid()),
    )


def launch(plans: list[RunPlan], options: LaunchOptions) -> list[RunRecord]:
    """Everything that can be refused is refused before the first name is claimed."""
    from mimic_deployment.launchers import get_launcher

    launcher = get_launcher(options.launcher)
    for plan in plans:
        check_collision(plan)
    _preflight(plans)
    launcher.check(plans)  # slurm: sbatch --test-only, so a refused job records nothing
    local = options.launcher == "local"  # on Slurm the job gets its GPUs from the allocation
    gpus = read_gpus() if local and any(p.device == "cuda" for p in plans) else []
    devices = assign_gpus(plans, options, gpus) if local else [None] * len(plans)
    claimed = []
    try:
        for plan, dev in zip(plans, devices):
            registry.create(_record(plan, options, dev, gpus))
            claimed.append(plan.name)
    except UserError:
        for name in claimed:  # a simultaneous launch took one of the names: release ours cleanly
            registry.update(name, lambda r: registry.advance(r, State.STOPPED, reason="launch aborted"))
        raise
    for plan in plans:
        Path(plan.log_file).parent.mkdir(parents=True, exist_ok=True)
    records = [registry.require(name) for name in claimed]
    if options.foreground:
        return records
    started = launcher.start(records, sequential=options.sequential, continue_on_failure=options.continue_on_failure)
    updated = []
    for name, info in started.items():
        def store(record: RunRecord, info: dict = info) -> None:  # the default binds this run's info
            record.set(**info)
        updated.append(registry.update(name, store))
    return updated


def _preflight(plans: list[RunPlan]) -> None:
    """Dataset availability and compatibility from local metadata, before anything is launched."""
    from mimic_deployment.datasets.prepare import preflight

    for plan in plans:
        preflight(plan.dataset, plan.policy_type)


def run_foreground(names: list[str], continue_on_failure: bool) -> int:
    """Attached supervisors, one after another (make demo, Slurm batch jobs)."""
    from mimic_deployment.runs.supervisor import Supervisor

    code = 0
    for i, name in enumerate(names):
        code = Supervisor(name, echo=True).run()
        if code != 0 and not continue_on_failure:
            for rest in names[i + 1:]:
                def stop(record: RunRecord, failed: str = name) -> None:  # the default binds the failed run's name
                    registry.advance(record, State.STOPPED, reason=f"{failed} did not finish")
                registry.update(rest, stop)
            return code
    return code
