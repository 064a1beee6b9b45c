"""Several runs side by side: policy, group, steps, final training loss, held-out eval loss, offline action error.

No torch: the losses come from each run's log (the eval loss: LeRobot 0.6's `step N: eval_loss=X`,
logged with --eval-split), the offline error from its newest `evaluate` report
(outputs/eval/<run>/*/report.json).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from mimic_deployment.evaluation.runs import eval_root, latest_report, read_curves
from mimic_deployment.host.paths import newest_checkpoint_step
from mimic_deployment.runs import registry


@dataclass
class RunSummary:
    name: str
    policy: str | None
    group: str | None
    state: str | None
    total_steps: int | None
    checkpoint_step: int | None
    curve: list[tuple[int, float]] = field(default_factory=list)
    eval_curve: list[tuple[int, float]] = field(default_factory=list)
    report_path: Path | None = None
    report: dict | None = None

    @property
    def final_loss(self) -> float | None:
        return self.curve[-1][1] if self.curve else None

    @property
    def eval_loss(self) -> float | None:
        return self.eval_curve[-1][1] if self.eval_curve else None

    @property
    def last_step(self) -> int | None:
        steps = [s for s in (self.curve[-1][0] if self.curve else None, self.checkpoint_step) if s is not None]
        return max(steps) if steps else None

    @property
    def offline(self) -> dict | None:
        return (self.report or {}).get("overall")

    def to_dict(self) -> dict:
        rep = self.report or {}
        return {"name": self.name, "policy": self.policy, "group": self.group, "state": self.state,
                "steps": self.last_step, "total_steps": self.total_steps, "checkpoint_step": self.checkpoint_step,
                "final_loss": self.final_loss, "eval_loss": self.eval_loss,
                "eval_loss_step": self.eval_curve[-1][0] if self.eval_curve else None,
                "eval_curve": [list(p) for p in self.eval_curve], "offline": self.offline,
                "offline_step": rep.get("checkpoint_step"),
                "offline_dataset": (rep.get("dataset") or {}).get("repo_id"),
                "offline_episodes": rep.get("episodes"), "report": str(self.report_path) if self.report_path else None}


def summarize(name: str) -> RunSummary:
    record = registry.require(name)
    plan = record.plan
    found = latest_report(name)
    curves = read_curves(plan.get("log_file"))
    return RunSummary(name=name, policy=plan.get("policy"), group=plan.get("group"), state=record.state.value,
                      total_steps=plan.get("steps"), checkpoint_step=newest_checkpoint_step(plan.get("output_dir")),
                      curve=curves.loss, eval_curve=curves.eval_loss,
                      report_path=found[0] if found else None, report=found[1] if found else None)


def _num(value, fmt: str = "{:.4g}") -> str:
    return "-" if value is None else fmt.format(value)


def table(summaries: list[RunSummary]) -> str:
    from mimic_deployment.util.table import table as render_table

    rows = []
    for s in summaries:
        off = s.offline or {}
        if s.last_step is None:
            steps = "-"
        else:
            steps = f"{s.last_step}/{s.total_steps}" if s.total_steps else str(s.last_step)
        ev_step = (s.report or {}).get("checkpoint_step")
        rows.append([s.name, s.policy or "-", s.group or "-", s.state or "-", steps, _num(s.final_loss),
                     _num(s.eval_loss), _num(off.get("l1")), _num(off.get("mse")),
                     "-" if not s.report else f"{ev_step if ev_step is not None else '?'} on "
                                              f"{len((s.report or {}).get('episodes') or [])} ep"])
    return render_table(["NAME", "POLICY", "GROUP", "STATE", "STEPS", "FINAL LOSS", "EVAL LOSS", "OFFLINE L1",
                         "OFFLINE MSE", "EVALUATED"], rows, right=(4, 5, 6, 7, 8))


def default_png() -> Path:
    folder = eval_root() / "compare"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{time.strftime('%Y%m%d-%H%M%S')}.png"


def plot(summaries: list[RunSummary], out: Path) -> Path:
    from mimic_deployment.evaluation.plots import compare_plot

    return compare_plot({s.name: s.curve for s in summaries}, {s.name: s.offline for s in summaries}, out,
                        title=" vs ".join(s.name for s in summaries)[:150],
                        eval_curves={s.name: s.eval_curve for s in summaries if s.eval_curve})
