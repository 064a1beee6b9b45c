"""The resume protocol: check a run can continue (with the engine it started with), open its next attempt,
start its owner."""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from mimic_deployment.config.engines import load_engines
from mimic_deployment.host import procs
from mimic_deployment.host.engine import engine_of
from mimic_deployment.host.paths import last_checkpoint_config
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
    plan = RunPlan.from_dict(record.plan, record.lerobot_version)
    if not record.state.ended:
        raise UserError(f"run {name!r} is {record.state.value}", hint=f"stop it first: stop {name}")
    step = tracking.last_checkpoint_step(plan.output_dir)
    if step is None:
        raise UserError(f"run {name!r} has no checkpoint to resume from",
                        hint=f"the first is saved at step {plan.save_freq}; start it again with --tag")
    check_engine(name, plan)
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


def check_engine(name: str, plan: RunPlan) -> None:
    """A run resumes with the LeRobot it started with (its plan's command): a checkpoint is written in
    that version's words (0.4's train_config.json says eval_freq, which 0.6 refuses; 0.4 cannot load
    a 0.6 checkpoint). Gone, or now another series: refused with the reason."""
    recorded, command = plan.engine, plan.lerobot_train
    version, series = recorded.get("version"), recorded.get("dialect")
    trained = f"LeRobot {version}" if version else "an unknown LeRobot"
    fix = "rebuild that env at the same path, then resume again; or train a new run (--tag) with today's LeRobot"
    if not (Path(command).exists() or (not os.path.isabs(command) and shutil.which(command))):
        raise UserError(f"run {name!r} was trained with {trained} at {command}, which no longer exists: its "
                        "checkpoint resumes only with the LeRobot that wrote it", hint=fix)
    now = engine_of(command)
    if version and now.series != series:
        raise UserError(f"run {name!r} was trained with LeRobot {version} ({series} dialect), and {command} is now "
                        f"{now.describe()}: that version cannot resume the checkpoint", hint=fix)
    asked = os.environ.get("LEROBOT_TRAIN")  # a resume runs the run's engine: another series is refused, not used
    other = engine_of(asked) if asked and asked != command else None
    if version and other is not None and other.series != series:
        raise UserError(f"run {name!r} was trained with LeRobot {version} ({command}), and LEROBOT_TRAIN points at "
                        f"{other.describe()}, which cannot resume its checkpoint (another version's config keys)",
                        hint="unset LEROBOT_TRAIN: a resume runs the LeRobot its run started with")
    foreign = _foreign_keys(plan.output_dir, now.series) if now.version else []  # unknown: no dialect to hold to
    if foreign:
        raise UserError(f"run {name!r}'s checkpoint config has {foreign[0]!r}, a key of another LeRobot version "
                        f"than {now.describe()}: that version cannot resume it", hint=fix)


def _foreign_keys(output_dir: str, series: str | None) -> list[str]:
    """Top-level keys of the last checkpoint's train_config.json that another dialect spells (eval_freq on 0.6)."""
    engines = load_engines()
    if series not in engines.dialects:
        return []
    here = engines.dialects[series]
    canonical = {key for d in engines.dialects.values() for key in d.renamed_flags}
    others = {d.flag(key) for d in engines.dialects.values() for key in canonical} - {here.flag(k) for k in canonical}
    try:
        config = json.loads(last_checkpoint_config(output_dir).read_text())
    except (OSError, ValueError):
        return []  # LeRobot says what is wrong with an unreadable one
    return sorted(others & set(config)) if isinstance(config, dict) else []


def start(record: RunRecord) -> RunRecord:
    """Hand the reopened attempt to its launcher (detached); the record with what it started."""
    started = tracking.launcher_of(record).start([record], sequential=False, continue_on_failure=False)
    return registry.update(record.name, lambda r: r.set(**started[record.name]))
