"""Secrets out of everything the toolkit writes or prints: argv values, env maps, free text."""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

REDACTED = "***"
# A key names a secret when it holds one of these words (HF_TOKEN, --hub_token, WANDB_API_KEY, ...).
# Whole words only: `--policy.tokenizer_max_length` is not a secret.
_SECRET_WORD = re.compile(r"(?:^|[^A-Za-z])(?:token|secret|password|passwd|api_?key|credentials?)(?:$|[^A-Za-z])",
                          re.IGNORECASE)
# Values that are secrets whatever their key says: Hugging Face tokens.
_SECRET_VALUE = re.compile(r"\bhf_[A-Za-z0-9]{20,}\b")
_FLAG = re.compile(r"^(--?[A-Za-z0-9_.-]+)=(.*)\Z", re.DOTALL)


def is_secret_key(key: str) -> bool:
    return bool(_SECRET_WORD.search(key))


def redact_argv(argv: Sequence[str]) -> list[str]:
    """`argv` with the value of every secret flag replaced: `--hub_token=x` and `--hub_token x`."""
    out: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            out.append(REDACTED)
            hide_next = False
            continue
        match = _FLAG.match(arg)
        if match and is_secret_key(match.group(1)):
            out.append(f"{match.group(1)}={REDACTED}")
        elif arg.startswith("-") and "=" not in arg and is_secret_key(arg):
            out.append(arg)
            hide_next = True
        else:
            out.append(redact_text(arg))
    return out


def redact_env(env: Mapping[str, str]) -> dict[str, str]:
    """`env` with the value of every secret variable replaced (the key stays: it says one was set)."""
    return {key: REDACTED if is_secret_key(key) else value for key, value in env.items()}


def redact_text(text: str) -> str:
    """Free text (a log line, a note) with token-shaped values replaced."""
    return _SECRET_VALUE.sub(REDACTED, text)
