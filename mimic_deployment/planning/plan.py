"""From what the user asked (flags, env vars) and what is true here (facts) to fully resolved
run plans: names, paths, batch size, the exact argv and env. Pure: no I/O, no side effects.

Precedence for every setting: flag > env var > machine default > policy default, resolved by
the settings table (planning/settings.py) with a typed Source for each value. The argv is written
in the dialect of the LeRobot that runs it (config/engines.yaml): the engine of the command.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mimic_deployment.config import slurm as slurmconf
from mimic_deployment.config.engines import Dialect, load_engines
from mimic_deployment.config.groups import GroupsConfig
from mimic_deployment.config.lab import LabSettings
from mimic_deployment.config.machines import Machine, MachineChoice, choose_machine
from mimic_deployment.config.policies import Policy, get_policy
from mimic_deployment.host.engine import Engine, engine_of
from mimic_deployment.host.gpus import GpuInfo
from mimic_deployment.host.paths import last_checkpoint_config
from mimic_deployment.planning import checks
from mimic_deployment.planning.settings import TRAIN
from mimic_deployment.util.errors import UserError
from mimic_deployment.util.names import merged_repo_id
from mimic_deployment.util.settings import Source, SourceKind
from mimic_deployment.util.values import hub_offline


@dataclass(frozen=True)
class RunRequest:
    """What the user asked for. Flag values are raw strings (validated here, like env vars)."""
    policies: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    flags: Mapping[str, str | None] = field(default_factory=dict)  # settings.FLAG_VALUES -> the flag's raw value
    computer: str | None = None
    tag: str | None = None
    hf_org: str | None = None
    base_model: str | None = None
    push_to_hub: bool | None = None
    push_checkpoints: bool | None = None
    wandb: bool | None = None
    dataset_root: str | None = None
    extra_args: tuple[str, ...] = ()
    launcher: str | None = None  # --launcher
    slurm: Mapping[str, str | None] = field(default_factory=dict)  # keys of slurmconf.SETTINGS


@dataclass(frozen=True)
class Facts:
    """What is true on this machine, gathered before planning (see facts.py)."""
    env: Mapping[str, str]
    hostname: str
    gpus: list[GpuInfo] | None  # None: NVML not read (a named computer needs no reading)
    outputs: Path
    lerobot_train: str
    accelerate: str  # the toolkit's own: only for a command whose engine is unknown (no LeRobot beside it)
    toolkit_commit: str | None = None
    hf_token: bool = False
    wandb_key: bool = False
    engine: Engine | None = None  # the engine of lerobot_train (None: read from its files when planning)


@dataclass(frozen=True)
class RunPlan:
    name: str
    policy: str
    policy_type: str
    computer: str
    computer_reason: str
    gpu: str | None
    device: str
    group: str
    datasets: list[str]
    dataset: dict  # what the prepare step needs: members, merge, repo_id, root, dataset_root, online
    batch_size: int
    steps: int
    save_freq: int
    num_workers: int
    num_gpus: int
    sources: dict[str, Source]  # setting -> where its value came from (str in the record)
    output_dir: str
    log_file: str
    record_dir: str
    repo_id: str
    push_to_hub: bool
    push_reason: str
    wandb: bool
    wandb_reason: str
    wandb_notes: str
    base_model: str | None
    argv: list[str]
    env: dict
    launcher: str = "local"  # local or slurm
    slurm: dict = field(default_factory=dict)  # the job's settings (slurmconf.resolve); {} when local
    # the LeRobot that runs it: Engine.to_dict() + dialect (the series its argv is written in)
    # (+ note: a version of that series the toolkit was not checked with)
    engine: dict = field(default_factory=dict)
    eval_split: float | None = None  # held-out fraction of each task's episodes (None: no eval loss)
    eval_steps: int | None = None
    push_checkpoints: bool = False  # every checkpoint pushed to the Hub as it is saved

    def to_dict(self) -> dict:
        data = asdict(self)
        data["sources"] = {k: str(v) for k, v in self.sources.items()}  # today's record text
        return data

    @classmethod
    def from_dict(cls, data: dict, lerobot_version: str | None = None) -> RunPlan:
        """A plan read back from a record; older records lack newer keys (their defaults apply). A plan
        without an engine was made before engines had dialects: the record's lerobot_version tells
        which (0.4 for the toolkit's LeRobot of then), else the default dialect."""
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:  # written by a newer toolkit: dropping it would lose what the run was planned with
            raise UserError(f"the run's plan has an unknown key {unknown[0]!r}",
                            hint="it was written by a newer version of the toolkit; update this checkout")
        fields = dict(data)
        fields["sources"] = {k: Source.recorded(v) for k, v in (data.get("sources") or {}).items()}
        if not fields.get("engine"):
            fields["engine"] = legacy_engine(fields.get("argv") or [], lerobot_version)
        return cls(**fields)

    @property
    def lerobot_train(self) -> str:
        return self.engine.get("lerobot_train") or _trainer_of(self.argv)


def _trainer_of(argv: list[str]) -> str:
    """The lerobot-train of an argv: after `accelerate launch ...` options, else the first word."""
    if len(argv) > 1 and argv[1] == "launch":
        return next((a for a in argv[2:] if not a.startswith("-")), argv[0])
    return argv[0] if argv else ""


def legacy_engine(argv: list[str], lerobot_version: str | None) -> dict:
    """The engine of a plan recorded before plans named one."""
    return {"lerobot_train": _trainer_of(argv), "version": lerobot_version, "prefix": None, "python": None,
            "dialect": load_engines().series_of(lerobot_version)}


# ---------------------------------------------------------------- values and their sources

def _machine(machine: Machine, detail: str = "") -> Source:
    return Source(SourceKind.MACHINE, f"machine {machine.name}{detail}")


def _policy(policy: Policy, detail: str = " default") -> Source:
    return Source(SourceKind.POLICY, f"policy {policy.name}{detail}")


def _rule(text: str) -> Source:
    return Source(SourceKind.RULE, text)


def _push_to_hub(request: RunRequest, facts: Facts) -> tuple[bool, str]:
    value, source = TRAIN["push_to_hub"].resolve(
        request.push_to_hub, facts.env,
        (False if hub_offline(facts.env) else None, _rule("HF_HUB_OFFLINE is set")),
        (True if facts.hf_token else None, _rule("a Hugging Face token is present")),
        (False, _rule("no Hugging Face token (HF_TOKEN or `hf auth login`)")))
    return value, _reason(source)


def _wandb(request: RunRequest, facts: Facts) -> tuple[bool, str]:
    mode = facts.env.get("WANDB_MODE", "")
    value, source = TRAIN["wandb"].resolve(
        request.wandb, facts.env,
        # an explicit WANDB_MODE decides (and names itself) once W&B is configured at all
        (mode != "disabled" if mode in ("disabled", "offline") or (mode and facts.wandb_key) else None,
         _rule(f"WANDB_MODE={mode}")),
        (True if facts.wandb_key else None, _rule("a W&B API key is present")),
        (False, _rule("no W&B API key (WANDB_API_KEY or `wandb login`)")))
    return value, _reason(source)


def _reason(source: Source) -> str:
    """The plan's push/W&B reason: today's text, where a flag reads just "flag"."""
    return "flag" if source.kind is SourceKind.FLAG else str(source)


# ---------------------------------------------------------------- argv

def format_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(", ", ": "))
    return str(value)


