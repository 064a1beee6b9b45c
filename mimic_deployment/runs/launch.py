"""Launching planned runs: the launch mode, every refusal (the dry-run runs them too), claiming names."""
from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from mimic_deployment.host import procs
from mimic_deployment.host.facts import toolkit_commit
from mimic_deployment.host.gpus import GpuInfo, is_busy, read_gpus
from mimic_deployment.planning import preflight
from mimic_deployment.planning.plan import RunPlan
from mimic_deployment.runs import registry, tracking
from mimic_deployment.runs.record import Attempt, RunRecord, State
from mimic_deployment.util.errors import UserError
from mimic_deployment.util.names import hub_repo_problem
from mimic_deployment.util.secrets import redact_argv, redact_env
from mimic_deployment.util.values import parse_count


@dataclass(frozen=True)
class LaunchOptions:
    launcher: str = "local"
    sequential: bool = False
    continue_on_failure: bool = False
    max_restarts: int = 0
    foreground: bool = False
    wait: bool = False


def launch_options(plans: list[RunPlan], gpus_here: int, *, sequential: bool = False, parallel: bool = False,
                   foreground: bool = False, continue_on_failure: bool = False, max_restarts: str = "0",
                   wait: bool = False) -> LaunchOptions:
    """How the plans are launched, from the flags; refuses flags that cannot hold together."""
    if sequential and parallel:
        raise UserError("--sequential and --parallel exclude each other", hint="give one of them")
    launcher = plans[0].launcher  # resolved by the plan: flag > env LAUNCHER > machine > local
    if launcher == "slurm" and foreground:
        raise UserError("--foreground runs here, not on Slurm", hint="follow the job with `logs NAME -f`")
    max_gpus = max(gpus_here, max(p.num_gpus for p in plans))
    # Slurm schedules the jobs by their resources: chained only when asked (--sequential)
    sequential = sequential or (len(plans) > 1 and not parallel and max_gpus <= 1 and launcher == "local")
    return LaunchOptions(launcher=launcher, sequential=sequential, continue_on_failure=continue_on_failure,
                         max_restarts=parse_count(max_restarts, "--max-restarts", 0),
                         foreground=foreground, wait=wait)


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


def check_gpus_here(plans: list[RunPlan], gpus: list[GpuInfo]) -> None:
    """A GPU machine's plan run on a host where NVML finds no GPU: LeRobot would quietly train on
    the CPU (and the run would end `finished`). Refused; the CPU is chosen by naming it."""
    for plan in plans:
        if plan.device != "cuda" or gpus:
            continue
        reason = plan.computer_reason
        who = reason if "=" in reason else f"machine {plan.computer} ({reason})"  # COMPUTER=odin, --computer=odin
        wanted = f"{plan.num_gpus} GPU{'s' if plan.num_gpus != 1 else ''}"
        raise UserError(f"{who} expects {wanted} but this host has none (LeRobot would silently train on the CPU)",
                        hint="to train on the CPU on purpose, use --computer cpu or COMPUTER=cpu")


def check_base_model(plans: list[RunPlan]) -> None:
    """A base model is an existing folder or a Hub repo id: anything else fails only once the trainer runs."""
    for plan in plans:
        model = plan.base_model
        if model is None or Path(model).expanduser().exists():
            continue
        problem = hub_repo_problem(model)
        if problem:
            where = plan.sources["base_model"].name or "the base model"
            raise UserError(f"{where}={model!r} is neither an existing folder nor a Hub repo id ({problem})",
                            hint="give a checkpoint folder that exists here, or a Hub id like lerobot/xvla-base")


def check(plans: list[RunPlan], options: LaunchOptions) -> tuple[list[GpuInfo], list[str | None]]:
    """Every refusal of the toolkit's own before a name is claimed, in the launch's order (the
    dry-run runs it too); returns this host's GPUs and the CUDA_VISIBLE_DEVICES of each plan."""
    for plan in plans:
        check_collision(plan)
    _preflight(plans)
    check_base_model(plans)
    preflight.refuse(plans)  # what the trainer needs at start: extra, Hub models, backbone, W&B key, token
    local = options.launcher == "local"  # on Slurm the job gets its GPUs from the allocation
    gpus = read_gpus() if local and any(p.device == "cuda" for p in plans) else []
    if local:
        check_gpus_here(plans, gpus)
    devices: list[str | None] = assign_gpus(plans, options, gpus) if local else [None] * len(plans)
    return gpus, devices


def describe(plans: list[RunPlan], options: LaunchOptions, devices: list[str | None]) -> str:
    """What the launch would do, in the dry-run's words."""
    n = len(plans)
    if options.launcher == "slurm":
        how = ("Slurm jobs, each starting after the previous one ends" if options.sequential and n > 1
               else "Slurm job(s), scheduled by their resources")
    elif options.foreground:
        how = "attached here (--foreground), one after another"
    elif options.sequential and n > 1:
        how = "a detached local queue, one run after another"
    else:
        how = "a detached supervisor per run" + (", all at once" if n > 1 else "")
    gpus = "; ".join(f"{p.name}: CUDA_VISIBLE_DEVICES={d}" for p, d in zip(plans, devices) if d)
    return f"launch: {n} run(s) as {how}" + (f" ({gpus})" if gpus else "")


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


def _record(plan: RunPlan, options: LaunchOptions, devices: str | None, gpus: list[GpuInfo]) -> RunRecord:
    plan_dict = plan.to_dict()
    # planning refuses a secret in the command; what the record shows is redacted all the same
    # (the attempt keeps the argv the supervisor runs, equal to it)
    plan_dict["env"] = redact_env(registry.scrub_env(plan_dict["env"]))
    plan_dict["argv"] = redact_argv(plan_dict["argv"])
    return RunRecord(
        name=plan.name, launcher=options.launcher, plan=plan_dict,
        marker=f"{plan.name}:{uuid.uuid4().hex[:12]}", max_restarts=options.max_restarts,
        # the LeRobot the run trains with: its engine's (LEROBOT_TRAIN's env), not the toolkit's own
        toolkit_commit=toolkit_commit(), lerobot_version=plan.engine.get("version"),
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
    gpus, devices = check(plans, options)
    launcher.check(plans)  # slurm: sbatch --test-only, so a refused job records nothing
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
