"""Offline evaluation: a checkpoint's actions against the recorded actions of dataset episodes.

How a checkpoint is loaded is how LeRobot loads it for the robot (lerobot-record 0.4.4,
lerobot-rollout 0.6.1; the same API in both): `PreTrainedConfig.from_pretrained` ->
`make_policy(cfg, ds_meta=...)` (which calls `<Policy>.from_pretrained` and checks the dataset's
features) and `make_pre_post_processors(cfg, pretrained_path=...)` (the saved normalizer stats,
rename map and device steps), device overridden by `--device`. It runs in the toolkit's env.

What is compared: for every frame of an episode, in order, after `policy.reset()` and the
processors' reset at the episode start, the observation recorded at that frame goes through
preprocessor -> `policy.select_action` -> postprocessor (exactly LeRobot's `predict_action`,
lerobot/common/control_utils.py in 0.6), and the action that comes out is compared with the action recorded at that
frame, in the dataset's units. So chunking policies are scored as they run on the robot: ACT with
n_action_steps=10 predicts a chunk every 10 frames and plays it open loop; diffusion keeps its
observation history. L1 = mean |pred - recorded|, MSE = mean (pred - recorded)^2, per action
dimension and per episode, plus both over everything ("overall"), and an MSE normalized by the
dataset's per-dimension variance (comparable across dimensions and datasets).

Held-out episodes: if the checkpoint was trained with LeRobot 0.6's held-out split
(train_config.json dataset.eval_split > 0), the default is exactly the episodes that split kept out
(the last ceil(n * F) of each task, as lerobot/datasets/factory.py:make_train_eval_datasets
chooses them); if it was trained on a subset of this dataset's episodes (dataset.episodes), the
other episodes; otherwise the last DEFAULT_LAST episodes, and the report says they were seen in
training. The report carries the run's logged eval_loss at the checkpoint's step (0.6).
"""
from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mimic_deployment.evaluation.runs import REPORT_FILE, Model
from mimic_deployment.runs.record import RunRecord
from mimic_deployment.util.errors import UserError

DEFAULT_LAST = 5
REPORT_SCHEMA = 1
METHOD = ("per frame, in order, after reset() at each episode start: preprocessor -> select_action -> "
          "postprocessor (LeRobot's predict_action), compared with the recorded action")
Log = Callable[[str], object]


@dataclass(frozen=True)
class EvalDataset:
    repo_id: str
    root: Path
    group: str | None
    how: str  # how it was found, for the report


def _info(root: Path) -> dict:
    try:
        return json.loads((root / "meta" / "info.json").read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"{root}: not a LeRobot dataset (meta/info.json: {exc})") from None


def resolve_dataset(*, group: str | None, dataset: str | None, record: RunRecord | None,
                    dataset_root: str | None = None, groups_file: str | None = None,
                    log: Log = print) -> EvalDataset:
    """The dataset to evaluate on: --dataset (an id or a folder), else the group's dataset.

    A group resolves, in order, to: the run's own dataset link (same group), the single member's
    folder, or the merged dataset of the group (the cache training uses; built if missing).
    """
    from mimic_deployment.datasets import sources

    if dataset:
        folder = Path(dataset).expanduser()
        if (folder / "meta" / "info.json").is_file():
            return EvalDataset(repo_id=f"local/{folder.name}", root=folder.absolute(), group=None, how="folder")
        located = sources.locate(dataset, dataset_root)
        if located is None:
            raise sources.missing_error([dataset], dataset_root, why="evaluate never downloads")
        return EvalDataset(repo_id=dataset, root=located, group=None, how="dataset id")
    plan = record.plan if record else {}
    group = group or plan.get("group")
    if not group:
        raise UserError("which data? give --dataset-group G (or --dataset ID|FOLDER)",
                        hint="a run remembers its group; a checkpoint folder does not")
    ds = plan.get("dataset") or {}
    link = ds.get("root")
    if plan.get("group") == group and link and (Path(link) / "meta" / "info.json").is_file():
        return EvalDataset(repo_id=ds.get("repo_id") or f"local/{group}", root=Path(link).resolve(), group=group,
                           how=f"the run's dataset link {link}")
    from mimic_deployment.config.groups import load_groups
    from mimic_deployment.datasets.merge import materialize, merged_repo_id

    spec = load_groups(groups_file).get(group)
    found, missing = sources.resolve_local(spec.datasets, dataset_root)
    if missing:
        raise sources.missing_error(missing, dataset_root, group, "evaluate never downloads", bool(spec.local))
    if len(found) == 1:
        rid, folder = next(iter(found.items()))
        return EvalDataset(repo_id=rid, root=folder, group=group, how="the group's only dataset")
    target = materialize(group, found, log=log)
    return EvalDataset(repo_id=merged_repo_id(group), root=target, group=group, how="the group's merged dataset")