def _lerobot_flags(policy: Policy, base_model: str | None, values: dict, dialect: Dialect) -> dict:
    """Every flag in its canonical (0.6) name; `_in_dialect` renames them for the engine."""
    flags = {"dataset.repo_id": values["dataset_repo_id"], "dataset.root": values["dataset_root"]}
    if base_model and policy.base_model_flag == "policy.path" or base_model and not policy.base_model:
        flags["policy.path"] = base_model
    else:
        flags["policy.type"] = policy.type
        if base_model:
            flags[policy.base_model_flag] = base_model
    flags.update({
        "policy.device": values["device"], "policy.push_to_hub": values["push"],
        "policy.repo_id": values["repo_id"], "output_dir": values["output_dir"],
        "job_name": values["name"], "batch_size": values["batch_size"], "steps": values["steps"],
        "save_freq": values["save_freq"], "num_workers": values["num_workers"],
        "wandb.enable": values["wandb"],
    })
    if values["eval_split"] is not None:
        flags["dataset.eval_split"] = values["eval_split"]
        flags["eval_steps"] = values["eval_steps"]
    if values["push_checkpoints"]:
        flags["save_checkpoint_to_hub"] = True
    if values["wandb"]:
        flags["wandb.project"] = values["wandb_project"]
        flags["wandb.notes"] = values["wandb_notes"]
    flags.update(policy.args)
    # LeRobot renames keys only for a pretrained checkpoint; 0.6 refuses --rename_map without one
    if values["rename_map"] and ("policy.path" in flags or dialect.can("rename_map_from_scratch")):
        flags["rename_map"] = values["rename_map"]
    return flags


def _in_dialect(flags: dict, dialect: Dialect) -> dict:
    return {dialect.flag(key): value for key, value in flags.items()}


def _launcher_prefix(facts: Facts, engine: Engine, num_gpus: int) -> list[str]:
    if num_gpus > 1:  # batch_size is per process; only the main process logs and saves
        return [checks.accelerate_of(engine, facts.accelerate, num_gpus), "launch", "--multi_gpu",
                f"--num_processes={num_gpus}", facts.lerobot_train]
    return [facts.lerobot_train]


