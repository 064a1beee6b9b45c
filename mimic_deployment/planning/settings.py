"""The settings tables of training runs and robot evaluation: each user setting declared once."""
from __future__ import annotations

from typing import Any

from mimic_deployment.config.slurm import LAUNCHER
from mimic_deployment.util.errors import UserError
from mimic_deployment.util.settings import Parser, Setting, boolean, count, seconds, table, text


def fraction(raw: str, where: str) -> float:
    """A number strictly between 0 and 1 (LeRobot's dataset.eval_split: held out per task)."""
    try:
        value = float(str(raw).strip())
    except ValueError:
        value = -1.0
    if not 0.0 < value < 1.0:
        raise UserError(f"{where}={raw!r} is not a fraction between 0 and 1 (exclusive)",
                        hint="e.g. 0.1 holds out the last 10% of each task's episodes")
    return value


# ---------------------------------------------------------------- training (planning/plan.py)

COUNTS = ("batch_size", "steps", "save_freq", "num_workers", "num_gpus")
FLAG_VALUES = (*COUNTS, "eval_split", "eval_steps")  # RunRequest.flags: the raw text of each
TRAIN = table(
    Setting("dataset_group", "--dataset-group", "DATASET_GROUP", metavar="G[,G..]",
            help="dataset group(s) (env DATASET_GROUP)"),
    Setting("batch_size", "--batch-size", "BATCH_SIZE", count(1), "env BATCH_SIZE", "machine, else policy",
            metavar="N"),
    Setting("steps", "--steps", "STEPS", count(1), "env STEPS", "policy", metavar="N"),
    Setting("save_freq", "--save-freq", "SAVE_FREQ", count(1), "env SAVE_FREQ", "policy", metavar="N"),
    Setting("num_workers", "--num-workers", "NUM_WORKERS", count(0), "env NUM_WORKERS",
            "machine, else policy, else 4", metavar="N"),
    Setting("num_gpus", "--num-gpus", "NUM_GPUS", count(1), "env NUM_GPUS",
            "policy's gpus (all: the machine's), at most the machine's", metavar="N"),
    Setting("computer", "--computer", "COMPUTER", help="machine profile (env COMPUTER; default: detect this host)",
            default_from="this host (hostname, else NVML)"),
    Setting("hf_org", "--hf-org", "HF_ORG", help="Hub organisation of the run's repo id (env HF_ORG)",
            default_from="lab hub_org"),
    Setting("base_model", "--base-model", "BASE_MODEL",
            help="pretrained model or checkpoint to start from (env BASE_MODEL)", default_from="policy"),
    Setting("push_to_hub", "--push-to-hub", "PUSH_TO_HUB", boolean, off_flag="--no-push-to-hub",
            help="push the final model (env PUSH_TO_HUB; default: when a HF token is present)",
            default_from="a Hugging Face token is present and the Hub is online"),
    Setting("push_checkpoints", "--push-checkpoints", "PUSH_CHECKPOINTS", boolean, off_flag="--no-push-checkpoints",
            help="push every checkpoint to the Hub as it is saved (env PUSH_CHECKPOINTS; LeRobot 0.6; "
                 "needs a HF token and the Hub online)", default_from="off"),
    Setting("eval_split", "--eval-split", "EVAL_SPLIT", fraction, metavar="F",
            help="hold out the last F of each task's episodes and log eval_loss on them (env EVAL_SPLIT; "
                 "LeRobot 0.6)", default_from="none"),
    Setting("eval_steps", "--eval-steps", "EVAL_STEPS", count(1), metavar="N",
            help="with --eval-split: eval_loss every N steps (env EVAL_STEPS; default: the save freq)",
            default_from="the save freq"),
    Setting("wandb", "--wandb", "WANDB_ENABLE", boolean, off_flag="--no-wandb",
            help="log to W&B (env WANDB_ENABLE; default: when a W&B key is present)",
            default_from="WANDB_MODE, else a W&B API key is present"),
    LAUNCHER,
)


# ---------------------------------------------------------------- robot evaluation (evaluation/robot.py)

DEFAULT_TASK = "Bimanual blue block handover from left to right hand"


def _robot(name: str, flag: str | None, env: str | None, parse: Parser = text, default: Any = None,
           help: str = "", metavar: str | None = None, off_flag: str | None = None) -> Setting:
    return Setting(name, flag, env, parse, help, "fixed default" if default is not None else "",
                   default, metavar, off_flag, plain_flag_source=True, both_in_errors=True)


ROBOT = table(
    _robot("model_path", "--model-path", "MODEL_PATH", metavar="M",
           help="env MODEL_PATH: a run name, a checkpoint folder or a Hub id"),
    _robot("eval_dataset", "--eval-dataset", "EVAL_DATASET", metavar="NS/eval_NAME",
           help="env EVAL_DATASET: the dataset to record"),
    _robot("num_episodes", "--num-episodes", "NUM_EPISODES", count(1), 10, metavar="N",
           help="env NUM_EPISODES (default 10)"),
    _robot("task", "--task", "TASK", text, DEFAULT_TASK, help=f'env TASK (default "{DEFAULT_TASK}")'),
    _robot("episode_time_s", "--episode-time-s", "EPISODE_TIME_S", seconds, 60, metavar="S",
           help="env EPISODE_TIME_S: seconds per episode (default 60)"),
    _robot("reset_time_s", "--reset-time-s", "RESET_TIME_S", seconds, 30, metavar="S",
           help="env RESET_TIME_S: seconds to reset between episodes (default 30)"),
    _robot("fps", "--fps", None, count(1), metavar="N", help="recording fps (default: fps: of the robot config)"),
    _robot("device", "--device", "DEVICE", help="env DEVICE: --policy.device (default: the checkpoint's)"),
    _robot("push_to_hub", "--push-to-hub", "PUSH_TO_HUB", boolean, False, off_flag="--no-push-to-hub",
           help="env PUSH_TO_HUB: upload the recorded dataset (default: no)"),
    _robot("robot_config", "--robot-config", "ROBOT_CONFIG", metavar="FILE",
           help="env ROBOT_CONFIG (default mimic_deployment/config/robot.yaml)"),
)