def parse_episodes(text: str | None) -> list[int] | str | None:
    """'0,1,5-7' -> [0, 1, 5, 6, 7]; 'all' -> 'all'; None -> None (the default)."""
    if text is None:
        return None
    text = text.strip()
    if text == "all":
        return "all"
    out: list[int] = []
    try:
        for part in filter(None, (p.strip() for p in text.split(","))):
            if "-" in part:
                lo, hi = (int(x) for x in part.split("-", 1))
                if hi < lo:
                    raise ValueError
                out += range(lo, hi + 1)
            else:
                out.append(int(part))
    except ValueError:
        raise UserError(f"--episodes {text!r}: expected episode indices like 0,1,5-7, or all") from None
    if not out or min(out) < 0:
        raise UserError(f"--episodes {text!r}: expected episode indices like 0,1,5-7, or all")
    return sorted(dict.fromkeys(out))


def split_episodes(episode_tasks: list, base: list[int] | None, total: int, fraction: float) -> list[int]:
    """The episodes LeRobot 0.6's `--dataset.eval_split=F` holds out: per task (the first task of each
    episode, in order of first appearance), the last ceil(n * F) of its episodes."""
    import math

    by_task: dict[str, list[int]] = {}
    for ep in (base if base is not None else range(total)):
        tasks = episode_tasks[ep] if ep < len(episode_tasks) else None
        by_task.setdefault(tasks[0] if tasks else "", []).append(ep)
    held: list[int] = []
    for eps in by_task.values():
        n_eval = math.ceil(len(eps) * fraction)
        held.extend(eps[len(eps) - n_eval:])
    return held


def eval_split_of(model: Model) -> float:
    """dataset.eval_split of the checkpoint's train_config.json (0.0: none, or a 0.4 checkpoint)."""
    trained = (model.train_config.get("dataset") or {}) if model.train_config else {}
    try:
        return float(trained.get("eval_split") or 0.0)
    except (TypeError, ValueError):
        return 0.0


def choose_episodes(requested, total: int, model: Model, data: EvalDataset,
                    held_out_split: list[int] | None = None) -> tuple[list[int], bool, str]:
    """(episodes, held_out, why). `held_out_split`: the episodes the checkpoint's eval_split kept out
    of training (split_episodes), when it had one."""
    trained = ((model.train_config.get("dataset") or {}) if model.train_config else {})
    same = _same_dataset(trained, data)
    train_eps = trained.get("episodes") if same else None
    if same and held_out_split:
        trained_on = set(range(total) if train_eps is None else train_eps) - set(held_out_split)
        if requested is None:
            return sorted(held_out_split), True, f"held out by the training's eval_split={eval_split_of(model):g}"
        train_eps = sorted(trained_on)
    if isinstance(requested, list):
        bad = [e for e in requested if e >= total]
        if bad:
            raise UserError(f"--episodes: episode {bad[0]} does not exist ({data.repo_id} has {total}: 0-{total - 1})")
        episodes = requested
    elif requested == "all":
        episodes = list(range(total))
    elif train_eps:
        episodes = [e for e in range(total) if e not in set(train_eps)]
        if not episodes:
            raise UserError(f"the checkpoint was trained on every episode of {data.repo_id}: none is held out",
                            hint="pass --episodes (they were seen in training)")
    else:
        episodes = list(range(max(0, total - DEFAULT_LAST), total))
    if not same:
        return episodes, True, "another dataset than the training one" if trained else "training data unknown"
    if train_eps is None:
        return episodes, False, "seen in training: the checkpoint was trained on every episode"
    seen = [e for e in episodes if e in set(train_eps)]
    if seen:
        return episodes, False, f"{len(seen)} of them seen in training"
    return episodes, True, "not in the checkpoint's training episodes"


def _same_dataset(trained: dict, data: EvalDataset) -> bool:
    if not trained:
        return False
    root = trained.get("root")
    if root:
        try:
            return Path(root).resolve() == data.root.resolve()
        except OSError:
            return False
    return trained.get("repo_id") == data.repo_id


