"""Datasets with the real LeRobot: the video demo made by 0.6.1, merges, the cache, a killed merge, and
datasets of either version loading and merging in the other (0.4.4 from its own env).

Offline (HF_HUB_OFFLINE=1), every location in temp dirs. Slow-ish: imports torch once.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mimic_deployment.datasets import merge, prepare, sources
from mimic_deployment.datasets.demo import DEMO_IDS, generate_demo, make_dataset
from mimic_deployment.util.errors import UserError

pytestmark = pytest.mark.lerobot
REPO = Path(__file__).resolve().parent.parent
CAMERAS = ("right_wrist", "left_wrist", "front", "top")
# Run by another env's Python: each folder's episodes, frames, the last frame's front image shape and episode.
LOAD = ("import json, sys\n"
        "from lerobot.datasets.lerobot_dataset import LeRobotDataset\n"
        "out = {}\n"
        "for root in sys.argv[1:]:\n"
        "    ds = LeRobotDataset('lab/' + root.rstrip('/').rsplit('/', 1)[-1], root=root)\n"
        "    last = ds[ds.num_frames - 1]\n"
        "    out[root] = [ds.num_episodes, ds.num_frames, list(last['observation.images.front'].shape),\n"
        "                 int(last['episode_index'])]\n"
        "print(json.dumps(out))\n")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The demo group, generated twice (determinism), plus three deliberately odd datasets."""
    base = tmp_path_factory.mktemp("lerobot")
    # LeRobot's image-dataset merge and loads go through `datasets`, which caches arrow files
    # (read at its import: set before the first LeRobot import of the session, restored after)
    saved = os.environ.get("HF_DATASETS_CACHE")
    os.environ["HF_DATASETS_CACHE"] = str(base / "hf_datasets_cache")
    home = base / "home"
    first = generate_demo(home)
    second = generate_demo(base / "again")
    odd = {
        "lab/fps30": make_dataset(home / "lab/fps30", "lab/fps30", fps=30, episodes=1, frames=5),
        "lab/no_top": make_dataset(home / "lab/no_top", "lab/no_top", episodes=1, frames=5,
                                   cameras=("right_wrist", "left_wrist", "front")),
        "lab/state14": make_dataset(home / "lab/state14", "lab/state14", state_dim=14, episodes=1, frames=5),
    }
    yield {"home": home, "demo": first, "again": second, "odd": odd}
    if saved is None:
        os.environ.pop("HF_DATASETS_CACHE", None)
    else:
        os.environ["HF_DATASETS_CACHE"] = saved


