"""Slurm launcher: one batch job per run, tracked through squeue, stopped through scancel.

Submit side (the login node): the plan becomes a batch script (`sbatch_script`, pure, saved
as outputs/runs/<name>/job.sbatch), checked with `sbatch --test-only` before any name is
claimed, then submitted with `sbatch --parsable`; the job id goes into the record
(record["slurm"]["job_id"]). `--sequential` chains the jobs with --dependency=afterany.

Job side (`python -m mimic_deployment._entry slurm-job NAME`, run by the script): the
supervisor in foreground mode, so the job lasts as long as the training. It records the run's
states itself. Near the time limit Slurm sends USR1 to the batch shell, which tells the
supervisor (it stops the trainer and records the requeue) and runs `scontrol requeue`; the job
then starts again with SLURM_RESTART_COUNT=N and resumes from the last checkpoint (LeRobot's
resume). Without a checkpoint yet, the old output folder is moved to <output_dir>.requeued-<N>
(never deleted) and the run starts afresh.

Chains: afterany starts the next job whatever the previous one did, so the next job's
supervisor reads the previous run's record first and, unless --continue-on-failure, marks
itself stopped ("previous run X failed") when that run did not finish.

Liveness: a run's job is alive while squeue lists it in a non-final state. One squeue call
answers for every unfinished Slurm run (cached for SQUEUE_TTL seconds in the process), so
`status` costs one squeue call however many runs it shows. A job that left squeue is judged
from the record the supervisor wrote; with no recorded end it is mapped from Slurm's final
state (TIMEOUT -> failed "timeout", CANCELLED -> stopped, ...) or, gone entirely, lost.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from mimic_deployment.host import paths
from mimic_deployment.runs import registry
from mimic_deployment.util.errors import UserError
from mimic_deployment.planning.plan import RunPlan, resume_argv
from mimic_deployment.runs.registry import State

SCRIPT_FILE = "job.sbatch"
SQUEUE_TTL = 2.0  # seconds one squeue answer serves (status --watch refreshes every 2 s)
CALL_TIMEOUT = 90.0  # an unreachable controller makes sbatch retry for ~20 s
KILL_WAIT = 35.0  # after scancel: Slurm's KillWait (30 s by default) and a margin
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


# ------------------------------------------------------------------------------ pure parts

def _directive_value(value: str) -> str:
    return f'"{value}"' if re.search(r"\s", value) else value


def sbatch_directives(plan: RunPlan) -> list[str]:
    s = plan.slurm
    opts = [f"--job-name={plan.name}"]
    if s.get("partition"):
        opts.append(f"--partition={s['partition']}")
    opts += ["--nodes=1", "--ntasks=1"]
    if s.get("gres"):
        opts.append(f"--gres={s['gres']}")
    if s.get("cpus"):
        opts.append(f"--cpus-per-task={s['cpus']}")
    if s.get("mem"):
        opts.append(f"--mem={s['mem']}")
    if s.get("time"):
        opts.append(f"--time={s['time']}")
    opts += [f"--output={_directive_value(plan.log_file)}", "--open-mode=append",
             f"--chdir={_directive_value(plan.record_dir)}",
             f"--signal=B:USR1@{s.get('signal_seconds', 300)}", "--requeue"]
    return opts + list(s.get("extra") or [])


def _comment_command(argv: list[str]) -> str:
    from mimic_deployment.util.shell import shell_command

    return shell_command(argv, indent="#   ")


def sbatch_script(plan: RunPlan, *, python: str | None = None, repo: str | None = None) -> str:
    """The batch script of a run (pure: the same plan gives the same text)."""
    python = python or sys.executable
    repo = repo or str(paths.REPO_ROOT)
    outputs = str(Path(plan.record_dir).parent.parent)
    q = shlex.quote
    head = "\n".join(f"#SBATCH {d}" for d in sbatch_directives(plan))
    return f"""#!/bin/bash
# Slurm batch job of run {plan.name}, generated by mimic_deployment from the run's plan.
# Submitted by `train --launcher slurm` (sbatch --parsable); a new job after `resume {plan.name}`.
{head}

# Inside the job the supervisor owns the run and writes its states to its record, run.json
# beside this file. It runs the command of the record's current attempt; the first is
#   {_comment_command(plan.argv)}
# After a requeue (SLURM_RESTART_COUNT > 0) it resumes from the last checkpoint:
#   {_comment_command(resume_argv(plan, plan.steps))}
# With no checkpoint yet, the old output folder is moved to {plan.output_dir}.requeued-<N>.

