"""Dry-run text of a plan: what would run, where each value came from, and the exact command."""
from __future__ import annotations

from typing import TYPE_CHECKING

from mimic_deployment.util.secrets import redact_argv, redact_env
from mimic_deployment.util.shell import shell_command

if TYPE_CHECKING:  # the annotation only: `status` renders tables without loading the planner
    from mimic_deployment.planning.plan import RunPlan


def _datasets_line(plan: RunPlan, indent: str) -> str:
    ds = plan.dataset
    if not ds["merge"]:
        return f"1: {plan.datasets[0]}"
    names = "".join(f"\n{indent}{name}" for name in plan.datasets)
    return f"{len(plan.datasets)}, merged into {ds['repo_id']} by the run's prepare step:{names}"


def _checkpoints(plan: RunPlan) -> str:
    every = f"checkpoint every {plan.save_freq} ({plan.sources['save_freq']})"
    # LeRobot also saves at the last step: a save freq past the end leaves only that one
    return every if plan.save_freq <= plan.steps else f"{every}: only the final one"


def engine_line(engine: dict) -> str:
    """`LeRobot 0.6.1 (/env)`, or why the dialect was chosen without one."""
    if engine.get("version"):
        where = engine.get("prefix") or engine.get("lerobot_train")
        text = f"LeRobot {engine['version']} ({where})"
    else:
        text = (f"unknown (no LeRobot install found beside {engine.get('lerobot_train')}): planned in the "
                f"{engine.get('dialect')} dialect")
    return text + (f"; note: {engine['note']}" if engine.get("note") else "")


def _eval_line(plan: RunPlan) -> str:
    src = plan.sources
    return (f"hold out {plan.eval_split:g} of each task's episodes ({src['eval_split']}), eval_loss every "
            f"{plan.eval_steps} steps ({src['eval_steps']})")


def dry_run_text(plan: RunPlan) -> str:
    src = plan.sources
    rows = [
        ("engine", engine_line(plan.engine)),
        ("machine", f"{plan.computer} ({plan.gpu or plan.device}) — chosen by {plan.computer_reason}"),
        ("group", f"{plan.group}"),
        ("datasets", _datasets_line(plan, " " * 16)),
        ("batch size", f"{plan.batch_size} ({src['batch_size']})"),
        ("steps", f"{plan.steps} ({src['steps']}), " + _checkpoints(plan)),
        ("workers", f"{plan.num_workers} ({src['num_workers']})"),
        ("GPUs", f"{plan.num_gpus} ({src['num_gpus']})" if plan.num_gpus else "none: trains on the CPU"),
        ("base model", f"{plan.base_model or 'none (from scratch)'}"),
        ("output", plan.output_dir),
        ("log", plan.log_file),
        ("hub repo", f"{plan.repo_id} (push: {'yes' if plan.push_to_hub else 'no'} — {plan.push_reason})"
                     + (f"; every checkpoint too ({src['push_checkpoints']})" if plan.push_checkpoints else "")),
        ("W&B", f"{'on' if plan.wandb else 'off'} — {plan.wandb_reason}"),
    ]
    if plan.eval_split is not None:
        rows.insert(rows.index(next(r for r in rows if r[0] == "workers")), ("eval split", _eval_line(plan)))
    if plan.launcher == "slurm":
        rows.append(("launcher", _slurm_line(plan)))
    width = max(len(k) for k, _ in rows)
    body = "\n".join(f"  {k.ljust(width)}  {v}" for k, v in rows)
    # redacted although planning refuses secrets in the command: what is printed never holds one
    command = shell_command(redact_argv(plan.argv), redact_env(plan.env))
    text = f"{plan.name}\n{body}\n  command:\n    {command}\n"
    if plan.launcher == "slurm":
        # here, not at the top: only a Slurm plan needs it, and the Slurm package loads its job side too
        from mimic_deployment.launchers.slurm.script import SCRIPT_FILE, sbatch_script

        script = "\n".join(f"    {line}".rstrip() for line in sbatch_script(plan).splitlines())
        text += f"  sbatch script ({plan.record_dir}/{SCRIPT_FILE}):\n{script}\n"
    return text


def _slurm_line(plan: RunPlan) -> str:
    s, src = plan.slurm, plan.sources
    parts = [f"partition {s['partition']} ({src['slurm.partition']})" if s.get("partition") else
             "the cluster's default partition",
             f"{s['gpus']} GPU(s)" + (f" --gres={s['gres']}" if s.get("gres") else ""),
             f"{s['cpus']} CPUs ({src['slurm.cpus']})" if s.get("cpus") else None,
             f"mem {s['mem']} ({src['slurm.mem']})" if s.get("mem") else None,
             f"time {s['time']} ({src['slurm.time']})" if s.get("time") else "no time limit asked"]
    return (f"slurm ({src.get('launcher', '?')}): " + ", ".join(p for p in parts if p)
            + f"; requeued and resumed {s.get('signal_seconds')} s before a time limit")


def dry_run_report(plans: list[RunPlan]) -> str:
    return "\n".join(dry_run_text(p) for p in plans) + f"(dry run: {len(plans)} run(s), nothing launched)"
