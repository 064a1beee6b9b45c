"""Preflight: what a plan's trainer needs at start, checked before anything is launched or written.

The policy's LeRobot extra in the engine's env; the Hub models it loads (a folder, in the HF cache, or
the Hub reachable); ACT's/diffusion's torchvision backbone (cached, or turned off); a W&B key for
`--wandb`; a token and no offline flag for a push. Files and env only (no torch, lerobot or
huggingface_hub import). Offline, for the Hub: HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE (huggingface_hub's
rule), else a TCP connect to HF_ENDPOINT's host (or HTTPS_PROXY) fails, once per process. For the
backbone (torchvision ignores HF_HUB_OFFLINE): HF_HUB_OFFLINE, the toolkit's one "no network here"
switch (pushes and dataset downloads read it too), or download.pytorch.org:443 unreachable.
"""
from __future__ import annotations

import functools
import json
import os
import socket
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from mimic_deployment.config.engines import load_engines
from mimic_deployment.config.policies import load_policies
from mimic_deployment.host.engine import Engine, engine_of
from mimic_deployment.planning.plan import RunPlan, format_value
from mimic_deployment.util.errors import UserError
from mimic_deployment.util.shell import quote
from mimic_deployment.util.values import TRUE_WORDS

if TYPE_CHECKING:
    from mimic_deployment.config.engines import Dialect
    from mimic_deployment.config.policies import Policy

TORCHVISION_URL = "https://download.pytorch.org/models/"
_OFF = ("null", "none", "")
_CONNECT_TIMEOUT_S = 1.5


@dataclass(frozen=True)
class Missing:
    """One thing the trainer would lack: a few words for READY, the refusal, and the fix."""
    short: str
    message: str
    hint: str

    def error(self) -> UserError:
        return UserError(self.message, hint=self.hint)


# ---------------------------------------------------------------- this machine (files and env)

def _path(text: str) -> Path:
    return Path(os.path.expandvars(os.path.expanduser(text)))


def offline(env: Mapping[str, str], hub_only: bool = False) -> str | None:
    """The variable that makes huggingface_hub offline (`HF_HUB_OFFLINE=1`), or None."""
    for key in ("HF_HUB_OFFLINE",) if hub_only else ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if env.get(key, "").strip().lower() in TRUE_WORDS:
            return f"{key}={env[key]}"
    return None


def hf_home(env: Mapping[str, str]) -> Path:
    return _path(env.get("HF_HOME") or os.path.join(env.get("XDG_CACHE_HOME") or "~/.cache", "huggingface"))


def hf_hub_cache(env: Mapping[str, str]) -> Path:
    """huggingface_hub's cache: HF_HUB_CACHE, else HUGGINGFACE_HUB_CACHE, else HF_HOME/hub (constants.py)."""
    given = env.get("HF_HUB_CACHE") or env.get("HUGGINGFACE_HUB_CACHE")
    return _path(given) if given else hf_home(env) / "hub"


def cached_snapshot(repo_id: str, env: Mapping[str, str]) -> Path | None:
    """What an offline from_pretrained finds: `models--ORG--NAME/refs/main` names a commit whose
    `snapshots/<commit>/` folder holds files (huggingface_hub's snapshot_download/hf_hub_download rule)."""
    folder = hf_hub_cache(env) / ("models--" + repo_id.replace("/", "--"))
    try:
        snapshot = folder / "snapshots" / (folder / "refs" / "main").read_text().strip()
        return snapshot if snapshot != folder / "snapshots" and any(snapshot.iterdir()) else None
    except OSError:
        return None


def _local(model: str, env: Mapping[str, str]) -> Path | None:
    """The folder a model id or path loads from here: itself, or its snapshot in the HF cache."""
    path = _path(model)
    return path if path.is_dir() else cached_snapshot(model, env)


def torch_checkpoints(env: Mapping[str, str]) -> Path:
    """torch.hub's `<TORCH_HOME>/hub/checkpoints` (TORCH_HOME, else XDG_CACHE_HOME/torch, else ~/.cache/torch)."""
    home = env.get("TORCH_HOME") or os.path.join(env.get("XDG_CACHE_HOME") or "~/.cache", "torch")
    return _path(home) / "hub" / "checkpoints"


def hf_token_present(env: Mapping[str, str]) -> bool:
    """huggingface_hub's get_token: HF_TOKEN or HUGGING_FACE_HUB_TOKEN, else the HF_TOKEN_PATH file (HF_HOME/token)."""
    if (env.get("HF_TOKEN") or env.get("HUGGING_FACE_HUB_TOKEN") or "").strip():
        return True
    token_file = _path(env["HF_TOKEN_PATH"]) if env.get("HF_TOKEN_PATH") else hf_home(env) / "token"
    try:
        return bool(token_file.read_text().strip())
    except (OSError, UnicodeDecodeError):
        return False