@pytest.fixture
def env(built, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_LEROBOT_HOME", str(built["home"]))
    monkeypatch.setenv("MIMIC_MERGED_HOME", str(tmp_path / "merged"))
    monkeypatch.setenv("MIMIC_OUTPUTS", str(tmp_path / "outputs"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return {**built, "merged": tmp_path / "merged", "tmp": tmp_path}


def _members(env):
    return {rid: env["home"] / rid for rid in DEMO_IDS}


def test_demo_is_deterministic_and_idempotent(env):
    import pyarrow.parquet as pq

    for rid, a, b in zip(DEMO_IDS, env["demo"], env["again"]):
        assert a == env["home"] / rid
        videos = [f"videos/observation.images.{cam}/chunk-000/file-000.mp4" for cam in CAMERAS]
        for rel in ("meta/info.json", "meta/tasks.parquet", "meta/episodes/chunk-000/file-000.parquet", *videos):
            assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
        assert not (a / "images").exists()  # the encoder's staging frames are gone
        # stats: same numbers (LeRobot writes the keys in set order); data: same columns. The
        # parquet bytes differ only by the random fingerprint `datasets` puts in its metadata.
        assert json.loads((a / "meta/stats.json").read_text()) == json.loads((b / "meta/stats.json").read_text())
        ta, tb = (pq.read_table(p / "data/chunk-000/file-000.parquet") for p in (a, b))
        assert ta.column_names == tb.column_names and all(ta[c].equals(tb[c]) for c in ta.column_names)
        info = json.loads((a / "meta/info.json").read_text())
        assert (info["fps"], info["robot_type"], info["total_episodes"], info["total_frames"]) == \
               (15, "mimic_follower", 3, 60)
        for cam in CAMERAS:  # four cameras as mp4, LeRobot's default encoder, like the lab's recordings
            ft = info["features"][f"observation.images.{cam}"]
            assert ft["dtype"] == "video" and ft["shape"] == [48, 64, 3]
            assert (ft["info"]["video.codec"], ft["info"]["video.fps"]) == ("av1", 15)
        assert info["features"]["observation.state"]["shape"] == [15]
    # demo_a and demo_b are different recordings of the same setup
    assert (env["demo"][0] / "data/chunk-000/file-000.parquet").read_bytes() != \
           (env["demo"][1] / "data/chunk-000/file-000.parquet").read_bytes()
    mtime = (env["demo"][0] / "meta/info.json").stat().st_mtime_ns
    t0 = time.monotonic()
    assert generate_demo(env["home"]) == env["demo"]
    assert time.monotonic() - t0 < 0.5 and (env["demo"][0] / "meta/info.json").stat().st_mtime_ns == mtime


def test_merge_loads_with_summed_counts_then_cache_hit(env, monkeypatch):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    lines = []
    target = merge.materialize("demo", _members(env), log=lines.append)
    assert target.parent == env["merged"] and target.name.startswith("demo-")
    assert merge.is_complete(target) and not list(env["merged"].glob("*.tmp-*"))
    assert any("merge 2/2: mimic-demo/demo_b" in line for line in lines)
    ds = LeRobotDataset(merge.merged_repo_id("demo"), root=target)
    assert (ds.num_episodes, ds.num_frames) == (6, 120)
    assert ds[119]["episode_index"].item() == 5 and tuple(ds[0]["observation.images.front"].shape) == (3, 48, 64)
    assert ds.meta.video_keys == [f"observation.images.{cam}" for cam in CAMERAS]
    assert len(list(target.glob("videos/observation.images.front/chunk-*/*.mp4"))) >= 1
    assert ds.meta.stats["action"]["q01"].shape == (15,)  # pi05-ready stats survive the merge
    # second call: a cache hit, no merge work at all
    marker_mtime = (target / merge.MARKER).stat().st_mtime_ns
    monkeypatch.setattr(merge, "_merge_with_lerobot", lambda *a, **k: pytest.fail("merged again"))
    lines.clear()
    assert merge.materialize("demo", _members(env), log=lines.append) == target
    assert lines == [f"[mimic] merged dataset cache hit: {target}"]
    assert (target / merge.MARKER).stat().st_mtime_ns == marker_mtime
    assert not list(env["merged"].glob("*.tmp-*"))


def test_prepare_links_the_merged_group(env):
    link = env["tmp"] / "outputs" / "runs" / "r1" / "dataset"
    spec = {"group": "demo", "members": list(DEMO_IDS), "dataset_root": None, "online": False, "local": True}
    lines = []
    target = prepare.prepare(spec, link, lines.append)
    assert link.is_symlink() and link.resolve() == target.resolve() and merge.is_complete(target)
    assert all(line.startswith("[mimic] ") for line in lines)
    assert prepare.preflight(spec, "act").ok


def test_killed_merge_leaves_nothing_complete_and_next_call_succeeds(env):
    flag = env["tmp"] / "merge-blocked"
    code = ("import json, sys\n"
            "from pathlib import Path\n"
            "from mimic_deployment.datasets.merge import materialize\n"
            "members = {k: Path(v) for k, v in json.loads(sys.argv[1]).items()}\n"
            "materialize('demo', members)\n")
    members = {k: str(v) for k, v in _members(env).items()}
    proc = subprocess.Popen(
        [sys.executable, "-c", code, json.dumps(members)], cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), merge._TEST_BLOCK_ENV: str(flag)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while not flag.exists():
            assert proc.poll() is None, "the merge process died before the hook"
            assert time.monotonic() < deadline, "the merge never reached the hook"
            time.sleep(0.2)
        tmp = Path(flag.read_text())
        assert tmp.name.endswith(f".tmp-{proc.pid}") and (tmp / "meta" / "info.json").exists()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    target = tmp.with_name(tmp.name.split(".tmp-")[0])
    assert not target.exists() and tmp.exists()
    assert [(e.path, e.complete) for e in merge.list_merged()] == [(tmp, False)]
    lines = []
    assert merge.materialize("demo", _members(env), log=lines.append) == target
    assert merge.is_complete(target) and not tmp.exists()
    assert any("removing an interrupted merge" in line for line in lines)


@pytest.mark.parametrize("odd, expected", [
    ("lab/fps30", "lab/fps30: fps 30, the other 2 datasets have 15"),
    ("lab/no_top", "lab/no_top: missing feature observation.images.top (the other 2 datasets have it)"),
    ("lab/state14", "lab/state14: observation.state shape (14), the other 2 datasets have (15)"),
])
def test_incompatible_datasets_refused_naming_them(env, odd, expected):
    spec = {"group": "mixed", "members": [*DEMO_IDS, odd], "online": False}
    with pytest.raises(UserError) as exc:
        prepare.preflight(spec)
    assert expected in exc.value.report.problems
    assert expected in str(exc.value) or len(exc.value.report.problems) > 1
    with pytest.raises(UserError):
        prepare.prepare(spec, env["tmp"] / "link", lambda m: None)
    assert not (env["tmp"] / "link").exists() and not env["merged"].exists()


def test_offline_missing_member_is_one_clear_error(env):
    spec = {"group": "demo_plus", "members": [*DEMO_IDS, "Mimic-Robotics/not_here"], "online": True}
    with pytest.raises(UserError) as exc:
        prepare.prepare(spec, env["tmp"] / "link", lambda m: None)
    msg = str(exc.value)
    assert "1 dataset not found locally" in msg and "Mimic-Robotics/not_here" in msg
    assert "HF_HUB_OFFLINE" in msg and "datasets fetch demo_plus" in msg
    with pytest.raises(UserError, match="Mimic-Robotics/not_here"):
        sources.ensure_available(spec["members"], online=True, log=print)


def test_either_versions_datasets_load_and_merge_in_the_other(env, engine04):
    """0.6.1's demo and its merge load in 0.4.4; a dataset recorded by 0.4.4 (its `video.is_depth_map`)
    merges with 0.6.1's (`is_depth_map`) in the toolkit's 0.6.1 (merge.migrate_video_info), and that merge
    loads in both versions."""
    base = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "HF_DATASETS_CACHE": str(env["tmp"] / "hfc")}
    py04 = str(engine04 / "bin" / "python")
    rec04 = env["tmp"] / "lab" / "rec04"
    made = subprocess.run([py04, "-c", "import sys; from mimic_deployment.datasets.demo import make_dataset; "
                           "make_dataset(sys.argv[1], 'lab/rec04', seed=7)", str(rec04)],
                          cwd=REPO, env=base, capture_output=True, text=True, timeout=600)
    assert made.returncode == 0, made.stderr[-3000:]
    info = json.loads((rec04 / "meta/info.json").read_text())["features"]["observation.images.front"]["info"]
    assert "video.is_depth_map" in info and "video.crf" not in info  # 0.4.4's own spelling
    assert meta_ok({"lab/rec04": rec04, **_members(env)})

    mixed = merge.materialize("mixed", {"lab/rec04": rec04, **_members(env)}, log=lambda m: None)
    demo = merge.materialize("demo", _members(env), log=lambda m: None)
    roots = [str(p) for p in (*env["demo"], demo, mixed)]
    loaded = subprocess.run([py04, "-c", LOAD, *roots], cwd=REPO, env=base, capture_output=True, text=True,
                            timeout=600)
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    got = json.loads(loaded.stdout.strip().splitlines()[-1])
    assert got == {roots[0]: [3, 60, [3, 48, 64], 2], roots[1]: [3, 60, [3, 48, 64], 2],
                   roots[2]: [6, 120, [3, 48, 64], 5], roots[3]: [9, 180, [3, 48, 64], 8]}
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset(merge.merged_repo_id("mixed"), root=mixed)
    assert (ds.num_episodes, ds.num_frames) == (9, 180) and int(ds[0]["episode_index"]) == 0
    assert tuple(ds[179]["observation.images.top"].shape) == (3, 48, 64)


def meta_ok(folders: dict) -> bool:
    report = prepare.check("g", {rid: Path(p) for rid, p in folders.items()})
    assert report.ok, report.problems
    return True
