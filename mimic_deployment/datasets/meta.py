"""Compatibility of a group's datasets, from meta/info.json and meta/stats.json only.

CLI fast path: json + standard library only (rich is imported lazily for tty output).
Everything LeRobot's merge (aggregate_datasets) insists on is checked here, up front, with
the odd dataset named: codebase version, fps, robot_type and the features (keys, dtypes,
shapes, names, video encoding). The merge runs in the toolkit's own environment (LeRobot 0.6,
whatever engine trains afterwards), so its rules are 0.6's: a video's encoder tuning (GOP, CRF,
preset...) may differ, and a recording of 0.4 (`video.is_depth_map`) merges with one of 0.6
(`is_depth_map`; merge.migrate_video_info). The commands named for a fix are 0.6's too.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mimic_deployment.datasets.sources import INFO, STATS
from mimic_deployment.util.errors import UserError

CODEBASE_VERSION = "v3.0"
CAMERA_PREFIX = "observation.images."
STATE_KEY = "observation.state"
ACTION_KEY = "action"
QUANTILE_POLICIES = ("pi05",)  # the toolkit's policies normalizing with QUANTILES by default (0.4.4 and 0.6.1)
MEAN_STD_FLAG = ("--policy.normalization_mapping="
                 "'{\"ACTION\": \"MEAN_STD\", \"STATE\": \"MEAN_STD\", \"VISUAL\": \"IDENTITY\"}'")
# LeRobot 0.6's dataset tools (0.4.4 had them under lerobot.datasets.v30, with --root the LeRobot home).
CONVERT_V21 = "python -m lerobot.scripts.convert_dataset_v21_to_v30"
AUGMENT_QUANTILES = "python -m lerobot.scripts.augment_dataset_quantile_stats"
# A video feature's `info` keys that 0.6's merge lets differ (lerobot.configs.video.VIDEO_ENCODER_INFO_KEYS)
ENCODER_TUNING_KEYS = frozenset(f"video.{k}" for k in ("g", "crf", "preset", "fast_decode", "extra_options",
                                                       "video_backend"))


@dataclass(frozen=True)
class DatasetMeta:
    repo_id: str
    path: Path
    codebase_version: str
    fps: Any
    robot_type: Any
    total_episodes: int
    total_frames: int
    features: dict[str, tuple[str, tuple]]  # key -> (dtype, shape)
    names: dict[str, Any]  # key -> the feature's "names"
    video_info: dict[str, Any]  # video key -> its "info" dict (codec, size, pix_fmt...)
    cameras: tuple[str, ...]  # full keys starting with observation.images.
    has_quantiles: bool  # q01 and q99 for action and observation.state in stats.json
    has_stats: bool

    @property
    def camera_names(self) -> tuple[str, ...]:
        return tuple(k[len(CAMERA_PREFIX):] for k in self.cameras)

    def shape(self, key: str) -> tuple | None:
        ft = self.features.get(key)
        return ft[1] if ft else None


def _load_json(path: Path, repo_id: str) -> Any:
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise UserError(f"{repo_id}: {path} not found", hint="is this a LeRobot v3.0 dataset folder?") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"{repo_id}: {path} is unreadable ({exc})",
                        hint="re-download the dataset (delete the folder, then fetch it again)") from None


def read_meta(path: str | Path, repo_id: str | None = None) -> DatasetMeta:
    """Read one dataset's meta/info.json (+ meta/stats.json when present)."""
    path = Path(path)
    repo_id = repo_id or path.name
    info = _load_json(path / INFO, repo_id)
    if not isinstance(info, dict) or not isinstance(info.get("features"), dict):
        raise UserError(f"{repo_id}: {path / INFO} has no 'features' mapping", hint="is this a LeRobot dataset?")
    feats: dict[str, tuple[str, tuple]] = {}
    names: dict[str, Any] = {}
    video_info: dict[str, Any] = {}
    for key, ft in info["features"].items():
        if not isinstance(ft, dict):
            raise UserError(f"{repo_id}: {path / INFO}: feature {key!r} is not a mapping")
        dtype = str(ft.get("dtype"))
        feats[key] = (dtype, tuple(ft.get("shape") or ()))
        names[key] = ft.get("names")
        if dtype == "video":
            video_info[key] = ft.get("info")
    has_stats = (path / STATS).is_file()
    has_q = False
    if has_stats:
        stats = _load_json(path / STATS, repo_id)
        has_q = isinstance(stats, dict) and all(
            isinstance(stats.get(k), dict) and "q01" in stats[k] and "q99" in stats[k]
            for k in (ACTION_KEY, STATE_KEY) if k in feats)
    return DatasetMeta(
        repo_id=repo_id, path=path, codebase_version=str(info.get("codebase_version")),
        fps=info.get("fps"), robot_type=info.get("robot_type"),
        total_episodes=int(info.get("total_episodes") or 0), total_frames=int(info.get("total_frames") or 0),
        features=feats, names=names, video_info=video_info,
        cameras=tuple(sorted(k for k in feats if k.startswith(CAMERA_PREFIX))),
        has_quantiles=has_q, has_stats=has_stats,
    )


