"""PNG plots of evaluations (matplotlib with the Agg backend: no display needed).

matplotlib is the `eval` extra of pyproject.toml; it is imported inside each function.
Every figure is at least 900 x 500 px.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from mimic_deployment.util.errors import UserError

if TYPE_CHECKING:  # annotations only: numpy is imported inside the functions that draw
    import numpy as np
    from numpy.typing import ArrayLike

DPI = 100


def _plt():
    try:
        import matplotlib
    except ImportError:
        raise UserError("matplotlib is not installed (the `eval` extra)",
                        hint="make env, or pip install 'matplotlib>=3.8'") from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, plt, out: Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=DPI)
    plt.close(fig)
    return out


def pick_joints(target: ArrayLike, count: int) -> list[int]:
    """The `count` action dimensions that move most in this episode (by variance), in index order."""
    import numpy as np

    var = np.asarray(target, dtype=float).var(axis=0)
    order = sorted(range(len(var)), key=lambda i: (-var[i], i))[:count]
    return sorted(order)


def actions_plot(pred: np.ndarray, target: np.ndarray, names: Sequence[str], out: Path, *, title: str,
                 fps: float | None = None, joints: int = 4) -> Path:
    """Predicted (dashed) against recorded (solid) actions over one episode, a few joints."""
    import numpy as np

    plt = _plt()
    dims = pick_joints(target, max(1, joints))
    cols = 2 if len(dims) > 1 else 1
    rows = math.ceil(len(dims) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(11, max(5.0, 2.6 * rows + 0.8)), squeeze=False)
    x = np.arange(len(target)) / fps if fps else np.arange(len(target))
    for ax, d in zip(axes.flat, dims):
        ax.plot(x, target[:, d], label="recorded", color="tab:blue", linewidth=1.8)
        ax.plot(x, pred[:, d], label="policy", color="tab:orange", linestyle="--", linewidth=1.8)
        ax.set_title(names[d], fontsize=10)
        ax.set_xlabel("time (s)" if fps else "frame")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(dims):]:
        ax.axis("off")
    axes.flat[0].legend(loc="best", fontsize=9)
    fig.suptitle(title, fontsize=11)
    return _save(fig, plt, out)


def error_bars(per_dim: list[dict], out: Path, *, title: str) -> Path:
    """L1 and MSE per action dimension."""
    plt = _plt()
    names = [d["name"] for d in per_dim]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(max(9.0, 0.55 * len(names) + 2), 6.5), sharex=True)
    xs = range(len(names))
    ax1.bar(xs, [d["l1"] for d in per_dim], color="tab:blue")
    ax1.set_ylabel("L1")
    ax2.bar(xs, [d["mse"] for d in per_dim], color="tab:red")
    ax2.set_ylabel("MSE")
    ax2.set_xticks(list(xs))
    ax2.set_xticklabels(names, rotation=60, ha="right", fontsize=8)
    for ax in (ax1, ax2):
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(title, fontsize=11)
    return _save(fig, plt, out)


def _loss_axes(ax, curves: dict[str, list[tuple[int, float]]], mark_step: int | None = None,
               eval_curves: dict[str, list[tuple[int, float]]] | None = None) -> None:
    """Training losses (solid) and, in the same colour, each run's held-out eval loss (dashed)."""
    positive = True
    colours: dict[str, str] = {}
    for label, curve in curves.items():
        if not curve:
            continue
        steps, losses = zip(*curve)
        positive &= min(losses) > 0
        style = "-o" if len(curve) <= 30 else "-"
        (line,) = ax.plot(steps, losses, style, label=label, markersize=3, linewidth=1.5)
        colours[label] = line.get_color()
    for label, curve in (eval_curves or {}).items():
        if not curve:
            continue
        steps, losses = zip(*curve)
        positive &= min(losses) > 0
        ax.plot(steps, losses, "--s", label=f"{label} eval_loss (held out)", markersize=3, linewidth=1.3,
                color=colours.get(label))
    lows = [v for c in (*curves.values(), *(eval_curves or {}).values()) for _, v in c]
    if positive and lows and max(lows) / max(min(lows), 1e-12) > 50:
        ax.set_yscale("log")
    if mark_step is not None:
        ax.axvline(mark_step, color="grey", linestyle=":", linewidth=1, label=f"checkpoint (step {mark_step})")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    if curves:
        ax.legend(loc="best", fontsize=8)


def loss_plot(curves: dict[str, list[tuple[int, float]]], out: Path, *, title: str,
              mark_step: int | None = None, eval_curves: dict[str, list[tuple[int, float]]] | None = None) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 5))
    _loss_axes(ax, curves, mark_step, eval_curves)
    ax.set_title(title, fontsize=11)
    return _save(fig, plt, out)


def compare_plot(curves: dict[str, list[tuple[int, float]]], errors: dict[str, dict | None], out: Path,
                 *, title: str = "", eval_curves: dict[str, list[tuple[int, float]]] | None = None) -> Path:
    """Loss curves overlaid (left; eval losses dashed) and the offline action error of each run (right)."""
    plt = _plt()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5.5), gridspec_kw={"width_ratios": [3, 2]})
    _loss_axes(ax1, curves, eval_curves=eval_curves)
    ax1.set_title("training loss" + (" and held-out eval loss" if eval_curves else ""), fontsize=11)
    labels = list(errors)
    xs = list(range(len(labels)))
    width = 0.38
    l1 = [(errors[n] or {}).get("l1") for n in labels]
    mse = [(errors[n] or {}).get("mse") for n in labels]
    ax2.bar([x - width / 2 for x in xs], [v or 0 for v in l1], width, label="L1", color="tab:blue")
    ax2.bar([x + width / 2 for x in xs], [v or 0 for v in mse], width, label="MSE", color="tab:red")
    for x, a in zip(xs, l1):
        if a is None:
            ax2.text(x, 0, "not evaluated", ha="center", va="bottom", fontsize=8, rotation=90)
    ax2.set_xticks(xs)
    ax2.set_xticklabels(labels, rotation=20, ha="right", fontsize=8)
    ax2.set_title("offline action error (latest evaluate report)", fontsize=11)
    ax2.grid(axis="y", alpha=0.3)
    ax2.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=11)
    return _save(fig, plt, out)
