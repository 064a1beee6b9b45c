"""Dataset groups: named lists of LeRobot dataset repo ids, read from a YAML file.

Which file: `load_groups(path)` when given a path (the CLI's `--config`), else the file named
by the env var DATASET_GROUPS_FILE, else `dataset_groups.yaml` next to this module.

Format (a superset of the lab's original file, which must keep loading unchanged):

    groups:
      lab_style:                 # a plain list of repo ids
        - namespace/name
      toolkit_style:             # or a mapping
        description: what it is for
        datasets: [namespace/name]
        include: [lab_style]     # other groups, expanded in place
        local: false             # true: generated locally, never downloaded

A mapping group's members are taken in the order its keys are written (`datasets:` then
`include:` puts its own ids first), included groups in their listed order, duplicates dropped.

Validated once, at load: each mistake is a one-line UserError naming the file, the line, the group
and the fix; `lint_groups_file` collects them all (`check --config FILE`). No heavy imports.
"""
from __future__ import annotations

import os
import re
from collections import namedtuple
from collections.abc import Iterator
from pathlib import Path

from mimic_deployment.config.loader import Section, load_yaml, read_text
from mimic_deployment.util.errors import UserError
from mimic_deployment.util.names import REPO_ID
from mimic_deployment.util.suggest import close_matches

DEFAULT_GROUPS_FILE = Path(__file__).resolve().parent.parent / "dataset_groups.yaml"
GROUPS_FILE_ENV = "DATASET_GROUPS_FILE"
GROUP_KEYS = ("description", "datasets", "include", "local")

_KEY_AT_LINE = re.compile(r"""^\s*(?:-\s+)?(['"]?)(.+?)\1\s*:(?:\s|$)""")  # `key:` / `- key:` lines
# Group names end up in run names and cache folder names.
_GROUP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")
_CONFLICT = re.compile(r"(<{7}|={7}|>{7}|\|{7})(?: |$)")
_KEY_LINE = re.compile(r"( *)(['\"]?)([^\s#'\"-][^:#'\"]*?)\2\s*:(?:\s|$)")
_ID_FIX = "dataset ids are 'namespace/name' (letters, digits, '_', '-', '.')"
_INDENT_FIX = ("check the indentation: group names 2 spaces under 'groups:', "
               "each dataset id on its own line as '    - namespace/name'")


def default_groups_path() -> Path:
    """$DATASET_GROUPS_FILE if set, else the dataset_groups.yaml shipped with the package."""
    override = os.environ.get(GROUPS_FILE_ENV)
    return Path(override).expanduser() if override else DEFAULT_GROUPS_FILE


class Group(namedtuple("Group", "name description datasets local")):
    """One group, includes already expanded: `datasets` is final, ordered and de-duplicated.

    name: str, description: str ('' in the lab format), datasets: tuple[str, ...],
    local: bool (generated locally by `python -m mimic_deployment datasets demo`, never downloaded).
    """

    __slots__ = ()


class GroupsConfig:
    """A validated groups file. Build it with load_groups()."""

    def __init__(self, path: Path, groups: dict[str, Group]):
        self.path, self._groups = path, groups

    def names(self) -> list[str]:
        """Group names in file order."""
        return list(self._groups)

    def __contains__(self, name: object) -> bool:
        return name in self._groups

    def get(self, name: str) -> Group:
        if name not in self._groups:
            hint = "list them with --list-groups"
            match = next(iter(close_matches(name, self.names())), None)
            raise UserError(f"unknown dataset group {name!r} in {self.path}",
                            hint=f"did you mean {match!r}? {hint}" if match else hint)
        return self._groups[name]

    def resolve(self, names: list[str]) -> list[str]:
        """Repo ids of several groups, in order, each id once."""
        if isinstance(names, str):  # a lone name would otherwise be read letter by letter
            names = [names]
        return _unique(repo_id for name in names for repo_id in self.get(name).datasets)


def load_groups(path: str | Path | None = None) -> GroupsConfig:
    """Load and validate a groups file (default: see default_groups_path). Raises UserError."""
    reader = _Reader(Path(path) if path is not None else default_groups_path())
    for problem in reader.problems():
        raise problem
    return reader.config()


