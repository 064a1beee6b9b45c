"""Names shared with the Hugging Face Hub and the filesystem: repo-id rules, merged ids, name length."""
from __future__ import annotations

import re

# HF style `namespace/name`: what the Hub accepts for datasets and models (and nothing with a quote)
REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9_][A-Za-z0-9_.-]*\Z")
# One part of a Hub id, as huggingface_hub's validate_repo_id reads it (ASCII only): word
# characters, '-' and '.', starting and ending with a letter, digit or '_'.
_HUB_PART = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?")
HUB_NAME_MAX = 96  # characters of the repo name part (validate_repo_id)
NAME_MAX = 255  # bytes of one file name (Linux, macOS)
# What can end or split a line: C0/C1 controls (newline, CR, NUL, tab, ...) and Unicode's line
# and paragraph separators (str.splitlines breaks on them): never part of a value.
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def is_repo_id(text: str) -> bool:
    return bool(REPO_ID.match(text))


def merged_repo_id(namespace: str, group: str) -> str:
    """The repo id of a group's merged dataset (namespace: lab.yaml's `merged_namespace`; never pushed)."""
    return f"{namespace}/{group}"


def _part_problem(part: str) -> str | None:
    if not _HUB_PART.fullmatch(part):
        return "only letters, digits, '_', '-' and '.', not starting or ending with '-' or '.'"
    if "--" in part or ".." in part:
        return "'--' and '..' are not allowed"
    return None


def hub_namespace_problem(namespace: str) -> str | None:
    """Why `namespace` is not one Hub user or organisation name (None: it is)."""
    if "/" in namespace:
        return "an organisation is one Hub namespace, without '/'"
    return _part_problem(namespace)


def hub_repo_problem(repo_id: str) -> str | None:
    """Why the Hub (huggingface_hub.validate_repo_id) would refuse `repo_id` (None: it would not)."""
    parts = repo_id.split("/")
    if len(parts) > 2:
        return "a repo id is 'namespace/name' or 'name'"
    for part in parts:
        problem = _part_problem(part)
        if problem:
            return problem
    if len(parts[-1]) > HUB_NAME_MAX:
        return f"the name part is {len(parts[-1])} characters, the Hub allows at most {HUB_NAME_MAX}"
    if repo_id.endswith(".git"):
        return "it may not end with '.git'"
    return None


def has_control(text: str) -> bool:
    return bool(CONTROL.search(text))
