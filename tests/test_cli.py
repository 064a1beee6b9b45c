"""The documented commands as real processes (train_manager.sh, training_scripts/<policy>/train.sh,
dataset_groups.py). Expectations are literals from the reference
(/work/shared/reference/mimic-training-infrastructure.md), not values recomputed by the toolkit."""
from __future__ import annotations

import json
import re
import shlex
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import FAKE_TRAINER, REPO, TRAIN_MANAGER, run_cli

SCRIPTS = REPO / "mimic_deployment" / "training_scripts"
GROUPS_SCRIPT = REPO / "mimic_deployment" / "dataset_groups.py"
POLICIES = ("xvla", "pi05", "groot", "pi0", "act", "diffusion")
CONFIG = REPO / "mimic_deployment" / "config"
MACHINES = ("odin", "jupiter", "mathias")
REFERENCE_BATCH = {  # odin, jupiter, mathias
    "xvla": (8, 4, 4), "pi05": (2, 1, 1), "groot": (4, 2, 2),
    "pi0": (2, 1, 1), "act": (8, 6, 6), "diffusion": (8, 6, 6),
}
REFERENCE_STEPS = {"xvla": 20000, "pi05": 10000, "groot": 15000, "pi0": 10000, "act": 100000, "diffusion": 100000}
REFERENCE_GROUPS = {"all_datasets": 27, "displacement_only": 7, "drift_only": 20, "high_quality": 16,
                    "stationary": 20, "most_recent": 10, "new_hands": 2, "old_hands": 25}
MOBILE = "neryotw/mimic_mobile_bimanual_drift_v2_drift"
JSON_KEYS = {"name", "policy", "computer", "computer_reason", "group", "datasets", "batch_size", "steps",
             "save_freq", "num_gpus", "output_dir", "log_file", "repo_id", "argv", "env"}
HEAVY = ("torch", "lerobot", "numpy")


# ---------------------------------------------------------------- helpers

def outputs(env: dict) -> Path:
    return Path(env["MIMIC_OUTPUTS"])


def assert_nothing_created(env: dict) -> None:
    out = outputs(env)
    assert not out.exists() or not any(out.rglob("*")), sorted(map(str, out.rglob("*")))


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


def plans_json(env: dict, *args: str, script: Path = TRAIN_MANAGER, **extra_env) -> list[dict]:
    args = list(args)
    cut = args.index("--") if "--" in args else len(args)  # after `--` everything goes to lerobot-train
    result = run_cli(env, *args[:cut], "--dry-run", "--json", *args[cut:], script=script, **extra_env)
    plans = json.loads(ok(result))
    assert_nothing_created(env)
    return plans


def one_plan(env: dict, *args: str, **extra_env) -> dict:
    plans = plans_json(env, *args, **extra_env)
    assert len(plans) == 1
    return plans[0]


def flag_values(argv: list[str]) -> dict[str, str]:
    return dict(a[2:].split("=", 1) for a in argv if a.startswith("--") and "=" in a)


def assert_user_error(result: subprocess.CompletedProcess, env: dict, *needles: str) -> str:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert_nothing_created(env)
    return lines[0]


def table_rows(text: str) -> tuple[list[str], list[list[str]]]:
    """A table printed by render.table: header, dashes, rows (columns two spaces apart)."""
    lines = [line for line in text.splitlines() if line.strip()]
    header = re.split(r"\s{2,}", lines[0].strip())
    assert set(lines[1].replace(" ", "")) == {"-"}
    rows = [re.split(r"\s{2,}", line.strip()) for line in lines[2:] if not line.startswith("(")]
    return header, rows


def commands_of(text: str) -> dict[str, str]:
    """run name -> the command block printed under it by --dry-run."""
    out, name, lines = {}, None, text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line and not line.startswith(" ") and not line.startswith("("):
            name = line.strip()
        if line.strip() == "command:":
            block = []
            i += 1
            while i < len(lines) and lines[i].startswith("    "):
                block.append(lines[i])
                i += 1
            out[name] = "\n".join(block)
            continue
        i += 1
    return out


def sections_of(text: str) -> dict[str, str]:
    """run name -> its block of rows (up to the command)."""
    out, name = {}, None
    for line in text.splitlines():
        if line and not line.startswith(" ") and not line.startswith("("):
            name = line.strip()
            out[name] = ""
        elif name:
            out[name] += line + "\n"
    return out


