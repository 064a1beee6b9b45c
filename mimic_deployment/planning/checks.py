"""The input rules of a plan: name parts and lengths, Hub ids, values, the arguments after `--`, and
what the engine must be able to do (accelerate beside it, a held-out split, checkpoint push)."""
from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from mimic_deployment.planning.settings import TRAIN
from mimic_deployment.util.errors import UserError
from mimic_deployment.util.names import NAME_MAX, has_control, hub_namespace_problem, hub_repo_problem
from mimic_deployment.util.secrets import is_secret_key, redact_argv, redact_text
from mimic_deployment.util.settings import Source, SourceKind
from mimic_deployment.util.values import hub_offline

if TYPE_CHECKING:  # annotations only
    from mimic_deployment.config.engines import Dialect
    from mimic_deployment.config.machines import Machine
    from mimic_deployment.config.policies import Policy
    from mimic_deployment.host.engine import Engine
    from mimic_deployment.planning.plan import Facts, RunRequest

_NAME_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # fullmatch: `$` would accept a final newline
_EXTRA = re.compile(r"--([A-Za-z0-9_.]+)=(.*)\Z", re.DOTALL)
# Files named after the run; the longest must fit one file name (outputs/{runs,train}/<name> too).
_RUN_FILES = ("{}", "{}.log", "queue_{}.log")  # logs/queue_<first run>.log: a local sequence's log
# A merged group's cache folder `<group>-<12 hex>`, and the suffixes its builds and removals add
# (`.tmp-<pid>`, `.del-<pid>-<ns>`): room kept for them.
_MERGED_FOLDER_EXTRA = 1 + 12 + 40

# Keys after `--` the toolkit owns although the plan does not set them, each with what to do instead.
OWNED_EXTRA = {
    "resume": "continue a run from its last checkpoint with `resume NAME`",
    "config_path": "the toolkit builds the whole config: continue a run with `resume NAME`, "
                   "start from trained weights with --base-model",
    "hub_token": "a token on the command line shows in `ps` and the run record; LeRobot reads it from "
                 "the environment: export HF_TOKEN, or run `hf auth login`",
}
# What sets each key the plan does set (keys not here: "the toolkit already sets it").
_OURS = {"batch_size": "--batch-size", "steps": "--steps", "save_freq": "--save-freq",
         "num_workers": "--num-workers", "policy.repo_id": "--hf-org/--tag", "output_dir": "--tag",
         "job_name": "--tag", "policy.push_to_hub": "--push-to-hub/--no-push-to-hub",
         "wandb.enable": "--wandb/--no-wandb", "policy.path": "--base-model", "policy.type": "--policy/--base-model",
         "policy.device": "--computer", "dataset.repo_id": "--dataset-group", "dataset.root": "--dataset-root",
         "wandb.project": "wandb_project in config/lab.yaml"}
_SECRET_HINT = ("a secret on the command line shows in `ps` and the run record: export it instead "
                "(HF_TOKEN, or `hf auth login`; WANDB_API_KEY, or `wandb login`)")


def name_part(value: str, what: str) -> str:
    if not _NAME_PART.fullmatch(value):
        raise UserError(f"{what} {value!r} may only use letters, digits, '.', '_' and '-'")
    return value


def run_name(name: str, tag: str | None) -> str:
    """The run's name must fit a file name in every place the toolkit names a file after it."""
    longest = max(len(pattern.format(name).encode()) for pattern in _RUN_FILES)
    if longest > NAME_MAX:
        room = NAME_MAX - (longest - len(name.encode()))
        shown = name if len(name) <= 48 else name[:45] + "..."
        raise UserError(f"run name {shown!r} is {len(name.encode())} bytes, at most {room} fit "
                        f"(its log logs/queue_<name>.log must fit a {NAME_MAX}-byte file name)",
                        hint="use a shorter --tag" if tag else "use a shorter group name (or policy/machine name)")
    return name


def merged_group(group: str) -> None:
    """A merged group's cache folder is named after the group."""
    room = NAME_MAX - _MERGED_FOLDER_EXTRA
    if len(group.encode()) > room:
        raise UserError(f"group name {group[:45]!r}... is {len(group.encode())} bytes: its merged dataset folder "
                        f"needs it at most {room}", hint="give the group a shorter name in the groups file")


def hub_org(org: str, source: Source) -> str:
    problem = hub_namespace_problem(org)
    if problem:
        raise UserError(f"{source.name or source}={org!r} is not a Hub organisation: {problem}",
                        hint="e.g. --hf-org Mimic-Robotics (or HF_ORG)")
    return org


