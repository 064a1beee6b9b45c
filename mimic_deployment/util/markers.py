"""PEP 508 environment markers (`sys_platform == "linux" and extra == "groot"`), evaluated without packaging.

Why not `packaging.markers`: importing it costs ~30 ms, a fifth of the CLI's 150 ms budget, and the
READY column of `--list-policies` evaluates LeRobot's markers on every call. The grammar here is the
whole of PEP 508's marker grammar (and/or, parentheses, the comparison operators, `in`/`not in`);
anything it cannot parse falls back to packaging, so an exotic marker is still judged right.
"""
from __future__ import annotations

import os
import platform
import re
import sys
from collections.abc import Mapping

_TOKEN = re.compile(r"""\s*(?:(?P<str>'[^']*'|"[^"]*")|(?P<op>===|==|!=|<=|>=|~=|<|>|\(|\))|(?P<word>[A-Za-z_.]+))""")
_VERSION_VARS = {"python_version", "python_full_version", "implementation_version"}


class _Unparsed(Exception):
    pass


def environment(python_version: str | None = None) -> dict[str, str]:
    """This machine's marker values; `python_version` of another interpreter (an engine's env) when given."""
    return {
        "os_name": os.name, "sys_platform": sys.platform, "platform_machine": platform.machine(),
        "platform_system": platform.system(), "platform_release": platform.release(),
        "platform_python_implementation": platform.python_implementation(),
        "implementation_name": sys.implementation.name,
        "python_version": python_version or f"{sys.version_info[0]}.{sys.version_info[1]}",
        "python_full_version": python_version or platform.python_version(),
        "implementation_version": python_version or platform.python_version(),
    }


def holds(marker: str, values: Mapping[str, str]) -> bool:
    """Whether `marker` holds for `values` (see environment(); add "extra")."""
    try:
        tokens = _tokens(marker)
        result, rest = _or(tokens, values)
        if rest:
            raise _Unparsed(marker)
        return result
    except _Unparsed:
        return _with_packaging(marker, values)


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(text.rstrip()):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise _Unparsed(text)
        kind = match.lastgroup or ""
        out.append((kind, match.group(kind)))
        pos = match.end()
    return out


def _or(tokens: list, values: Mapping[str, str]) -> tuple[bool, list]:
    result, tokens = _and(tokens, values)
    while tokens and tokens[0] == ("word", "or"):
        right, tokens = _and(tokens[1:], values)
        result = result or right
    return result, tokens


def _and(tokens: list, values: Mapping[str, str]) -> tuple[bool, list]:
    result, tokens = _atom(tokens, values)
    while tokens and tokens[0] == ("word", "and"):
        right, tokens = _atom(tokens[1:], values)
        result = result and right
    return result, tokens


def _atom(tokens: list, values: Mapping[str, str]) -> tuple[bool, list]:
    if tokens and tokens[0] == ("op", "("):
        result, tokens = _or(tokens[1:], values)
        if not tokens or tokens[0] != ("op", ")"):
            raise _Unparsed("unbalanced parentheses")
        return result, tokens[1:]
    if len(tokens) < 3:
        raise _Unparsed("short comparison")
    left, tokens = tokens[0], tokens[1:]
    if tokens[0] == ("word", "not") and len(tokens) > 1 and tokens[1] == ("word", "in"):
        op, tokens = "not in", tokens[2:]
    elif tokens[0][0] == "op" or tokens[0] == ("word", "in"):
        op, tokens = tokens[0][1], tokens[1:]
    else:
        raise _Unparsed("no operator")
    if not tokens:
        raise _Unparsed("no right side")
    right, tokens = tokens[0], tokens[1:]
    return _compare(left, op, right, values), tokens


def _value(token: tuple[str, str], values: Mapping[str, str]) -> tuple[str, str | None]:
    kind, text = token
    if kind == "str":
        return text[1:-1], None
    if kind == "word" and text in values:
        return values[text], text
    if kind == "word" and text == "extra":
        return "", text  # no extra asked for
    raise _Unparsed(text)


def _compare(left_token: tuple[str, str], op: str, right_token: tuple[str, str], values: Mapping[str, str]) -> bool:
    left, left_var = _value(left_token, values)
    right, right_var = _value(right_token, values)
    if "extra" in (left_var, right_var):  # extras compare normalized (PEP 685)
        left, right = _normalize(left), _normalize(right)
    if op == "in":
        return left in right
    if op == "not in":
        return left not in right
    if _VERSION_VARS & {left_var, right_var} and op not in ("===", "~="):
        a, b = _version(left), _version(right)
        if a is not None and b is not None:
            return {"==": a == b, "!=": a != b, "<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]
    if op in ("==", "==="):
        return left == right
    if op == "!=":
        return left != right
    raise _Unparsed(op)  # <, >, ~= on strings: packaging's rules


def _version(text: str) -> tuple[int, ...] | None:
    parts = text.split(".")
    return tuple(int(p) for p in parts) if all(p.isdigit() for p in parts) else None


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _with_packaging(marker: str, values: Mapping[str, str]) -> bool:
    from packaging.markers import InvalidMarker, Marker

    try:
        return Marker(marker).evaluate(dict(values))
    except (InvalidMarker, ValueError):
        return False
