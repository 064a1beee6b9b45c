"""plan.py, pure: Facts + RunRequest built by hand, no processes, no I/O beyond the config files.

Expected values are literals from the reference (docs: mimic-training-infrastructure.md) or read
from the YAML with a plain yaml.safe_load, never through the code under test.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from mimic_deployment.config.groups import DEFAULT_GROUPS_FILE, load_groups
from mimic_deployment.config.lab import load_lab
from mimic_deployment.config.machines import load_machines
from mimic_deployment.config.policies import load_policies
from mimic_deployment.host.gpus import GpuInfo
from mimic_deployment.planning.plan import Facts, RunRequest, build_plans, resume_argv
from mimic_deployment.util.errors import UserError

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "mimic_deployment" / "config"
LEROBOT_TRAIN = "/env/bin/lerobot-train"
ACCELERATE = "/env/bin/accelerate"
OUTPUTS = Path("/data/outputs")

POLICIES = ("xvla", "pi05", "groot", "pi0", "act", "diffusion")
# The reference's batch sizes per machine (odin, jupiter, mathias).
REFERENCE_BATCH = {
    "xvla": (8, 4, 4), "pi05": (2, 1, 1), "groot": (4, 2, 2),
    "pi0": (2, 1, 1), "act": (8, 6, 6), "diffusion": (8, 6, 6),
}
REFERENCE_STEPS = {"xvla": 20000, "pi05": 10000, "groot": 15000, "pi0": 10000, "act": 100000, "diffusion": 100000}
# Read independently of policies.py / machines.py: the raw YAML.
RAW_POLICIES = yaml.safe_load((CONFIG / "policies.yaml").read_text())["policies"]
RAW_MACHINES = yaml.safe_load((CONFIG / "machines.yaml").read_text())["machines"]
RAW_LAB = yaml.safe_load((CONFIG / "lab.yaml").read_text())
RAW_ENGINES = yaml.safe_load((CONFIG / "engines.yaml").read_text())
# The plans' engine: LEROBOT_TRAIN below has no LeRobot beside it, so the default dialect.
DEFAULT_DIALECT = RAW_ENGINES["engines"][RAW_ENGINES["default"]]
ALL_POLICIES = tuple(RAW_POLICIES)  # the six of the reference, the newer ones and the variants


def raw_policy(name: str) -> dict:
    """A policy's YAML entry with what it extends filled in (args merged), read without policies.py."""
    raw = dict(RAW_POLICIES[name])
    parent = raw.pop("extends", None)
    if parent is None:
        return raw
    merged = raw_policy(parent)
    args = {**(merged.get("args") or {}), **(raw.pop("args", None) or {})}
    return {**merged, **raw, "args": args}

HIGH_QUALITY_COUNT = 16  # reference table
MOBILE = "neryotw/mimic_mobile_bimanual_drift_v2_drift"  # the one member of `mobile`
KV = re.compile(r"^--[A-Za-z0-9_.]+=")


# ---------------------------------------------------------------- helpers

def make_facts(env=None, hostname="somewhere", gpus=None, **kw) -> Facts:
    return Facts(env=dict(env or {}), hostname=hostname, gpus=gpus, outputs=OUTPUTS,
                 lerobot_train=LEROBOT_TRAIN, accelerate=ACCELERATE, toolkit_commit="abc123", **kw)


def plan_all(request: RunRequest, facts: Facts, rename_maps=None):
    policies = load_policies()
    return build_plans(request, facts, policies=policies,
                       machines=load_machines(policy_names=tuple(policies)),
                       groups=load_groups(DEFAULT_GROUPS_FILE), lab=load_lab(), rename_maps=rename_maps or {})


def plan_one(policy="act", group="new_hands", env=None, hostname="somewhere", gpus=None, facts_kw=None,
             rename_maps=None, **request_kw):
    request = RunRequest(policies=(policy,), groups=(group,), **request_kw)
    plans = plan_all(request, make_facts(env, hostname, gpus, **(facts_kw or {})), rename_maps)
    assert len(plans) == 1
    return plans[0]


def gpu_list(*sizes: float, name: str = "NVIDIA Test") -> list[GpuInfo]:
    return [GpuInfo(index=i, name=name, memory_gb=s) for i, s in enumerate(sizes)]


def user_error(**kw) -> str:
    with pytest.raises(UserError) as info:
        plan_one(**kw)
    text = str(info.value)
    assert "\n" not in text
    return text