def plan_engine(facts: Facts) -> tuple[Engine, Dialect, dict]:
    """The engine of the command, its dialect (a series not in engines.yaml: refused), and the plan's record of it."""
    engine = facts.engine or engine_of(facts.lerobot_train)
    try:
        dialect = load_engines().dialect(engine.series)
    except UserError as exc:
        raise UserError(f"{exc.message}: {engine.describe()}", hint=exc.hint) from None
    info = {**engine.to_dict(), "dialect": dialect.series}
    if engine.version and engine.version not in dialect.versions:
        info["note"] = (f"LeRobot {engine.version} was not checked with the toolkit (checked: "
                        f"{', '.join(dialect.versions)}): planned in the {dialect.series} dialect")
    return engine, dialect, info


# ---------------------------------------------------------------- the plan

def _dataset_spec(group_name: str, groups: GroupsConfig, lab: LabSettings, request: RunRequest,
                  record_dir: Path, env: Mapping[str, str], policy: Policy) -> dict:
    """What the prepare step needs, in the job too: it checks the policy's needs (pi05's quantile
    stats, the cameras its rename map reads) on the datasets it downloads."""
    group = groups.get(group_name)
    members = list(group.datasets)
    merge = len(members) > 1
    return {
        "group": group_name,
        "members": members,
        "merge": merge,
        "repo_id": merged_repo_id(lab.merged_namespace, group_name) if merge else members[0],
        "root": str(record_dir / "dataset"),  # a link the prepare step points at the real folder
        "dataset_root": checks.one_line_value(request.dataset_root, "--dataset-root"),
        "local": bool(getattr(group, "local", False)),
        "online": not hub_offline(env) and not getattr(group, "local", False),
        "policy_type": policy.type,
        "camera_policy": policy.cameras,
    }


def build_plan(request: RunRequest, facts: Facts, *, policy: Policy, group: str, choice: MachineChoice,
               groups: GroupsConfig, lab: LabSettings, rename_map: dict) -> RunPlan:
    machine, env = choice.machine, facts.env
    engine, dialect, engine_info = plan_engine(facts)
    policy.check_engine(dialect, engine.describe())
    available = len(facts.gpus) if facts.gpus else machine.gpus
    sources: dict[str, Source] = {}
    values: dict[str, int] = {}
    for setting, machine_value, policy_value in (
        ("batch_size", machine.batch_sizes.get(policy.name), policy.batch_size),
        ("steps", None, policy.steps),
        ("save_freq", None, policy.save_freq),
        ("num_workers", machine.num_workers, policy.num_workers if policy.num_workers is not None else 4),
    ):
        values[setting], sources[setting] = TRAIN[setting].resolve(
            request.flags.get(setting), env, (machine_value, _machine(machine)), (policy_value, _policy(policy)))
    num_gpus, sources["num_gpus"] = checks.num_gpus(request, env, machine, policy, available)
    launcher, sources["launcher"] = slurmconf.resolve_launcher(request.launcher, env, machine)
    slurmconf.check_flags_unused(request.slurm, launcher)
    slurm: dict = {}
    if launcher == "slurm":
        num_gpus, sources["num_gpus"] = slurmconf.job_gpus(request.slurm, machine, num_gpus, sources["num_gpus"])
        slurm, slurm_sources = slurmconf.resolve(request.slurm, env, machine, num_gpus)
        sources.update(slurm_sources)

    checks.save_freq(values["save_freq"], values["steps"], sources["save_freq"])
    parts = [policy.name, machine.name, group] + ([checks.name_part(request.tag, "tag")] if request.tag else [])
    name = checks.run_name("_".join(checks.name_part(p, "name part") for p in parts), request.tag)
    outputs = facts.outputs
    output_dir, record_dir = outputs / "train" / name, outputs / "runs" / name
    org = checks.hub_org(*TRAIN["hf_org"].resolve(request.hf_org or None, env,
                                                   (lab.hub_org, Source(SourceKind.LAB, "lab hub_org"))))
    push, push_reason = _push_to_hub(request, facts)
    if push:
        checks.run_repo_id(f"{org}/{name}", push_reason)
    eval_split, eval_steps = checks.eval_split(request, env, dialect, engine, values["save_freq"], sources)
    push_checkpoints = checks.push_checkpoints(request, facts, dialect, engine, sources)
    if push_checkpoints and not push:
        checks.run_repo_id(f"{org}/{name}", "--push-checkpoints")
    use_wandb, wandb_reason = _wandb(request, facts)
    dataset = _dataset_spec(group, groups, lab, request, record_dir, env, policy)
    if dataset["merge"]:
        checks.merged_group(group)
    base_model, sources["base_model"] = TRAIN["base_model"].resolve(
        request.base_model or None, env,
        (policy.base_model_for(dialect), _policy(policy, f" (LeRobot {dialect.series})" if policy.base_model == "engine"
                                                  else "")))
    if base_model is None:  # from scratch: the policy decided it
        sources["base_model"] = _policy(policy, "")
    checks.one_line_value(base_model, sources["base_model"].name or "base model")
    notes = (f"{policy.title} on {machine.name} ({machine.gpu or machine.device}), group {group}: "
             f"{len(dataset['members'])} dataset(s), batch {values['batch_size']} x {max(num_gpus, 1)} "
             f"process(es), {values['steps']} steps, toolkit {facts.toolkit_commit or 'unknown'}")
    flags = _lerobot_flags(policy, base_model, {
        **values, "dataset_repo_id": dataset["repo_id"], "dataset_root": dataset["root"],
        "device": machine.device, "push": push, "repo_id": f"{org}/{name}", "output_dir": str(output_dir),
        "name": name, "wandb": use_wandb, "wandb_project": lab.wandb_project, "wandb_notes": notes,
        "rename_map": rename_map, "eval_split": eval_split, "eval_steps": eval_steps,
        "push_checkpoints": push_checkpoints,
    }, dialect)
    extra = checks.extra_flags(request.extra_args, flags, policy.args)
    checks.rename_map_needs_a_base(extra, flags, dialect, engine)
    overridden = {arg[2:].split("=", 1)[0] for arg in extra}  # a policy arg given after `--` replaces it
    flags = _in_dialect({k: v for k, v in flags.items() if k not in overridden}, dialect)
    argv = _launcher_prefix(facts, engine, num_gpus) + [f"--{k}={format_value(v)}" for k, v in flags.items()] + extra
    checks.no_secret_in(argv)
    return RunPlan(
        name=name, policy=policy.name, policy_type=policy.type, computer=machine.name,
        computer_reason=choice.reason, gpu=machine.gpu, device=machine.device, group=group,
        datasets=dataset["members"], dataset=dataset, num_gpus=num_gpus, sources=sources,
        output_dir=str(output_dir), log_file=str(outputs / "logs" / f"{name}.log"), record_dir=str(record_dir),
        repo_id=f"{org}/{name}", push_to_hub=push, push_reason=push_reason, wandb=use_wandb,
        wandb_reason=wandb_reason, wandb_notes=notes, base_model=base_model, argv=argv,
        env={"PYTHONUNBUFFERED": "1"}, launcher=launcher, slurm=slurm, engine=engine_info, eval_split=eval_split,
        eval_steps=eval_steps, push_checkpoints=push_checkpoints, **values,
    )


