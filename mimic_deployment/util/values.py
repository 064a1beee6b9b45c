"""Reading values the user gives (flags, env vars) the same way everywhere; errors are UserErrors."""
from __future__ import annotations

import os
from collections.abc import Mapping

from mimic_deployment.util.errors import UserError

TRUE_WORDS, FALSE_WORDS = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def parse_count(raw: str, where: str, minimum: int) -> int:
    try:
        value = int(str(raw).strip())
    except ValueError:
        value = None
    if value is None or value < minimum:
        kind = "a positive integer" if minimum >= 1 else "an integer >= 0"
        raise UserError(f"{where}={raw!r} is not {kind}")
    return value


def parse_bool(raw: str, where: str) -> bool:
    text = str(raw).strip().lower()
    if text in TRUE_WORDS or text in FALSE_WORDS:
        return text in TRUE_WORDS
    raise UserError(f"{where}={raw!r} is not a boolean", hint="use true or false")


def hub_offline(env: Mapping[str, str] | None = None) -> bool:
    """As huggingface_hub reads HF_HUB_OFFLINE: 1/true/yes/on (any case) means offline."""
    env = os.environ if env is None else env
    return env.get("HF_HUB_OFFLINE", "").strip().lower() in TRUE_WORDS