def flag_values(argv: list[str]) -> dict[str, str]:
    out = {}
    for arg in argv:
        if arg.startswith("--") and "=" in arg:
            key, value = arg[2:].split("=", 1)
            out[key] = value
    return out


# ---------------------------------------------------------------- reference values

@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("index,machine", [(0, "odin"), (1, "jupiter"), (2, "mathias")])
def test_reference_batch_sizes_per_machine(policy, index, machine):
    plan = plan_one(policy, computer=machine)
    assert plan.computer == machine
    assert plan.batch_size == REFERENCE_BATCH[policy][index]
    assert str(plan.sources["batch_size"]) == f"machine {machine}"
    assert flag_values(plan.argv)["batch_size"] == str(REFERENCE_BATCH[policy][index])


@pytest.mark.parametrize("policy", POLICIES)
def test_reference_default_steps(policy):
    plan = plan_one(policy, computer="odin")
    assert plan.steps == REFERENCE_STEPS[policy]
    assert str(plan.sources["steps"]) == f"policy {policy} default"
    assert plan.save_freq == RAW_POLICIES[policy]["save_freq"]
    assert flag_values(plan.argv)["steps"] == str(REFERENCE_STEPS[policy])


# ---------------------------------------------------------------- precedence

def test_batch_size_precedence_flag_env_machine_policy():
    # flag beats env beats machine
    plan = plan_one("act", computer="odin", env={"BATCH_SIZE": "5"}, flags={"batch_size": "3"})
    assert (plan.batch_size, str(plan.sources["batch_size"])) == (3, "flag --batch-size")
    plan = plan_one("act", computer="odin", env={"BATCH_SIZE": "5"})
    assert (plan.batch_size, str(plan.sources["batch_size"])) == (5, "env BATCH_SIZE")
    plan = plan_one("act", computer="odin")
    assert (plan.batch_size, str(plan.sources["batch_size"])) == (8, "machine odin")
    # an unknown host whose GPU is smaller than every known machine: the policy's own default
    plan = plan_one("act", gpus=gpu_list(7.6), hostname="tiny")
    assert (plan.batch_size, str(plan.sources["batch_size"])) == (RAW_POLICIES["act"]["batch_size"],
                                                                  "policy act default")
    # an empty env var counts as unset
    plan = plan_one("act", computer="odin", env={"BATCH_SIZE": ""})
    assert str(plan.sources["batch_size"]) == "machine odin"


@pytest.mark.parametrize("setting,flag,var", [
    ("steps", "--steps", "STEPS"), ("save_freq", "--save-freq", "SAVE_FREQ"),
])
def test_steps_and_save_freq_precedence(setting, flag, var):
    plan = plan_one("xvla", computer="jupiter", env={var: "777"}, flags={setting: "555"})
    assert (getattr(plan, setting), str(plan.sources[setting])) == (555, f"flag {flag}")
    assert flag_values(plan.argv)[setting] == "555"
    plan = plan_one("xvla", computer="jupiter", env={var: "777"})
    assert (getattr(plan, setting), str(plan.sources[setting])) == (777, f"env {var}")
    assert flag_values(plan.argv)[setting] == "777"
    plan = plan_one("xvla", computer="jupiter")
    assert (getattr(plan, setting), str(plan.sources[setting])) == (RAW_POLICIES["xvla"][setting],
                                                                    "policy xvla default")


def test_num_workers_precedence():
    plan = plan_one("act", computer="mathias", env={"NUM_WORKERS": "11"}, flags={"num_workers": "0"})
    assert (plan.num_workers, str(plan.sources["num_workers"])) == (0, "flag --num-workers")  # 0 is allowed
    plan = plan_one("act", computer="mathias", env={"NUM_WORKERS": "11"})
    assert (plan.num_workers, str(plan.sources["num_workers"])) == (11, "env NUM_WORKERS")
    plan = plan_one("act", computer="mathias")
    assert (plan.num_workers, str(plan.sources["num_workers"])) == (RAW_MACHINES["mathias"]["num_workers"],
                                                                    "machine mathias")
    # a host profiled from a GPU smaller than every machine has no machine value: the policy default
    plan = plan_one("act", hostname="tiny", gpus=gpu_list(7.6))
    assert str(plan.sources["num_workers"]) == "policy act default"
    assert plan.num_workers == (RAW_POLICIES["act"].get("num_workers") or 4)  # LeRobot's own default is 4
    assert flag_values(plan.argv)["num_workers"] == str(plan.num_workers)