export PYTHONPATH={q(repo)}${{PYTHONPATH:+:$PYTHONPATH}}
export MIMIC_OUTPUTS={q(outputs)}
export PYTHONUNBUFFERED=1

# USR1 comes {plan.slurm.get('signal_seconds', 300)} s before the time limit: the supervisor stops the trainer
# (the last checkpoint stays) and records the requeue, and the job goes back to the queue.
# Bash runs a trap only between commands: the supervisor runs in the background and this
# shell waits for it again after each trap.
supervisor=
requeue() {{
    echo "[mimic] $(date '+%Y-%m-%d %H:%M:%S') USR1 from Slurm: requeueing job $SLURM_JOB_ID"
    [ -n "$supervisor" ] && kill -USR1 "$supervisor" 2>/dev/null
    scontrol requeue "$SLURM_JOB_ID"
}}
forward() {{
    [ -n "$supervisor" ] && kill -TERM "$supervisor" 2>/dev/null
}}
trap requeue USR1
trap forward TERM INT

{q(python)} -m mimic_deployment._entry slurm-job {q(plan.name)} &
supervisor=$!
while kill -0 "$supervisor" 2>/dev/null; do wait "$supervisor"; done
wait "$supervisor"
"""


def sbatch_argv(script: str | Path | None, *, dependency: str | None = None, marker: str | None = None,
                test_only: bool = False) -> list[str]:
    """sbatch's arguments (after the program). No script: sbatch reads it from stdin."""
    argv = ["--test-only"] if test_only else ["--parsable"]
    if dependency:
        argv.append(f"--dependency=afterany:{dependency}")
    if marker:
        argv.append(f"--export=ALL,MIMIC_RUN_MARKER={marker}")
    return argv + ([str(script)] if script else [])


def parse_job_id(stdout: str) -> str:
    """`sbatch --parsable` prints `<id>` or `<id>;<cluster>`."""
    first = stdout.strip().splitlines()[0] if stdout.strip() else ""
    job = first.split(";")[0].strip()
    if not job.isdigit():
        raise UserError(f"sbatch printed no job id ({stdout.strip()!r})")
    return job


def parse_squeue(stdout: str) -> dict[str, tuple[str, str]]:
    """`squeue -h -o %i|%T|%r` lines -> {job id: (state, reason)}."""
    jobs = {}
    for line in stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) >= 2 and parts[0]:
            jobs[parts[0]] = (parts[1], parts[2] if len(parts) > 2 else "")
    return jobs


def slurm_message(stderr: str, stdout: str = "") -> str:
    """Slurm's own error text on one line."""
    lines = []
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


# ------------------------------------------------------------------------------ Slurm calls

