"""Dataset groups: the shipped file, the lab's real files, every validation error, the script."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mimic_deployment import dataset_groups
from mimic_deployment.config.groups import DEFAULT_GROUPS_FILE, lint_groups_file, load_groups
from mimic_deployment.util.errors import UserError

REPO_ROOT = Path(__file__).resolve().parents[1]
# Copies of a lab's real groups files, kept in the repo so that any clone can run these tests.
LAB_GROUPS = REPO_ROOT / "tests" / "fixtures" / "lab-groups"
LAB_FILES = sorted(LAB_GROUPS.glob("*.yaml"))
SCRIPT = REPO_ROOT / "mimic_deployment" / "dataset_groups.py"

DISP = "Mimic-Robotics/mimic_displacement_to_handover_blue_block_"
NEW_HANDS = [DISP + "with_new_hands_v2", DISP + "with_new_hands_v3"]
MOBILE = "neryotw/mimic_mobile_bimanual_drift_v2_drift"


def drift(*numbers: int) -> list[str]:
    return [f"neryotw/bimanual_blue_block_handover_{n}_drift" for n in numbers]


ALL_DRIFT = drift(*range(1, 8), *range(14, 27))


def write(tmp_path: Path, text: str, name: str = "groups.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def load_error(path: Path) -> str:
    with pytest.raises(UserError) as info:
        load_groups(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    # the linter reports the same first problem the loader raises
    assert lint_groups_file(path)[0] == message
    return message


def scan_lab_file(path: Path) -> dict[str, list[str]]:
    """The expected members, read independently of the code under test: a plain line scan."""
    groups: dict[str, list[str]] = {}
    current: list[str] = []
    for line in path.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if match := re.match(r"^  (\S+):\s*$", line):
            current = groups.setdefault(match.group(1), [])
        elif match := re.match(r"^\s+- (\S+)", line):
            current.append(match.group(1))
    return groups


# -- the shipped file --

@pytest.mark.parametrize("name, count", [
    ("all_datasets", 27), ("displacement_only", 7), ("drift_only", 20), ("high_quality", 16),
    ("stationary", 20), ("most_recent", 10), ("new_hands", 2), ("old_hands", 25),
    ("displacement", 6), ("drift", 20), ("mobile", 1), ("demo", 2),
])
def test_shipped_group_counts(name, count):
    assert len(load_groups().get(name).datasets) == count


def test_shipped_members_and_order():
    config = load_groups()
    assert config.get("drift_only").datasets == tuple(ALL_DRIFT)
    assert config.get("stationary").datasets == tuple(ALL_DRIFT)
    assert config.get("new_hands").datasets == tuple(NEW_HANDS)
    assert list(config.get("high_quality").datasets) == NEW_HANDS + [MOBILE] + drift(*range(14, 27))
    assert list(config.get("most_recent").datasets) == [DISP + "v8"] + NEW_HANDS + drift(*range(20, 27))
    old = [DISP + v for v in ("v2", "v6", "v7", "v8")]
    assert list(config.get("old_hands").datasets) == old + ALL_DRIFT + [MOBILE]
    assert list(config.get("displacement_only").datasets) == old + NEW_HANDS + [MOBILE]
    assert set(config.get("all_datasets").datasets) == set(old + NEW_HANDS + ALL_DRIFT + [MOBILE])


def test_shipped_demo_group_is_local_and_others_are_not():
    config = load_groups()
    demo = config.get("demo")
    assert demo.local and demo.datasets == ("mimic-demo/demo_a", "mimic-demo/demo_b")
    assert "generated locally" in demo.description
    assert [n for n in config.names() if config.get(n).local] == ["demo"]
    assert all(config.get(n).description for n in config.names())


def test_shipped_file_lints_clean():
    assert lint_groups_file(DEFAULT_GROUPS_FILE) == []


def test_env_var_overrides_default_file(tmp_path, monkeypatch):
    path = write(tmp_path, "groups:\n  only:\n    - a/b\n")
    monkeypatch.setenv("DATASET_GROUPS_FILE", str(path))
    assert load_groups().names() == ["only"]
    assert load_groups(DEFAULT_GROUPS_FILE).get("new_hands")  # an explicit path still wins


# -- the lab's real files: must load unchanged --

def test_lab_fixtures_present():
    assert len(LAB_FILES) == 3, f"expected the lab groups files in {LAB_GROUPS}"


@pytest.mark.parametrize("path", LAB_FILES, ids=lambda p: p.name)
def test_lab_file_loads_with_members_in_file_order(path):
    expected = scan_lab_file(path)
    config = load_groups(path)
    assert config.names() == list(expected)
    for name, members in expected.items():
        assert list(config.get(name).datasets) == members, name
        assert config.get(name).description == "" and not config.get(name).local
    assert lint_groups_file(path) == []


def test_lab_file_counts_from_their_readme():
    eight = load_groups(LAB_GROUPS / "groups-2026-02-eight-groups.yaml")
    assert {n: len(eight.get(n).datasets) for n in eight.names()} == {
        "all_datasets": 27, "displacement_only": 6, "drift_only": 20, "high_quality": 15,
        "stationary": 20, "most_recent": 10, "new_hands": 2, "old_hands": 25}
    largest = load_groups(LAB_GROUPS / "groups-2026-03-largest.yaml")
    assert len(largest.names()) == 15
    assert max(len(largest.get(n).datasets) for n in largest.names()) == 38
    assert "blueO_full_VLFReeze" in largest
    latest = load_groups(LAB_GROUPS / "groups-2026-04-latest.yaml")
    assert len(latest.names()) == 7 and "Fix_stable_redx_3cam_15hz_32ac" in latest


# -- includes, resolution, suggestions --

def test_include_order_and_dedup(tmp_path):
    path = write(tmp_path, """
        groups:
          a: [x/1, x/2]
          b: [x/2, x/3]
          inc_first:
            include: [b, a]
            datasets: [x/4, x/1]
          ids_first:
            datasets: [x/4, x/1]
            include: [b, a]
          nested:
            include: [inc_first]
    """)
    config = load_groups(path)
    assert config.get("inc_first").datasets == ("x/2", "x/3", "x/1", "x/4")
    assert config.get("ids_first").datasets == ("x/4", "x/1", "x/2", "x/3")
    assert config.get("nested").datasets == config.get("inc_first").datasets
    assert config.resolve(["b", "a", "ids_first"]) == ["x/2", "x/3", "x/1", "x/4"]


def test_unknown_group_suggests_close_match():
    config = load_groups()
    with pytest.raises(UserError) as info:
        config.get("hig_quality")
    assert str(info.value) == (f"unknown dataset group 'hig_quality' in {DEFAULT_GROUPS_FILE} "
                               "(did you mean 'high_quality'? list them with --list-groups)")
    with pytest.raises(UserError, match="did you mean 'high_quality'"):
        config.resolve(["new_hands", "High_Quality"])
    with pytest.raises(UserError) as info:
        config.get("zzzz")
    assert "did you mean" not in str(info.value) and "--list-groups" in str(info.value)


# -- every validation error: one line, names file, group, line and fix --

ERROR_CASES = {
    "unknown_key": ("""
        groups:
          a:
            description: d
            datasets: [x/1]
            colour: red
        """, ["groups.a", "unknown key 'colour'", "allowed keys", "line 5"]),
    "empty_none": ("groups:\n  ok: [x/1]\n  a:\n", ["groups.a", "empty group", "line 3"]),
    "empty_list": ("groups:\n  a: []\n", ["groups.a", "empty group"]),
    "empty_mapping": ("groups:\n  a:\n    description: nothing here\n", ["groups.a", "empty group", "datasets:"]),
    "duplicate_member": ("""
        groups:
          a:
            - x/1
            - x/2
            - x/1
        """, ["groups.a", "lists 'x/1' twice", "line 5", "delete one"]),
    "unknown_include": ("""
        groups:
          high: [x/1]
          a:
            include: [hig]
        """, ["groups.a", "unknown group 'hig'", "did you mean 'high'?"]),
    "cycle": ("""
        groups:
          a: {include: [b]}
          b: {include: [a]}
        """, ["include cycle a -> b -> a", "remove one"]),
    "self_cycle": ("groups:\n  a: {datasets: [x/1], include: [a]}\n", ["include cycle a -> a"]),
    "id_without_namespace": ("groups:\n  a:\n    - justaname\n", ["groups.a", "not a dataset id: 'justaname'",
                                                                  "namespace/name", "line 3"]),
    "id_two_slashes": ("groups:\n  a:\n    - a/b/c\n", ["groups.a", "not a dataset id: 'a/b/c'"]),
    "id_not_text": ("groups:\n  a:\n    - 12\n", ["groups.a", "item 1 must be a dataset id, got 12"]),
    "id_empty_item": ("groups:\n  a:\n    - x/1\n    -\n", ["groups.a", "item 2 must be a dataset id, got None"]),
    "top_level_list": ("- x/1\n", ["expected a top-level 'groups:' mapping, got a list"]),
    "top_level_empty": ("# nothing\n", ["expected a top-level 'groups:' mapping, got an empty file"]),
    "groups_empty": ("groups:\n", ["groups:", "got nothing"]),
    "groups_list": ("groups:\n  - x/1\n", ["groups:", "got a list"]),
    "group_dedented_to_top": ("groups:\n  a:\n    - x/1\nb:\n  - x/2\n",
                              ["unexpected top-level key 'b'", "line 4", "indent it under 'groups:'"]),
    "conflict_start": ("groups:\n<<<<<<< HEAD\n  a: [x/1]\n", ["line 2", "merge-conflict marker '<<<<<<<'"]),
    "conflict_middle": ("groups:\n  a: [x/1]\n=======\n", ["line 3", "merge-conflict marker '======='"]),
    "conflict_end": ("groups:\n  a: [x/1]\n>>>>>>> feature\n", ["line 3", "merge-conflict marker '>>>>>>>'"]),
    "group_nested_as_key": ("""
        groups:
          a:
            b:
              - x/1
        """, ["groups.a", "unknown key 'b'", "line 3", "is group 'b' indented under 'a'?"]),
    "group_nested_in_list": ("""
        groups:
          a:
            - x/1
            - b:
              - x/2
        """, ["groups.a", "item 2 is a mapping ('b':)", "line 4", "indented inside this list"]),
    "key_inside_list": ("""
        groups:
          a:
            - x/1
            b:
              - x/2
        """, ["line 4", "invalid YAML", "indentation"]),
    "id_dedented_as_key": ("""
        groups:
          a:
            - x/1
          - x/2
        """, ["line 4", "invalid YAML", "indentation"]),
    "id_over_indented": ("""
        groups:
          a:
            - x/1
              - x/2
        """, ["groups.a", "not a dataset id: 'x/1 - x/2'", "two lines were joined", "line 3"]),
    "ids_without_dashes": ("groups:\n  a:\n    x/1\n    x/2\n", ["groups.a", "got the text 'x/1 x/2'", "'- '"]),
    "id_as_key": ("groups:\n  a:\n    x/1:\n", ["groups.a", "unknown key 'x/1'", "write it as '- x/1'"]),
    "id_as_group_name": ("groups:\n  a: [x/1]\n  x/2:\n", ["bad group name 'x/2'", "line 3", "'- x/2'"]),
    "duplicate_group_name": ("groups:\n  a: [x/1]\n  b: [x/2]\n  a: [x/3]\n",
                             ["groups.a", "defined twice (lines 2 and 4)", "keep only the last"]),
    "tab_indent": ("groups:\n  a:\n\t- x/1\n", ["line 3", "tab in indentation"]),
    "bad_local": ("groups:\n  a: {datasets: [x/1], local: maybe}\n", ["groups.a", "'local' must be bool"]),
    "local_mixed": ("""
        groups:
          demo: {datasets: [x/1], local: true}
          real: {datasets: [x/2], include: [demo]}
        """, ["groups.real", "includes 'demo' with local=True", "separate groups"]),
}


@pytest.mark.parametrize("text, expected", ERROR_CASES.values(), ids=ERROR_CASES.keys())
def test_validation_errors(tmp_path, text, expected):
    message = load_error(write(tmp_path, text))
    for part in expected:
        assert part in message, f"{part!r} not in {message!r}"


def test_lint_collects_every_problem(tmp_path):
    path = write(tmp_path, """
        groups:
          a:
          b: [x/1, x/1]
          c: {include: [nope]}
          d: [bad id]
    """)
    problems = lint_groups_file(path)
    assert len(problems) == 4
    assert {re.search(r" groups\.(\w):", p).group(1) for p in problems} == {"a", "b", "c", "d"}
    assert lint_groups_file(tmp_path / "missing.yaml")[0].endswith(
        "(pass an existing file with --config, or fix $DATASET_GROUPS_FILE)")


def test_lint_reports_every_conflict_marker(tmp_path):
    path = write(tmp_path, "groups:\n<<<<<<< HEAD\n  a: [x/1]\n=======\n  a: [x/2]\n>>>>>>> other\n")
    assert [re.search(r"line (\d+)", p).group(1) for p in lint_groups_file(path)] == ["2", "4", "6"]


# -- the resolver script --

def run_script(*args: str, cwd: Path | None = None, env: dict | None = None, module: bool = False):
    command = [sys.executable, "-m", "mimic_deployment.dataset_groups"] if module else [sys.executable, str(SCRIPT)]
    full_env = {**os.environ, **(env or {})}
    if module:
        full_env["PYTHONPATH"] = str(REPO_ROOT)
    else:
        full_env.pop("PYTHONPATH", None)  # run by path must find the package on its own
    return subprocess.run(command + list(args), capture_output=True, text=True, cwd=cwd, env=full_env, timeout=60)


def test_script_by_path_formats(tmp_path):
    listed = run_script("new_hands", "mobile", "--format", "list", cwd=tmp_path)
    assert listed.returncode == 0 and listed.stdout.splitlines() == NEW_HANDS + [MOBILE]
    as_json = run_script("high_quality", "--format", "json", cwd=tmp_path)
    assert json.loads(as_json.stdout) == list(load_groups().get("high_quality").datasets)
    cli = run_script("new_hands", "--format", "cli", cwd=tmp_path)
    assert cli.stdout == "[" + ",".join(f"'{i}'" for i in NEW_HANDS) + "]\n"


def test_script_as_module_and_list_groups(tmp_path):
    result = run_script("--list-groups", module=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line.split()[1] for line in result.stdout.splitlines()[1:]}
    assert rows["all_datasets"] == "27" and rows["old_hands"] == "25" and rows["demo"] == "2"
    assert "[local]" in result.stdout and "Latest recordings" in result.stdout


def test_script_config_and_env_var(tmp_path):
    lab = LAB_GROUPS / "groups-2026-04-latest.yaml"
    by_flag = run_script("ttt_3cam_15hz_32ac", "--config", str(lab))
    by_env = run_script("ttt_3cam_15hz_32ac", env={"DATASET_GROUPS_FILE": str(lab)})
    assert by_flag.stdout == by_env.stdout == "Mimic-Robotics/mimic_ttt_redx_15hz\nMimic-Robotics/mimic_ttt_blue_15hz\n"


@pytest.mark.parametrize("args, expected", [
    (["hig_quality"], "did you mean 'high_quality'?"),
    ([], "name at least one dataset group"),
    (["new_hands", "--format", "xml"], "invalid choice: 'xml'"),
    (["new_hands", "--config", "/nonexistent/groups.yaml"], "cannot read the groups file"),
    (["a", "--config", "{broken}"], "merge-conflict marker"),
])
def test_script_user_errors_are_one_line(tmp_path, args, expected):
    broken = write(tmp_path, "groups:\n<<<<<<< HEAD\n  a: [x/1]\n")
    result = run_script(*[str(broken) if a == "{broken}" else a for a in args], cwd=tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("error: ")
    assert expected in result.stderr and "Traceback" not in result.stderr


def test_main_in_process(capsys):
    assert dataset_groups.main(["new_hands", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == NEW_HANDS
    assert dataset_groups.main(["nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown dataset group 'nope'") and err.count("\n") == 1
    assert dataset_groups.main(["--help"]) == 0
    assert "--list-groups" in capsys.readouterr().out
    assert dataset_groups.main(["--list-groups", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["demo"]["local"] is True
