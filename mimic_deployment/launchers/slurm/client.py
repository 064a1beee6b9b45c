"""Slurm's tools (sbatch, squeue, scancel, scontrol): finding and calling them, reading their answers."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from mimic_deployment.runs.record import RunRecord, State
from mimic_deployment.util.errors import UserError

SQUEUE_TTL = 2.0  # seconds one squeue answer serves (status --watch refreshes every 2 s)
CALL_TIMEOUT = 90.0  # an unreachable controller makes sbatch retry for ~20 s
# sbatch lets these environment variables override the script's #SBATCH lines; the plan decides
# them (and shows them in --dry-run), so they are removed from sbatch's environment.
PLANNED_SBATCH_VARS = ("SBATCH_PARTITION", "SBATCH_TIMELIMIT", "SBATCH_MEM_PER_NODE", "SBATCH_GRES",
                       "SBATCH_GPUS", "SBATCH_JOB_NAME", "SBATCH_OUTPUT", "SBATCH_ERROR", "SBATCH_OPEN_MODE",
                       "SBATCH_SIGNAL", "SBATCH_REQUEUE", "SBATCH_NO_REQUEUE", "SBATCH_EXPORT", "SBATCH_DEPENDENCY")
ACTIVE = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD",
          "RESIZING", "SUSPENDED", "STOPPED", "SIGNALING", "STAGE_OUT", "SPECIAL_EXIT", "RESV_DEL_HOLD"}
# Slurm's final job states -> the registry's, for a job that ended without a recorded end.
FINAL = {
    "COMPLETED": (State.FINISHED, "Slurm job completed"),
    "FAILED": (State.FAILED, "Slurm job failed"),
    "CANCELLED": (State.STOPPED, "cancelled in Slurm"),
    "TIMEOUT": (State.FAILED, "timeout: Slurm's time limit was reached"),
    "PREEMPTED": (State.STOPPED, "preempted by Slurm"),
    "NODE_FAIL": (State.FAILED, "Slurm node failure"),
    "OUT_OF_MEMORY": (State.FAILED, "out of memory (Slurm)"),
    "BOOT_FAIL": (State.FAILED, "Slurm node boot failure"),
    "DEADLINE": (State.FAILED, "Slurm deadline reached"),
}

JobTable = dict[str, tuple[str, str]]  # job id -> (Slurm state, reason)


# ------------------------------------------------------------------------------ the record's job data

def job_data(record: RunRecord) -> dict:
    """The record's Slurm data (script, job_id, jobs, restart, after, node...), made if missing,
    for editing in place."""
    if record.slurm is None:
        record.slurm = {}
    return record.slurm


def recorded_job(record: RunRecord) -> str | None:
    """The id of the run's latest Slurm job, None before the first sbatch."""
    job = (record.slurm or {}).get("job_id")
    return str(job) if job else None


def attempt_job(record: RunRecord) -> str | None:
    """The Slurm job that runs the current attempt (kept in the attempt's launcher data)."""
    job = record.current.extra.get("slurm_job")
    return str(job) if job else None


# ------------------------------------------------------------------------------ answers (pure)

def parse_job_id(stdout: str) -> str:
    """`sbatch --parsable` prints `<id>` or `<id>;<cluster>`."""
    first = stdout.strip().splitlines()[0] if stdout.strip() else ""
    job = first.split(";")[0].strip()
    if not job.isdigit():
        raise UserError(f"sbatch printed no job id ({stdout.strip()!r})")
    return job


def parse_squeue(stdout: str) -> JobTable:
    """`squeue -h -o %i|%T|%r` lines -> {job id: (state, reason)}."""
    jobs = {}
    for line in stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) >= 2 and parts[0]:
            jobs[parts[0]] = (parts[1], parts[2] if len(parts) > 2 else "")
    return jobs


def slurm_message(stderr: str, stdout: str = "") -> str:
    """Slurm's own error text on one line."""
    lines: list[str] = []
    for line in (stderr + "\n" + stdout).splitlines():
        line = re.sub(r"^(sbatch|squeue|scancel|scontrol): (error|fatal): ", "", line.strip())
        if line and line not in lines:
            lines.append(line)
    return "; ".join(lines) or "no message"


def final_state(slurm_state: str | None) -> tuple[State, str]:
    """Registry state for a job that ended (None: gone from squeue) without a recorded end."""
    if slurm_state is None:
        return State.LOST, "its Slurm job left the queue without a recorded end"
    base = slurm_state.split()[0].rstrip("+")
    return FINAL.get(base, (State.LOST, f"Slurm job ended {slurm_state} without a recorded end"))


UNREACHABLE_HINT = "check `scontrol ping` and SLURM_CONF"
# Slurm's words for "no controller answers" (connect failure, timeout) and for "no configuration
# names one" (no slurm.conf: sbatch then looks for a DNS SRV record and prints res_nsearch errors).
_NO_ANSWER = ("unable to contact slurm controller", "connect failure", "connection refused",
              "socket timed out", "zero bytes were transmitted")
_NO_CONFIG = ("could not establish a configuration source", "res_nsearch", "dns srv lookup failed",
              "fetch_config", "failed to fetch config")
_BAD_CONFIG = ("unable to process configuration", "s_p_parse_file")