def row(section: str, key: str) -> str:
    match = re.search(rf"^  {re.escape(key)}\s+(.*)$", section, re.M)
    assert match, (key, section)
    return match.group(1)


def imported_modules(stderr: str) -> set[str]:
    names = set()
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name != "package":  # the header line
                names.add(name)
    return names


# ---------------------------------------------------------------- help and listings

def test_help(toolkit_env):
    out = ok(run_cli(toolkit_env, "--help"))  # the train flags users know, then every other command
    for command in ("status", "logs", "stop", "resume", "history", "check", "datasets"):
        assert re.search(rf"^\s+{command}\s", out, re.M), command
    assert "--policy" in out and "--dataset-group" in out and "--dry-run" in out
    train_help = ok(run_cli(toolkit_env, "train", "--help"))
    for flag in ("--policy", "--dataset-group", "--tag", "--batch-size", "--steps", "--save-freq",
                 "--num-workers", "--num-gpus", "--computer", "--hf-org", "--dry-run", "--json",
                 "--list-groups", "--list-policies", "BATCH_SIZE", "DATASET_GROUP", "COMPUTER"):
        assert flag in train_help, flag
    assert_nothing_created(toolkit_env)


def test_policy_script_help(toolkit_env):
    out = ok(run_cli(toolkit_env, "--help", script=SCRIPTS / "xvla" / "train.sh"))
    assert "--dataset-group" in out and "--dry-run" in out


def test_list_groups_matches_reference(toolkit_env):
    header, rows = table_rows(ok(run_cli(toolkit_env, "--list-groups")))
    assert header[:2] == ["GROUP", "DATASETS"]
    counts = {r[0]: int(r[1]) for r in rows}
    for group, count in REFERENCE_GROUPS.items():
        assert counts[group] == count, group
    assert_nothing_created(toolkit_env)


def test_list_groups_from_groups_file(toolkit_env, tmp_path):
    groups = tmp_path / "g.yaml"
    groups.write_text("groups:\n  mine:\n    - a/b\n    - c/d\n")
    header, rows = table_rows(ok(run_cli(toolkit_env, "--list-groups", DATASET_GROUPS_FILE=str(groups))))
    assert rows == [["mine", "2"]]
    header, rows = table_rows(ok(run_cli(toolkit_env, "--list-groups", "--groups-file", str(groups))))
    assert [r[0] for r in rows] == ["mine"]


@pytest.mark.parametrize("here", ["jupiter", "odin"])
def test_list_policies_columns(toolkit_env, here):
    header, rows = table_rows(ok(run_cli(toolkit_env, "--list-policies", COMPUTER=here)))
    for machine in MACHINES:
        assert machine in header
    assert f"HERE ({here})" in header
    by_policy = {r[0]: dict(zip(header, r)) for r in rows}
    assert set(by_policy) == set(yaml.safe_load((CONFIG / "policies.yaml").read_text())["policies"])
    assert set(POLICIES) < set(by_policy)  # the reference's six, and smolvla, pi0_fast and the variants
    for policy, sizes in REFERENCE_BATCH.items():
        for machine, size in zip(MACHINES, sizes):
            assert by_policy[policy][machine] == str(size), (policy, machine)
        assert by_policy[policy][f"HERE ({here})"] == str(sizes[MACHINES.index(here)])
        assert by_policy[policy]["STEPS"] == str(REFERENCE_STEPS[policy])
    # priority order: xvla and pi05 first, act and diffusion last (reference "Training Priority Order")
    order = [r[0] for r in rows]
    assert set(order[:2]) == {"xvla", "pi05"} and set(order[-2:]) == {"act", "diffusion"}


def test_list_policies_computer_flag_beats_env(toolkit_env):
    header, _ = table_rows(ok(run_cli(toolkit_env, "--list-policies", "--computer", "mathias", COMPUTER="odin")))
    assert "HERE (mathias)" in header and "HERE (odin)" not in header


def test_list_policies_here_detected(toolkit_env):
    header, _ = table_rows(ok(run_cli(toolkit_env, "--list-policies")))
    assert any(h.startswith("HERE (") for h in header)
    assert_nothing_created(toolkit_env)