def wandb_key_present(env: Mapping[str, str]) -> bool:
    """wandb's own sources: WANDB_API_KEY, else its host (WANDB_BASE_URL, api.wandb.ai) in NETRC or ~/.netrc."""
    if env.get("WANDB_API_KEY", "").strip():
        return True
    host = urlsplit(env.get("WANDB_BASE_URL") or "https://api.wandb.ai").hostname or "api.wandb.ai"
    try:
        return host in _path(env.get("NETRC") or "~/.netrc").read_text(errors="replace")
    except OSError:
        return False


def _endpoint(url: str, env: Mapping[str, str]) -> tuple[str, int]:
    """The host:port a download of `url` connects to first: its HTTPS proxy when one is set."""
    proxy = (env.get("HTTPS_PROXY") or env.get("https_proxy")) if url.startswith("https:") else None
    parts = urlsplit(proxy or url)
    return parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)


@functools.cache
def reachable(host: str, port: int) -> bool:
    """A TCP connect within the timeout (DNS included: it runs in a thread the wait does not outlast)."""
    result: list[bool] = []

    def connect() -> None:
        try:
            socket.create_connection((host, port), timeout=_CONNECT_TIMEOUT_S).close()
            result.append(True)
        except OSError:
            result.append(False)

    worker = threading.Thread(target=connect, daemon=True)
    worker.start()
    worker.join(_CONNECT_TIMEOUT_S + 0.5)
    return bool(result and result[0])


def why_no_network(url: str, env: Mapping[str, str], offline_flag: str | None) -> str | None:
    """Why `url` cannot be downloaded from here: the offline variable, or the host unreachable; None: it can."""
    if offline_flag:
        return offline_flag
    host, port = _endpoint(url, env)
    return None if host and reachable(host, port) else f"{host or url}:{port} is unreachable"


# ---------------------------------------------------------------- the checks

def flags_of(argv: list[str]) -> dict[str, str]:
    """`--key=value` of an argv (the last one of a key wins, as in LeRobot's parser)."""
    return dict(a[2:].split("=", 1) for a in argv if a.startswith("--") and "=" in a)


def _pip(engine: Engine) -> str:
    return quote(engine.bin("pip") or f"{engine.python or 'python'}") + ("" if engine.bin("pip") else " -m pip")


def _install_hint(engine: Engine, extra: str) -> str:
    """`pip install 'lerobot[pi]==0.6.1'` in that env; an editable fork: `pip install -e '<src>[pi]'`."""
    source = _editable_source(engine)
    if source:
        return f"{_pip(engine)} install -e {quote(f'{source}[{extra}]')}"
    return f"{_pip(engine)} install {quote(f'lerobot[{extra}]=={engine.version}')}"


def _editable_source(engine: Engine) -> str | None:
    """The source folder of a LeRobot installed in editable mode (a lab's fork): PEP 610's direct_url.json."""
    for info in Path(engine.site_packages or "/nonexistent").glob("lerobot-*.dist-info/direct_url.json"):
        try:
            data = json.loads(info.read_text())
            if data["dir_info"]["editable"] and data["url"].startswith("file://"):
                return str(data["url"][len("file://"):])
        except (OSError, ValueError, KeyError, TypeError):
            pass
    return None


@functools.cache
def _lacking(engine: Engine, extra: str) -> tuple[bool, tuple[str, ...]]:
    """(declared, distributions not installed) of one extra: read once per process (markers are slow to parse)."""
    declared = engine.provides_extra(extra)
    return declared, tuple(engine.missing_for_extra(extra)) if declared else ()