def build_plans(request: RunRequest, facts: Facts, *, policies: dict, machines: dict, groups: GroupsConfig,
                lab: LabSettings, rename_maps: Mapping[str, dict]) -> list[RunPlan]:
    """Every (policy, group) pair of the request, in order. Raises UserError on any bad input."""
    if not request.policies:
        raise UserError("no policy given", hint="--policy NAME (see --list-policies)")
    group_names = list(request.groups) or _split(TRAIN["dataset_group"].resolve(None, facts.env)[0] or "")
    if not group_names:
        raise UserError("no dataset group given", hint="--dataset-group NAME or DATASET_GROUP (see --list-groups)")
    for group in group_names:
        groups.get(group)  # unknown -> UserError with a close match
    choice = machine_here(request.computer, facts, machines)
    plans = []
    for policy_name in request.policies:
        policy = get_policy(policy_name, policies)
        for group in group_names:
            plans.append(build_plan(request, facts, policy=policy, group=group, choice=choice, groups=groups,
                                    lab=lab, rename_map=rename_maps.get(policy.name, {})))
    names = [p.name for p in plans]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise UserError(f"run {duplicates[0]!r} is asked for twice in one command")
    return plans


def machine_here(computer: str | None, facts: Facts, machines: dict[str, Machine]) -> MachineChoice:
    """The machine profile runs are planned for: --computer > COMPUTER > this host (choose_machine)."""
    given = TRAIN["computer"].given(computer or None, facts.env)
    requested, source = given if given is not None else (None, None)
    return choose_machine(machines, requested=requested, requested_from=source.name if source else "--computer",
                          hostname=facts.hostname, gpus=facts.gpus)


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def resume_argv(plan: RunPlan, steps: int | None = None) -> list[str]:
    """LeRobot's resume from the last checkpoint, with the plan's launcher (accelerate) kept."""
    config = last_checkpoint_config(plan.output_dir)
    prefix = plan.argv[: plan.argv.index(f"--dataset.repo_id={plan.dataset['repo_id']}")]  # launcher part
    argv = prefix + [f"--config_path={config}", "--resume=true"]
    return argv + ([f"--steps={steps}"] if steps else [])