# ---------------------------------------------------------------- dry-run

def test_dry_run_text_six_policies_two_groups(toolkit_env, tmp_path):
    # A space and a quote in the outputs path: the printed command must still paste back exactly.
    toolkit_env["MIMIC_OUTPUTS"] = str(tmp_path / "out dir's")
    dumper = tmp_path / "lerobot-train"
    dumper.write_text(f"#!{sys.executable}\nimport json, os, sys\n"
                      "with open(os.environ['DUMP'], 'a') as f:\n"
                      "    f.write(json.dumps({'argv': sys.argv,\n"
                      "                        'unbuffered': os.environ.get('PYTHONUNBUFFERED')}) + '\\n')\n")
    dumper.chmod(0o755)
    toolkit_env["LEROBOT_TRAIN"] = str(dumper)
    cli_args = ("--policy", ",".join(POLICIES), "--dataset-group", "high_quality,mobile")
    env = {**toolkit_env, "COMPUTER": "jupiter"}
    text = ok(run_cli(env, *cli_args, "--dry-run"))
    assert_nothing_created(env)
    plans = {p["name"]: p for p in plans_json(env, *cli_args)}
    sections, commands = sections_of(text), commands_of(text)
    expected_names = [f"{p}_jupiter_{g}" for p in POLICIES for g in ("high_quality", "mobile")]
    assert list(plans) == expected_names
    assert list(sections) == expected_names
    assert "12 run(s), nothing launched" in text
    out = Path(env["MIMIC_OUTPUTS"])
    for policy in POLICIES:
        for group, count in (("high_quality", 16), ("mobile", 1)):
            name = f"{policy}_jupiter_{group}"
            section = sections[name]
            assert "jupiter" in row(section, "machine") and "COMPUTER=jupiter" in row(section, "machine")
            datasets = row(section, "datasets")
            assert datasets.startswith(f"{count}")
            if count == 1:
                assert MOBILE in datasets
            else:
                assert "merged" in datasets
            assert row(section, "batch size") == f"{REFERENCE_BATCH[policy][1]} (machine jupiter)"
            assert row(section, "steps").startswith(f"{REFERENCE_STEPS[policy]} (policy {policy} default)")
            assert row(section, "output") == str(out / "train" / name)
            assert row(section, "log") == str(out / "logs" / f"{name}.log")
            assert row(section, "hub repo").startswith(f"Mimic-Robotics/{name} ")
            # the command parses back (as bash would: continuation lines joined) to the JSON argv
            tokens = shlex.split(commands[name].replace("\\\n", ""))
            assert tokens == ["PYTHONUNBUFFERED=1", *plans[name]["argv"]]
            assert plans[name]["argv"][0] == str(dumper)
    # and pasted into bash it runs with exactly those arguments
    dump = tmp_path / "dump.jsonl"
    for name in expected_names:
        subprocess.run(["bash", "-c", commands[name]], check=True, env={**env, "DUMP": str(dump)}, timeout=60)
    seen = [json.loads(line) for line in dump.read_text().splitlines()]
    assert [s["argv"] for s in seen] == [plans[n]["argv"] for n in expected_names]
    assert all(s["unbuffered"] == "1" for s in seen)


def test_dry_run_json_keys(toolkit_env):
    plans = plans_json(toolkit_env, "--policy", ",".join(POLICIES), "--dataset-group", "high_quality,demo")
    assert len(plans) == 12
    for plan in plans:
        assert set(plan) >= JSON_KEYS, JSON_KEYS - set(plan)
        assert plan["name"] == f"{plan['policy']}_{plan['computer']}_{plan['group']}"
        assert all(re.match(r"^--[A-Za-z0-9_.]+=", a) for a in plan["argv"][1:]
                   if plan["argv"][0].endswith("lerobot-train"))


def test_dry_run_detects_this_host(toolkit_env):
    plan = one_plan(toolkit_env, "--policy", "act", "--dataset-group", "demo")
    reason = plan["computer_reason"]
    assert socket.gethostname() in reason or "hostname" in reason
    assert plan["device"] in ("cpu", "cuda")


# ---------------------------------------------------------------- every override changes the plan

BASE = ("--policy", "groot", "--dataset-group", "mobile")


