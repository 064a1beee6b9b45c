"""The Slurm batch script of a run and sbatch's arguments: pure functions of the plan, no Slurm call.

No value leaves its line, whatever the plan holds (planning refuses control characters too;
this is the second wall): a `#SBATCH` value with a control character is refused, values on
executable lines are one shell word on one line, and comment lines escape what they show. The
job never runs a command written here: it runs the argv of the record's current attempt.
"""
from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

from mimic_deployment.host import paths
from mimic_deployment.planning.plan import RunPlan, resume_argv
from mimic_deployment.util.errors import UserError
from mimic_deployment.util.secrets import redact_argv

SCRIPT_FILE = "job.sbatch"  # saved beside the run's record, run.json

# What can end or split a line: C0/C1 controls (newline, carriage return...) and Unicode's line
# and paragraph separators (not line ends for bash or sbatch, but for editors and Python).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# sbatch reads a #SBATCH line like a shell would, almost: quotes group, a backslash escapes,
# and an unquoted `#` starts a comment (src/sbatch/opt.c, _get_argument).
_DIRECTIVE_SPECIAL = re.compile(r"[\s\"'\\#]")
_ESCAPES = {"\\": "\\\\", "'": "\\'", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def word(value: str) -> str:
    """One shell word on one line: shlex.quote, or bash's $'...' when the value holds a control
    character (shlex.quote would keep a newline, and the script's next line would start inside it)."""
    if not _CONTROL.search(value):
        return shlex.quote(value)
    out = []
    for ch in value:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x80 and _CONTROL.match(ch):
            out.append(f"\\x{ord(ch):02x}")
        elif _CONTROL.match(ch):
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "$'" + "".join(out) + "'"


def _text(value: object) -> str:
    """Free text for a comment line: control characters shown escaped, never as themselves."""
    return _CONTROL.sub(lambda m: repr(m.group(0))[1:-1], str(value))


def _directive(option: str, value: object, what: str) -> str:
    """`--option=value` for a #SBATCH line, quoted as sbatch reads it; a control character
    (which would end the line, or start a new directive or command) is refused."""
    text = str(value)
    if _CONTROL.search(text):
        raise UserError(f"{what} {text!r} holds a control character: it cannot go into a Slurm job script",
                        hint="remove it; nothing was submitted")
    if _DIRECTIVE_SPECIAL.search(text):
        text = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{option}={text}"


def _extra(option: str) -> str:
    """A machines.yaml `slurm.extra` entry (`--account=NAME`), quoted like the others."""
    key, sep, value = option.partition("=")
    if _CONTROL.search(key) or _DIRECTIVE_SPECIAL.search(key):
        raise UserError(f"machines.yaml slurm.extra entry {option!r} is not one sbatch option",
                        hint="write it as --option=VALUE")
    return _directive(key, value, f"machines.yaml slurm.extra {key}") if sep else key


def sbatch_directives(plan: RunPlan) -> list[str]:
    s = plan.slurm
    opts = [_directive("--job-name", plan.name, "run name")]
    if s.get("partition"):
        opts.append(_directive("--partition", s["partition"], "--partition"))
    opts += ["--nodes=1", "--ntasks=1"]
    if s.get("gres"):
        opts.append(_directive("--gres", s["gres"], "gres"))
    if s.get("cpus"):
        opts.append(_directive("--cpus-per-task", s["cpus"], "--cpus"))
    if s.get("mem"):
        opts.append(_directive("--mem", s["mem"], "--mem"))
    if s.get("time"):
        opts.append(_directive("--time", s["time"], "--time"))
    opts += [_directive("--output", plan.log_file, "the log file (under MIMIC_OUTPUTS)"), "--open-mode=append",
             _directive("--chdir", plan.record_dir, "the run folder (under MIMIC_OUTPUTS)"),
             _directive("--signal", f"B:USR1@{s.get('signal_seconds', 300)}", "the signal lead"), "--requeue"]
    return opts + [_extra(str(x)) for x in s.get("extra") or []]


def _comment_command(argv: list[str]) -> str:
    """A command for a comment block: secrets redacted, one word per value and every line
    commented (the layout of util/shell.shell_command: one flag per line from the first
    dataset/config flag on)."""
    words = [word(a) for a in redact_argv(argv)]
    first_flag = next((i for i, a in enumerate(argv) if a.startswith(("--dataset.", "--config_path"))),
                      len(argv))
    return " \\\n#     ".join([" ".join(words[:first_flag]), *words[first_flag:]])


def sbatch_script(plan: RunPlan, *, python: str | None = None, repo: str | None = None) -> str:
    """The batch script of a run (pure: the same plan gives the same text)."""
    python = python or sys.executable
    repo = repo or str(paths.REPO_ROOT)
    outputs = str(Path(plan.record_dir).parent.parent)
    q = word
    head = "\n".join(f"#SBATCH {d}" for d in sbatch_directives(plan))
    return f"""#!/bin/bash
# Slurm batch job of run {_text(plan.name)}, generated by mimic_deployment from the run's plan.
# Submitted by `train --launcher slurm` (sbatch --parsable); a new job after `resume {_text(plan.name)}`.
{head}

# Inside the job the supervisor owns the run and writes its states to its record, run.json
# beside this file. It runs the command of the record's current attempt; the first is
#   {_comment_command(plan.argv)}
# After a requeue (SLURM_RESTART_COUNT > 0) it resumes from the last checkpoint:
#   {_comment_command(resume_argv(plan, plan.steps))}
# With no checkpoint yet, the old output folder is moved to {_text(plan.output_dir)}.requeued-<N>.

export PYTHONPATH={q(repo)}${{PYTHONPATH:+:$PYTHONPATH}}
export MIMIC_OUTPUTS={q(outputs)}
export PYTHONUNBUFFERED=1

# USR1 comes {_text(plan.slurm.get('signal_seconds', 300))} s before the time limit: the supervisor stops the trainer
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