def lint_groups_file(path: str | Path) -> list[str]:
    """Every problem in a groups file, one line each; [] when it loads."""
    return [str(problem) for problem in _Reader(Path(path)).problems()]


def _unique(items) -> list:
    return list(dict.fromkeys(items))


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class _Spec:
    """A group as written: its own ids and includes in the order of its keys."""

    def __init__(self, name: str, description: str, parts: list[tuple[str, list[str]]], local: bool):
        self.name, self.description, self.parts, self.local = name, description, parts, local

    def includes(self) -> list[str]:
        return [item for kind, items in self.parts if kind == "include" for item in items]


class _Reader:
    """Reads one groups file. problems() yields every problem as a UserError (text checks, then
    YAML, then each group, then includes); load_groups stops at the first, lint collects all."""

    def __init__(self, path: Path):
        self.path = path
        self.lines: list[str] = []
        self._key_lines: dict[str, list[int]] | None = None  # key -> its line numbers, built once
        self.specs: dict[str, _Spec] = {}
        self.declared: set = set()  # every group name, valid or not

    # -- messages and line numbers (only computed on the error path) --

    def err(self, where: str, problem: str, fix: str | None = None, line: int | None = None) -> UserError:
        at = f" line {line}:" if line else ""
        where = f" {where}:" if where else ""
        return UserError(f"{self.path}:{at}{where} {problem}", hint=fix)

    def line_of(self, pattern: str, start: int = 0) -> int | None:
        """1-based number of the first non-comment line at or after `start` matching `pattern`."""
        regex = re.compile(pattern)
        for number, line in enumerate(self.lines[start:], start + 1):
            if not line.lstrip().startswith("#") and regex.search(line):
                return number
        return None

    def key_line(self, key: object, start: int = 0) -> int | None:
        """The first line after `start` where `key:` is written (one pass over the file, once)."""
        if self._key_lines is None:
            self._key_lines = {}
            for number, line in enumerate(self.lines, 1):
                match = _KEY_AT_LINE.match(line)
                if match and not line.lstrip().startswith("#"):
                    self._key_lines.setdefault(match.group(2), []).append(number)
        return next((n for n in self._key_lines.get(str(key), ()) if n > start), None)

    def item_line(self, item: object, start: int = 0) -> int | None:
        return self.line_of(rf"^\s*-\s*['\"]?{re.escape(str(item))}['\"]?\s*(#|$)", start)

    # -- the checks --

    def problems(self) -> Iterator[UserError]:
        try:
            text = read_text(self.path)  # not UTF-8: a UserError, the one problem
        except OSError as exc:
            yield UserError(f"{self.path}: cannot read the groups file ({exc.strerror})",
                            hint=f"pass an existing file with --config, or fix ${GROUPS_FILE_ENV}")
            return
        self.lines = text.splitlines()
        markers = list(self._conflict_markers())
        yield from markers
        if markers:  # the YAML errors that follow would only be noise
            return
        yield from self._tabs()
        try:
            data = load_yaml(self.path)
        except UserError as exc:
            yield UserError(exc.message, hint=_INDENT_FIX)
            return
        groups = yield from self._top_level(data)
        if groups is None:
            return
        self.declared = set(groups)
        yield from self._duplicate_names()
        for name, raw in groups.items():
            yield from self._group(name, raw)
        yield from self._includes()

    def _conflict_markers(self) -> Iterator[UserError]:
        for number, line in enumerate(self.lines, 1):
            if _CONFLICT.match(line):
                yield self.err("", f"merge-conflict marker {line[:7]!r}", line=number,
                               fix="resolve the conflict: keep one side and delete the marker lines")

    def _tabs(self) -> Iterator[UserError]:
        for number, line in enumerate(self.lines, 1):
            if "\t" in line[: len(line) - len(line.lstrip())]:
                yield self.err("", "tab in indentation", "YAML indents with spaces only", number)

    def _top_level(self, data: object):
        if not isinstance(data, dict) or "groups" not in data:
            got = "an empty file" if data is None else f"a {type(data).__name__}"
            yield self.err("", f"expected a top-level 'groups:' mapping, got {got}",
                           "start the file with 'groups:' and indent each group under it")
            return None
        for key in data:
            if key != "groups":
                yield self.err("", f"unexpected top-level key {_short(key)}", line=self.key_line(key),
                               fix="if it is a group, indent it under 'groups:' like the others")
        groups = data["groups"]
        if not isinstance(groups, dict) or not groups:
            got = "nothing" if not groups else f"a {type(groups).__name__}"
            yield self.err("groups", f"must map group names to dataset ids, got {got}",
                           line=self.key_line("groups"), fix="indent 'name:' lines under 'groups:'")
            return None
        return groups

    def _duplicate_names(self) -> Iterator[UserError]:
        """YAML silently keeps the last of two equal keys: find repeated group names by text."""
        start = self.line_of(r"^groups\s*:")
        indent: int | None = None
        seen: dict[str, int] = {}
        for number, line in enumerate(self.lines[start or 0:], (start or 0) + 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            width = len(line) - len(line.lstrip(" "))
            if width == 0:
                break
            indent = width if indent is None else indent
            match = _KEY_LINE.match(line)
            if width == indent and match:
                name = match.group(3)
                if name in seen:
                    yield self.err(f"groups.{name}", f"defined twice (lines {seen[name]} and {number}); "
                                   "YAML would silently keep only the last", "rename one or merge them", number)
                seen.setdefault(name, number)

    def _group(self, name: object, raw: object) -> Iterator[UserError]:
        line = self.key_line(name)
        where = f"groups.{name}"
        if not isinstance(name, str) or not _GROUP_NAME.match(name):
            yield self._bad_name(name, line)
        elif raw is None or raw == [] or raw == {}:
            yield self.err(where, "empty group", line=line,
                           fix="list its dataset ids under it as '- namespace/name' lines, or delete it")
        elif isinstance(raw, list):
            ids = yield from self._ids(where, raw, line)
            self.specs[name] = _Spec(name, "", [("datasets", ids)], False)
        elif isinstance(raw, dict):
            yield from self._mapping(name, raw, line)
        elif isinstance(raw, str):
            yield self.err(where, f"must be a list of dataset ids, got the text {_short(raw)}", line=line,
                           fix="put each id on its own line starting with '- '")
        else:
            yield self.err(where, f"must be a list of dataset ids or a mapping, got {_short(raw)}", line=line,
                           fix=f"list ids as '- namespace/name' lines, or use keys {', '.join(GROUP_KEYS)}")

    def _bad_name(self, name: object, line: int | None) -> UserError:
        if isinstance(name, str) and REPO_ID.match(name):
            fix = f"this looks like a dataset id written as a group: write it as '- {name}' under a group"
        else:
            fix = "group names use letters, digits, '_', '-' and '.'"
        return self.err("groups", f"bad group name {_short(name)}", fix, line)

    def _mapping(self, name: str, raw: dict, line: int | None) -> Iterator[UserError]:
        where = f"groups.{name}"
        for key, value in raw.items():
            if key not in GROUP_KEYS:
                yield self._unknown_key(name, key, value, line)
                return
        section = Section(self.path, where, raw)
        try:  # Section raises; turn it into one collected problem
            description = section.get("description", str, "")
            local = section.get("local", bool, False)
            datasets = section.get("datasets", list, [])
            include = section.get("include", list, [])
        except UserError as exc:
            yield UserError(exc.message, hint=exc.hint or "see the format at the top of dataset_groups.yaml")
            return
        if not datasets and not include:
            yield self.err(where, "empty group: no 'datasets:' and no 'include:'", line=line,
                           fix="add 'datasets: [namespace/name]' or 'include: [other_group]', or delete it")
            return
        ids = yield from self._ids(where, datasets or [], line)
        included = yield from self._include_names(where, include or [], line)
        # members follow the order the keys are written in
        parts = [(key, ids if key == "datasets" else included) for key in raw if key in ("datasets", "include")]
        self.specs[name] = _Spec(name, description or "", parts, bool(local))

    def _unknown_key(self, name: str, key: object, value: object, line: int | None) -> UserError:
        where, key_line = f"groups.{name}", self.key_line(key, line or 0)
        if isinstance(key, str) and REPO_ID.match(key):
            fix = f"a dataset id written as a key: write it as '- {key}'"
        elif isinstance(value, (list, type(None))):
            fix = f"is group {key!r} indented under {name!r}? move '{key}:' to the column of '{name}:'"
        else:
            fix = f"allowed keys: {', '.join(GROUP_KEYS)}"
        return self.err(where, f"unknown key {_short(key)}", fix, key_line)

    def _ids(self, where: str, items: list, line: int | None):
        ids: list[str] = []
        for index, item in enumerate(items, 1):
            problem = self._bad_item(where, index, item, line)
            if problem:
                yield problem
            elif item in ids:
                first = self.item_line(item, line or 0)
                again = self.item_line(item, first or 0)
                yield self.err(where, f"lists {item!r} twice", "delete one of them", again or line)
            else:
                ids.append(item)
        return ids

    def _bad_item(self, where: str, index: int, item: object, line: int | None) -> UserError | None:
        if isinstance(item, dict):
            key = next(iter(item), None)
            return self.err(where, f"item {index} is a mapping ({_short(key)}:)", line=self.key_line(key, line or 0),
                            fix=f"is group {key!r} indented inside this list? move '{key}:' to the column of the "
                                "other group names, without '- '")
        if not isinstance(item, str):
            return self.err(where, f"item {index} must be a dataset id, got {_short(item)}", _ID_FIX, line)
        if not REPO_ID.match(item):
            joined = " " in item.strip()
            fix = ("ids hold no spaces; if two lines were joined, a line indented deeper than the '- ' "
                   "above continues it: align the '- '") if joined else _ID_FIX
            first = item.split()[0] if item.split() else item
            return self.err(where, f"not a dataset id: {_short(item)}", fix,
                            self.line_of(re.escape(first), line or 0) or line)
        return None

    def _include_names(self, where: str, include: list, line: int | None):
        names: list[str] = []
        for item in include:
            if not isinstance(item, str):
                yield self.err(where, f"include entries must be group names, got {_short(item)}", line=line,
                               fix="write include: [group_a, group_b]")
            elif item in names:
                yield self.err(where, f"includes {item!r} twice", "delete one of them", line)
            else:
                names.append(item)
        return names

    def _includes(self) -> Iterator[UserError]:
        for spec in self.specs.values():
            for other in spec.includes():
                yield from self._include_problem(spec, other)
        yield from self._cycles()

    def _include_problem(self, spec: _Spec, other: str) -> Iterator[UserError]:
        where, line = f"groups.{spec.name}", self.key_line(spec.name)
        if other not in self.specs and other in self.declared:
            return  # that group is broken and already reported
        if other not in self.specs:
            match = next(iter(close_matches(other, list(self.specs))), None)
            fix = f"did you mean {match!r}?" if match else "include only groups defined in this file"
            yield self.err(where, f"includes unknown group {other!r}", fix, line)
        elif self.specs[other].local != spec.local:
            yield self.err(where, f"local={spec.local} but includes {other!r} with local={self.specs[other].local}",
                           "locally generated and downloaded datasets go in separate groups", line)

    def _cycles(self) -> Iterator[UserError]:
        reported: set[frozenset] = set()
        for name in self.specs:
            cycle = self._cycle_from(name, [])
            if cycle and frozenset(cycle) not in reported:
                reported.add(frozenset(cycle))
                yield self.err(f"groups.{cycle[0]}", f"include cycle {' -> '.join(cycle)}",
                               "remove one of these includes", self.key_line(cycle[0]))

    def _cycle_from(self, name: str, stack: list[str]) -> list[str] | None:
        if name in stack:
            return stack[stack.index(name):] + [name]
        for other in self.specs[name].includes() if name in self.specs else ():
            cycle = self._cycle_from(other, stack + [name])
            if cycle:
                return cycle
        return None

    # -- the result (only after problems() yielded nothing) --

    def config(self) -> GroupsConfig:
        memo: dict[str, tuple[str, ...]] = {}
        groups = {name: Group(name, spec.description, self._expand(name, memo), spec.local)
                  for name, spec in self.specs.items()}
        return GroupsConfig(self.path, groups)

    def _expand(self, name: str, memo: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
        if name not in memo:
            members: list[str] = []
            for kind, items in self.specs[name].parts:
                for item in items:
                    members.extend(self._expand(item, memo) if kind == "include" else [item])
            memo[name] = tuple(_unique(members))
        return memo[name]