def _base(env):
    return one_plan(env, *BASE, COMPUTER="odin")


@pytest.mark.parametrize("var,value,check", [
    ("BATCH_SIZE", "3", lambda p: p["batch_size"] == 3 and p["sources"]["batch_size"] == "env BATCH_SIZE"
     and "--batch_size=3" in p["argv"]),
    ("NUM_WORKERS", "0", lambda p: p["num_workers"] == 0 and "--num_workers=0" in p["argv"]),
    ("STEPS", "123", lambda p: p["steps"] == 123 and "--steps=123" in p["argv"]),
    ("SAVE_FREQ", "50", lambda p: p["save_freq"] == 50 and "--save_freq=50" in p["argv"]),
    ("COMPUTER", "jupiter", lambda p: p["computer"] == "jupiter" and p["batch_size"] == 2
     and p["name"] == "groot_jupiter_mobile"),
    ("NUM_GPUS", "1", lambda p: p["num_gpus"] == 1 and p["sources"]["num_gpus"] == "env NUM_GPUS"),
    ("HF_ORG", "other-lab", lambda p: p["repo_id"] == "other-lab/groot_odin_mobile"
     and "--policy.repo_id=other-lab/groot_odin_mobile" in p["argv"]),
])
def test_env_override_changes_plan(toolkit_env, var, value, check):
    base = _base(toolkit_env)
    assert not check(base)
    plan = one_plan(toolkit_env, *BASE, **{"COMPUTER": "odin", var: value})
    assert check(plan), plan
    assert plan != base


def test_dataset_group_env(toolkit_env):
    plan = one_plan(toolkit_env, "--policy", "act", COMPUTER="odin", DATASET_GROUP="new_hands")
    assert plan["group"] == "new_hands" and len(plan["datasets"]) == 2
    plan = one_plan(toolkit_env, "--policy", "act", "--dataset-group", "mobile", COMPUTER="odin",
                    DATASET_GROUP="new_hands")
    assert plan["group"] == "mobile"  # flag beats env


@pytest.mark.parametrize("args,check", [
    (("--batch-size", "5"), lambda p: p["batch_size"] == 5 and p["sources"]["batch_size"] == "flag --batch-size"
     and "--batch_size=5" in p["argv"]),
    (("--steps", "77"), lambda p: p["steps"] == 77 and "--steps=77" in p["argv"]),
    (("--save-freq", "7"), lambda p: p["save_freq"] == 7 and "--save_freq=7" in p["argv"]),
    (("--num-workers", "3"), lambda p: p["num_workers"] == 3 and "--num_workers=3" in p["argv"]),
    (("--computer", "mathias"), lambda p: p["computer"] == "mathias" and p["batch_size"] == 2),
    (("--tag", "try2"), lambda p: p["name"] == "groot_odin_mobile_try2"
     and p["output_dir"].endswith("/train/groot_odin_mobile_try2") and p["repo_id"].endswith("_try2")),
    (("--hf-org", "flag-org"), lambda p: p["repo_id"] == "flag-org/groot_odin_mobile"),
    (("--num-gpus", "1"), lambda p: p["sources"]["num_gpus"] == "flag --num-gpus"),
])
def test_flag_override_changes_plan(toolkit_env, args, check):
    base = _base(toolkit_env)
    assert not check(base)
    plan = one_plan(toolkit_env, *BASE, *args, COMPUTER="odin")
    assert check(plan), plan


def test_flag_beats_env(toolkit_env):
    plan = one_plan(toolkit_env, *BASE, "--batch-size", "5", "--steps", "9", COMPUTER="odin",
                    BATCH_SIZE="3", STEPS="11")
    assert (plan["batch_size"], plan["steps"]) == (5, 9)


def test_extra_args_after_double_dash(toolkit_env):
    plan = one_plan(toolkit_env, *BASE, "--", "--log_freq=10", "--policy.optimizer_lr=1e-5", COMPUTER="odin")
    assert plan["argv"][-2:] == ["--log_freq=10", "--policy.optimizer_lr=1e-5"]


def test_extra_arg_collision_is_user_error(toolkit_env):
    result = run_cli(toolkit_env, *BASE, "--dry-run", "--", "--batch_size=3", COMPUTER="odin")
    assert_user_error(result, toolkit_env, "--batch_size", "--batch-size")


