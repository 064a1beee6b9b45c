"""A plan's launcher and Slurm settings (pure: no I/O, no Slurm call).

The launcher: --launcher > env LAUNCHER > the machine's `launcher:` > local.
Each Slurm setting: flag > env var (where sbatch has one: it would otherwise override the
script) > the machine's `slurm:` entry > nothing (the cluster's default). The job's GPUs are the
run's GPUs (--num-gpus): --gpus sets both; a machine's slurm.gpus_per_run is its default.
"""
from __future__ import annotations

import re
from typing import Mapping

from mimic_deployment.util.errors import UserError
from mimic_deployment.util.values import parse_count

LAUNCHERS = ("local", "slurm")
# setting -> (flag, env var read by sbatch itself or None)
SETTINGS = {
    "partition": ("--partition", "SBATCH_PARTITION"),
    "gpus": ("--gpus", None),
    "cpus": ("--cpus", None),
    "mem": ("--mem", "SBATCH_MEM_PER_NODE"),
    "time": ("--time", "SBATCH_TIMELIMIT"),
}
MACHINE_KEYS = ("partition", "gpus_per_run", "cpus", "mem", "time", "gres", "extra")
SIGNAL_LEAD_MAX = 300  # seconds before the time limit when Slurm sends USR1 (requeue)
_PARTITION = re.compile(r"^[A-Za-z0-9_.-]+(,[A-Za-z0-9_.-]+)*$")
_MEM = re.compile(r"^[0-9]+[KMGTkmgt]?$")
_GRES = re.compile(r"^[A-Za-z0-9_.-]+(:[A-Za-z0-9_.-]+)?$")
_TIME = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$")


def parse_time(text: str, where: str) -> int | None:
    """Slurm's time formats -> seconds (None: no limit). M, M:S, H:M:S, D-H, D-H:M, D-H:M:S."""
    text = str(text).strip()
    if text.upper() in ("INFINITE", "UNLIMITED"):
        return None
    match = _TIME.match(text)
    if not match:
        raise UserError(f"{where}={text!r} is not a Slurm time",
                        hint="e.g. 90 (minutes), 4:00:00, 1-12:00:00 (days-hours:minutes:seconds)")
    days, a, b, c = match.groups()
    if days is not None:
        seconds = int(days) * 86400 + int(a) * 3600 + int(b or 0) * 60 + int(c or 0)
    elif c is not None:
        seconds = int(a) * 3600 + int(b) * 60 + int(c)
    elif b is not None:
        seconds = int(a) * 60 + int(b)
    else:
        seconds = int(a) * 60
    if seconds <= 0:
        raise UserError(f"{where}={text!r} is no time at all")
    return seconds


