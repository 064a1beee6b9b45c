"""The input rules of a plan: name parts and lengths, Hub ids, values, the arguments after `--`."""
from __future__ import annotations

import re

from mimic_deployment.util.errors import UserError
from mimic_deployment.util.names import NAME_MAX, has_control, hub_namespace_problem, hub_repo_problem
from mimic_deployment.util.secrets import is_secret_key, redact_argv, redact_text
from mimic_deployment.util.settings import Source

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


def extra_flags(extra_args: tuple[str, ...], generated: dict) -> list[str]:
    """The arguments after `--`: each --key=value on one line, no key twice, none the toolkit owns."""
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
        _clash(key, generated)
    return list(extra_args)


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
