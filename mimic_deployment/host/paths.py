"""Where things live. Every location can be moved by one env var (tests use temp dirs)."""
from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent.parent
REPO_ROOT = PACKAGE_DIR.parent


def outputs_root() -> Path:
    """outputs/ with logs/, train/, runs/ — $MIMIC_OUTPUTS, else <repo>/outputs."""
    return Path(os.environ.get("MIMIC_OUTPUTS") or REPO_ROOT / "outputs").absolute()


def lerobot_home() -> Path:
    """Where LeRobot keeps datasets: $HF_LEROBOT_HOME, else $HF_HOME/lerobot."""
    if os.environ.get("HF_LEROBOT_HOME"):
        return Path(os.environ["HF_LEROBOT_HOME"]).expanduser()
    hf_home = os.environ.get("HF_HOME") or Path.home() / ".cache" / "huggingface"
    return Path(hf_home).expanduser() / "lerobot"


def merged_home() -> Path:
    """Cache of merged group datasets: $MIMIC_MERGED_HOME, else <lerobot home>/mimic_merged."""
    return Path(os.environ.get("MIMIC_MERGED_HOME") or lerobot_home() / "mimic_merged").expanduser()


def last_checkpoint_config(output_dir: str | Path) -> Path:
    """LeRobot's resumable checkpoint: `checkpoints/last` moves only after a save completes, and
    resume takes its train_config.json (the file, not the folder)."""
    return Path(output_dir) / "checkpoints" / "last" / "pretrained_model" / "train_config.json"
