"""Tiny deterministic synthetic LeRobot v3.0 datasets shaped like the Mimic robot's.

`generate_demo()` writes `mimic-demo/demo_a` and `mimic-demo/demo_b` (the `demo` group of
dataset_groups.yaml) under the LeRobot home: 15-D state/action and four 48x64 cameras stored as
`video` features (one AV1 mp4 per camera, LeRobot's own encoder: the shape of the lab's
recordings), 3 episodes x 20 frames at 15 fps, written by LeRobot's dataset API
(`LeRobotDataset.create`) offline. Made by 0.6.1, they load in 0.4.4 as well.
`make_dataset()` builds one such dataset with any shape, for tests that need incompatible ones.

Imports lerobot/numpy lazily (only when a dataset is actually built).
"""
from __future__ import annotations

import contextlib
import functools
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from mimic_deployment.host import paths
from mimic_deployment.util.atomic import building_folder, leftover_builds

DEMO_GROUP = "demo"
DEMO_IDS = ("mimic-demo/demo_a", "mimic-demo/demo_b")
DEMO_TASK = "Bimanual blue block handover from left to right hand"
DEMO_ROBOT_TYPE = "mimic_follower"
DEMO_CAMERAS = ("right_wrist", "left_wrist", "front", "top")
DEMO_FPS = 15
DEMO_STATE_DIM = 15
DEMO_IMAGE_SHAPE = (48, 64, 3)
DEMO_EPISODES = 3
DEMO_FRAMES = 20
DEMO_CAMERA_DTYPE = "video"  # mp4 per camera, like the lab's datasets ("image": PNG inside the parquet)
_SEEDS = {"mimic-demo/demo_a": 1, "mimic-demo/demo_b": 2}


def motor_names(dim: int) -> list[str]:
    """Mimic's 15 motors (two 6-joint arms with grippers and a torso joint), else motor_i."""
    if dim == 15:
        arm = [f"joint_{i}" for i in range(1, 7)] + ["gripper"]
        return [f"left_{m}" for m in arm] + [f"right_{m}" for m in arm] + ["torso"]
    return [f"motor_{i}" for i in range(dim)]


def features_for(state_dim: int, action_dim: int, cameras: Iterable[str],
                 image_shape: tuple[int, int, int], camera_dtype: str = "image") -> dict:
    feats: dict = {
        "observation.state": {"dtype": "float32", "shape": (state_dim,), "names": motor_names(state_dim)},
        "action": {"dtype": "float32", "shape": (action_dim,), "names": motor_names(action_dim)},
    }
    for cam in cameras:
        feats[f"observation.images.{cam}"] = {
            "dtype": camera_dtype, "shape": tuple(image_shape), "names": ["height", "width", "channels"],
        }
    return feats


def _trajectory(rng, frames: int, dim: int):
    """A smooth handover-like motion: each joint follows a low-frequency sinusoid + ramp."""
    import numpy as np

    t = np.linspace(0.0, 1.0, frames + 1, dtype=np.float64)[:, None]
    amp = rng.uniform(0.2, 0.8, size=(1, dim))
    freq = rng.uniform(0.5, 1.5, size=(1, dim))
    phase = rng.uniform(0, 2 * np.pi, size=(1, dim))
    offset = rng.uniform(-0.5, 0.5, size=(1, dim))
    ramp = rng.uniform(-0.3, 0.3, size=(1, dim))
    traj = offset + ramp * t + amp * np.sin(2 * np.pi * freq * t + phase)
    return traj.astype(np.float32)  # (frames + 1, dim): action[t] = state[t + 1]