@dataclass
class CompatReport:
    metas: dict[str, DatasetMeta]
    problems: list[str] = field(default_factory=list)
    # (repo_id, column) pairs whose value differs from the majority, for render_report
    odd_cells: set[tuple[str, str]] = field(default_factory=set)
    policy_type: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def rows(self) -> list[dict]:
        out = []
        for rid, m in self.metas.items():
            out.append({
                "dataset": rid, "episodes": m.total_episodes, "frames": m.total_frames, "fps": m.fps,
                "robot_type": m.robot_type, "version": m.codebase_version,
                "cameras": ",".join(m.camera_names) or "-",
                "state": _shape_str(m.shape(STATE_KEY)), "action": _shape_str(m.shape(ACTION_KEY)),
            })
        return out

    @property
    def total_episodes(self) -> int:
        return sum(m.total_episodes for m in self.metas.values())

    @property
    def total_frames(self) -> int:
        return sum(m.total_frames for m in self.metas.values())


def _shape_str(shape) -> str:
    return "-" if shape is None else "x".join(str(d) for d in shape) or "()"


def _fmt(value) -> str:
    if isinstance(value, tuple):
        return "(" + ",".join(str(v) for v in value) + ")"
    return "none" if value is None else str(value)


def _majority(values: dict[str, Any]) -> Any:
    """Most common value; a tie goes to the value seen first (the group's order)."""
    counts = Counter(json.dumps(v, sort_keys=True, default=str) for v in values.values())
    best = max(counts.values())
    for v in values.values():
        if counts[json.dumps(v, sort_keys=True, default=str)] == best:
            return v


def _others(agreeing: list[str], n_total: int, has: str, have: str) -> str:
    """'the other 26 datasets have 15' / 'demo_a has 15' / '20 of the other 26 datasets have 15'."""
    n_others = n_total - 1
    if len(agreeing) == 1 and n_others == 1:
        return f"{agreeing[0]} {has}"
    if len(agreeing) == n_others:
        return f"the other {n_others} datasets {have}"
    return f"{len(agreeing)} of the other {n_others} datasets {have}"


def _compare(report: CompatReport, label: str, column: str | None, values: dict[str, Any],
             fmt=_fmt) -> None:
    """One problem line per dataset whose value differs from the group's majority."""
    if len({json.dumps(v, sort_keys=True, default=str) for v in values.values()}) <= 1:
        return
    ref = _majority(values)
    agreeing = [rid for rid, v in values.items() if v == ref]
    for rid, v in values.items():
        if v != ref:
            report.problems.append(
                f"{rid}: {label} {fmt(v)}, {_others(agreeing, len(values), f'has {fmt(ref)}', f'have {fmt(ref)}')}")
            if column:
                report.odd_cells.add((rid, column))


def _column_of(key: str) -> str | None:
    if key == STATE_KEY:
        return "state"
    if key == ACTION_KEY:
        return "action"
    if key.startswith(CAMERA_PREFIX):
        return "cameras"
    return None