def signal_lead(time_seconds: int | None) -> int:
    """How long before the limit the job is told to requeue: 5 min, less for short jobs."""
    if time_seconds is None:
        return SIGNAL_LEAD_MAX
    return max(1, min(SIGNAL_LEAD_MAX, time_seconds // 10))


def resolve_launcher(flag: str | None, env: Mapping[str, str], machine) -> tuple[str, str]:
    if flag:
        value, source = flag, "flag --launcher"
    elif env.get("LAUNCHER", "") != "":
        value, source = env["LAUNCHER"], "env LAUNCHER"
    elif getattr(machine, "launcher", "local") != "local":
        value, source = machine.launcher, f"machine {machine.name}"
    else:
        return "local", "default"
    value = value.strip().lower()
    if value not in LAUNCHERS:
        raise UserError(f"unknown launcher {value!r} ({source})", hint="local or slurm")
    return value, source


def check_flags_unused(flags: Mapping[str, str | None], launcher: str) -> None:
    """Slurm flags with the local launcher would silently do nothing: refuse them."""
    given = [SETTINGS[k][0] for k, v in flags.items() if v is not None and k in SETTINGS]
    if given and launcher != "slurm":
        raise UserError(f"{given[0]} is a Slurm setting but the launcher is {launcher}",
                        hint="add --launcher slurm (or LAUNCHER=slurm), or drop it")


def job_gpus(flags: Mapping[str, str | None], machine, num_gpus: int, num_gpus_source: str) -> tuple[int, str]:
    """The run's GPUs on Slurm: --gpus > --num-gpus/NUM_GPUS > slurm.gpus_per_run > the plan's."""
    asked = num_gpus_source.startswith(("flag", "env"))
    if flags.get("gpus") is not None:
        value = parse_count(flags["gpus"], "--gpus", 0)
        if machine.device == "cpu" and value:
            raise UserError(f"--gpus={value} but {machine.name} trains on CPU",
                            hint="--computer NAME of a GPU machine (see config/machines.yaml)")
        if asked and value != num_gpus:
            raise UserError(f"--gpus={value} and {num_gpus_source.split()[-1]}={num_gpus} disagree",
                            hint="give one of them")
        if value > machine.gpus:
            raise UserError(f"--gpus={value} but a {machine.name} node has {machine.gpus} GPU(s)")
        return value, "flag --gpus"
    per_run = (machine.slurm or {}).get("gpus_per_run")
    if per_run is not None and not asked and machine.device == "cuda":
        return per_run, f"machine {machine.name} slurm.gpus_per_run"
    return num_gpus, num_gpus_source


def resolve(flags: Mapping[str, str | None], env: Mapping[str, str], machine, num_gpus: int) -> tuple[dict, dict]:
    """The job's settings and where each came from. `num_gpus` is already final (job_gpus)."""
    declared = machine.slurm or {}
    values, sources = {}, {}
    for key in ("partition", "cpus", "mem", "time"):
        flag, var = SETTINGS[key]
        if flags.get(key) is not None:
            raw, where, source = flags[key], flag, f"flag {flag}"
        elif var and env.get(var, "") != "":
            raw, where, source = env[var], var, f"env {var}"
        elif declared.get(key) is not None:
            raw, where, source = declared[key], f"machines.yaml {machine.name}.slurm.{key}", f"machine {machine.name}"
        else:
            values[key], sources[f"slurm.{key}"] = None, "cluster default"
            continue
        values[key], sources[f"slurm.{key}"] = _check(key, raw, where), source
    time_seconds = parse_time(values["time"], "time") if values["time"] else None
    gres = declared.get("gres") or "gpu"
    values.update({
        "gpus": num_gpus, "gres": f"{gres}:{num_gpus}" if num_gpus else None,
        "time_seconds": time_seconds, "signal_seconds": signal_lead(time_seconds),
        "extra": list(declared.get("extra") or []),
    })
    return values, sources


def _check(key: str, raw, where: str):
    text = str(raw).strip()
    if key == "cpus":
        return parse_count(text, where, 1)
    if key == "partition" and not _PARTITION.match(text):
        raise UserError(f"{where}={text!r} is not a partition name")
    if key == "mem" and not _MEM.match(text):
        raise UserError(f"{where}={text!r} is not a Slurm memory size", hint="e.g. 64G or 64000 (MB)")
    if key == "time":
        parse_time(text, where)
    return text


def check_machine_entry(section) -> dict:
    """Validate a machines.yaml `slurm:` mapping (a configfile.Section); return it as a dict."""
    section.check_keys(optional=MACHINE_KEYS)
    data = dict(section.data)
    for key in ("cpus", "gpus_per_run"):
        if key in data and data[key] is not None:
            value = section.get(key, int)
            if value < (1 if key == "cpus" else 0):
                section.fail(f"{key!r} must be a positive integer, got {value}")
    for key in ("partition", "mem", "time", "gres"):
        if data.get(key) is not None:
            data[key] = str(section.get(key, (str, int)))
            where = f"{section.path}: {section.where}.{key}"
            if key == "gres":
                if not _GRES.match(data[key]):
                    section.fail(f"'gres' must be a gres name like gpu or gpu:a100, got {data[key]!r}")
            else:
                _check(key, data[key], where)
    extra = section.get("extra", list, []) or []
    if not all(isinstance(x, str) and x.startswith("--") for x in extra):
        section.fail("'extra' must be a list of sbatch options like --account=NAME")
    data["extra"] = list(extra)
    return data