def client(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise UserError(f"{name} not found on PATH: this is not a Slurm login node",
                        hint="run on the cluster's login node (or `module load slurm`), or use --launcher local")
    return path


def _env() -> dict:
    return {k: v for k, v in os.environ.items() if k not in PLANNED_SBATCH_VARS}


def _call(argv: list[str], stdin: str | None = None, timeout: float = CALL_TIMEOUT) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout, env=_env(),
                              stdin=None if stdin is not None else subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise UserError(f"{Path(argv[0]).name} did not answer in {timeout:.0f} s",
                        hint="is the Slurm controller up? try `scontrol ping`") from None


def _refused(name: str, proc: subprocess.CompletedProcess) -> UserError:
    message = slurm_message(proc.stderr, proc.stdout)
    lower = message.lower()
    if "unable to contact slurm controller" in lower or "unable to process configuration" in lower:
        return UserError(f"cannot reach the Slurm controller: {message}",
                         hint="check `scontrol ping` and SLURM_CONF; nothing was submitted")
    hint = ("see `sinfo -s` for partitions" if "partition" in lower else
            "see `sinfo -o '%P %G %c %m'` for what the nodes have" if "gres" in lower or "configuration" in lower
            else "nothing was submitted")
    return UserError(f"Slurm refused run {name}: {message}", hint=hint)


_cache: dict = {"at": None, "ids": frozenset(), "jobs": None}


def _unfinished_job_ids() -> set[str]:
    ids = set()
    for r in registry.read_all():
        job = (r.get("slurm") or {}).get("job_id")
        if r.get("launcher") == "slurm" and job and not State(r["state"]).ended:
            ids.add(str(job))
    return ids


def job_table(ids, fresh: bool = False) -> dict[str, tuple[str, str]] | None:
    """{job id: (state, reason)} from one squeue call; a job missing has left Slurm.
    None: squeue could not answer (then nobody can tell, and no run is judged lost)."""
    ids = {str(i) for i in ids if i}
    now = time.monotonic()
    if (not fresh and _cache["at"] is not None and now - _cache["at"] < SQUEUE_TTL
            and ids <= _cache["ids"]):
        return _cache["jobs"]
    wanted = ids | (_unfinished_job_ids() if not fresh else set())
    if not wanted:
        return {}
    squeue = shutil.which("squeue")
    if squeue is None:
        return None
    try:
        proc = subprocess.run([squeue, "-h", "-t", "all", "-j", ",".join(sorted(wanted, key=int)),
                               "-o", "%i|%T|%r"], capture_output=True, text=True, timeout=30, env=_env())
    except subprocess.TimeoutExpired:
        proc = None
    if proc is None:
        jobs = None
    elif proc.returncode == 0:
        jobs = parse_squeue(proc.stdout)
    elif "invalid job id" in proc.stderr.lower():  # every one of them has left Slurm
        jobs = {}
    else:
        jobs = None
    _cache.update(at=now, ids=frozenset(wanted), jobs=jobs)
    return jobs


def job_info(record: dict) -> tuple[str, str] | None:
    """(Slurm state, reason) of the run's job from the shared squeue answer, or None."""
    job = (record.get("slurm") or {}).get("job_id")
    jobs = job_table([job]) if job else None
    return jobs.get(str(job)) if jobs else None


# ------------------------------------------------------------------------------ the launcher

class SlurmLauncher:
    name = "slurm"

    def check(self, plans: list[RunPlan]) -> None:
        """`sbatch --test-only` for each plan, before any name is claimed: a refusal records nothing."""
        sbatch = client("sbatch")
        for plan in plans:
            proc = _call([sbatch, *sbatch_argv(None, test_only=True)], stdin=sbatch_script(plan))
            if proc.returncode != 0:
                raise _refused(plan.name, proc)

    def start(self, records: list[dict], *, sequential: bool, continue_on_failure: bool) -> dict[str, dict]:
        sbatch = client("sbatch")
        previous: tuple[str, str] | None = None
        for i, record in enumerate(records):
            name, plan = record["name"], RunPlan.from_dict(record["plan"])
            script = Path(plan.record_dir) / SCRIPT_FILE
            script.write_text(sbatch_script(plan))
            after = previous if sequential else None
            info = {"script": str(script), "job_id": None, "restart": 0, "after": after[0] if after else None,
                    "after_job": after[1] if after else None, "continue_on_failure": continue_on_failure}
            # what the job needs is recorded before it can start
            registry.update(name, lambda r, info=info: r.update(slurm={**(r.get("slurm") or {}), **info}))
            proc = _call([sbatch, *sbatch_argv(script, dependency=info["after_job"], marker=record["marker"])])
            if proc.returncode != 0:
                error = _refused(name, proc)
                registry.update(name, lambda r: registry.advance(r, State.FAILED, reason=f"sbatch: {error.message}"))
                for rest in records[i + 1:]:
                    registry.update(rest["name"], lambda r: registry.advance(
                        r, State.STOPPED, reason=f"not submitted: {name} was refused"))
                raise error
            job = parse_job_id(proc.stdout)

            def submitted(r: dict, job=job) -> None:
                r["slurm"].update(job_id=job, submitted_at=registry.now(),
                                  jobs=[*r["slurm"].get("jobs", []), job])
                r["attempts"][-1]["slurm_job"] = job  # the job that runs this attempt
            registry.update(name, submitted)
            previous = (name, job)
        return {r["name"]: {} for r in records}

    def alive(self, record: dict) -> bool | None:
        job = (record.get("slurm") or {}).get("job_id")
        if not job or (record.get("attempts") or [{}])[-1].get("slurm_job") != job:
            return None  # this attempt is not submitted yet (a resume between its record and sbatch)
        jobs = job_table([job])
        if jobs is None:
            return None
        info = jobs.get(str(job))
        return info is not None and info[0] in ACTIVE

    def verdict(self, record: dict) -> tuple[State, str]:
        """The end of a run whose job ended without a recorded end (see FINAL)."""
        info = job_info(record)
        state, reason = final_state(info[0] if info else None)
        if info and info[1] and info[1] != "None" and state is not State.LOST:
            reason += f" ({info[1]})"
        return state, reason

    def stop(self, record: dict, timeout: float) -> list[int]:
        """scancel, then wait until the job has left its active states (its processes are gone)."""
        job = (record.get("slurm") or {}).get("job_id")
        if not job:
            return []
        proc = _call([client("scancel"), str(job)])
        if proc.returncode != 0 and "invalid job id" not in proc.stderr.lower():
            raise UserError(f"scancel {job} failed: {slurm_message(proc.stderr, proc.stdout)}")
        deadline = time.monotonic() + timeout + KILL_WAIT
        while time.monotonic() < deadline:
            jobs = job_table([job], fresh=True)
            if jobs is not None and (str(job) not in jobs or jobs[str(job)][0] not in ACTIVE):
                return []
            time.sleep(0.3)
        return [int(job)]


# ------------------------------------------------------------------------------ the job side

def _move_aside(output_dir: str, restart: int) -> str | None:
    """Never delete: LeRobot refuses an existing output folder, so the unfinished one moves."""
    src = Path(output_dir)
    if not src.exists():
        return None
    dst, n = Path(f"{output_dir}.requeued-{restart}"), 1
    while dst.exists():
        n += 1
        dst = Path(f"{output_dir}.requeued-{restart}-{n}")
    src.rename(dst)
    return str(dst)


def reopen_for_requeue(record: dict, restart: int, **end: object) -> str:
    """End the current attempt (if not ended) and open the one restart `restart` runs.
    Returns what the new attempt will do, for the log."""
    from mimic_deployment.runs.tracking import last_checkpoint_step

    if not State(record["state"]).ended:
        registry.advance(record, State.STOPPED, **{"reason": "requeued by Slurm", **end})
    plan = RunPlan.from_dict(record["plan"])
    step = last_checkpoint_step(plan.output_dir)
    if step is not None:
        kind, argv, what = "resume", resume_argv(plan, plan.steps), f"resume from the checkpoint at step {step}"
    else:
        moved = _move_aside(plan.output_dir, restart)
        kind, argv = "train", plan.argv
        what = "start afresh (no checkpoint yet" + (f"; the old output is {moved})" if moved else ")")
    registry.open_attempt(record, kind, argv)
    record["attempts"][-1].update(slurm_restart=restart, slurm_job=record.get("slurm", {}).get("job_id"))
    record["restarts"] = record.get("restarts", 0) + 1
    record["reason"] = f"requeued by Slurm (restart {restart})"
    record.setdefault("slurm", {})["restart"] = restart
    return what


def _supervisor_class():
    from mimic_deployment.runs.supervisor import Supervisor

    class SlurmSupervisor(Supervisor):
        """The supervisor inside a batch job: USR1 means "requeued", and Slurm's own verdict
        (time limit, scancel) names why the run was stopped."""

        def __init__(self, name: str, restart: int):
            super().__init__(name, echo=False)  # stdout is the log already
            self.restart, self.requeue = restart, False

        def run(self, resume_steps: int | None = None) -> int:
            signal.signal(signal.SIGUSR1, self._on_usr1)
            return super().run(resume_steps)

        def _gpu_env(self) -> dict:
            return {}  # Slurm sets CUDA_VISIBLE_DEVICES for the allocation

        def _on_usr1(self, signum, frame) -> None:
            self.requeue = True
            self._on_signal(signum, frame)

        def finish(self, code: int | None, reason: str | None = None) -> int:
            self._sweep()
            if self.requeue and code != 0:
                return self._requeued(code)
            record = registry.read(self.name) or {}
            if self.stop_signal == signal.SIGTERM and not record.get("stop_requested"):
                state, why = _own_job_state()  # while it ends the job is COMPLETING; the reason says why
                if state == "TIMEOUT" or why == "TimeLimit":  # the limit came before USR1 could requeue
                    self.stop_signal = None
                    return super().finish(code or 1, reason=FINAL["TIMEOUT"][1])
                if state in ("COMPLETING", "CANCELLED"):
                    reason = reason or "cancelled in Slurm (scancel)"
                elif state == "PREEMPTED" or why == "Preempted":
                    reason = reason or FINAL["PREEMPTED"][1]
            return super().finish(code, reason)

        def _requeued(self, code: int | None) -> int:
            from mimic_deployment.logs.progress import read_progress

            progress = read_progress(self.plan.log_file, self.plan.output_dir, self.plan.steps)
            done = {}

            def change(r: dict) -> None:
                if not State(r["state"]).ended:
                    done["what"] = reopen_for_requeue(r, self.restart + 1, ended_at=registry.now(), exit_code=code,
                                                      progress=progress.to_dict())
            self.update(change)
            self.say(f"=== {self.name}: requeued by Slurm; restart {self.restart + 1} will "
                     f"{done.get('what', 'find the run ended')} ===")
            return 0

        def _sweep(self) -> None:
            """Processes of the run that escaped the trainer's tree (Slurm's linuxproc tracking
            loses reparented ones): end them. Never the job shell or its own helpers."""
            import psutil

            from mimic_deployment.host import procs

            me = psutil.Process()
            ancestors = {p.pid for p in me.parents()}
            shell = me.ppid()
            left = []
            for p in procs.marked_processes(self.marker):
                try:
                    chain = {a.pid for a in p.parents()}
                except psutil.Error:
                    continue
                if p.pid in ancestors or (shell in chain and me.pid not in chain):
                    continue
                left.append(p)
            if not left:
                return
            self.say(f"ending {len(left)} leftover process(es) of the run: {sorted(p.pid for p in left)}")
            for p in left:
                try:
                    p.terminate()
                except psutil.Error:
                    pass
            _, alive = psutil.wait_procs(left, timeout=3)
            for p in alive:
                try:
                    p.kill()
                except psutil.Error:
                    pass

    return SlurmSupervisor


def _own_job_state() -> tuple[str | None, str | None]:
    """(JobState, Reason) of this job from `scontrol show job`, or (None, None)."""
    job, scontrol = os.environ.get("SLURM_JOB_ID"), shutil.which("scontrol")
    if not job or not scontrol:
        return None, None
    try:
        out = subprocess.run([scontrol, "show", "job", "-o", job], capture_output=True, text=True, timeout=20).stdout
    except subprocess.TimeoutExpired:
        return None, None
    state, why = re.search(r"\bJobState=(\S+)", out), re.search(r"\bReason=(\S+)", out)
    return (state.group(1) if state else None), (why.group(1) if why else None)


def job_main(name: str) -> int:
    """Inside the batch job: decide what this start of the job does, then supervise it."""
    restart = int(os.environ.get("SLURM_RESTART_COUNT") or 0)
    job = os.environ.get("SLURM_JOB_ID", "?")
    decision: dict = {}

    def decide(r: dict) -> None:
        slurm = r.setdefault("slurm", {})
        state = State(r["state"])
        if r.get("stop_requested"):
            if not state.ended:
                registry.advance(r, State.STOPPED, reason="stopped by request")
            decision["skip"] = "a stop was requested"
            return
        if restart > slurm.get("restart", 0):  # requeued, and nobody opened the attempt yet
            if state is State.FINISHED or state is State.FAILED:
                decision["skip"] = f"the run is {state.value}"
                return
            decision["what"] = reopen_for_requeue(r, restart)
            state = State.QUEUED
        after = slurm.get("after")
        if after and not slurm.get("continue_on_failure") and state is State.QUEUED:
            before = registry.read(after)
            before_state = before["state"] if before else "missing"
            if before_state != State.FINISHED.value:
                registry.advance(r, State.STOPPED, reason=f"previous run {after} {before_state}")
                decision["skip"] = f"previous run {after} {before_state} (the chain stops; --continue-on-failure goes on)"
                return
        if state is not State.QUEUED:
            decision["skip"] = f"the run is {state.value}"
        slurm.update(node=socket.gethostname(), job_id=slurm.get("job_id") or job)

    registry.update(name, decide)
    supervisor = _supervisor_class()(name, restart)
    where = f"Slurm job {job} (restart {restart}) on {socket.gethostname()}"
    gpus = os.environ.get("CUDA_VISIBLE_DEVICES")
    supervisor.say(where + (f", CUDA_VISIBLE_DEVICES={gpus}" if gpus is not None else ""))
    if "what" in decision:
        supervisor.say(f"requeued: this attempt will {decision['what']}")
    if "skip" in decision:
        supervisor.say(f"not starting: {decision['skip']}")
        return 0
    return supervisor.run()


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "job":
        return job_main(argv[1])
    print("usage: python -m mimic_deployment.launchers.slurm job RUN_NAME", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
