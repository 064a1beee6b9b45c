"""How a setting is declared (flag, env var, parser, help, where its default comes from) and the one
rule that resolves it: flag > env var > the given fallbacks, each value with a typed Source.

Every resolved value comes with a typed `Source`; its str() is the text the dry-run shows, and
logic reads its `kind` and `name`, never the text. Standard library only (the CLI fast path).
"""
from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from mimic_deployment.util.errors import UserError
from mimic_deployment.util.values import parse_bool, parse_count

Parser = Callable[[str, str], Any]  # (raw text, where it was given) -> value; UserError when bad


class SourceKind(Enum):
    FLAG = "flag"
    ENV = "env"
    MACHINE = "machine"
    POLICY = "policy"
    LAB = "lab"
    ROBOT = "robot config"
    RULE = "rule"  # computed from the facts: a token is present, the machine has no GPU, ...
    DEFAULT = "default"
    RECORDED = "recorded"  # read back from a run record: shown, never reasoned about


@dataclass(frozen=True)
class Source:
    """Where a value came from. `text` is what the dry-run prints; `name` the flag or env var set."""
    kind: SourceKind
    text: str
    name: str = ""

    def __str__(self) -> str:
        return self.text

    @property
    def from_user(self) -> bool:
        return self.kind in (SourceKind.FLAG, SourceKind.ENV)

    @classmethod
    def recorded(cls, text: object) -> Source:
        return cls(SourceKind.RECORDED, str(text))


def text(raw: str, where: str) -> str:
    return raw


def count(minimum: int) -> Parser:
    """An integer >= minimum (util.values.parse_count's message)."""
    return lambda raw, where: parse_count(raw, where, minimum)


def boolean(raw: str, where: str) -> bool:
    return parse_bool(raw, where)


def seconds(raw: str, where: str) -> int | float:
    """A positive, finite number of seconds; whole numbers stay int (LeRobot prints them so)."""
    try:
        number = float(str(raw).strip())
    except ValueError:
        number = -1.0
    if not number > 0 or math.isinf(number):
        raise UserError(f"{where}={raw!r} is not a positive number of seconds")
    return int(number) if number.is_integer() else number


@dataclass(frozen=True)
class Setting:
    name: str
    flag: str | None
    env: str | None
    parse: Parser = text
    help: str = ""
    default_from: str = ""  # where the value comes from when neither flag nor env var is given
    default: Any = None  # a fixed default value (DEFAULT source) after every fallback
    metavar: str | None = None
    off_flag: str | None = None  # on/off settings: the flag that turns it off (--no-push-to-hub)
    plain_flag_source: bool = False  # the source reads "flag", not "flag --x" (eval-robot's records)
    both_in_errors: bool = False  # errors name "--flag/ENV" together (eval-robot: env-driven scripts)

    def _where(self, given: str | None) -> str:
        if self.both_in_errors and self.flag and self.env:
            return f"{self.flag}/{self.env}"
        return given or self.name

    def given(self, flag_value: Any, env: Mapping[str, str]) -> tuple[Any, Source] | None:
        """The value the user gave (flag, else env var; a blank env var is unset), parsed; or None."""
        if flag_value is not None:
            source = Source(SourceKind.FLAG, "flag" if self.plain_flag_source else f"flag {self.flag}",
                            self.flag or "")
            if isinstance(flag_value, bool):  # on/off flags are already parsed by argparse
                return flag_value, source
            return self.parse(flag_value, self._where(self.flag)), source
        raw = env.get(self.env, "") if self.env else ""
        if str(raw).strip():
            return self.parse(str(raw).strip(), self._where(self.env)), Source(SourceKind.ENV, f"env {self.env}",
                                                                                 self.env or "")
        return None

    def resolve(self, flag_value: Any, env: Mapping[str, str],
                *fallbacks: tuple[Any, Source]) -> tuple[Any, Source]:
        """flag > env var > the first fallback whose value is not None > the default."""
        given = self.given(flag_value, env)
        if given is not None:
            return given
        for value, source in fallbacks:
            if value is not None:
                return value, source
        return self.default, Source(SourceKind.DEFAULT, "default")


def table(*settings: Setting) -> dict[str, Setting]:
    return {s.name: s for s in settings}


def add_flags(group: Any, settings: Iterable[Setting]) -> None:
    """argparse flags of `settings` (dest = the setting's name), on a parser or an argument group."""
    for s in settings:
        if s.flag is None:
            continue
        if s.off_flag:
            group.add_argument(s.flag, dest=s.name, action="store_const", const=True, help=s.help)
            group.add_argument(s.off_flag, dest=s.name, action="store_const", const=False)
        else:
            group.add_argument(s.flag, dest=s.name, metavar=s.metavar, help=s.help)


def flag_values(args: argparse.Namespace, settings: Mapping[str, Setting]) -> dict[str, Any]:
    """What the user gave on the command line for each setting (None: not given)."""
    return {name: getattr(args, name, None) for name in settings}
