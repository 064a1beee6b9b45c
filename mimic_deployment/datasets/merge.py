"""Merged group datasets: a content-addressed cache under paths.merged_home().

`<merged home>/<group>-<fingerprint>/` is complete iff it holds MARKER: the merge is built in
`<target>.tmp-<pid>`, the marker written last, then the folder renamed into place. A killed
merge leaves only a `.tmp-<pid>` folder, never taken for a finished one, removed by the next
merge of that group or by gc. A lock file per target keeps two runs from merging it at once.

Runs inside the detached training job: LeRobot is imported lazily, only when a merge is needed.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import shutil
import time
from collections import namedtuple
from collections.abc import Callable
from pathlib import Path

from mimic_deployment.config.lab import load_lab
from mimic_deployment.datasets.sources import fingerprint, merged_dataset_path, safe_group_name
from mimic_deployment.host import paths
from mimic_deployment.util import names
from mimic_deployment.util.atomic import atomic_write_json, building_folder, leftover_builds

MARKER = ".mimic-merge-complete.json"
_ENTRY = re.compile(r"^(?P<group>.+)-(?P<fp>[0-9a-f]{12})(?:\.tmp-(?P<pid>\d+))?$")
# Test hook: when set to a path, the merge creates `<path>` once the tmp folder holds merged
# data and then blocks (until killed), so a test can SIGKILL a merge half way.
_TEST_BLOCK_ENV = "MIMIC_TEST_MERGE_BLOCK"

Log = Callable[[str], object]


def merged_repo_id(group: str) -> str:
    """lab.yaml's merged_namespace is the one truth (the plan's --dataset.repo_id uses it too)."""
    return names.merged_repo_id(load_lab().merged_namespace, safe_group_name(group))


def is_complete(folder: Path) -> bool:
    return (Path(folder) / MARKER).is_file()


def _lock_path(target: Path) -> Path:
    return target.with_name(f".{target.name}.lock")


@contextlib.contextmanager
def _locked(target: Path, log: Log, wait: bool = True):
    """Exclusive flock on `.<target>.lock`; yields False (without waiting) if busy and not wait."""
    lock = _lock_path(target)
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        waited_since = None
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if not wait:
                    yield False
                    return
                now = time.monotonic()
                if waited_since is None or now - waited_since > 300:
                    holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
                    log(f"[mimic] waiting for another merge of {target.name} (pid {holder})")
                    waited_since = now
                time.sleep(0.5)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield True
    finally:
        os.close(fd)  # releases the flock


def _remove(folder: Path) -> None:
    """Delete a folder: renamed aside first so a half-deleted one is never seen under its name."""
    if not folder.exists():
        return
    aside = folder.with_name(f"{folder.name}.del-{os.getpid()}-{time.monotonic_ns()}")
    try:
        os.rename(folder, aside)
    except OSError:
        aside = folder
    shutil.rmtree(aside, ignore_errors=True)


def _merge_with_lerobot(repo_ids: list[str], roots: list[Path], out: Path, repo_id: str, log: Log) -> None:
    """LeRobot's aggregate_datasets with explicit roots: copies metadata, data files and videos (no
    decoding, no re-encoding).

    (lerobot-edit-dataset's --root is broken in 0.4.4, and dataset_tools.merge_datasets needs fully
    loaded LeRobotDatasets first and reloads the result; aggregate_datasets does the same work.)
    """
    import logging

    from lerobot.datasets import aggregate

    n = len(repo_ids)
    original = aggregate.aggregate_videos  # the first step for each source (even without videos)
    count = {"i": 0}

    def progress(src_meta, *args, **kwargs):  # called once per source dataset
        count["i"] += 1
        log(f"[mimic] merge {count['i']}/{n}: {src_meta.repo_id} "
            f"({src_meta.total_episodes} episodes, {src_meta.total_frames} frames)")
        return original(src_meta, *args, **kwargs)

    class _Forward(logging.Handler):  # aggregate's own milestones ("write stats", ...)
        def emit(self, record):
            if record.pathname.endswith(os.path.join("datasets", "aggregate.py")):
                log(f"[mimic] merge: {record.getMessage()}")

    validate = aggregate.validate_all_metadata

    def migrated_then_validated(all_metadata, *args, **kwargs):
        if hasattr(aggregate, "merge_video_feature_info_for_aggregate"):  # LeRobot >= 0.5 (is_depth_map)
            for src_meta in all_metadata:
                migrate_video_info(src_meta.features)
        return validate(all_metadata, *args, **kwargs)

    handler = _Forward(level=logging.INFO)
    root_logger = logging.getLogger()
    old_level = root_logger.level
    root_logger.addHandler(handler)
    if root_logger.level > logging.INFO or root_logger.level == logging.NOTSET:
        root_logger.setLevel(logging.INFO)
    aggregate.aggregate_videos = progress
    aggregate.validate_all_metadata = migrated_then_validated
    try:
        aggregate.aggregate_datasets(repo_ids=repo_ids, aggr_repo_id=repo_id, roots=roots, aggr_root=out)
    finally:
        aggregate.aggregate_videos = original
        aggregate.validate_all_metadata = validate
        root_logger.removeHandler(handler)
        root_logger.setLevel(old_level)


def migrate_video_info(features: dict) -> None:
    """In memory, the legacy `video.is_depth_map` of a video feature (datasets recorded with LeRobot
    <= 0.4) becomes `is_depth_map`, as LeRobot 0.6 itself migrates it when it rewrites a dataset's
    video info. 0.6's merge compares that key exactly, so without this a group mixing recordings of
    both versions fails to merge (`Same features is expected`) although the videos are alike."""
    for ft in features.values():
        info = ft.get("info") if isinstance(ft, dict) and ft.get("dtype") == "video" else None
        if isinstance(info, dict) and "video.is_depth_map" in info:
            info.setdefault("is_depth_map", info.pop("video.is_depth_map"))


def _test_block(tmp: Path) -> None:
    flag = os.environ.get(_TEST_BLOCK_ENV)
    if flag:
        Path(flag).write_text(str(tmp))
        while True:
            time.sleep(3600)


def materialize(group: str, members: dict[str, Path], log: Log = print) -> Path:
    """The folder to train on: the single member itself, or the cached merge of all of them.

    A cache hit costs a fingerprint (stat calls) and one marker lookup: no LeRobot import.
    """
    items = [(rid, Path(p)) for rid, p in members.items()]
    if not items:
        raise ValueError(f"group {group!r} has no datasets")
    if len(items) == 1:
        return items[0][1]
    fp = fingerprint(items)
    target = merged_dataset_path(group, fp)
    if is_complete(target):
        log(f"[mimic] merged dataset cache hit: {target}")
        return target
    with _locked(target, log):
        if is_complete(target):  # another run finished it while we waited
            log(f"[mimic] merged dataset ready (merged by another run): {target}")
            return target
        for stale in leftover_builds(target):  # we hold the lock: their owners are gone
            log(f"[mimic] removing an interrupted merge: {stale.name}")
            _remove(stale)
        if target.exists():  # no marker: not ours to trust
            _remove(target)
        total_eps = sum(_info(p).get("total_episodes", 0) for _, p in items)
        total_frames = sum(_info(p).get("total_frames", 0) for _, p in items)
        log(f"[mimic] merging {len(items)} datasets of group {group} "
            f"({total_eps} episodes, {total_frames} frames) into {target}")
        t0 = time.monotonic()
        with building_folder(target) as tmp:  # the marker is written last, inside the temp folder
            _merge_with_lerobot([r for r, _ in items], [p for _, p in items], tmp, merged_repo_id(group), log)
            _test_block(tmp)
            info = _info(tmp)
            if (info.get("total_episodes"), info.get("total_frames")) != (total_eps, total_frames):
                raise RuntimeError(
                    f"merge of group {group} produced {info.get('total_episodes')} episodes / "
                    f"{info.get('total_frames')} frames, expected {total_eps} / {total_frames}")
            atomic_write_json(tmp / MARKER, {
                "group": group, "fingerprint": fp, "repo_id": merged_repo_id(group),
                "members": [{"repo_id": r, "path": str(p)} for r, p in items],
                "total_episodes": total_eps, "total_frames": total_frames,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "seconds": round(time.monotonic() - t0, 1),
            })
        log(f"[mimic] merged {len(items)} datasets in {time.monotonic() - t0:.1f}s: {target}")
        return target


def _info(folder: Path) -> dict:
    try:
        with open(Path(folder) / "meta" / "info.json") as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


class MergedEntry(namedtuple("MergedEntry", "path group fp size_bytes complete mtime")):
    """One folder of the merged cache: (path, group, fp, size_bytes, complete, mtime)."""

    __slots__ = ()


def _du(folder: Path) -> int:
    total = 0
    stack = [str(folder)]
    while stack:
        try:
            with os.scandir(stack.pop()) as it:
                for e in it:
                    try:
                        if e.is_dir(follow_symlinks=False):
                            stack.append(e.path)
                        else:
                            total += e.stat(follow_symlinks=False).st_size
                    except OSError:
                        pass
        except OSError:
            pass
    return total


def list_merged(sizes: bool = True) -> list[MergedEntry]:
    """Every merged dataset and interrupted merge (`.tmp-<pid>`) in the cache, oldest first."""
    home = paths.merged_home()
    out: list[MergedEntry] = []
    if not home.is_dir():
        return out
    for e in os.scandir(home):
        m = _ENTRY.match(e.name)
        if not m or not e.is_dir(follow_symlinks=False):
            continue
        path = Path(e.path)
        complete = m.group("pid") is None and is_complete(path)
        mtime = (path / MARKER).stat().st_mtime if complete else e.stat().st_mtime
        out.append(MergedEntry(path, m.group("group"), m.group("fp"), _du(path) if sizes else 0, complete, mtime))
    return sorted(out, key=lambda x: (x.group, x.mtime))


def _linked_targets() -> dict[Path, list[str]]:
    """Merged datasets that a run's `dataset` link points at (outputs/runs/<name>/dataset)."""
    out: dict[Path, list[str]] = {}
    runs = paths.outputs_root() / "runs"
    if not runs.is_dir():
        return out
    for run in runs.iterdir():
        link = run / "dataset"
        if link.is_symlink():
            with contextlib.suppress(OSError):
                out.setdefault(Path(os.path.realpath(link)), []).append(run.name)
    return out