# ---------------------------------------------------------------- machine detection

@pytest.mark.parametrize("via", ["env", "flag"])
def test_computer_env_and_flag(via):
    kw = {"env": {"COMPUTER": "jupiter"}} if via == "env" else {"computer": "jupiter"}
    plan = plan_one("xvla", hostname="odin", **kw)  # beats the hostname
    assert plan.computer == "jupiter"
    assert plan.computer_reason == ("COMPUTER=jupiter" if via == "env" else "--computer=jupiter")
    assert plan.device == "cuda"


def test_computer_flag_beats_env():
    plan = plan_one("act", env={"COMPUTER": "jupiter"}, computer="mathias")
    assert plan.computer == "mathias" and "--computer" in plan.computer_reason


def test_computer_name_is_case_insensitive_and_takes_aliases():
    assert plan_one("act", computer="ODIN").computer == "odin"
    assert plan_one("act", env={"COMPUTER": "ODIN-IEEE"}).computer == "odin"


@pytest.mark.parametrize("hostname", ["odin", "ODIN", "ODIN-IEEE", "odin-ieee", "odin.lab.example.org",
                                      "ODIN-IEEE.lab.example.org"])
def test_hostname_detection_case_insensitive_with_aliases(hostname):
    plan = plan_one("xvla", hostname=hostname, gpus=gpu_list(48.0))  # the name wins over the GPUs
    assert plan.computer == "odin"
    assert plan.batch_size == 8
    assert "hostname" in plan.computer_reason and hostname in plan.computer_reason


@pytest.mark.parametrize("hostname,machine", [("jupiter", "jupiter"), ("Mathias.lab", "mathias")])
def test_hostname_detection_other_machines(hostname, machine):
    assert plan_one("act", hostname=hostname).computer == machine


def test_unknown_host_24gb_card_takes_odin_sizes():
    gpus = gpu_list(23.6, name="NVIDIA GeForce RTX 4090")
    for policy in POLICIES:
        plan = plan_one(policy, hostname="gpubox.lab", gpus=gpus)
        assert plan.batch_size == REFERENCE_BATCH[policy][0], policy
        assert plan.computer == "gpubox"
        assert plan.device == "cuda"
    assert "gpubox.lab" in plan.computer_reason and "odin" in plan.computer_reason
    assert "NVML" in plan.computer_reason


def test_unknown_host_two_12gb_cards_takes_jupiter_mathias_sizes():
    gpus = gpu_list(11.7, 11.7, name="NVIDIA GeForce RTX 4070")
    for policy in POLICIES:
        plan = plan_one(policy, hostname="box2", gpus=gpus)
        assert plan.batch_size == REFERENCE_BATCH[policy][1] == REFERENCE_BATCH[policy][2], policy
    reason = plan.computer_reason
    assert "box2" in reason and ("jupiter" in reason or "mathias" in reason)
    assert "2 x" in reason


def test_unknown_host_mixed_cards_use_the_smallest():
    plan = plan_one("xvla", hostname="mixed", gpus=gpu_list(23.6, 11.7))
    assert plan.batch_size == REFERENCE_BATCH["xvla"][1]


def test_unknown_host_8gb_card_takes_policy_defaults():
    for policy in POLICIES:
        plan = plan_one(policy, hostname="small", gpus=gpu_list(7.8))
        assert plan.batch_size == RAW_POLICIES[policy]["batch_size"], policy
        assert str(plan.sources["batch_size"]) == f"policy {policy} default"
        assert plan.device == "cuda"
    assert "small" in plan.computer_reason and "smaller than every known machine" in plan.computer_reason


@pytest.mark.parametrize("gpus", [None, []])
def test_no_gpu_gives_cpu_profile(gpus):
    plan = plan_one("act", hostname="laptop", gpus=gpus)
    assert plan.computer == "cpu" and plan.device == "cpu"
    assert plan.num_gpus == 0
    assert flag_values(plan.argv)["policy.device"] == "cpu"
    assert plan.argv[0] == LEROBOT_TRAIN
    assert "laptop" in plan.computer_reason and "no NVIDIA GPU" in plan.computer_reason
    assert plan.batch_size == RAW_MACHINES["cpu"]["batch_sizes"]["act"]