def _render(progress: float, cam_index: int, shape: tuple[int, int, int], tint):
    """A blue block travelling left to right over a camera-specific background."""
    import numpy as np

    h, w, c = shape
    img = np.empty((h, w, c), dtype=np.uint8)
    img[...] = tint
    bh, bw = max(2, h // 6), max(2, w // 8)
    x = int(round((w - bw) * progress))
    y = int(round((h - bh) * (0.3 + 0.15 * cam_index / 3 + 0.2 * np.sin(np.pi * progress))))
    img[y:y + bh, x:x + bw] = (20, 40, 220)[:c]
    return img


def make_dataset(path: str | Path, repo_id: str, *, fps: int = DEMO_FPS, state_dim: int = DEMO_STATE_DIM,
                 action_dim: int | None = None, cameras: Iterable[str] = DEMO_CAMERAS,
                 image_shape: tuple[int, int, int] = DEMO_IMAGE_SHAPE, episodes: int = DEMO_EPISODES,
                 frames: int = DEMO_FRAMES, robot_type: str = DEMO_ROBOT_TYPE, task: str = DEMO_TASK,
                 seed: int = 0, camera_dtype: str = DEMO_CAMERA_DTYPE, quiet: bool = True) -> Path:
    """Write one synthetic v3.0 dataset at `path` (which must not exist yet; LeRobot insists).

    quiet: the encoder's and LeRobot's chatter (SVT-AV1's banner per video, progress bars, a
    torchcodec fallback traceback) is kept back and shown only if the build fails."""
    with _native_stderr_captured(quiet):
        _build(Path(path), repo_id, fps=fps, state_dim=state_dim,
               action_dim=state_dim if action_dim is None else action_dim, cameras=tuple(cameras),
               image_shape=image_shape, episodes=episodes, frames=frames, robot_type=robot_type, task=task,
               seed=seed, camera_dtype=camera_dtype)
    return Path(path)


@contextlib.contextmanager
def _native_stderr_captured(enabled: bool) -> Iterator[None]:
    """Send file descriptor 2 (C libraries write there too) to a temp file; replay it on failure."""
    if not enabled:
        yield
        return
    saved_svt = os.environ.get("SVT_LOG")
    os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1: errors only (it reads this when an encoder starts)
    sys.stderr.flush()
    saved_fd = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        except BaseException:
            sys.stderr.flush()
            os.dup2(saved_fd, 2)
            sink.seek(0)
            os.write(2, sink.read()[-20000:])
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved_fd, 2)
            os.close(saved_fd)
            if saved_svt is None:
                os.environ.pop("SVT_LOG", None)


def _build(path: Path, repo_id: str, *, fps: int, state_dim: int, action_dim: int, cameras: tuple[str, ...],
           image_shape: tuple[int, int, int], episodes: int, frames: int, robot_type: str, task: str,
           seed: int, camera_dtype: str) -> None:
    import numpy as np
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    features = features_for(state_dim, action_dim, cameras, image_shape, camera_dtype)
    ds = LeRobotDataset.create(repo_id=repo_id, fps=fps, features=features, root=path,
                               robot_type=robot_type, use_videos=camera_dtype == "video",
                               image_writer_processes=0, image_writer_threads=0)
    rng = np.random.default_rng(seed)
    tints = [tuple(int(v) for v in rng.integers(60, 200, size=3)) for _ in cameras]
    for _ in range(episodes):
        traj = _trajectory(rng, frames, max(state_dim, action_dim))
        for i in range(frames):
            frame = {
                "observation.state": traj[i, :state_dim].copy(),
                "action": traj[i + 1, :action_dim].copy(),
                "task": task,
            }
            for k, cam in enumerate(cameras):
                frame[f"observation.images.{cam}"] = _render(i / max(1, frames - 1), k, image_shape, tints[k])
            ds.add_frame(frame)
        ds.save_episode()
    ds.finalize()
    images = path / "images"  # the frames' staging area before encoding: empty folders once encoded
    if camera_dtype == "video" and images.is_dir() and not any(f.is_file() for f in images.rglob("*")):
        shutil.rmtree(images)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _clean_stale_tmps(target: Path) -> None:
    """Remove the temp folders of builds whose process is gone (a live one may still be building)."""
    for tmp in leftover_builds(target):
        pid = tmp.name.rsplit("-", 1)[-1]
        if not pid.isdigit() or not _pid_alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)


def build_atomically(target: Path, build: Callable[[Path], object], force: bool = False) -> bool:
    """Build a dataset folder into `<target>.tmp-<pid>` and rename it into place.

    Returns False (and does nothing) when `target` exists and not `force`: a folder at `target`
    only ever appears through the final rename, so its presence means it is complete.
    """
    target = Path(target)
    if target.exists() and not force:
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    _clean_stale_tmps(target)
    with building_folder(target, replace=True) as tmp:
        build(tmp)
    return True


def _make_demo_dataset(path: Path, repo_id: str) -> Path:
    return make_dataset(path, repo_id, seed=_SEEDS[repo_id])


