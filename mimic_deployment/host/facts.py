"""Gather the facts a plan depends on (reads only: env, hostname, NVML, git HEAD, token files, the engine)."""
from __future__ import annotations

import os
import shutil
import socket
import sys
from pathlib import Path

from mimic_deployment.config.machines import Machine, find_by_hostname
from mimic_deployment.host import paths
from mimic_deployment.host.engine import engine_of
from mimic_deployment.host.gpus import read_gpus
from mimic_deployment.planning.plan import Facts, RunRequest
from mimic_deployment.util.errors import UserError
from mimic_deployment.util.names import has_control


def _bin(name: str) -> str:
    beside = Path(sys.executable).parent / name  # the project's environment
    if beside.exists():
        return str(beside)
    return shutil.which(name) or name


def toolkit_commit(repo: Path = paths.REPO_ROOT) -> str | None:
    """HEAD's commit, read from .git directly (no git subprocess on the CLI path)."""
    git = repo / ".git"
    try:
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head[:12]
        ref = head[5:]
        if (git / ref).exists():
            return (git / ref).read_text().strip()[:12]
        for line in (git / "packed-refs").read_text().splitlines():
            if line.endswith(" " + ref):
                return line.split()[0][:12]
    except OSError:
        pass
    return None


def _hf_token_present(env) -> bool:
    if env.get("HF_TOKEN") or env.get("HUGGING_FACE_HUB_TOKEN"):
        return True
    hf_home = Path(env.get("HF_HOME") or Path.home() / ".cache" / "huggingface")
    return (hf_home / "token").exists()


def _wandb_key_present(env) -> bool:
    if env.get("WANDB_API_KEY"):
        return True
    try:
        return "api.wandb.ai" in (Path.home() / ".netrc").read_text()
    except OSError:
        return False


def _trainer(env) -> str:
    """$LEROBOT_TRAIN (another build of lerobot-train), else the environment's: the command's first word."""
    given = env.get("LEROBOT_TRAIN")
    if given and has_control(given):
        raise UserError(f"LEROBOT_TRAIN={given!r} holds a control character (newline, tab, ...)",
                        hint="set it to the path of a lerobot-train executable")
    return given or _bin("lerobot-train")


def _needs_nvml(request: RunRequest, env, machines: dict[str, Machine], hostname: str) -> bool:
    if request.computer or env.get("COMPUTER"):
        return False
    return find_by_hostname(machines, hostname) is None


def gather_facts(request: RunRequest, machines: dict[str, Machine], env=None) -> Facts:
    env = dict(os.environ if env is None else env)
    hostname = socket.gethostname()
    trainer = _trainer(env)
    return Facts(
        env=env, hostname=hostname,
        gpus=read_gpus() if _needs_nvml(request, env, machines, hostname) else None,
        outputs=paths.outputs_root(), lerobot_train=trainer,
        accelerate=_bin("accelerate"), engine=engine_of(trainer),
        toolkit_commit=toolkit_commit(), hf_token=_hf_token_present(env), wandb_key=_wandb_key_present(env),
    )