def test_named_machine_device_is_cuda():
    assert flag_values(plan_one("act", computer="odin").argv)["policy.device"] == "cuda"


def test_unknown_computer_is_an_error():
    text = user_error(computer="saturn")
    assert "saturn" in text and "odin" in text  # names the known ones


# ---------------------------------------------------------------- bad values

@pytest.mark.parametrize("env,needle", [
    ({"BATCH_SIZE": "abc"}, "BATCH_SIZE"), ({"BATCH_SIZE": "0"}, "BATCH_SIZE"),
    ({"BATCH_SIZE": "-3"}, "BATCH_SIZE"), ({"STEPS": "1.5"}, "STEPS"), ({"SAVE_FREQ": "0"}, "SAVE_FREQ"),
    ({"NUM_WORKERS": "-1"}, "NUM_WORKERS"), ({"NUM_GPUS": "0"}, "NUM_GPUS"), ({"NUM_GPUS": "x"}, "NUM_GPUS"),
])
def test_bad_env_values(env, needle):
    text = user_error(computer="odin", env=env)
    assert needle in text and repr(next(iter(env.values()))) in text


@pytest.mark.parametrize("flags,needle", [
    ({"batch_size": "abc"}, "--batch-size"), ({"steps": "1.5"}, "--steps"), ({"num_workers": "-1"}, "--num-workers"),
])
def test_bad_flag_values(flags, needle):
    assert needle in user_error(computer="odin", flags=flags)


def test_bad_flag_errors_even_when_env_is_fine():
    assert "--batch-size" in user_error(computer="odin", env={"BATCH_SIZE": "4"}, flags={"batch_size": "0"})


def test_num_workers_zero_is_fine():
    assert plan_one(computer="odin", env={"NUM_WORKERS": "0"}).num_workers == 0


def test_num_gpus_more_than_machine_has():
    text = user_error(policy="groot", computer="odin", env={"NUM_GPUS": "5"})
    assert "NUM_GPUS=5" in text and "odin" in text
    text = user_error(policy="groot", hostname="box2", gpus=gpu_list(11.7, 11.7), flags={"num_gpus": "3"})
    assert "3" in text and "2 GPU" in text


@pytest.mark.parametrize("how", [{"env": {"NUM_GPUS": "1"}}, {"flags": {"num_gpus": "1"}}])
def test_num_gpus_on_cpu_profile(how):
    text = user_error(policy="act", hostname="laptop", gpus=[], **how)
    assert "cpu" in text and "GPU" in text


# ---------------------------------------------------------------- multi-GPU

def test_groot_two_gpus_uses_accelerate():
    plan = plan_one("groot", hostname="box2", gpus=gpu_list(11.7, 11.7))
    assert plan.num_gpus == 2
    assert plan.argv[:5] == [ACCELERATE, "launch", "--multi_gpu", "--num_processes=2", LEROBOT_TRAIN]
    assert all(KV.match(a) for a in plan.argv[5:])
    assert plan.batch_size == REFERENCE_BATCH["groot"][1]  # per process


@pytest.mark.parametrize("how,source", [({"env": {"NUM_GPUS": "1"}}, "env NUM_GPUS"),
                                        ({"flags": {"num_gpus": "1"}}, "flag --num-gpus")])
def test_num_gpus_1_is_not_overwritten_by_detection(how, source):
    plan = plan_one("groot", hostname="box2", gpus=gpu_list(11.7, 11.7), **how)
    assert plan.num_gpus == 1 and str(plan.sources["num_gpus"]) == source
    assert plan.argv[0] == LEROBOT_TRAIN
    assert ACCELERATE not in plan.argv and "--multi_gpu" not in plan.argv


def test_single_gpu_policy_on_two_gpu_host_stays_single():
    plan = plan_one("act", hostname="box2", gpus=gpu_list(11.7, 11.7))
    assert plan.num_gpus == 1 and plan.argv[0] == LEROBOT_TRAIN


# ---------------------------------------------------------------- names, repo ids, paths

def test_run_name_paths_and_repo_id():
    plan = plan_one("xvla", "high_quality", computer="odin")
    assert plan.name == "xvla_odin_high_quality"
    assert plan.output_dir == str(OUTPUTS / "train" / "xvla_odin_high_quality")
    assert plan.log_file == str(OUTPUTS / "logs" / "xvla_odin_high_quality.log")
    assert plan.repo_id == "Mimic-Robotics/xvla_odin_high_quality" == f"{RAW_LAB['hub_org']}/{plan.name}"
    v = flag_values(plan.argv)
    assert v["policy.repo_id"] == plan.repo_id
    assert v["output_dir"] == plan.output_dir and v["job_name"] == plan.name


