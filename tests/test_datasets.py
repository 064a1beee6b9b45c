"""Datasets, the fast half: metadata checks, cameras, sources, the merge cache's bookkeeping and
the CLI fast path. No LeRobot here (see test_datasets_lerobot.py for the real merges)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mimic_deployment.datasets import cameras, merge, meta, prepare, sources
from mimic_deployment.datasets.demo import make_meta_only
from mimic_deployment.util.errors import UserError

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def env(tmp_path, monkeypatch):
    home, merged, outputs = tmp_path / "home", tmp_path / "merged", tmp_path / "outputs"
    monkeypatch.setenv("HF_LEROBOT_HOME", str(home))
    monkeypatch.setenv("MIMIC_MERGED_HOME", str(merged))
    monkeypatch.setenv("MIMIC_OUTPUTS", str(outputs))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return {"home": home, "merged": merged, "outputs": outputs, "tmp": tmp_path}


def _fake(env, repo_id, **kw) -> Path:
    return make_meta_only(env["home"] / repo_id, episodes=2, frames_per_episode=10, **kw)


def _metas(env, specs: dict[str, dict]) -> dict[str, meta.DatasetMeta]:
    return {rid: meta.read_meta(_fake(env, rid, **kw), rid) for rid, kw in specs.items()}


# -- meta: compatibility from info.json / stats.json -------------------------------------------

def test_compatible_group_and_report(env):
    metas = _metas(env, {f"lab/ds{i}": {} for i in range(3)})
    report = meta.check_group(metas)
    assert report.ok and report.problems == []
    text = meta.render_report(report, color=False)
    assert "lab/ds1" in text and "compatible" in text and "*" not in text
    assert report.total_episodes == 6 and report.total_frames == 60
    row = report.rows[0]
    assert row["cameras"] == "front,left_wrist,right_wrist,top" and row["state"] == "15" and row["fps"] == 15


def test_fps_odd_one_out_named_against_majority(env):
    specs = {f"Mimic-Robotics/ds{i:02d}": {} for i in range(26)}
    specs["neryotw/x"] = {"fps": 30}
    report = meta.check_group(_metas(env, specs))
    assert report.problems == ["neryotw/x: fps 30, the other 26 datasets have 15"]
    text = meta.render_report(report, color=False)
    assert "30*" in text and "1 problem" in text


def test_missing_camera_and_shape_mismatch_named(env):
    metas = _metas(env, {
        "lab/a": {}, "lab/b": {},
        "lab/nocam": {"cameras": ("right_wrist", "left_wrist", "front")},
        "lab/state14": {"state_dim": 14},
    })
    problems = meta.check_group(metas).problems
    assert "lab/nocam: missing feature observation.images.top (the other 3 datasets have it)" in problems
    assert "lab/state14: observation.state shape (14), the other 3 datasets have (15)" in problems
    assert "lab/state14: action shape (14), the other 3 datasets have (15)" in problems
    assert all(p.startswith(("lab/nocam", "lab/state14")) for p in problems)


def test_two_datasets_tie_names_the_second(env):
    problems = meta.check_group(_metas(env, {"lab/a": {}, "lab/b": {"robot_type": "so100"}})).problems
    assert problems == ["lab/b: robot_type so100, lab/a has mimic_follower"]


def test_extra_feature_dtype_and_video_encoding(env):
    metas = _metas(env, {"lab/a": {}, "lab/b": {}, "lab/img": {"camera_dtype": "image"},
                         "lab/extra": {"cameras": ("right_wrist", "left_wrist", "front", "top", "side")}})
    problems = meta.check_group(metas).problems
    assert "lab/extra: extra feature observation.images.side (the other 3 datasets do not have it)" in problems
    assert any(p.startswith("lab/img: observation.images.front dtype image, the other 3 datasets have video")
               for p in problems)


def test_v21_points_at_the_converter(env):
    problems = meta.check_group(_metas(env, {"lab/old": {"codebase_version": "v2.1"}})).problems
    assert len(problems) == 1 and problems[0].startswith("lab/old: codebase_version v2.1, LeRobot needs v3.0")
    root = env["home"] / "lab/old"  # 0.6's converter takes the dataset folder itself as --root
    assert (f"python -m lerobot.scripts.convert_dataset_v21_to_v30 --repo-id=lab/old --root={root} "
            "--push-to-hub=false") in problems[0]
    site = REPO / ".venv/lib/python3.12/site-packages/lerobot/scripts"  # the commands named exist in the env
    for module in (meta.CONVERT_V21, meta.AUGMENT_QUANTILES):
        assert (site / f"{module.rsplit('.', 1)[1]}.py").is_file() or not (REPO / ".venv").exists(), module


def test_video_encoding_as_the_merge_compares_it(env):
    """Recordings of LeRobot 0.4 (`video.is_depth_map`) and 0.6 (`is_depth_map` + encoder settings) and a
    different encoder tuning (CRF) merge; another codec does not, and the check names the key."""
    metas = _metas(env, {"lab/old": {}, "lab/old2": {}, "lab/new": {"recorded_with": "0.6"}})
    assert meta.check_group(metas).ok
    crf = metas["lab/new"].video_info["observation.images.front"]
    crf["video.crf"] = 18
    assert meta.check_group(metas).ok
    metas |= _metas(env, {"lab/h264": {"video_codec": "h264"}})
    problems = meta.check_group(metas).problems
    assert problems == [f"lab/h264: observation.images.{cam} video encoding video.codec=h264 "
                        "(the other 3 datasets have video.codec=av1)"
                        for cam in ("right_wrist", "left_wrist", "front", "top")]


def test_merge_migrates_the_legacy_depth_key():
    features = {"observation.images.front": {"dtype": "video", "info": {"video.is_depth_map": False, "video.fps": 15}},
                "observation.state": {"dtype": "float32", "shape": [15]}}
    merge.migrate_video_info(features)
    assert features["observation.images.front"]["info"] == {"is_depth_map": False, "video.fps": 15}
    assert features["observation.state"] == {"dtype": "float32", "shape": [15]}


def test_pi05_needs_quantiles(env):
    metas = _metas(env, {"lab/q": {}, "lab/noq": {"quantiles": False}})
    assert meta.check_group(metas, "act").ok
    problems = meta.check_group(metas, "pi05").problems
    assert len(problems) == 1 and problems[0].startswith("lab/noq: pi05 normalizes with quantiles")
    assert "MEAN_STD" in problems[0] and "augment_dataset_quantile_stats" in problems[0]


def test_policy_cameras_must_exist(env):
    metas = _metas(env, {"lab/a": {"cameras": ("front", "top")}})
    problems = meta.check_group(metas, "xvla", camera_policy="xvla").problems
    assert problems == ["lab/a: policy xvla takes camera(s) left_wrist, right_wrist (cameras.yaml) "
                        "but the dataset has front, top"]


def test_read_meta_errors_name_the_file(env, tmp_path):
    with pytest.raises(UserError, match=r"lab/none: .*meta/info.json not found"):
        meta.read_meta(tmp_path / "nothing", "lab/none")
    bad = tmp_path / "bad" / "meta"
    bad.mkdir(parents=True)
    (bad / "info.json").write_text("{not json")
    with pytest.raises(UserError, match=r"lab/bad: .*info.json is unreadable"):
        meta.read_meta(bad.parent, "lab/bad")


# -- cameras -----------------------------------------------------------------------------------

def test_camera_mapping():
    assert cameras.robot_to_dataset() == {"wrist_left": "left_wrist", "wrist_right": "right_wrist",
                                          "front": "front", "top": "top"}
    assert cameras.rename_map("xvla") == {
        "observation.images.front": "observation.images.image",
        "observation.images.left_wrist": "observation.images.image2",
        "observation.images.right_wrist": "observation.images.image3",
    }
    assert cameras.rename_map("smolvla")["observation.images.front"] == "observation.images.camera1"
    assert cameras.rename_map("act") == {} and cameras.rename_map(None) == {}
    assert json.loads(cameras.rename_map_arg("xvla"))["observation.images.front"] == "observation.images.image"


@pytest.mark.parametrize("text, match", [
    ("cameras: {front: front}\nlenses: {}\n", r"cameras.yaml: unknown key 'lenses'"),
    ("cameras: {front: front}\npolicies: {xvla: {top: image}}\n",
     r"cameras.yaml: policies.xvla: unknown camera 'top'"),
    ("cameras: {front: front, top: front}\n", r"cameras.yaml: cameras: 'top': dataset camera 'front' is already"),
    ("cameras: {front: observation.images.front}\n", r"plain camera name"),
    ("cameras: {front: front}\npolicies: {xvla: {front: [image]}}\n", r"policies.xvla: 'front'"),
])
def test_camera_file_validated(tmp_path, text, match):
    path = tmp_path / "cameras.yaml"
    path.write_text(text)
    with pytest.raises(UserError, match=match):
        cameras.load(path)


# -- sources -----------------------------------------------------------------------------------

def test_locate_order(env, tmp_path):
    _fake(env, "lab/a")
    assert sources.locate("lab/a") == env["home"] / "lab/a"
    assert sources.locate("lab/zz") is None
    other = make_meta_only(tmp_path / "elsewhere" / "lab" / "a")
    assert sources.locate("lab/a", tmp_path / "elsewhere") == other
    single = make_meta_only(tmp_path / "just_one")
    assert sources.locate("lab/whatever", single) == single
    (single / sources.DOWNLOAD_MARKER).parent.mkdir(parents=True)
    (single / sources.DOWNLOAD_MARKER).touch()  # a partial download is not a dataset
    assert sources.locate("lab/whatever", single) is None


def test_single_dataset_root_for_a_group_refused(env, tmp_path):
    single = make_meta_only(tmp_path / "one")
    with pytest.raises(UserError, match="is the single dataset 'one'"):
        sources.resolve_local(["lab/a", "lab/b"], single)


def test_fingerprint_is_cheap_and_changes_with_the_data(env):
    a, b = _fake(env, "lab/a"), _fake(env, "lab/b")
    fp = sources.fingerprint([("lab/a", a), ("lab/b", b)])
    assert len(fp) == 12 and int(fp, 16) >= 0
    assert fp == sources.fingerprint([("lab/a", a), ("lab/b", b)])
    assert fp != sources.fingerprint([("lab/b", b), ("lab/a", a)])  # order = episode order
    stats = a / "meta" / "stats.json"
    os.utime(stats, ns=(stats.stat().st_atime_ns, stats.stat().st_mtime_ns + 10**9))
    assert fp != sources.fingerprint([("lab/a", a), ("lab/b", b)])
    assert sources.merged_dataset_path("demo", fp) == env["merged"] / f"demo-{fp}"


def test_fingerprint_uses_recorded_revision(env):
    a = _fake(env, "lab/a")
    before = sources.fingerprint([("lab/a", a)])
    md = a / ".cache/huggingface/download/meta/info.json.metadata"
    md.parent.mkdir(parents=True)
    md.write_text("0123456789abcdef0123456789abcdef01234567\netag\n1.0\n")
    assert sources.recorded_revision(a) == "0123456789abcdef0123456789abcdef01234567"
    assert sources.fingerprint([("lab/a", a)]) != before


def test_offline_missing_is_one_error_listing_all(env):
    _fake(env, "lab/a")
    with pytest.raises(UserError) as exc:
        sources.ensure_available(["lab/a", "lab/b", "other/c"], online=True, log=print, group="mygroup")
    msg = str(exc.value)
    assert "2 datasets not found locally" in msg and "lab/b, other/c" in msg and "HF_HUB_OFFLINE" in msg
    assert "datasets fetch mygroup" in msg
    assert "\n" not in msg
    with pytest.raises(UserError, match="huggingface-cli download --repo-type dataset lab/b --local-dir"):
        sources.ensure_available(["lab/b"], online=False, log=print)


def test_unreachable_hub_becomes_the_missing_error(env, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")

    def no_network(repo_id, target, log):
        raise ConnectionError("Failed to establish a new connection")

    monkeypatch.setattr(sources, "_download", no_network)
    with pytest.raises(UserError, match=r"2 datasets not found locally .* the Hub is unreachable.*lab/x, lab/y"):
        sources.ensure_available(["lab/x", "lab/y"], online=True, log=lambda m: None)


def test_download_used_when_online(env, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    calls = []

    def fake_download(repo_id, target, log):
        calls.append(repo_id)
        make_meta_only(target)

    monkeypatch.setattr(sources, "_download", fake_download)
    _fake(env, "lab/here")
    lines = []
    got = sources.ensure_available(["lab/here", "lab/new"], online=True, log=lines.append)
    assert calls == ["lab/new"] and list(got) == ["lab/here", "lab/new"]
    assert got["lab/new"] == env["home"] / "lab/new"
    assert any("downloading dataset 1/1: lab/new" in line for line in lines)


# -- prepare / preflight -----------------------------------------------------------------------

def test_preflight(env):
    _fake(env, "lab/a"), _fake(env, "lab/b"), _fake(env, "lab/fast", fps=30)
    spec = {"group": "g", "members": ["lab/a", "lab/b"], "dataset_root": None, "online": True}
    assert prepare.preflight(spec, "act").ok
    with pytest.raises(UserError, match=r"dataset group g: 1 compatibility problem, first: lab/fast: fps 30"):
        prepare.preflight({**spec, "members": ["lab/a", "lab/b", "lab/fast"]})
    with pytest.raises(UserError, match="lab/gone"):  # HF_HUB_OFFLINE=1
        prepare.preflight({**spec, "members": ["lab/a", "lab/gone"]})
    with pytest.raises(UserError, match="datasets demo"):
        prepare.preflight({**spec, "members": ["lab/gone"], "local": True})


def test_preflight_online_defers_missing(env, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    _fake(env, "lab/a")
    assert prepare.preflight({"group": "g", "members": ["lab/a", "lab/gone"], "online": True}) is None


def test_prepare_single_dataset_links_it(env):
    a = _fake(env, "lab/a")
    link = env["outputs"] / "runs" / "r1" / "dataset"
    lines = []
    got = prepare.prepare({"group": "one", "members": ["lab/a"], "online": False}, link, lines.append)
    assert got == a and link.is_symlink() and link.resolve() == a.resolve()
    assert all(line.startswith("[mimic] ") for line in lines)
    b = _fake(env, "lab/b")
    prepare.prepare({"group": "one", "members": ["lab/b"], "online": False}, link, lines.append)
    assert link.resolve() == b.resolve()  # re-pointed in place


def test_prepare_refuses_incompatible_before_merging(env, monkeypatch):
    _fake(env, "lab/a"), _fake(env, "lab/small", state_dim=14)
    monkeypatch.setattr(merge, "_merge_with_lerobot", lambda *a, **k: pytest.fail("merged"))
    with pytest.raises(UserError, match="lab/small: observation.state shape") as exc:
        prepare.prepare({"group": "g", "members": ["lab/a", "lab/small"], "online": False},
                        env["tmp"] / "link", lambda m: None)
    assert not exc.value.report.ok
    assert not (env["tmp"] / "link").exists()


# -- merge cache bookkeeping (the merge itself is faked here) ----------------------------------

def _fake_merge(calls):
    def fake(repo_ids, roots, out, repo_id, log):
        calls.append(list(repo_ids))
        make_meta_only(out, episodes=2 * len(repo_ids), frames_per_episode=10)
    return fake


def test_materialize_cache_hit_and_gc(env, monkeypatch):
    a, b = _fake(env, "lab/a"), _fake(env, "lab/b")
    calls = []
    monkeypatch.setattr(merge, "_merge_with_lerobot", _fake_merge(calls))
    assert merge.materialize("solo", {"lab/a": a}) == a and calls == []
    target = merge.materialize("g", {"lab/a": a, "lab/b": b}, log=lambda m: None)
    assert calls == [["lab/a", "lab/b"]] and merge.is_complete(target)
    marker_mtime = (target / merge.MARKER).stat().st_mtime_ns
    lines = []
    assert merge.materialize("g", {"lab/a": a, "lab/b": b}, log=lines.append) == target
    assert len(calls) == 1 and (target / merge.MARKER).stat().st_mtime_ns == marker_mtime
    assert "cache hit" in lines[0] and not list(env["merged"].glob("*.tmp-*"))
    # a member changes: a new merge; gc keeps the newest per group
    time.sleep(0.01)
    os.utime(b / "meta" / "info.json")
    newer = merge.materialize("g", {"lab/a": a, "lab/b": b}, log=lambda m: None)
    assert newer != target and len(calls) == 2
    entries = merge.list_merged()
    assert [(e.group, e.complete) for e in entries] == [("g", True), ("g", True)]
    path, group, fp, size, complete, mtime = entries[0]
    assert size > 0 and len(fp) == 12
    assert [e.path for e in merge.gc(dry_run=True)] == [target] and target.exists()
    assert [e.path for e in merge.gc()] == [target] and not target.exists() and newer.exists()


def test_materialize_waits_for_a_concurrent_merge(env, monkeypatch):
    a, b = _fake(env, "lab/a"), _fake(env, "lab/b")
    monkeypatch.setattr(merge, "_merge_with_lerobot", lambda *a, **k: pytest.fail("merged twice"))
    target = sources.merged_dataset_path("g", sources.fingerprint([("lab/a", a), ("lab/b", b)]))
    result, lines = {}, []
    with merge._locked(target, print):  # "another run" is merging
        t = threading.Thread(target=lambda: result.setdefault(
            "path", merge.materialize("g", {"lab/a": a, "lab/b": b}, log=lines.append)))
        t.start()
        time.sleep(0.8)
        assert t.is_alive()
        make_meta_only(target)  # the other run finishes
        (target / merge.MARKER).write_text("{}")
    t.join(10)
    assert result["path"] == target
    assert any("waiting for another merge" in m for m in lines)
    assert any("merged by another run" in m for m in lines)


def test_interrupted_merge_is_never_complete_and_is_cleaned(env, monkeypatch):
    a, b = _fake(env, "lab/a"), _fake(env, "lab/b")
    target = sources.merged_dataset_path("g", sources.fingerprint([("lab/a", a), ("lab/b", b)]))
    stale = target.with_name(f"{target.name}.tmp-999999")
    make_meta_only(stale)  # looks like a dataset, but has no marker and a tmp name
    entries = merge.list_merged()
    assert [(e.path, e.complete) for e in entries] == [(stale, False)]
    assert [e.path for e in merge.gc()] == [stale] and not stale.exists()
    make_meta_only(stale)
    calls = []
    monkeypatch.setattr(merge, "_merge_with_lerobot", _fake_merge(calls))
    assert merge.materialize("g", {"lab/a": a, "lab/b": b}, log=lambda m: None) == target
    assert not stale.exists() and calls


def test_gc_keeps_datasets_a_run_links_to(env, monkeypatch):
    a, b = _fake(env, "lab/a"), _fake(env, "lab/b")
    monkeypatch.setattr(merge, "_merge_with_lerobot", _fake_merge([]))
    old = merge.materialize("g", {"lab/a": a, "lab/b": b}, log=lambda m: None)
    prepare.point_link(env["outputs"] / "runs" / "r1" / "dataset", old)
    os.utime(a / "meta" / "info.json", ns=(1, 1))
    merge.materialize("g", {"lab/a": a, "lab/b": b}, log=lambda m: None)
    assert merge.gc() == [] and old.exists()
    assert [e.path for e in merge.gc(keep_linked=False)] == [old]


# -- CLI ---------------------------------------------------------------------------------------

def _cli(*argv, env_vars=None, **kw):
    code = ("import sys\n"
            "from mimic_deployment.cli import _Parser\n"
            "from mimic_deployment.cli import check, datasets\n"
            "from mimic_deployment.util.errors import UserError\n"
            "p = _Parser(prog='mimic'); sp = p.add_subparsers(dest='command', parser_class=_Parser)\n"
            "check.add_parser(sp); datasets.add_parser(sp)\n"
            "try:\n"
            "    a = p.parse_args(sys.argv[1:]); sys.exit(a.run(a))\n"
            "except UserError as e:\n"
            "    print(f'error: {e}', file=sys.stderr); sys.exit(2)\n")
    return subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO), **(env_vars or {})}, **kw)


def test_cli_check(env, tmp_path):
    for i in range(3):
        _fake(env, f"lab/d{i}")
    _fake(env, "lab/odd", fps=30)
    groups = tmp_path / "groups.yaml"
    groups.write_text("groups:\n  good:\n    - lab/d0\n    - lab/d1\n    - lab/d2\n"
                      "  bad:\n    include: [good]\n    datasets: [lab/odd]\n"
                      "  far:\n    - lab/d0\n    - lab/missing\n")
    vars_ = {"DATASET_GROUPS_FILE": str(groups)}
    ok = _cli("check", "good", "--policy", "act", env_vars=vars_)
    assert ok.returncode == 0, ok.stderr
    assert "3 datasets, 6 episodes, 60 frames, policy act: compatible" in ok.stdout
    bad = _cli("check", "bad", env_vars=vars_)
    assert bad.returncode == 2 and "30*" in bad.stdout
    assert bad.stderr.strip().splitlines() == [bad.stderr.strip()]  # one line
    assert "lab/odd: fps 30, the other 3 datasets have 15" in bad.stderr
    far = _cli("check", "far", env_vars=vars_)
    assert far.returncode == 2 and "lab/missing" in far.stderr and "datasets fetch far" in far.stderr
    lint = _cli("check", "--config", str(groups))
    assert lint.returncode == 0 and "OK, 3 groups" in lint.stdout
    groups.write_text("groups:\n  empty:\n")
    lint = _cli("check", "--config", str(groups))
    assert lint.returncode == 2 and "empty group" in lint.stdout


def test_cli_datasets_list_and_gc(env, monkeypatch):
    a, b = _fake(env, "lab/a"), _fake(env, "lab/b")
    monkeypatch.setattr(merge, "_merge_with_lerobot", _fake_merge([]))
    target = merge.materialize("g", {"lab/a": a, "lab/b": b}, log=lambda m: None)
    target.with_name(target.name + ".tmp-999999").mkdir()
    out = _cli("datasets", "list")
    assert out.returncode == 0 and "complete" in out.stdout and "interrupted" in out.stdout
    out = _cli("datasets", "gc", "--dry-run")
    assert "would delete" in out.stdout and ".tmp-999999" in out.stdout and target.exists()
    out = _cli("datasets", "gc")
    assert out.returncode == 0 and not target.with_name(target.name + ".tmp-999999").exists()


def test_fast_path_imports_nothing_heavy():
    code = ("import mimic_deployment.datasets.meta, mimic_deployment.datasets.sources, "
            "mimic_deployment.datasets.cameras, mimic_deployment.datasets.prepare, "
            "mimic_deployment.cli.check, mimic_deployment.cli.datasets; import sys; "
            "from mimic_deployment.datasets import cameras; cameras.rename_map('xvla'); "
            "heavy = [m for m in ('torch', 'lerobot', 'numpy', 'pandas', 'pyarrow', 'huggingface_hub', 'datasets') "
            "if m in sys.modules]; assert not heavy, heavy")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stderr