def _action_names(meta, dim: int) -> list[str]:
    names = (meta.features.get("action") or {}).get("names")
    if isinstance(names, dict):  # {"motors": [...]}
        names = next(iter(names.values()), None)
    if isinstance(names, list) and len(names) == dim and all(isinstance(n, str) for n in names):
        return names
    return [f"action_{i}" for i in range(dim)]


def run_policy(model: Model, data: EvalDataset, episodes_req, device: str | None = None,
               video_backend: str | None = None, log: Log = print) -> dict:
    """Load the checkpoint, predict every frame of the chosen episodes; arrays + metadata.

    LeRobot print()s while loading ("Loading weights from local directory"): that goes to stderr,
    stdout stays for our report (and --json)."""
    import contextlib
    import sys

    with contextlib.redirect_stdout(sys.stderr):
        return _run_policy(model, data, episodes_req, device, video_backend, log)


def _run_policy(model: Model, data: EvalDataset, episodes_req, device, video_backend, log: Log) -> dict:
    import numpy as np
    import torch
    from lerobot.configs.policies import PreTrainedConfig
    from lerobot.datasets.lerobot_dataset import LeRobotDataset, LeRobotDatasetMetadata
    from lerobot.policies.factory import make_policy, make_pre_post_processors

    if not device or device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    meta = LeRobotDatasetMetadata(data.repo_id, root=data.root)
    split = None
    if eval_split_of(model) > 0:
        trained_eps = ((model.train_config.get("dataset") or {}).get("episodes"))
        split = split_episodes(list(meta.episodes["tasks"]), trained_eps, meta.total_episodes, eval_split_of(model))
    episodes, held_out, why = choose_episodes(episodes_req, meta.total_episodes, model, data, split)
    cfg = PreTrainedConfig.from_pretrained(model.path)
    cfg.pretrained_path = model.path
    cfg.device = device
    rename_map = model.rename_map()
    try:
        policy = make_policy(cfg, ds_meta=meta, rename_map=rename_map or None)
    except ValueError as exc:
        first = str(exc).strip().splitlines()[0]
        raise UserError(f"{model.label}: LeRobot cannot run this checkpoint on {data.repo_id}: {first}") from None
    policy.eval()
    # the saved preprocessor keeps the training's rename map; only the device changes
    overrides = {"device_processor": {"device": device}}
    preprocessor, postprocessor = make_pre_post_processors(
        policy_cfg=cfg, pretrained_path=model.path, dataset_stats=meta.stats, preprocessor_overrides=overrides)
    kwargs = {"video_backend": video_backend} if video_backend else {}
    dataset = LeRobotDataset(data.repo_id, root=data.root, episodes=episodes, **kwargs)
    obs_keys = [k for k in meta.features if k.startswith("observation.")]
    robot_type = meta.robot_type or ""
    preds, targets, ep_of = [], [], []
    current = None
    t0 = time.monotonic()
    log(f"[eval] {model.label}: {len(episodes)} episode(s), {len(dataset)} frames of {data.repo_id} on {device}")
    with torch.inference_mode():
        for i in range(len(dataset)):
            item = dataset[i]
            ep = int(item["episode_index"])
            if ep != current:
                policy.reset()
                preprocessor.reset()
                postprocessor.reset()
                current = ep
            obs = {k: _float_image(item[k]).unsqueeze(0).to(device) for k in obs_keys if k in item}
            obs["task"] = item.get("task", "")
            obs["robot_type"] = robot_type
            action = postprocessor(policy.select_action(preprocessor(obs)))
            preds.append(action.reshape(-1).float().cpu().numpy())
            targets.append(item["action"].reshape(-1).float().cpu().numpy())
            ep_of.append(ep)
    pred, target = np.stack(preds), np.stack(targets)
    if pred.shape != target.shape:
        raise UserError(f"{model.label}: predicts {pred.shape[1]} action values, the dataset records {target.shape[1]}")
    std = None
    stats = (meta.stats or {}).get("action") or {}
    if "std" in stats:
        std = np.asarray(stats["std"], dtype=np.float64).reshape(-1)
    return {"pred": pred, "target": target, "episode": np.asarray(ep_of), "episodes": episodes,
            "held_out": held_out, "held_out_reason": why, "names": _action_names(meta, target.shape[1]),
            "device": device, "std": std, "fps": meta.fps, "seconds": round(time.monotonic() - t0, 2)}