def run_repo_id(repo_id: str, push_reason: str) -> None:
    """A run that pushes needs a repo id the Hub accepts (huggingface_hub.validate_repo_id's rules)."""
    problem = hub_repo_problem(repo_id)
    if problem:
        raise UserError(f"the run's Hub repo id {repo_id!r} would be refused by the Hub: {problem}",
                        hint=f"push is on ({push_reason}): use a shorter or plainer --tag, or --no-push-to-hub")


def one_line_value(value: str | None, where: str) -> str | None:
    """A value that reaches an argv, a record or a script holds no control character."""
    if value is not None and has_control(value):
        raise UserError(f"{where}={value!r} holds a control character (newline, tab, ...)",
                        hint="give the value on one line")
    return value


def save_freq(save: int, steps: int, save_source: Source) -> None:
    """A save frequency the user gave that never comes before the end saves nothing to resume from."""
    if save_source.from_user and save > steps:
        raise UserError(f"{save_source.name}={save} is more than the run's {steps} steps: no checkpoint before "
                        "the end, so nothing to resume or restart from",
                        hint=f"a save freq <= steps, e.g. {max(1, steps // 5)}")


def extra_flags(extra_args: tuple[str, ...], generated: dict, recipe: Mapping | None = None) -> list[str]:
    """The arguments after `--`: each --key=value on one line, no key twice, none the toolkit owns.
    A key of the policy's recipe (`recipe`: its args in policies.yaml) may be given: it replaces that one."""
    seen: set[str] = set()
    for arg in extra_args:
        match = _EXTRA.match(arg)
        if not match:
            raise UserError(f"extra LeRobot argument {redact_text(arg)!r} must be --key=value")
        key, value = match.groups()
        if has_control(arg):
            raise UserError(f"extra LeRobot argument --{key} holds a control character (newline, tab, ...)",
                            hint="give each value on one line")
        if key in OWNED_EXTRA:
            raise UserError(f"extra LeRobot argument --{key} is not taken after `--`", hint=OWNED_EXTRA[key])
        if is_secret_key(key) or redact_text(value) != value:
            raise UserError(f"extra LeRobot argument --{key} carries a secret", hint=_SECRET_HINT)
        if key in seen:
            raise UserError(f"extra LeRobot argument --{key} is given twice", hint="give it once")
        seen.add(key)
        if key not in (recipe or {}):
            _clash(key, generated)
    return list(extra_args)


def rename_map_needs_a_base(extra: list[str], flags: Mapping, dialect: Dialect, engine: Engine) -> None:
    """LeRobot 0.6 refuses --rename_map for a policy trained from scratch, at start: refused here instead."""
    given = any(arg.startswith("--rename_map=") for arg in extra)
    if given and "policy.path" not in flags and not dialect.can("rename_map_from_scratch"):
        raise UserError(f"--rename_map after `--` needs a pretrained base model: {engine_name(engine, dialect)} "
                        "refuses it for a policy trained from scratch",
                        hint="drop it (a policy trained from scratch takes the dataset's own camera names)")


def engine_name(engine: Engine, dialect: Dialect) -> str:
    return f"LeRobot {engine.version}" if engine.version else f"LeRobot {dialect.series} (the default dialect)"


def _clash(key: str, generated: dict) -> None:
    clash = key
    if key in ("policy.path", "policy.type"):  # LeRobot refuses both together: either names the policy
        clash = "policy.path" if "policy.path" in generated else "policy.type"
    if clash in generated:
        hint = f"use {_OURS[clash]}" if clash in _OURS else "the toolkit already sets it; change the config instead"
        raise UserError(f"extra LeRobot argument --{key} would override the plan's value", hint=hint)
    inside = sorted(k for k in generated if k.startswith(key + "."))
    if inside:  # `--dataset={...}` would replace the plan's --dataset.repo_id and --dataset.root
        raise UserError(f"extra LeRobot argument --{key} would override the plan's --{inside[0]}",
                        hint=f"set the sub-keys you mean instead, e.g. --{key}.NAME=VALUE")


def no_secret_in(argv: list[str]) -> None:
    """Whatever the request, the command holds no secret: it is shown by `ps` and kept in the record."""
    for arg, shown in zip(argv, redact_argv(argv)):
        if arg != shown:
            raise UserError(f"the command would carry a secret in {shown.split('=', 1)[0]!r}", hint=_SECRET_HINT)


