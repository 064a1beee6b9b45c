"""Where things live. Every location can be moved by one env var (tests use temp dirs)."""
from __future__ import annotations

import json
import os
from pathlib import Path

from mimic_deployment.util.errors import UserError
from mimic_deployment.util.names import has_control

PACKAGE_DIR = Path(__file__).resolve().parent.parent
REPO_ROOT = PACKAGE_DIR.parent


def _env_path(var: str) -> str | None:
    """A folder named by an env var. These paths reach job scripts, argvs and records, where a
    newline would end a line: a control character in one is refused."""
    value = os.environ.get(var)
    if value and has_control(value):
        raise UserError(f"{var}={value!r} holds a control character (newline, tab, ...)",
                        hint=f"set {var} to a plain folder path")
    return value or None


def outputs_root() -> Path:
    """outputs/ with logs/, train/, runs/ — $MIMIC_OUTPUTS, else <repo>/outputs."""
    return Path(_env_path("MIMIC_OUTPUTS") or REPO_ROOT / "outputs").absolute()


def lerobot_home() -> Path:
    """Where LeRobot keeps datasets: $HF_LEROBOT_HOME, else $HF_HOME/lerobot."""
    home = _env_path("HF_LEROBOT_HOME")
    if home:
        return Path(home).expanduser()
    hf_home = _env_path("HF_HOME") or Path.home() / ".cache" / "huggingface"
    return Path(hf_home).expanduser() / "lerobot"


def merged_home() -> Path:
    """Cache of merged group datasets: $MIMIC_MERGED_HOME, else <lerobot home>/mimic_merged."""
    return Path(_env_path("MIMIC_MERGED_HOME") or lerobot_home() / "mimic_merged").expanduser()


def last_checkpoint_config(output_dir: str | Path) -> Path:
    """LeRobot's resumable checkpoint: `checkpoints/last` moves only after a save completes, and
    resume takes its train_config.json (the file, not the folder)."""
    return Path(output_dir) / "checkpoints" / "last" / "pretrained_model" / "train_config.json"


def last_checkpoint_step(output_dir: str | Path) -> int | None:
    """Step of the resumable checkpoint (the numbered folder `last` points at); None: none yet,
    -1: `last` points at a folder that is not a step number."""
    config = last_checkpoint_config(output_dir)
    if not config.exists():
        return None
    step = checkpoint_step(checkpoints_dir(output_dir) / "last")
    return -1 if step is None else step


def checkpoints_dir(output_dir: str | os.PathLike[str]) -> Path:
    return Path(output_dir) / "checkpoints"


def _recorded_step(folder: Path) -> int | None:
    """The step a checkpoint's training_state/training_step.json records (LeRobot writes it with
    the training state, after the model: a folder that has it is a complete save)."""
    try:
        return int(json.loads((folder / "training_state" / "training_step.json").read_text(encoding="utf-8"))["step"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def checkpoint_step(folder: str | Path) -> int | None:
    """The step of a checkpoint folder (`checkpoints/NNN`, or `last`, which links to one): the
    step it records, else the number in its name (`last` followed); None when neither says."""
    folder = Path(folder)
    step = _recorded_step(folder)
    if step is not None:
        return step
    name = folder.resolve().name
    return int(name) if name.isdigit() and folder.exists() else None


def newest_checkpoint_step(output_dir: str | os.PathLike[str] | None) -> int | None:
    """Step of the newest complete checkpoint: `checkpoints/last` (LeRobot moves it only after a
    save completes), else the highest-numbered folder whose save completed."""
    if output_dir is None:
        return None
    ckdir = checkpoints_dir(output_dir)
    step = _recorded_step(ckdir / "last")
    if step is not None:
        return step
    try:
        numbered = sorted((n for n in os.listdir(ckdir) if n.isdigit()), key=int, reverse=True)
    except OSError:
        return None
    for name in numbered[:2]:  # the newest, or the one before while the newest is being written
        step = _recorded_step(ckdir / name)
        if step is not None:
            return step
    return None
