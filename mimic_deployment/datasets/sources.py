"""Where a group's datasets are, whether they are all here, and a cheap fingerprint of them.

CLI fast path: standard library only at import time (huggingface_hub is imported inside
`ensure_available`, and only when something has to be downloaded).
"""
from __future__ import annotations

import hashlib
import os
import re
import shlex
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from mimic_deployment.host import paths
from mimic_deployment.util.errors import UserError
from mimic_deployment.util.values import hub_offline

INFO = Path("meta") / "info.json"
STATS = Path("meta") / "stats.json"
# Written before a download starts and removed when it finished: a folder holding it is partial.
DOWNLOAD_MARKER = Path(".cache") / "mimic-download-incomplete"
# huggingface_hub's record of a local_dir download (first line: the commit hash).
_HF_INFO_METADATA = Path(".cache") / "huggingface" / "download" / "meta" / "info.json.metadata"
FINGERPRINT_SALT = "mimic-merge-v1"  # bump when the merge procedure changes what it produces
_GROUP_SAFE = re.compile(r"[^A-Za-z0-9_.+=-]")

Log = Callable[[str], object]


def _is_dataset(folder: Path) -> bool:
    return (folder / INFO).is_file()


def is_complete(folder: Path) -> bool:
    """A dataset folder with meta/info.json and no unfinished download of ours."""
    return _is_dataset(folder) and not (folder / DOWNLOAD_MARKER).exists()


def locate(repo_id: str, dataset_root: str | Path | None = None) -> Path | None:
    """The local folder of `repo_id`, or None.

    Looks at `<dataset_root>/<repo_id>`, then `<dataset_root>` itself when that folder is a
    dataset (LeRobot's --dataset.root convention), then `<lerobot home>/<repo_id>`.
    A partial download (our marker inside) does not count.
    """
    candidates = []
    if dataset_root is not None:
        root = Path(dataset_root).expanduser()
        candidates += [root / repo_id, root]
    candidates.append(paths.lerobot_home() / repo_id)
    for folder in candidates:
        if is_complete(folder):
            return folder.absolute()
    return None


def recorded_revision(folder: Path) -> str | None:
    """The Hub commit a `snapshot_download(local_dir=...)` recorded for meta/info.json."""
    try:
        with open(folder / _HF_INFO_METADATA) as f:
            rev = f.readline().strip()
    except OSError:
        return None
    return rev if re.fullmatch(r"[0-9a-f]{40}", rev) else None


def _stat_sig(path: Path) -> str:
    try:
        st = path.stat()
    except OSError:
        return f"{path.name}:-"
    return f"{path.name}:{st.st_size}:{st.st_mtime_ns}"


def _member_sig(folder: Path) -> list[str]:
    """Size + mtime of the files a merge reads: meta/info.json, stats.json, episodes, data.

    Only stat/scandir calls, no reads. Video files are covered by the episodes metadata
    (any re-recording changes it) — listing thousands of mp4 files is not worth it.
    """
    sig = [_stat_sig(folder / INFO), _stat_sig(folder / STATS), _stat_sig(folder / "meta" / "tasks.parquet")]
    for sub in ("meta/episodes", "data"):
        base = folder / sub
        if not base.is_dir():
            sig.append(f"{sub}:-")
            continue
        for chunk in sorted(os.scandir(base), key=lambda e: e.name):
            if not chunk.is_dir():
                continue
            for entry in sorted(os.scandir(chunk.path), key=lambda e: e.name):
                if entry.name.endswith(".parquet"):
                    st = entry.stat()
                    sig.append(f"{sub}/{chunk.name}/{entry.name}:{st.st_size}:{st.st_mtime_ns}")
    return sig


def fingerprint(members: Iterable[tuple[str, Path]]) -> str:
    """12 hex digits naming the merge of these datasets, in this order.

    From the ids, each member's recorded Hub revision (if any) and the size + mtime of the
    files a merge reads, so a re-download or a local edit gives a new merged dataset.
    """
    h = hashlib.sha256(FINGERPRINT_SALT.encode())
    for repo_id, folder in members:
        folder = Path(folder)
        h.update(b"\0id:" + repo_id.encode())
        rev = recorded_revision(folder)
        if rev:
            h.update(b"\0rev:" + rev.encode())
        for item in _member_sig(folder):
            h.update(b"\0" + item.encode())
    return h.hexdigest()[:12]


def safe_group_name(group: str) -> str:
    return _GROUP_SAFE.sub("_", group) or "_"


def merged_dataset_path(group: str, fp: str) -> Path:
    return paths.merged_home() / f"{safe_group_name(group)}-{fp}"


def fetch_hint(repo_ids: Iterable[str], group: str | None = None) -> str:
    """How to get the datasets here. With HF_HUB_OFFLINE set, the fix is to unset it (on a
    machine with network), not to repeat the command that just refused to download."""
    home = paths.lerobot_home()
    ids = list(repo_ids)
    where = "unset HF_HUB_OFFLINE on a machine with network, then run" if hub_offline() else \
        "on a machine with network, run"
    if group:
        names = " ".join(shlex.quote(g) for g in group.split())
        return f"{where}: python -m mimic_deployment datasets fetch {names}"
    first = ids[0]
    cmd = (f"huggingface-cli download --repo-type dataset {first} "
           f"--local-dir {shlex.quote(str(home / first))}")
    return f"{where}: {cmd}" + (f" (and likewise for the other {len(ids) - 1})" if len(ids) > 1 else "")