def check_group(metas: dict[str, DatasetMeta], policy_type: str | None = None,
                camera_policy: str | None = None) -> CompatReport:
    """Everything that would make a merge or the policy fail, naming the odd dataset each time.

    policy_type: the LeRobot policy type (pi05 needs q01/q99 stats). camera_policy: a policy key
    of config/cameras.yaml (a policies.yaml entry's `cameras:`) whose source cameras must exist
    in every dataset; not checked when None.
    """
    report = CompatReport(metas=dict(metas), policy_type=policy_type)
    ids = list(metas)
    for rid, m in metas.items():
        if m.codebase_version != CODEBASE_VERSION:
            report.odd_cells.add((rid, "version"))
            if m.codebase_version.startswith("v2"):
                report.problems.append(
                    f"{rid}: codebase_version {m.codebase_version}, LeRobot needs {CODEBASE_VERSION}; "
                    f"convert with `{CONVERT_V21} --repo-id={rid} --root={m.path} --push-to-hub=false`")
            else:
                report.problems.append(f"{rid}: codebase_version {m.codebase_version}, "
                                       f"LeRobot needs {CODEBASE_VERSION}")
    if len(ids) > 1:
        _compare(report, "fps", "fps", {r: m.fps for r, m in metas.items()})
        _compare(report, "robot_type", "robot_type", {r: m.robot_type for r, m in metas.items()})
        # feature keys: a key the majority has and a dataset lacks, or the other way round
        all_keys = list(dict.fromkeys(k for m in metas.values() for k in m.features))
        for key in all_keys:
            have = [r for r in ids if key in metas[r].features]
            lack = [r for r in ids if key not in metas[r].features]
            if not lack:
                continue
            col = _column_of(key)
            if len(have) >= len(lack):
                for rid in lack:
                    report.problems.append(
                        f"{rid}: missing feature {key} ({_others(have, len(ids), 'has it', 'have it')})")
                    if col:
                        report.odd_cells.add((rid, col))
            else:
                for rid in have:
                    report.problems.append(
                        f"{rid}: extra feature {key} "
                        f"({_others(lack, len(ids), 'does not have it', 'do not have it')})")
                    if col:
                        report.odd_cells.add((rid, col))
        # dtype, shape, names, video encoding of the keys all datasets share
        shared = [k for k in all_keys if all(k in metas[r].features for r in ids)]
        for key in shared:
            col = _column_of(key)
            _compare(report, f"{key} dtype", col, {r: metas[r].features[key][0] for r in ids})
            _compare(report, f"{key} shape", col, {r: metas[r].features[key][1] for r in ids})
            if all(metas[r].features[key][0] == metas[ids[0]].features[key][0] for r in ids):
                _compare(report, f"{key} names", None, {r: metas[r].names.get(key) for r in ids},
                         fmt=_fmt_names)
                if metas[ids[0]].features[key][0] == "video":
                    _compare_video(report, key, {r: _video_info(report, metas[r].video_info.get(key)) for r in ids})
    _policy_checks(report, policy_type, camera_policy)
    return report


def _video_info(report: CompatReport, info):
    """What the merge compares of a video's info: not the encoder's tuning, the legacy depth key read
    as 0.6's, and no video.fps when the group's fps already differ (reported once)."""
    if not isinstance(info, dict):
        return info
    out = {k: v for k, v in info.items() if k not in ENCODER_TUNING_KEYS}
    if "video.is_depth_map" in out:
        out.setdefault("is_depth_map", out.pop("video.is_depth_map"))
    if any(col == "fps" for _, col in report.odd_cells):
        out.pop("video.fps", None)
    return out


def _compare_video(report: CompatReport, key: str, values: dict[str, Any]) -> None:
    """One line per dataset whose video info differs from the majority, naming the differing keys."""
    if len({json.dumps(v, sort_keys=True, default=str) for v in values.values()}) <= 1:
        return
    ref = _majority(values)
    agreeing = [rid for rid, v in values.items() if v == ref]
    for rid, v in values.items():
        if v == ref:
            continue
        mine, theirs = (x if isinstance(x, dict) else {} for x in (v, ref))
        diff = sorted(k for k in {*mine, *theirs} if mine.get(k, _ABSENT) != theirs.get(k, _ABSENT))
        ours, ref_text = _show_keys(mine, diff), _show_keys(theirs, diff)
        report.problems.append(f"{rid}: {key} video encoding {ours} "
                               f"({_others(agreeing, len(values), f'has {ref_text}', f'have {ref_text}')})")


_ABSENT = object()


def _show_keys(info: dict, keys: list[str]) -> str:
    return ", ".join(f"{k}={_fmt(info[k]) if k in info else 'absent'}" for k in keys) if keys else _fmt(None)


