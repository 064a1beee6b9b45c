"""Names the toolkit shares with the Hugging Face Hub: the repo-id pattern and the merged dataset's id."""
from __future__ import annotations

import re

# HF style `namespace/name`: what the Hub accepts for datasets and models (and nothing with a quote)
REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9_][A-Za-z0-9_.-]*\Z")


def is_repo_id(text: str) -> bool:
    return bool(REPO_ID.match(text))


def merged_repo_id(namespace: str, group: str) -> str:
    """The repo id of a group's merged dataset (namespace: lab.yaml's `merged_namespace`; never pushed)."""
    return f"{namespace}/{group}"