def test_tag_in_name():
    plan = plan_one("act", "mobile", computer="jupiter", tag="lr3e-5.v2")
    assert plan.name == "act_jupiter_mobile_lr3e-5.v2"
    assert plan.repo_id.endswith("/act_jupiter_mobile_lr3e-5.v2")


@pytest.mark.parametrize("tag", ["has space", "slash/y", "-lead", "semi;colon", "ä"])
def test_bad_tag(tag):
    assert "tag" in user_error(computer="odin", tag=tag)


def test_hf_org_override():
    assert plan_one(computer="odin", env={"HF_ORG": "my-lab"}).repo_id == "my-lab/act_odin_new_hands"
    assert plan_one(computer="odin", env={"HF_ORG": "my-lab"}, hf_org="flag-org").repo_id == \
        "flag-org/act_odin_new_hands"
    assert plan_one(computer="odin").repo_id.startswith("Mimic-Robotics/")


# ---------------------------------------------------------------- push_to_hub, W&B

def test_push_to_hub_resolution():
    p = plan_one(computer="odin", push_to_hub=True)
    assert p.push_to_hub and flag_values(p.argv)["policy.push_to_hub"] == "true"
    p = plan_one(computer="odin", push_to_hub=False, facts_kw={"hf_token": True})
    assert not p.push_to_hub and flag_values(p.argv)["policy.push_to_hub"] == "false"
    p = plan_one(computer="odin", env={"PUSH_TO_HUB": "false"}, facts_kw={"hf_token": True})
    assert not p.push_to_hub and "PUSH_TO_HUB" in p.push_reason
    p = plan_one(computer="odin", env={"PUSH_TO_HUB": "yes"})
    assert p.push_to_hub and "PUSH_TO_HUB" in p.push_reason
    p = plan_one(computer="odin", facts_kw={"hf_token": True})
    assert p.push_to_hub and "token" in p.push_reason
    p = plan_one(computer="odin", env={"HF_HUB_OFFLINE": "1"}, facts_kw={"hf_token": True})
    assert not p.push_to_hub and "OFFLINE" in p.push_reason
    p = plan_one(computer="odin")
    assert not p.push_to_hub and "token" in p.push_reason
    # the repo id is always passed (LeRobot's validate() needs it when pushing)
    assert flag_values(p.argv)["policy.repo_id"] == p.repo_id


def test_push_to_hub_bad_env():
    assert "PUSH_TO_HUB" in user_error(computer="odin", env={"PUSH_TO_HUB": "maybe"})


def test_wandb_resolution():
    p = plan_one(computer="odin", wandb=True)
    v = flag_values(p.argv)
    assert p.wandb and v["wandb.enable"] == "true"
    assert v["wandb.project"] == RAW_LAB["wandb_project"] and v["wandb.notes"] == p.wandb_notes
    assert "odin" in p.wandb_notes and "act" in p.wandb_notes.lower()
    p = plan_one(computer="odin", wandb=False, facts_kw={"wandb_key": True})
    assert not p.wandb and flag_values(p.argv)["wandb.enable"] == "false"
    assert "wandb.project" not in flag_values(p.argv)
    p = plan_one(computer="odin", env={"WANDB_ENABLE": "0"}, facts_kw={"wandb_key": True})
    assert not p.wandb and "WANDB_ENABLE" in p.wandb_reason
    p = plan_one(computer="odin", facts_kw={"wandb_key": True})
    assert p.wandb and "key" in p.wandb_reason
    p = plan_one(computer="odin", env={"WANDB_MODE": "disabled"}, facts_kw={"wandb_key": True})
    assert not p.wandb and "disabled" in p.wandb_reason
    p = plan_one(computer="odin", env={"WANDB_MODE": "offline"})
    assert p.wandb and "offline" in p.wandb_reason
    p = plan_one(computer="odin")
    assert not p.wandb


# ---------------------------------------------------------------- datasets

