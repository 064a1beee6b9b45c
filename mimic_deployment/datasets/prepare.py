"""The dataset step of a run: available -> compatible -> (merged) -> linked.

`preflight` runs in the launching CLI (local metadata only, fast, no LeRobot); `prepare` runs in
the supervisor before training and may download and merge. Training then gets
`--dataset.root=<link_path>` (and `--dataset.repo_id=`, e.g. merge.merged_repo_id(group)).

spec = {"group": str, "members": [ids], "dataset_root": str|None, "online": bool,
        optional "local": bool (generated, never downloaded), "policy_type": str, "camera_policy": str}
"""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from mimic_deployment.datasets.meta import CompatReport, check_group, read_meta, render_report
from mimic_deployment.datasets.sources import ensure_available, missing_error, resolve_local
from mimic_deployment.util.errors import UserError
from mimic_deployment.util.values import hub_offline

Log = Callable[[str], object]


def _spec(spec: dict) -> tuple[str, list[str], str | None, bool]:
    group = spec.get("group") or "group"
    members = list(dict.fromkeys(spec.get("members") or []))
    if not members:
        raise UserError(f"dataset group {group!r} has no datasets", hint="add dataset ids to it in dataset_groups.yaml")
    return group, members, spec.get("dataset_root"), bool(spec.get("online", True))


def incompatible_error(group: str, report: CompatReport) -> UserError:
    n = len(report.problems)
    err = UserError(f"dataset group {group}: {n} compatibility problem{'s' if n != 1 else ''}, "
                    f"first: {report.problems[0]}",
                    hint=f"see `python -m mimic_deployment check {group}` for the full table")
    err.report = report  # type: ignore[attr-defined]
    return err


def check(group: str, folders: dict[str, Path], policy_type: str | None = None,
          camera_policy: str | None = None) -> CompatReport:
    metas = {rid: read_meta(p, rid) for rid, p in folders.items()}
    return check_group(metas, policy_type, camera_policy)


def preflight(spec: dict, policy_type: str | None = None) -> CompatReport | None:
    """Fast check from local metadata, for the launching CLI (no LeRobot, no network).

    All members local: their report (UserError if incompatible). Some missing and offline
    (spec online=False or HF_HUB_OFFLINE): the one missing-datasets UserError. Missing and
    online: None — prepare() downloads and checks them in the job.
    """
    group, members, root, online = _spec(spec)
    found, missing = resolve_local(members, root)
    if missing:
        local = bool(spec.get("local"))
        if online and not hub_offline() and not local:
            return None
        why = "HF_HUB_OFFLINE is set" if hub_offline() else "downloads are disabled"
        raise missing_error(missing, root, group, why, local)
    report = check(group, found, policy_type or spec.get("policy_type"), spec.get("camera_policy"))
    if not report.ok:
        raise incompatible_error(group, report)
    return report


def point_link(link_path: Path, target: Path) -> None:
    """Make `link_path` a symlink to `target`, atomically (tmp link + os.replace)."""
    link_path = Path(link_path)
    link_path.parent.mkdir(parents=True, exist_ok=True)
    if link_path.exists() and not link_path.is_symlink():
        raise UserError(f"{link_path} exists and is not a symlink", hint="move it away; it is the run's dataset link")
    tmp = link_path.with_name(f".{link_path.name}.tmp-{os.getpid()}")
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(os.path.abspath(target), tmp)
    os.replace(tmp, link_path)


def prepare(spec: dict, link_path: str | Path, log: Log = print) -> Path:
    """Ensure, check, materialize, link. Returns the dataset folder `link_path` now points at."""
    from mimic_deployment.datasets.merge import materialize  # no LeRobot import unless a merge is actually needed

    group, members, root, online = _spec(spec)
    log(f"[mimic] dataset group {group}: {len(members)} dataset{'s' if len(members) != 1 else ''}")
    folders = ensure_available(members, root, online=online, log=log, group=group,
                               local=bool(spec.get("local")))
    report = check(group, folders, spec.get("policy_type"), spec.get("camera_policy"))
    for line in render_report(report, color=False).splitlines():
        if line.strip():
            log(f"[mimic] {line}")
    if not report.ok:
        raise incompatible_error(group, report)
    target = materialize(group, folders, log)
    point_link(Path(link_path), target)
    log(f"[mimic] dataset ready: {link_path} -> {target}")
    return target