def generate_demo(root: str | Path | None = None, force: bool = False,
                  log: Callable[[str], object] | None = None) -> list[Path]:
    """Create the `demo` group's two datasets (idempotent: a second call only stats two folders)."""
    base = Path(root) if root is not None else paths.lerobot_home()
    out = []
    for repo_id in DEMO_IDS:
        target = base / repo_id
        built = build_atomically(target, functools.partial(_make_demo_dataset, repo_id=repo_id), force=force)
        if log:
            log(f"{'created' if built else 'exists '} {repo_id} -> {target}")
        out.append(target)
    return out


def make_meta_only(path: str | Path, *, fps: int = DEMO_FPS, state_dim: int = DEMO_STATE_DIM,
                   cameras: Iterable[str] = DEMO_CAMERAS, image_shape: tuple[int, int, int] = (480, 640, 3),
                   episodes: int = 50, frames_per_episode: int = 400, robot_type: str = DEMO_ROBOT_TYPE,
                   codebase_version: str = "v3.0", quantiles: bool = True, camera_dtype: str = "video",
                   data_files: int = 1, recorded_with: str = "0.4", video_codec: str = "av1") -> Path:
    """Metadata of a recorded-like dataset, json only (no LeRobot): meta/info.json, meta/stats.json
    and empty placeholder parquet files. Enough for `check`, fingerprints and benchmarks; NOT a
    loadable dataset. recorded_with: the LeRobot whose video info it imitates ("0.4": the lab's
    recordings, `video.is_depth_map`; "0.6": `is_depth_map` plus the encoder's settings)."""
    import json

    path = Path(path)
    (path / "meta" / "episodes" / "chunk-000").mkdir(parents=True, exist_ok=True)
    (path / "data" / "chunk-000").mkdir(parents=True, exist_ok=True)
    feats = features_for(state_dim, state_dim, cameras, image_shape, camera_dtype)
    for ft in feats.values():
        ft["shape"] = list(ft["shape"])
        if ft["dtype"] == "video":
            h, w, c = image_shape
            ft["info"] = {"video.height": h, "video.width": w, "video.codec": video_codec, "video.pix_fmt": "yuv420p",
                          "video.is_depth_map": False, "video.fps": fps, "video.channels": c, "has_audio": False}
            if recorded_with == "0.6":
                del ft["info"]["video.is_depth_map"]
                ft["info"].update({"video.g": 2, "video.crf": 30, "video.preset": 12, "video.fast_decode": 0,
                                   "video.video_backend": "pyav", "video.extra_options": {}, "is_depth_map": False})
    for key in ("timestamp", "frame_index", "episode_index", "index", "task_index"):
        feats[key] = {"dtype": "float32" if key == "timestamp" else "int64", "shape": [1], "names": None}
    frames = episodes * frames_per_episode
    info = {
        "codebase_version": codebase_version, "robot_type": robot_type, "total_episodes": episodes,
        "total_frames": frames, "total_tasks": 1, "chunks_size": 1000, "data_files_size_in_mb": 100,
        "video_files_size_in_mb": 500, "fps": fps, "splits": {"train": f"0:{episodes}"},
        "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
        "video_path": "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4",
        "features": feats,
    }

    def vec(n, v):
        return [float(v)] * n

    stats = {}
    for key in ("observation.state", "action"):
        s = {"min": vec(state_dim, -1), "max": vec(state_dim, 1), "mean": vec(state_dim, 0),
             "std": vec(state_dim, 0.5), "count": [frames]}
        if quantiles:
            s.update({q: vec(state_dim, v) for q, v in
                      (("q01", -0.98), ("q10", -0.8), ("q50", 0.0), ("q90", 0.8), ("q99", 0.98))})
        stats[key] = s
    for cam in cameras:
        stats[f"observation.images.{cam}"] = {
            k: [[[0.5]], [[0.5]], [[0.5]]] for k in ("min", "max", "mean", "std")} | {"count": [frames]}
    (path / "meta" / "info.json").write_text(json.dumps(info, indent=4))
    (path / "meta" / "stats.json").write_text(json.dumps(stats, indent=4))
    (path / "meta" / "episodes" / "chunk-000" / "file-000.parquet").write_bytes(b"")
    for i in range(data_files):
        (path / "data" / "chunk-000" / f"file-{i:03d}.parquet").write_bytes(b"")
    return path