def _fmt_names(v) -> str:
    if isinstance(v, list) and len(v) > 4:
        return "[" + ", ".join(map(str, v[:3])) + f", ... ({len(v)} names)]"
    return _fmt(v)


def _policy_checks(report: CompatReport, policy_type: str | None, camera_policy: str | None) -> None:
    if not policy_type and not camera_policy:
        return
    if policy_type in QUANTILE_POLICIES:
        lacking = [r for r, m in report.metas.items() if not m.has_quantiles]
        for rid in lacking:
            m = report.metas[rid]
            report.problems.append(
                f"{rid}: {policy_type} normalizes with quantiles but meta/stats.json has no q01/q99 for "
                f"action/observation.state; compute them with `{AUGMENT_QUANTILES} --repo-id={rid} "
                f"--root={m.path}` (it pushes to the Hub at the end) or train with {MEAN_STD_FLAG}")
    if not camera_policy:
        return
    from mimic_deployment.datasets import cameras  # cheap: yaml only

    key = camera_policy
    needed = cameras.source_cameras(key)
    for rid, m in report.metas.items():
        absent = [c for c in needed if f"{CAMERA_PREFIX}{c}" not in m.features]
        if absent:
            report.odd_cells.add((rid, "cameras"))
            report.problems.append(
                f"{rid}: policy {key} takes camera(s) {', '.join(absent)} "
                f"({cameras.CAMERAS_FILE.name}) but the dataset has {', '.join(m.camera_names) or 'none'}")


# ---------------------------------------------------------------------------------------------
COLUMNS = ("dataset", "episodes", "frames", "fps", "cameras", "state", "action")


def render_report(report: CompatReport, color: bool | None = None) -> str:
    """A table (dataset, episodes, frames, fps, cameras, state/action shapes) + the problems.

    Cells that differ from the group's majority carry a `*`; with color=True (default: when
    stdout is a tty) rich renders them in red instead.
    """
    import sys

    if color is None:
        color = sys.stdout.isatty()
    columns = list(COLUMNS)
    if any(m.codebase_version != CODEBASE_VERSION for m in report.metas.values()):
        columns.insert(1, "version")
    if len({m.robot_type for m in report.metas.values()}) > 1:
        columns.insert(4, "robot_type")
    rows = report.rows
    head = (f"{len(rows)} dataset{'s' if len(rows) != 1 else ''}, {report.total_episodes} episodes, "
            f"{report.total_frames} frames" + (f", policy {report.policy_type}" if report.policy_type else ""))
    verdict = ("compatible" if report.ok else
               f"{len(report.problems)} problem{'s' if len(report.problems) != 1 else ''}")
    if color:
        return _render_rich(report, columns, rows, head, verdict)
    cells = [[_cell(report, r, c) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) if cells else len(c) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip(),
             "  ".join("-" * w for w in widths)]
    right = {"episodes", "frames", "fps"}
    for row in cells:
        lines.append("  ".join((v.rjust(w) if c in right else v.ljust(w))
                               for v, w, c in zip(row, widths, columns)).rstrip())
    lines.append("")
    lines.append(f"{head}: {verdict}" + (" (* = differs from the majority)" if report.odd_cells else ""))
    lines += [f"  - {p}" for p in report.problems]
    return "\n".join(lines)


def _cell(report: CompatReport, row: dict, col: str) -> str:
    value = str(row[col])
    return value + "*" if (row["dataset"], col) in report.odd_cells else value


def _render_rich(report, columns, rows, head, verdict) -> str:
    from io import StringIO

    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(show_edge=False, header_style="bold")
    for c in columns:
        table.add_column(c, justify="right" if c in ("episodes", "frames", "fps") else "left")
    for r in rows:
        table.add_row(*[Text(str(r[c]), style="bold red" if (r["dataset"], c) in report.odd_cells else "")
                        for c in columns])
    buf = StringIO()
    console = Console(file=buf, force_terminal=True, width=max(100, Console().width))
    console.print(table)
    console.print(Text(f"{head}: {verdict}", style="green" if report.ok else "bold red"))
    for p in report.problems:
        console.print(Text(f"  - {p}"))
    return buf.getvalue().rstrip("\n")