def test_multi_dataset_group_is_merged():
    plan = plan_one("act", "high_quality", computer="odin")
    assert len(plan.datasets) == HIGH_QUALITY_COUNT
    assert plan.dataset["merge"] is True
    expected_repo = f"{RAW_LAB['merged_namespace']}/high_quality"
    v = flag_values(plan.argv)
    assert v["dataset.repo_id"] == expected_repo == plan.dataset["repo_id"]
    assert v["dataset.root"] == str(OUTPUTS / "runs" / plan.name / "dataset") == plan.dataset["root"]
    assert "[" not in v["dataset.repo_id"]  # LeRobot 0.4.4 rejects lists


def test_single_dataset_group_uses_that_id():
    plan = plan_one("act", "mobile", computer="odin")
    assert plan.datasets == [MOBILE]
    assert plan.dataset["merge"] is False
    assert flag_values(plan.argv)["dataset.repo_id"] == MOBILE


def test_unknown_group():
    assert "high_qualty" in user_error(group="high_qualty", computer="odin")


def test_dataset_group_from_env():
    facts = make_facts({"DATASET_GROUP": "mobile, new_hands", "COMPUTER": "odin"})
    plans = plan_all(RunRequest(policies=("act",)), facts)
    assert [p.group for p in plans] == ["mobile", "new_hands"]
    # the request's groups win over the env var
    plans = plan_all(RunRequest(policies=("act",), groups=("demo",)), facts)
    assert [p.group for p in plans] == ["demo"]


def test_no_policy_or_group():
    with pytest.raises(UserError):
        plan_all(RunRequest(groups=("demo",)), make_facts({"COMPUTER": "odin"}))
    with pytest.raises(UserError):
        plan_all(RunRequest(policies=("act",)), make_facts({"COMPUTER": "odin"}))


def test_unknown_policy_has_close_match():
    text = user_error(policy="xvlaa", computer="odin")
    assert "'xvlaa'" in text and "did you mean 'xvla'" in text


# ---------------------------------------------------------------- argv

@pytest.mark.parametrize("policy", ALL_POLICIES)
def test_argv_is_key_value_after_the_executable(policy):
    plan = plan_one(policy, "high_quality", computer="odin", wandb=True, push_to_hub=True,
                    rename_maps={"xvla": {"observation.images.front": "observation.images.image"}})
    assert plan.argv[0] == LEROBOT_TRAIN
    assert plan.argv[1:], plan.argv
    bad = [a for a in plan.argv[1:] if not KV.match(a)]
    assert not bad
    keys = [a.split("=", 1)[0] for a in plan.argv[1:]]
    assert len(keys) == len(set(keys)), "a flag emitted twice"
    v = flag_values(plan.argv)
    for key, value in (raw_policy(policy).get("args") or {}).items():  # the policy's own args, as YAML says
        if isinstance(value, (dict, list)):
            assert json.loads(v[key]) == value
        elif isinstance(value, bool):
            assert v[key] == ("true" if value else "false")
        elif value is None:
            assert v[key] == "null"
        else:
            assert v[key] == str(value)


@pytest.mark.parametrize("policy", ALL_POLICIES)
def test_policy_type_or_path(policy):
    raw = raw_policy(policy)
    v = flag_values(plan_one(policy, computer="odin").argv)
    base = DEFAULT_DIALECT["base_models"][raw["type"]] if raw.get("base_model") == "engine" else raw.get("base_model")
    if base and raw.get("base_model_flag", "policy.path") == "policy.path":
        assert v["policy.path"] == base and "policy.type" not in v
    else:
        assert v["policy.type"] == raw["type"] and "policy.path" not in v
        if base:
            assert v[raw["base_model_flag"]] == base


def test_base_model_override_flag_and_env():
    p = plan_one("xvla", computer="odin", env={"BASE_MODEL": "/models/env"})
    assert flag_values(p.argv)["policy.path"] == "/models/env" and str(p.sources["base_model"]) == "env BASE_MODEL"
    p = plan_one("xvla", computer="odin", env={"BASE_MODEL": "/models/env"}, base_model="/models/flag")
    assert flag_values(p.argv)["policy.path"] == "/models/flag" and str(p.sources["base_model"]) == "flag --base-model"
    p = plan_one("groot", computer="odin", base_model="/models/groot")
    v = flag_values(p.argv)
    assert v["policy.base_model_path"] == "/models/groot" and v["policy.type"] == "groot"
    # a from-scratch policy given a checkpoint fine-tunes it
    v = flag_values(plan_one("act", computer="odin", base_model="/ckpt/act").argv)
    assert v["policy.path"] == "/ckpt/act" and "policy.type" not in v