def missing_extra(name: str, extras: tuple[str, ...], engine: Engine, dialect: Dialect,
                  env: Mapping[str, str]) -> Missing | None:
    """Each extra the policy needs (and lerobot-train's own `training` where that LeRobot has one) is one
    that LeRobot declares and whose distributions are installed in its env."""
    # in that version's names; None: LeRobot's own dependencies there (0.4 has no [diffusion])
    wanted = (["training"] if _lacking(engine, "training")[0] else []) + [
        e for e in (dialect.extra(x) for x in extras) if e]
    where = f"LeRobot {engine.version} ({engine.prefix})"
    for extra in dict.fromkeys(e for e in wanted if e):
        declared, lacking = _lacking(engine, extra)
        if not declared:
            own = engine_of(str(Path(sys.executable).parent / "lerobot-train"))  # the toolkit's env
            fix = (f"unset LEROBOT_TRAIN to train with the toolkit's env (LeRobot {own.version}, which has it)"
                   if own.prefix != engine.prefix and _lacking(own, extra) == (True, ())
                   else "point LEROBOT_TRAIN at an env whose LeRobot has it (`make env` builds LeRobot 0.6.1)")
            return Missing(f"no extra {extra}", f"{name} needs lerobot[{extra}], which {where} does not have", fix)
        if lacking:
            return Missing(f"lerobot[{extra}] not installed", f"{name} needs lerobot[{extra}]: {', '.join(lacking)} "
                           f"{'is' if len(lacking) == 1 else 'are'} not installed in {where}",
                           f"install it there: {_install_hint(engine, extra)}")
    return None


def _base_config(base_model: str | None, env: Mapping[str, str]) -> dict:
    """The base model's config.json where it is here (what it names, e.g. its tokenizer, is what loads)."""
    folder = _local(base_model, env) if base_model else None
    try:
        data = json.loads((folder / "config.json").read_text()) if folder else {}
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def hub_models(policy_type: str, base_model: str | None, flags: Mapping[str, str], dialect: Dialect,
               env: Mapping[str, str]) -> list[str]:
    """The base model and what the policy type loads at start: the plan's own choice (a flag, e.g.
    `--policy.vlm_model_name=<folder>`), else the one the base model's config names, else the default."""
    loads = dialect.loads.get(policy_type, {})
    overrides = {repo: flag for repo, flag in loads.items() if flag}
    config = _base_config(base_model, env) if overrides else {}
    models = [base_model] if base_model else []
    for repo in loads:
        flag = overrides.get(repo)
        field = flag.split(".", 1)[-1] if flag else ""
        chosen = str(flags.get(flag) or config.get(field) or repo) if flag else repo
        if chosen.strip().lower() not in _OFF:
            models.append(chosen)
    return list(dict.fromkeys(models))


def missing_models(name: str, models: list[str], env: Mapping[str, str]) -> Missing | None:
    absent = [m for m in models if _local(m, env) is None]
    if not absent:
        return None
    why = why_no_network(env.get("HF_ENDPOINT") or "https://huggingface.co", env, offline(env))
    if why is None:
        return None  # downloaded at start
    cache = hf_hub_cache(env)
    into = "" if cache == _path("~/.cache/huggingface/hub") else f" with HF_HUB_CACHE={quote(str(cache))}"
    they = "which is" if len(absent) == 1 else "which are"
    commands = " && ".join(f"hf download {quote(m)}" for m in absent)
    return Missing(f"needs {absent[0]}", f"{name} needs {' and '.join(absent)}, {they} not in the HF cache ({cache}) "
                   f"and {why}", f"run `{commands}`{into} on a machine with network")


def missing_backbone(name: str, policy_type: str, flags: Mapping[str, str], dialect: Dialect,
                     env: Mapping[str, str], python: str | None) -> Missing | None:
    """ACT's and diffusion's torchvision ImageNet weights: cached, turned off by the plan, or downloadable."""
    weights = dialect.backbone_weights.get(policy_type)
    if not weights or flags.get("policy.pretrained_backbone_weights", "x").strip().lower() in _OFF:
        return None
    folder = torch_checkpoints(env)
    cached = folder / weights
    if cached.is_file() and cached.stat().st_size > 0:
        return None
    why = why_no_network(TORCHVISION_URL, env, offline(env, hub_only=True))
    if why is None:
        return None
    code = f'import torch.hub; torch.hub.load_state_dict_from_url("{TORCHVISION_URL}{weights}")'
    fetch = f"{quote(python or 'python')} -c {quote(code)}"
    return Missing(f"needs {weights}", f"{name} loads torchvision's ImageNet backbone {weights} at start, which is "
                   f"not in {folder} and {why}",
                   f"run `{fetch}` on a machine with network, with this TORCH_HOME, "
                   f"or train without it: `-- --policy.pretrained_backbone_weights=null`")


def policy_missing(name: str, policy_type: str, extras: tuple[str, ...], base_model: str | None,
                   flags: Mapping[str, str], engine: Engine, dialect: Dialect,
                   env: Mapping[str, str]) -> Missing | None:
    """The first thing this policy's trainer would lack on that engine; None when it has everything (or
    the engine is unknown: a stand-in trainer loads nothing)."""
    if engine.version is None:
        return None
    return (missing_extra(name, extras, engine, dialect, env)
            or missing_models(name, hub_models(policy_type, base_model, flags, dialect, env), env)
            or missing_backbone(name, policy_type, flags, dialect, env, engine.python))


