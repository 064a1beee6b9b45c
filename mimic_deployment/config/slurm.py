"""A plan's launcher and Slurm settings (pure: no I/O, no Slurm call).

The launcher: --launcher > env LAUNCHER > the machine's `launcher:` > local.
Each Slurm setting: flag > env var (where sbatch has one: it would otherwise override the
script) > the machine's `slurm:` entry > nothing (the cluster's default). The job's GPUs are the
run's GPUs (--num-gpus): --gpus sets both; a machine's slurm.gpus_per_run is its default.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from mimic_deployment.util.errors import UserError
from mimic_deployment.util.settings import Setting, Source, SourceKind, count, table
from mimic_deployment.util.values import parse_count

if TYPE_CHECKING:  # annotations only: machines.py reads this module to check its slurm: entries
    from mimic_deployment.config.machines import Machine

LAUNCHERS = ("local", "slurm")
MACHINE_KEYS = ("partition", "gpus_per_run", "cpus", "mem", "time", "gres", "extra")
SIGNAL_LEAD_MAX = 300  # seconds before the time limit when Slurm sends USR1 (requeue)
_PARTITION = re.compile(r"^[A-Za-z0-9_.-]+(,[A-Za-z0-9_.-]+)*$")
_MEM = re.compile(r"^[0-9]+[KMGTkmgt]?$")
_GRES = re.compile(r"^[A-Za-z0-9_.-]+(:[A-Za-z0-9_.-]+)?$")
_TIME = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$")


# The launcher setting of a training run (planning/settings.py's TRAIN table includes it).
LAUNCHER = Setting("launcher", "--launcher", "LAUNCHER",
            help="local or slurm (env LAUNCHER; default: the machine's, else local)",
            default_from="machine launcher:, else local")


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


def resolve_launcher(flag: str | None, env: Mapping[str, str], machine: Machine) -> tuple[str, Source]:
    machine_value = machine.launcher if machine.launcher != "local" else None
    value, source = LAUNCHER.resolve(flag, env, (machine_value, Source(SourceKind.MACHINE,
                                                                                f"machine {machine.name}")))
    if value is None:
        return "local", source
    value = value.strip().lower()
    if value not in LAUNCHERS:
        raise UserError(f"unknown launcher {value!r} ({source})", hint="local or slurm")
    return value, source


def check_flags_unused(flags: Mapping[str, str | None], launcher: str) -> None:
    """Slurm flags with the local launcher would silently do nothing: refuse them."""
    given = [SETTINGS[k].flag for k, v in flags.items() if v is not None and k in SETTINGS]
    if given and launcher != "slurm":
        raise UserError(f"{given[0]} is a Slurm setting but the launcher is {launcher}",
                        hint="add --launcher slurm (or LAUNCHER=slurm), or drop it")


def job_gpus(flags: Mapping[str, str | None], machine: Machine, num_gpus: int,
             num_gpus_source: Source) -> tuple[int, Source]:
    """The run's GPUs on Slurm: --gpus > --num-gpus/NUM_GPUS > slurm.gpus_per_run > the plan's."""
    asked = num_gpus_source.from_user
    given = SETTINGS["gpus"].given(flags.get("gpus"), {})
    if given is not None:
        value, source = given
        if machine.device == "cpu" and value:
            raise UserError(f"--gpus={value} but {machine.name} trains on CPU",
                            hint="--computer NAME of a GPU machine (see config/machines.yaml)")
        if asked and value != num_gpus:
            raise UserError(f"--gpus={value} and {num_gpus_source.name}={num_gpus} disagree",
                            hint="give one of them")
        if value > machine.gpus:
            raise UserError(f"--gpus={value} but a {machine.name} node has {machine.gpus} GPU(s)")
        return value, source
    per_run = (machine.slurm or {}).get("gpus_per_run")
    if per_run is not None and not asked and machine.device == "cuda":
        return per_run, Source(SourceKind.MACHINE, f"machine {machine.name} slurm.gpus_per_run")
    return num_gpus, num_gpus_source


def resolve(flags: Mapping[str, str | None], env: Mapping[str, str], machine: Machine,
            num_gpus: int) -> tuple[dict, dict[str, Source]]:
    """The job's settings and where each came from. `num_gpus` is already final (job_gpus)."""
    declared = machine.slurm or {}
    values: dict[str, Any] = {}
    sources: dict[str, Source] = {}
    for key in ("partition", "cpus", "mem", "time"):
        declared_value = None
        if declared.get(key) is not None:
            declared_value = _check(key, declared[key], f"machines.yaml {machine.name}.slurm.{key}")
        values[key], sources[f"slurm.{key}"] = SETTINGS[key].resolve(
            flags.get(key), env, (declared_value, Source(SourceKind.MACHINE, f"machine {machine.name}")))
        if values[key] is None:
            sources[f"slurm.{key}"] = Source(SourceKind.DEFAULT, "cluster default")
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


def _checked(key: str):  # a Slurm setting's parser: the same check as machines.yaml's
    return lambda raw, where: _check(key, raw, where)


# Each env var is one sbatch reads itself: it would otherwise override the script's value.
SETTINGS: dict[str, Setting] = table(
    Setting("partition", "--partition", "SBATCH_PARTITION", _checked("partition"),
            "partition (env SBATCH_PARTITION)", "machine slurm.partition, else the cluster's"),
    Setting("gpus", "--gpus", None, count(0), "GPUs of the run (--gres=gpu:N; sets --num-gpus)",
            "--num-gpus, else machine slurm.gpus_per_run", metavar="N"),
    Setting("cpus", "--cpus", None, _checked("cpus"), "CPUs of the run (--cpus-per-task)",
            "machine slurm.cpus, else the cluster's", metavar="N"),
    Setting("mem", "--mem", "SBATCH_MEM_PER_NODE", _checked("mem"),
            "memory per node, e.g. 64G (env SBATCH_MEM_PER_NODE)", "machine slurm.mem, else the cluster's"),
    Setting("time", "--time", "SBATCH_TIMELIMIT", _checked("time"),
            "time limit, e.g. 24:00:00 or 1-00:00:00 (env SBATCH_TIMELIMIT); "
            "the job requeues itself and resumes before it", "machine slurm.time, else the cluster's"),
)


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