def missing_error(missing: list[str], dataset_root: str | Path | None = None, group: str | None = None,
                  why: str = "offline", local: bool = False) -> UserError:
    """The one error for datasets that are not here and will not be downloaded."""
    if local:
        why = "the group is generated locally (local: true), never downloaded"
    where = f"{dataset_root} or {paths.lerobot_home()}" if dataset_root else str(paths.lerobot_home())
    shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
    n = len(missing)
    hint = ("generate them with: python -m mimic_deployment datasets demo" if local
            else fetch_hint(missing, group))
    return UserError(f"{n} dataset{'s' if n != 1 else ''} not found locally ({where}) and {why}: {shown}",
                     hint=hint)


def resolve_local(repo_ids: Iterable[str], dataset_root: str | Path | None = None) -> tuple[dict[str, Path], list[str]]:
    """(found, missing). Refuses a --dataset-root that is one dataset for a several-dataset group."""
    ids = list(dict.fromkeys(repo_ids))
    found: dict[str, Path] = {}
    missing: list[str] = []
    for rid in ids:
        folder = locate(rid, dataset_root)
        (found.__setitem__(rid, folder) if folder else missing.append(rid))
    by_path: dict[Path, str] = {}
    for rid, folder in found.items():
        if folder in by_path:
            raise UserError(
                f"--dataset-root {dataset_root} is the single dataset {folder.name!r} but is used for "
                f"both {by_path[folder]} and {rid}",
                hint="for a group, pass the folder that holds <org>/<name> for each dataset")
        by_path[folder] = rid
    return found, missing


def _classify_download_error(exc: BaseException) -> str:
    """'missing' (no such dataset / no access), or 'offline' (no network, offline mode)."""
    name = type(exc).__name__
    if name in ("RepositoryNotFoundError", "GatedRepoError", "RevisionNotFoundError", "HfHubHTTPError"):
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if name != "HfHubHTTPError" or status in (401, 403, 404):
            return "missing"
    return "offline"


def _download(repo_id: str, target: Path, log: Log) -> None:
    from huggingface_hub import HfApi, snapshot_download  # lazy: the CLI fast path never gets here

    # Ask the Hub first: with the Hub unreachable, snapshot_download(local_dir=<existing folder>)
    # returns that folder without an error, whatever it holds.
    info = HfApi().dataset_info(repo_id)
    files = [s for s in (info.siblings or []) if s.rfilename.startswith(("meta/", "data/", "videos/"))]
    size = sum(s.size or 0 for s in files)
    log(f"[mimic] {repo_id}: revision {info.sha[:12] if info.sha else '?'}, {len(files)} files"
        + (f", {size / 1e9:.2f} GB" if size else ""))
    marker = target / DOWNLOAD_MARKER
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()
    snapshot_download(repo_id, repo_type="dataset", local_dir=target, revision=info.sha)  # resumes
    marker.unlink()


def ensure_available(repo_ids: Iterable[str], dataset_root: str | Path | None = None, *, online: bool = True,
                     log: Log = print, group: str | None = None, local: bool = False) -> dict[str, Path]:
    """{id: local folder} for every id, downloading missing ones when online.

    Local copies are used as they are. Missing ones are downloaded with
    `snapshot_download(repo_type="dataset", local_dir=<lerobot home>/<id>)` (resumable). When
    offline — `online=False`, HF_HUB_OFFLINE set, or the first download fails for lack of
    network — one UserError lists every missing id and how to fetch them.
    """
    found, missing = resolve_local(repo_ids, dataset_root)
    if not missing:
        return found
    if local or not online or hub_offline():
        why = "HF_HUB_OFFLINE is set" if hub_offline() else "downloads are disabled"
        raise missing_error(missing, dataset_root, group, why, local)
    home = paths.lerobot_home()
    for i, rid in enumerate(missing, 1):
        target = home / rid
        log(f"[mimic] downloading dataset {i}/{len(missing)}: {rid} -> {target}")
        t0 = time.monotonic()
        try:
            _download(rid, target, log)
        except Exception as exc:
            kind = _classify_download_error(exc)
            if kind == "missing":
                raise UserError(f"dataset {rid} not found on the Hugging Face Hub (or no access)",
                                hint="check the id in dataset_groups.yaml, or `huggingface-cli login`") from None
            if i == 1 or isinstance(exc, OSError) or "connect" in str(exc).lower():
                rest = missing[i - 1:]
                raise missing_error(rest, dataset_root, group,
                                    f"the Hub is unreachable ({type(exc).__name__})") from None
            raise
        if not _is_dataset(target):
            raise UserError(f"{rid}: downloaded to {target} but it has no meta/info.json",
                            hint="is it a LeRobot dataset? check the id")
        log(f"[mimic] downloaded {rid} in {time.monotonic() - t0:.0f}s")
        found[rid] = target.absolute()
    return {rid: found[rid] for rid in dict.fromkeys(repo_ids)}