def _asked(reason: str, flag: str) -> str:
    """Who turned it on, as the user typed it: the plan's reason reads "flag" for the flag."""
    return flag if reason == "flag" else reason


def missing_keys(plan: RunPlan, flags: Mapping[str, str], env: Mapping[str, str]) -> Missing | None:
    """`--wandb` without a key or an offline mode; a push without a token, or offline. Only an explicit
    request gets here: the planner turns neither on by itself without what it needs."""
    mode = (flags.get("wandb.mode") or env.get("WANDB_MODE", "")).strip().lower()
    if plan.wandb and mode not in ("offline", "disabled", "dryrun") and not wandb_key_present(env):
        return Missing("no W&B key", f"W&B logging is on ({_asked(plan.wandb_reason, '--wandb')}) but there is "
                       "no W&B API key (WANDB_API_KEY or ~/.netrc) and WANDB_MODE is not offline",
                       "run `wandb login` or export WANDB_API_KEY, set WANDB_MODE=offline to log locally, "
                       "or --no-wandb")
    pushes = [f"pushing to the Hub is on ({_asked(plan.push_reason, '--push-to-hub')})"] if plan.push_to_hub else []
    if plan.push_checkpoints or flags.get("save_checkpoint_to_hub") == "true":
        pushes.append("--push-checkpoints is on")
    if not pushes:
        return None
    what, off = " and ".join(pushes), offline(env)
    if off:
        return Missing("offline", f"{what} but {off}: the upload would fail",
                       "--no-push-to-hub (and no --push-checkpoints), or unset it where the Hub is reachable")
    if not hf_token_present(env):
        return Missing("no HF token", f"{what} but there is no Hugging Face token (HF_TOKEN or HF_HOME/token)",
                       "run `hf auth login` or export HF_TOKEN, or --no-push-to-hub")
    return None


# ---------------------------------------------------------------- plans and policies

def plan_engine(plan: RunPlan) -> Engine:
    """The engine a plan runs (the env of its lerobot-train), read from that env's files."""
    return engine_of(plan.lerobot_train)


def dialect_or_none(engine: Engine) -> Dialect | None:
    """The engine's dialect; None for a series the toolkit does not speak (READY says so)."""
    try:
        return load_engines().dialect(engine.series)
    except UserError:
        return None


def plan_missing(plan: RunPlan, env: Mapping[str, str] | None = None) -> Missing | None:
    env = os.environ if env is None else env
    flags = flags_of(plan.argv)
    engine = plan_engine(plan)
    policy = load_policies().get(plan.policy)
    dialect = load_engines().dialect(plan.engine.get("dialect") or engine.series)  # its argv's series
    extras = policy.extras if policy else ()
    return (policy_missing(plan.policy, plan.policy_type, extras, plan.base_model, flags, engine, dialect, env)
            or missing_keys(plan, flags, env))


def refuse(plans: list[RunPlan], env: Mapping[str, str] | None = None) -> None:
    """The launch's (and the dry-run's) preflight: the first plan's first missing thing, as a UserError."""
    for plan in plans:
        missing = plan_missing(plan, env)
        if missing:
            raise missing.error()


def policy_check(policy: Policy, engine: Engine, env: Mapping[str, str] | None = None) -> Missing | None:
    """What a plan of this policy would miss on that engine, from the policy alone (--list-policies, check)."""
    env = os.environ if env is None else env
    if engine.version is None:
        return None
    dialect = dialect_or_none(engine)
    if dialect is None:
        return Missing(f"LeRobot {engine.series} unknown", f"LeRobot {engine.version} is not a version the "
                       "toolkit speaks", "see config/engines.yaml")
    if policy.type not in dialect.policy_types:
        return Missing(f"not in LeRobot {engine.version}", f"{policy.name}: LeRobot {engine.version} has no "
                       f"policy type {policy.type!r}", "point LEROBOT_TRAIN at an env with a LeRobot that has it")
    base = policy.base_model_for(dialect)
    flags = {k: format_value(v) for k, v in policy.args.items()}
    return policy_missing(policy.name, policy.type, policy.extras, base, flags, engine, dialect, env)


def ready(policy: Policy, engine: Engine, env: Mapping[str, str] | None = None) -> str:
    """The READY cell: `ready`, or the first missing thing in a few words."""
    if engine.version is None:
        return "? (no LeRobot)"
    missing = policy_check(policy, engine, env)
    return missing.short if missing else "ready"

