"""Shell quoting: the one way an argv or env becomes copy-pasteable text (never shell code from a value)."""
from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence


def quote(value: str) -> str:
    return shlex.quote(value)


def shell_command(argv: Sequence[str], env: Mapping[str, str] | None = None, indent: str = "    ") -> str:
    """A copy-pasteable command, one flag per line from the first dataset/config flag on."""
    head = [f"{k}={shlex.quote(v)}" for k, v in (env or {}).items()]
    first_flag = next((i for i, a in enumerate(argv)
                       if a.startswith(("--dataset.", "--config_path"))), len(argv))
    lines = [" ".join(head + [shlex.quote(a) for a in argv[:first_flag]])]
    lines += [shlex.quote(a) for a in argv[first_flag:]]
    return (" \\\n" + indent + "  ").join(lines)


def one_line(argv: Sequence[str]) -> str:
    """An argv as one shell line (log lines, error hints)."""
    return " ".join(shlex.quote(a) for a in argv)