def test_rename_map_is_json():
    mapping = {"observation.images.front": "observation.images.image",
               "observation.images.left_wrist": "observation.images.image2"}
    v = flag_values(plan_one("xvla", computer="odin", rename_maps={"xvla": mapping}).argv)
    assert json.loads(v["rename_map"]) == mapping
    assert "rename_map" not in flag_values(plan_one("act", computer="odin", rename_maps={"xvla": mapping}).argv)


def test_extra_args_appended():
    extra = ("--policy.optimizer_lr=3e-5", "--log_freq=10")
    plan = plan_one("act", computer="odin", extra_args=extra)
    assert plan.argv[-2:] == list(extra)


@pytest.mark.parametrize("arg,needle", [
    ("--batch_size=3", "--batch-size"), ("--steps=9", "--steps"), ("--output_dir=/x", "--tag"),
    ("--policy.device=cpu", "--computer"), ("--dataset.repo_id=a/b", "batch"),
])
def test_extra_arg_colliding_with_generated_flag(arg, needle):
    text = user_error(computer="odin", extra_args=(arg,))
    assert arg.split("=")[0] in text
    if needle != "batch":
        assert needle in text


@pytest.mark.parametrize("arg", ["--log_freq", "log_freq=3", "-x=1"])
def test_extra_arg_must_be_key_value(arg):
    assert "--key=value" in user_error(computer="odin", extra_args=(arg,))


# ---------------------------------------------------------------- resume

def test_resume_argv_single_gpu():
    plan = plan_one("act", computer="odin")
    config = OUTPUTS / "train" / plan.name / "checkpoints" / "last" / "pretrained_model" / "train_config.json"
    assert resume_argv(plan) == [LEROBOT_TRAIN, f"--config_path={config}", "--resume=true"]
    assert resume_argv(plan, steps=50000)[-1] == "--steps=50000"


def test_resume_argv_multi_gpu_keeps_accelerate():
    plan = plan_one("groot", hostname="box2", gpus=gpu_list(11.7, 11.7))
    config = OUTPUTS / "train" / plan.name / "checkpoints" / "last" / "pretrained_model" / "train_config.json"
    assert resume_argv(plan, steps=7) == [ACCELERATE, "launch", "--multi_gpu", "--num_processes=2", LEROBOT_TRAIN,
                                          f"--config_path={config}", "--resume=true", "--steps=7"]


def test_resume_argv_round_trips_through_dict():
    from mimic_deployment.planning.plan import RunPlan

    plan = plan_one("xvla", computer="odin")
    again = RunPlan.from_dict(json.loads(json.dumps(plan.to_dict())))
    assert resume_argv(again) == resume_argv(plan)


# ---------------------------------------------------------------- several runs

def test_policies_times_groups_in_order():
    request = RunRequest(policies=("pi05", "act"), groups=("mobile", "new_hands"))
    names = [p.name for p in plan_all(request, make_facts({"COMPUTER": "odin"}))]
    assert names == ["pi05_odin_mobile", "pi05_odin_new_hands", "act_odin_mobile", "act_odin_new_hands"]


@pytest.mark.parametrize("policies,groups", [(("act", "act"), ("demo",)), (("act",), ("demo", "demo"))])
def test_same_run_twice_is_an_error(policies, groups):
    with pytest.raises(UserError) as info:
        plan_all(RunRequest(policies=policies, groups=groups), make_facts({"COMPUTER": "odin"}))
    assert "act_odin_demo" in str(info.value)


def test_plan_is_pure_and_deterministic():
    request = RunRequest(policies=("xvla", "groot"), groups=("high_quality",))
    facts = make_facts({"COMPUTER": "odin"})
    first = [p.to_dict() for p in plan_all(request, facts)]
    second = [p.to_dict() for p in plan_all(request, facts)]
    assert first == second
    assert not OUTPUTS.exists()


@pytest.mark.parametrize("value,offline", [("1", True), ("TRUE", True), ("yes", True), ("0", False),
                                           ("false", False), ("", False)])
def test_hf_hub_offline_read_like_huggingface_hub(value, offline):
    """huggingface_hub: 1/ON/YES/TRUE mean offline; anything else, e.g. "false", means online."""
    plan = plan_one("act", "mobile", computer="odin", env={"HF_HUB_OFFLINE": value}, facts_kw={"hf_token": True})
    assert plan.push_to_hub is (not offline)
    assert plan.dataset["online"] is (not offline)