def gc(keep_latest_per_group: bool = True, dry_run: bool = False, keep_linked: bool = True,
       log: Log | None = None) -> list[MergedEntry]:
    """Remove interrupted merges and superseded merged datasets; returns what was (or would be) removed.

    Keeps, per group, the newest complete merge (unless keep_latest_per_group=False), anything a
    run's `dataset` link points at (unless keep_linked=False) and anything whose merge lock is held.
    """
    entries = list_merged()
    linked = _linked_targets() if keep_linked else {}
    latest: dict[str, MergedEntry] = {}
    for e in entries:
        if e.complete and (e.group not in latest or e.mtime > latest[e.group].mtime):
            latest[e.group] = e
    removed = []
    for e in entries:
        if e.complete and keep_latest_per_group and latest.get(e.group) is e:
            continue
        if e.complete and Path(os.path.realpath(e.path)) in linked:
            if log:
                log(f"keeping {e.path.name}: used by run {', '.join(linked[Path(os.path.realpath(e.path))])}")
            continue
        target = e.path if e.complete else e.path.with_name(f"{e.group}-{e.fp}")
        with _locked(target, log or (lambda _m: None), wait=False) as got:
            if not got:
                if log:
                    log(f"keeping {e.path.name}: a merge of it is running")
                continue
            if not dry_run:
                _remove(e.path)
        removed.append(e)
    home = paths.merged_home()
    if not dry_run and home.is_dir():  # leftovers of a deletion that was itself interrupted
        for leftover in home.glob("*.del-*"):
            shutil.rmtree(leftover, ignore_errors=True)
    return removed
