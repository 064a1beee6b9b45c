"""Loading and validating the YAML config files (policies, machines, groups, cameras).

Every problem becomes a UserError naming the file, the key and the fix.
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from mimic_deployment.util.errors import UserError

CONFIG_DIR = Path(__file__).resolve().parent  # the YAML files live beside the code that loads them


def _loader():
    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C loader is ~10x faster


def read_text(path: Path) -> str:
    """A config file's text. Not UTF-8: one UserError naming the file, the line and the byte offset
    (OSError passes: each caller words a missing file its own way)."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise UserError(f"{path}: line {line}: not UTF-8 text (byte {data[exc.start]:#04x} at offset {exc.start})",
                        hint="save the file as UTF-8") from None


def load_yaml(path: Path) -> Any:
    try:
        text = read_text(path)
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        return yaml.load(text, Loader=_loader())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UserError(f"{path}:{where}: invalid YAML: {problem}") from None


class Section:
    """A mapping read from a config file, that knows where it came from for its errors."""

    def __init__(self, path: Path, where: str, data: Any):
        self.path, self.where = path, where
        if not isinstance(data, dict):
            self.fail(f"must be a mapping, got {type(data).__name__}")
        self.data: dict = data

    def fail(self, problem: str, fix: str | None = None) -> None:
        where = f" {self.where}:" if self.where else ""
        raise UserError(f"{self.path}:{where} {problem}", hint=fix)

    def check_keys(self, required: Iterable[str] = (), optional: Iterable[str] = ()) -> None:
        required, allowed = set(required), set(required) | set(optional)
        unknown = sorted(set(self.data) - allowed)
        if unknown:
            self.fail(f"unknown key {unknown[0]!r}", f"allowed keys: {', '.join(sorted(allowed))}")
        missing = sorted(required - set(self.data))
        if missing:
            self.fail(f"missing key {missing[0]!r}", f"add '{missing[0]}:'")

    def get(self, key: str, kind: type | tuple, default: Any = None) -> Any:
        value = self.data.get(key, default)
        if value is not None and not isinstance(value, kind) or isinstance(value, bool) and kind is int:
            names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            self.fail(f"{key!r} must be {names}, got {value!r}")
        return value

    def positive_int(self, key: str, default: Any = None) -> Any:
        value = self.get(key, int, default)
        if value is not None and value <= 0:
            self.fail(f"{key!r} must be a positive integer, got {value}")
        return value

    def child(self, key: str, data: Any) -> Section:
        where = f"{self.where}.{key}" if self.where else str(key)
        return Section(self.path, where, data)