def test_local_group_is_never_online():
    assert plan_one("act", "demo", computer="odin").dataset["online"] is False


@pytest.mark.parametrize("policy,arg", [("act", "--policy.path=/ckpt"), ("xvla", "--policy.type=xvla"),
                                        ("act", "--policy.type=diffusion"), ("groot", "--policy.path=/x")])
def test_extra_policy_path_or_type_collides_with_either(policy, arg):
    """LeRobot rejects --policy.path together with --policy.type: the plan always sets one of them."""
    text = user_error(policy=policy, computer="odin", extra_args=(arg,))
    assert arg.split("=")[0] in text and "--base-model" in text


def test_multi_gpu_command_text_parses_back():
    import shlex

    from mimic_deployment.planning.render import dry_run_text

    plan = plan_one("groot", "high_quality", hostname="box2", gpus=gpu_list(11.7, 11.7), tag="a.b",
                    extra_args=("--policy.optimizer_lr=1e-5",))
    text = dry_run_text(plan)
    command = text.split("  command:\n", 1)[1]
    assert shlex.split(command.replace("\\\n", "")) == ["PYTHONUNBUFFERED=1", *plan.argv]
    assert "box2" in text and "2 (policy groot: all GPUs of box2)" in text


# ---------------------------------------------------------------- typed sources, records, the dataset spec

def test_sources_are_typed_and_logic_reads_their_kind():
    from mimic_deployment.util.settings import SourceKind

    p = plan_one(computer="odin", flags={"steps": "9"}, env={"BATCH_SIZE": "5"})
    kinds = {k: p.sources[k].kind for k in ("steps", "batch_size", "num_workers", "save_freq")}
    assert kinds == {"steps": SourceKind.FLAG, "batch_size": SourceKind.ENV, "num_workers": SourceKind.MACHINE,
                     "save_freq": SourceKind.POLICY}
    assert (p.sources["steps"].name, p.sources["batch_size"].name) == ("--steps", "BATCH_SIZE")
    assert p.sources["steps"].from_user and not p.sources["num_workers"].from_user
    # in the record (and --dry-run --json) each source is today's text
    assert p.to_dict()["sources"]["steps"] == "flag --steps"
    assert json.loads(json.dumps(p.to_dict()))["sources"]["batch_size"] == "env BATCH_SIZE"


def test_a_plan_written_by_the_previous_toolkit_loads():
    from mimic_deployment.planning.plan import RunPlan

    data = json.loads((REPO / "tests" / "fixtures" / "plan_v1.json").read_text())  # /tmp/baseline's dry-run --json
    plan = RunPlan.from_dict(data)
    assert plan.name == data["name"] and plan.argv == data["argv"]
    assert str(plan.sources["batch_size"]) == data["sources"]["batch_size"]
    assert plan.to_dict()["sources"] == data["sources"]
    assert resume_argv(plan)[-1] == "--resume=true"


def test_a_plan_with_an_unknown_key_is_refused_naming_it():
    from mimic_deployment.planning.plan import RunPlan

    data = dict(plan_one(computer="odin").to_dict(), launched_on_moon=True)
    with pytest.raises(UserError, match="'launched_on_moon'"):
        RunPlan.from_dict(data)


def test_dataset_spec_carries_what_the_jobs_compatibility_check_needs():
    p = plan_one("pi05", group="mobile", computer="odin")
    assert (p.dataset["policy_type"], p.dataset["camera_policy"]) == ("pi05", RAW_POLICIES["pi05"]["cameras"])
    assert plan_one("act", group="mobile", computer="odin").dataset["camera_policy"] is None


def test_prepare_runs_the_policy_checks_on_the_plans_spec(tmp_path):
    """What the job's prepare step reads (record.plan["dataset"]): pi05 needs quantile stats."""
    from mimic_deployment.datasets.demo import make_meta_only
    from mimic_deployment.datasets.prepare import prepare

    make_meta_only(tmp_path / MOBILE, quantiles=False)
    spec = dict(plan_one("pi05", group="mobile", computer="odin").dataset, dataset_root=str(tmp_path), online=False)
    with pytest.raises(UserError, match="quantiles"):
        prepare(spec, tmp_path / "link", log=lambda line: None)
    assert not (tmp_path / "link").exists()