# ---------------------------------------------------------------- per-policy scripts, resolver script

def test_pi05_script_with_env(toolkit_env):
    plans = plans_json(toolkit_env, script=SCRIPTS / "pi05" / "train.sh", DATASET_GROUP="high_quality",
                       BATCH_SIZE="4")
    assert len(plans) == 1
    plan = plans[0]
    assert plan["policy"] == "pi05" and plan["group"] == "high_quality" and len(plan["datasets"]) == 16
    assert plan["batch_size"] == 4 and plan["sources"]["batch_size"] == "env BATCH_SIZE"
    assert "--batch_size=4" in plan["argv"]


@pytest.mark.parametrize("policy", POLICIES)
def test_every_policy_script(toolkit_env, policy):
    plan = plans_json(toolkit_env, "--dataset-group", "mobile", script=SCRIPTS / policy / "train.sh",
                      COMPUTER="jupiter")[0]
    assert plan["policy"] == policy and plan["batch_size"] == REFERENCE_BATCH[policy][1]


def test_policy_script_groot_on_jupiter(toolkit_env):
    plan = plans_json(toolkit_env, script=SCRIPTS / "groot" / "train.sh", COMPUTER="jupiter",
                      DATASET_GROUP="most_recent")[0]
    assert plan["name"] == "groot_jupiter_most_recent" and len(plan["datasets"]) == 10


def test_policy_given_twice_through_script(toolkit_env):
    result = run_cli(toolkit_env, "--policy", "xvla", "--dataset-group", "demo", "--dry-run",
                     script=SCRIPTS / "act" / "train.sh")
    assert_user_error(result, toolkit_env, "--policy")


def _python3_with_yaml() -> str:
    python3 = shutil.which("python3")
    if python3 and subprocess.run([python3, "-c", "import yaml"], capture_output=True).returncode == 0:
        return python3
    return sys.executable


def test_dataset_groups_script_list(toolkit_env):
    result = subprocess.run([_python3_with_yaml(), str(GROUPS_SCRIPT), "all_datasets", "--format", "list"],
                            env=toolkit_env, capture_output=True, text=True, cwd=REPO, timeout=60)
    lines = ok(result).splitlines()
    assert len(lines) == 27 == len(set(lines))
    assert all(re.match(r"^[\w.-]+/[\w.-]+$", line) for line in lines)
    assert MOBILE in lines


def test_dataset_groups_script_list_groups(toolkit_env):
    result = subprocess.run([_python3_with_yaml(), str(GROUPS_SCRIPT), "--list-groups"], env=toolkit_env,
                            capture_output=True, text=True, cwd=REPO, timeout=60)
    out = ok(result)
    for group, count in REFERENCE_GROUPS.items():
        assert re.search(rf"^{group}\s+{count}\b", out, re.M), group


# ---------------------------------------------------------------- bad inputs

CONFLICT = "groups:\n  a:\n<<<<<<< HEAD\n    - x/y\n=======\n    - x/z\n>>>>>>> other\n"