def num_gpus(request: RunRequest, env: Mapping[str, str], machine: Machine, policy: Policy,
             available: int) -> tuple[int, Source]:
    """The run's GPUs: flag/env (at most the machine's), else the policy's (`all`: the machine's); none on a CPU."""
    setting = TRAIN["num_gpus"]
    given = setting.given(request.flags.get("num_gpus"), env)
    if machine.device == "cpu":
        if given is not None:
            raise UserError(f"{setting.env}/{setting.flag} given but {machine.name} has no GPU",
                            hint="unset it to train on CPU")
        return 0, Source(SourceKind.MACHINE, f"machine {machine.name} (CPU)")
    if given is not None:
        value, source = int(given[0]), given[1]
        if value > available:
            raise UserError(f"{source.name}={value} but {machine.name} has {available} GPU(s)")
        return value, source
    if policy.gpus == "all":
        return available, Source(SourceKind.POLICY, f"policy {policy.name}: all GPUs of {machine.name}")
    return min(int(policy.gpus), available), Source(SourceKind.POLICY, f"policy {policy.name} default")


# ---------------------------------------------------------------- what the engine must be able to do

def accelerate_of(engine: Engine, toolkit_accelerate: str, num_gpus: int) -> str:
    """A multi-GPU launch runs the engine's own accelerate: another env's would start another LeRobot.
    An unknown engine (no LeRobot beside the command): the accelerate beside it, else the toolkit's."""
    if engine.version:
        found = engine.bin("accelerate")
        if not found:
            raise UserError(f"{num_gpus} GPUs need accelerate from the engine's env, and {engine.describe()} has "
                            f"none (LeRobot there would not run on {num_gpus} GPUs)",
                            hint=f"install it there ({engine.prefix}/bin/pip install accelerate), or --num-gpus 1")
        return found
    beside = Path(engine.lerobot_train).parent / "accelerate"
    return str(beside) if beside.exists() else toolkit_accelerate


def _needs(capability: str, what: str, where: str, dialect: Dialect, engine: Engine) -> None:
    if not dialect.can(capability):
        raise UserError(f"{where}: LeRobot {dialect.series}.x has no {what} (engine: {engine.describe()})",
                        hint=f"unset {where}, or point LEROBOT_TRAIN at a LeRobot 0.6 env")


def eval_split(request: RunRequest, env: Mapping[str, str], dialect: Dialect, engine: Engine, save_freq: int,
               sources: dict[str, Source]) -> tuple[float | None, int | None]:
    """--eval-split F with --eval-steps N (default: the save freq): LeRobot needs both or neither."""
    split = TRAIN["eval_split"].given(request.flags.get("eval_split"), env)
    steps = TRAIN["eval_steps"].given(request.flags.get("eval_steps"), env)
    if split is None:
        if steps is not None:
            raise UserError(f"{steps[1].name} given without an eval split: there are no held-out episodes to "
                            "evaluate on", hint="add --eval-split F (e.g. 0.1), or unset it")
        return None, None
    _needs("eval_split", "held-out eval split (dataset.eval_split)", split[1].name, dialect, engine)
    if steps is None:
        steps = (save_freq, Source(SourceKind.RULE, "the save freq (default)"))
    sources["eval_split"], sources["eval_steps"] = split[1], steps[1]
    return split[0], steps[0]


def push_checkpoints(request: RunRequest, facts: Facts, dialect: Dialect, engine: Engine,
                     sources: dict[str, Source]) -> bool:
    """--push-checkpoints: every checkpoint goes to the Hub as it is saved; a push that cannot happen is refused."""
    given = TRAIN["push_checkpoints"].given(request.push_checkpoints, facts.env)
    if given is None or not given[0]:
        return False
    where = given[1].name
    _needs("push_checkpoints", "checkpoint push while training (save_checkpoint_to_hub)", where, dialect, engine)
    if hub_offline(facts.env):
        raise UserError(f"{where}: HF_HUB_OFFLINE is set, so no checkpoint could be pushed",
                        hint="unset HF_HUB_OFFLINE, or drop the setting")
    if not facts.hf_token:
        raise UserError(f"{where}: no Hugging Face token (HF_TOKEN or `hf auth login`), so no checkpoint "
                        "could be pushed",
                        hint="run `hf auth login` (or export HF_TOKEN), or drop the setting")
    sources["push_checkpoints"] = given[1]
    return True