def unreachable_cause(message: str) -> str | None:
    """Why Slurm's message says the controller cannot be reached, in words, or None."""
    lower = message.lower()
    conf = os.environ.get("SLURM_CONF")
    where = f"SLURM_CONF={conf}" if conf else "SLURM_CONF is not set"
    if any(words in lower for words in _NO_CONFIG):
        return f"no Slurm configuration names one ({where}, no slurm.conf in the default place, no DNS record)"
    if any(words in lower for words in _NO_ANSWER):
        shown = next((part for part in message.split("; ") if any(w in part.lower() for w in _NO_ANSWER)), message)
        return f"it does not answer ({shown})"
    if any(words in lower for words in _BAD_CONFIG):
        return f"its configuration cannot be read ({where}: {message})"
    return None


def refused(name: str, proc: subprocess.CompletedProcess) -> UserError:
    """sbatch's refusal of run `name` as one line, with a hint at what to look at."""
    message = slurm_message(proc.stderr, proc.stdout)
    cause = unreachable_cause(message)
    if cause:
        return UserError(f"cannot reach the Slurm controller: {cause}",
                         hint=f"{UNREACHABLE_HINT}; nothing was submitted")
    lower = message.lower()
    hint = ("see `sinfo -s` for partitions" if "partition" in lower else
            "see `sinfo -o '%P %G %c %m'` for what the nodes have" if "gres" in lower or "configuration" in lower
            else "nothing was submitted")
    return UserError(f"Slurm refused run {name}: {message}", hint=hint)


# ------------------------------------------------------------------------------ calls

def find_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise UserError(f"{name} not found on PATH: this is not a Slurm login node",
                        hint="run on the cluster's login node (or `module load slurm`), or use --launcher local")
    conf = os.environ.get("SLURM_CONF")
    if conf and not os.path.isfile(conf):  # Slurm's tools would retry for a minute, then say less
        raise UserError(f"cannot reach the Slurm controller: SLURM_CONF={conf} is not a file",
                        hint="point SLURM_CONF at the cluster's slurm.conf, or unset it for the default")
    return path


def slurm_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in PLANNED_SBATCH_VARS}


def call(argv: list[str], stdin: str | None = None, timeout: float = CALL_TIMEOUT) -> subprocess.CompletedProcess:
    """Run a Slurm tool; one that does not answer in time is a user-facing error."""
    try:
        return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout, env=slurm_env(),
                              stdin=None if stdin is not None else subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise UserError(f"{Path(argv[0]).name} did not answer in {timeout:.0f} s",
                        hint=f"is the Slurm controller up? {UNREACHABLE_HINT}") from None


def scancel(job: str) -> None:
    """Cancel a job; one that Slurm no longer knows is already gone."""
    proc = call([find_tool("scancel"), str(job)])
    if proc.returncode != 0 and "invalid job id" not in proc.stderr.lower():
        message = slurm_message(proc.stderr, proc.stdout)
        cause = unreachable_cause(message)
        if cause:
            raise UserError(f"scancel {job}: cannot reach the Slurm controller: {cause}", hint=UNREACHABLE_HINT)
        raise UserError(f"scancel {job} failed: {message}")


def own_job_state() -> tuple[str | None, str | None]:
    """(JobState, Reason) of this job (inside a batch job) from `scontrol show job`, or (None, None)."""
    job, scontrol = os.environ.get("SLURM_JOB_ID"), shutil.which("scontrol")
    if not job or not scontrol:
        return None, None
    try:
        out = subprocess.run([scontrol, "show", "job", "-o", job], capture_output=True, text=True, timeout=20).stdout
    except subprocess.TimeoutExpired:
        return None, None
    state, why = re.search(r"\bJobState=(\S+)", out), re.search(r"\bReason=(\S+)", out)
    return (state.group(1) if state else None), (why.group(1) if why else None)


class SqueueCache:
    """One squeue call answers for many jobs: an answer serves `ttl` seconds for any subset of
    the ids it asked about. `also` names the other jobs worth asking about in the same call
    (every unfinished Slurm run), so `status` costs one squeue call however many runs it shows."""

    def __init__(self, also: Callable[[], set[str]], ttl: float = SQUEUE_TTL):
        self.also, self.ttl = also, ttl
        self.at: float | None = None
        self.ids: frozenset[str] = frozenset()
        self.jobs: JobTable | None = None

    def table(self, ids: Iterable[str | None], fresh: bool = False) -> JobTable | None:
        """{job id: (state, reason)}; a job missing has left Slurm. fresh: ask now, only about `ids`.
        None: squeue could not answer (then nobody can tell, and no run is judged lost)."""
        wanted_now = {str(i) for i in ids if i}
        now = time.monotonic()
        if not fresh and self.at is not None and now - self.at < self.ttl and wanted_now <= self.ids:
            return self.jobs
        wanted = wanted_now | (self.also() if not fresh else set())
        if not wanted:
            return {}
        jobs = self._squeue(wanted)
        self.at, self.ids, self.jobs = now, frozenset(wanted), jobs
        return jobs

    @staticmethod
    def _squeue(ids: set[str]) -> JobTable | None:
        squeue = shutil.which("squeue")
        if squeue is None:
            return None
        try:
            proc = subprocess.run([squeue, "-h", "-t", "all", "-j", ",".join(sorted(ids, key=int)),
                                   "-o", "%i|%T|%r"], capture_output=True, text=True, timeout=30, env=slurm_env())
        except subprocess.TimeoutExpired:
            return None
        if proc.returncode == 0:
            return parse_squeue(proc.stdout)
        if "invalid job id" in proc.stderr.lower():  # every one of them has left Slurm
            return {}
        return None