def _float_image(value):
    """A uint8 image as float in [0, 1], as LeRobot's training loop and predict_action make it."""
    import torch

    return value.to(dtype=torch.float32) / 255.0 if value.dtype == torch.uint8 else value


def metrics(pred, target, episode, names, std=None) -> dict:
    """L1 / MSE per dimension, per episode and overall (numpy arrays in, plain floats out)."""
    import numpy as np

    err = pred.astype(np.float64) - target.astype(np.float64)
    abs_err, sq_err = np.abs(err), err ** 2
    per_dim = [{"name": n, "l1": float(abs_err[:, i].mean()), "mse": float(sq_err[:, i].mean())}
               for i, n in enumerate(names)]
    per_episode = []
    for ep in sorted({int(e) for e in episode}):
        rows = episode == ep
        per_episode.append({"episode": ep, "frames": int(rows.sum()), "l1": float(abs_err[rows].mean()),
                            "mse": float(sq_err[rows].mean()),
                            "l1_per_dim": [float(v) for v in abs_err[rows].mean(axis=0)],
                            "mse_per_dim": [float(v) for v in sq_err[rows].mean(axis=0)]})
    overall = {"frames": int(len(err)), "l1": float(abs_err.mean()), "mse": float(sq_err.mean())}
    if std is not None and len(std) == err.shape[1]:
        var = np.maximum(std ** 2, 1e-12)
        overall["mse_normalized"] = float((sq_err / var).mean())
    return {"overall": overall, "per_dim": per_dim, "per_episode": per_episode}


def evaluate(model: Model, data: EvalDataset, *, episodes=None, device: str | None = None, out_dir: Path,
             record: RunRecord | None = None, video_backend: str | None = None, joints: int = 4,
             log: Log = print) -> dict:
    """Run, score, plot, write report.json into out_dir; return the report."""
    from mimic_deployment.evaluation import plots
    from mimic_deployment.evaluation.runs import read_curves

    started = time.time()
    res = run_policy(model, data, episodes, device=device, video_backend=video_backend, log=log)
    scores = metrics(res["pred"], res["target"], res["episode"], res["names"], res["std"])
    out_dir.mkdir(parents=True, exist_ok=True)
    first_ep = res["episodes"][0]
    rows = res["episode"] == first_ep
    written = {
        "actions": plots.actions_plot(res["pred"][rows], res["target"][rows], res["names"],
                                      out_dir / f"actions_episode_{first_ep}.png",
                                      title=f"{model.label} (step {model.step}): episode {first_ep} of {data.repo_id}",
                                      fps=res["fps"], joints=joints),
        "errors": plots.error_bars(scores["per_dim"], out_dir / "error_per_dim.png",
                                   title=f"{model.label} (step {model.step}): action error over "
                                         f"{len(res['episodes'])} episode(s)"),
    }
    plan = record.plan if record else {}
    curves = read_curves(plan.get("log_file"))
    curve = curves.loss
    at_step = curves.eval_loss_at(model.step)
    if curve:
        evals = {model.label: curves.eval_loss} if curves.eval_loss else None
        written["loss"] = plots.loss_plot({model.label: curve}, out_dir / "loss.png",
                                          title=f"{model.label}: training loss" + (" and eval loss" if evals else ""),
                                          mark_step=model.step, eval_curves=evals)
    report = {
        "schema": REPORT_SCHEMA, "kind": "offline", "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "seconds": round(time.time() - started, 1),
        "run": model.run, "model": model.path, "model_spec": model.spec, "policy_type": model.policy_type,
        "checkpoint_step": model.step, "training_steps": plan.get("steps"),
        "final_loss": curve[-1][1] if curve else None,
        "eval_loss": at_step[1] if at_step else None, "eval_loss_step": at_step[0] if at_step else None,
        "eval_split": eval_split_of(model) or None,
        "dataset": {"repo_id": data.repo_id, "root": str(data.root), "group": data.group, "found_as": data.how},
        "episodes": res["episodes"], "held_out": res["held_out"], "held_out_reason": res["held_out_reason"],
        "device": res["device"], "method": METHOD, "action_names": res["names"],
        **scores,
        "dir": str(out_dir), "plots": {k: str(v) for k, v in written.items()},
    }
    (out_dir / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n")
    return report


def default_out_dir(model: Model) -> Path:
    from mimic_deployment.evaluation.runs import new_report_dir

    return new_report_dir(model.label)


def env_device() -> str | None:
    return os.environ.get("DEVICE") or None