@pytest.mark.parametrize("dry_run", [True, False], ids=["dry-run", "launch"])
@pytest.mark.parametrize("args,env,needles", [
    (("--policy", "actt", "--dataset-group", "demo"), {}, ("'actt'", "did you mean 'act'")),
    (("--policy", "act", "--dataset-group", "high_qualty"), {}, ("'high_qualty'", "high_quality")),
    (("--policy", "act", "--dataset-group", "demo"), {"BATCH_SIZE": "abc"}, ("BATCH_SIZE",)),
    (("--policy", "act", "--dataset-group", "demo"), {"BATCH_SIZE": "0"}, ("BATCH_SIZE",)),
    (("--policy", "act", "--dataset-group", "demo"), {"BATCH_SIZE": "-3"}, ("BATCH_SIZE",)),
    (("--policy", "act", "--dataset-group", "demo"), {"STEPS": "1.5"}, ("STEPS",)),
    (("--policy", "act", "--dataset-group", "demo"), {"NUM_WORKERS": "-1"}, ("NUM_WORKERS",)),
    (("--policy", "groot", "--dataset-group", "demo"), {"NUM_GPUS": "5", "COMPUTER": "odin"}, ("NUM_GPUS", "odin")),
    (("--policy", "act", "--dataset-group", "demo"), {"COMPUTER": "saturn"}, ("saturn",)),
    (("--policy", "act", "--dataset-group", "demo", "--batch-size", "x"), {}, ("--batch-size",)),
    (("--policy", "act", "--dataset-group", "demo", "--tag", "a b"), {}, ("tag",)),
    (("--policy", "act", "--dataset-group", "a"), {"DATASET_GROUPS_FILE": "CONFLICT"}, ("merge-conflict",)),
    (("--policy", "act,act", "--dataset-group", "demo"), {}, ("twice",)),
    (("--policy", "act"), {}, ("dataset group",)),
    (("--policy", "act", "--dataset-group", "demo", "--no-such-flag"), {}, ("--no-such-flag",)),
    # no abbreviations: `--step` is not --steps, and `--dataset` names no flag (not an "ambiguous" one)
    (("--policy", "act", "--dataset-group", "demo", "--step", "5"), {}, ("unrecognized", "--step 5")),
    (("--policy", "act", "--dataset", "demo"), {}, ("unrecognized", "--dataset demo")),
    (("--policy", "act", "--dataset-group", "demo", "--launch", "slurm"), {}, ("unrecognized", "--launch")),
])
def test_bad_input_is_one_line_exit_2(toolkit_env, tmp_path, args, env, needles, dry_run):
    env = dict(env)
    if env.get("DATASET_GROUPS_FILE") == "CONFLICT":
        conflict = tmp_path / "conflict.yaml"
        conflict.write_text(CONFLICT)
        env["DATASET_GROUPS_FILE"] = str(conflict)
    # Without --dry-run this is the launch path: the fake trainer stands in, in case it ever got that far.
    result = run_cli(toolkit_env, *args, *(["--dry-run"] if dry_run else []),
                     **{"LEROBOT_TRAIN": str(FAKE_TRAINER), **env})
    assert_user_error(result, toolkit_env, *needles)


def test_json_without_dry_run(toolkit_env):
    result = run_cli(toolkit_env, "--policy", "act", "--dataset-group", "demo", "--json",
                     LEROBOT_TRAIN=str(FAKE_TRAINER))
    assert_user_error(result, toolkit_env, "--json", "--dry-run")


def test_conflicted_groups_file_breaks_list_groups_cleanly(toolkit_env, tmp_path):
    conflict = tmp_path / "conflict.yaml"
    conflict.write_text(CONFLICT)
    result = run_cli(toolkit_env, "--list-groups", DATASET_GROUPS_FILE=str(conflict))
    assert_user_error(result, toolkit_env, str(conflict), "line 3")


def test_dataset_groups_script_takes_no_abbreviation(toolkit_env):
    result = subprocess.run([sys.executable, str(GROUPS_SCRIPT), "demo", "--form", "json"], env=toolkit_env,
                            capture_output=True, text=True, cwd=REPO, timeout=60)
    assert_user_error(result, toolkit_env, "unrecognized", "--form")


def test_dataset_groups_script_unknown_group(toolkit_env):
    result = subprocess.run([sys.executable, str(GROUPS_SCRIPT), "nope"], env=toolkit_env, capture_output=True,
                            text=True, cwd=REPO, timeout=60)
    assert_user_error(result, toolkit_env, "nope")


# ---------------------------------------------------------------- the fast path stays light

@pytest.mark.parametrize("args", [
    ("--policy", "act,xvla,pi05,pi0,groot,diffusion", "--dataset-group", "high_quality,demo", "--dry-run"),
    ("--list-groups",),
    ("--list-policies",),
    ("--policy", "act,xvla,pi05,pi0,groot,diffusion", "--dataset-group", "high_quality,demo", "--dry-run",
     "--json"),
])
def test_no_heavy_imports(toolkit_env, args):
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "mimic_deployment", *args], env=toolkit_env,
                            capture_output=True, text=True, cwd=REPO, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    modules = imported_modules(result.stderr)
    assert "mimic_deployment.planning.plan" in modules or "mimic_deployment.cli.listing" in modules  # it did measure
    heavy = sorted(m for m in modules if m.split(".")[0] in HEAVY)
    assert not heavy, heavy
    assert_nothing_created(toolkit_env)
