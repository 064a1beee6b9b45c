"""Engines and dialects: config/engines.yaml and policies.yaml's variants as loaded, plans written in the
dialect of the LeRobot that runs them (fake engines: temp envs as files), the dry-run naming the engine,
LeRobot 0.6's settings refused where the engine lacks them, and resume keeping the run's engine.

Fast: no LeRobot is imported. The planner tests build Facts by hand; the CLI tests run the real entry
point; the resume tests train the fake trainer installed as a fake engine's lerobot-train.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import FAKE_TRAINER, REPO, read_record, run_cli, wait_state
from mimic_deployment.config.engines import load_engines
from mimic_deployment.config.groups import DEFAULT_GROUPS_FILE, load_groups
from mimic_deployment.config.lab import load_lab
from mimic_deployment.config.machines import load_machines
from mimic_deployment.config.policies import load_policies
from mimic_deployment.host.engine import engine_of
from mimic_deployment.host.gpus import GpuInfo
from mimic_deployment.planning.plan import Facts, RunPlan, RunRequest, build_plans
from mimic_deployment.planning.render import dry_run_text
from mimic_deployment.util.errors import UserError

CONFIG = REPO / "mimic_deployment" / "config"
RAW_ENGINES = yaml.safe_load((CONFIG / "engines.yaml").read_text())
RAW_POLICIES = yaml.safe_load((CONFIG / "policies.yaml").read_text())["policies"]
TOOLKIT_ACCELERATE = "/toolkit/bin/accelerate"
ONE = ("--policy", "act", "--dataset-group", "one")
NO_BACKBONE = ("--", "--policy.pretrained_backbone_weights=null")  # ACT offline: no ImageNet download


def fake_engine(root: Path, version: str | None, accelerate: bool = True, trainer: bool = False) -> str:
    """A venv as files: bin/python (this interpreter), pyvenv.cfg, lib/python3.12/site-packages with
    lerobot-<version>.dist-info/METADATA, bin/accelerate; its bin/lerobot-train is a script of that
    python (the fake trainer when `trainer`). Returns the lerobot-train path."""
    (root / "bin").mkdir(parents=True)
    os.symlink(sys.executable, root / "bin" / "python")
    (root / "pyvenv.cfg").write_text(f"home = {Path(sys.executable).parent}\n")
    site = root / "lib" / "python3.12" / "site-packages"
    site.mkdir(parents=True)
    if version:
        (site / f"lerobot-{version}.dist-info").mkdir()
        (site / f"lerobot-{version}.dist-info" / "METADATA").write_text(
            f"Metadata-Version: 2.4\nName: lerobot\nVersion: {version}\n")
    body = FAKE_TRAINER.read_text().split("\n", 1)[1] if trainer else "import sys\nsys.exit(0)\n"
    script = root / "bin" / "lerobot-train"
    script.write_text(f"#!{root / 'bin' / 'python'}\n{body}")
    script.chmod(0o755)
    if accelerate:
        (root / "bin" / "accelerate").write_text("#!/bin/sh\n")
        (root / "bin" / "accelerate").chmod(0o755)
    engine_of.cache_clear()  # the same path may hold another engine in the next test
    return str(script)


def plans(lerobot_train: str, policy: str = "act", env=None, gpus=None, hostname="somewhere", policies=None,
          rename_maps=None, facts_kw=None, **request_kw) -> list[RunPlan]:
    env = {"COMPUTER": "odin", **(env or {})} if gpus is None else dict(env or {})
    facts = Facts(env=env, hostname=hostname, gpus=gpus, outputs=Path("/data/outputs"), lerobot_train=lerobot_train,
                  accelerate=TOOLKIT_ACCELERATE, **(facts_kw or {}))
    policies = policies or load_policies()
    request = RunRequest(policies=(policy,), groups=("new_hands",), **request_kw)
    return build_plans(request, facts, policies=policies, machines=load_machines(policy_names=tuple(policies)),
                       groups=load_groups(DEFAULT_GROUPS_FILE), lab=load_lab(), rename_maps=rename_maps or {})


def plan_one(lerobot_train: str, policy: str = "act", **kw) -> RunPlan:
    (plan,) = plans(lerobot_train, policy, **kw)
    return plan


def refused(lerobot_train: str, policy: str = "act", **kw) -> str:
    with pytest.raises(UserError) as info:
        plans(lerobot_train, policy, **kw)
    assert "\n" not in str(info.value)
    return str(info.value)


def flags(plan: RunPlan) -> dict[str, str]:
    return dict(a[2:].split("=", 1) for a in plan.argv if a.startswith("--") and "=" in a)


@pytest.fixture
def v06(tmp_path) -> str:
    return fake_engine(tmp_path / "env06", "0.6.1")


@pytest.fixture
def v04(tmp_path) -> str:
    return fake_engine(tmp_path / "env04", "0.4.4")


# ---------------------------------------------------------------- the dialect table

def test_the_dialect_table_as_declared():
    engines = load_engines()
    assert engines.default == RAW_ENGINES["default"] == "0.6"
    assert engines.dialect(None) is engines.dialect("0.6")  # no LeRobot found: the default dialect
    d06, d04 = engines.dialect("0.6"), engines.dialect("0.4")
    assert (d06.flag("env_eval_freq"), d04.flag("env_eval_freq")) == ("env_eval_freq", "eval_freq")
    assert d06.flag("batch_size") == d04.flag("batch_size") == "batch_size"
    for series, dialect in (("0.6", d06), ("0.4", d04)):
        raw = RAW_ENGINES["engines"][series]
        assert dialect.capabilities == raw["capabilities"] and dialect.base_models == raw["base_models"]
        assert dialect.robot_eval_command == tuple(raw["commands"]["robot_eval"])
    assert d06.can("eval_split") and not d04.can("eval_split") and not d06.can("rename_map_from_scratch")
    assert (d04.extra("diffusion"), d06.extra("diffusion"), d04.extra("pi")) == (None, "diffusion", "pi")
    assert engines.series_of("0.4.4") == "0.4" and engines.series_of(None) == engines.series_of("0.5.0") == "0.6"


def test_a_series_the_toolkit_does_not_speak_is_refused():
    with pytest.raises(UserError, match=r"LeRobot 0\.5\.x is not a version the toolkit speaks.*LEROBOT_TRAIN"):
        load_engines().dialect("0.5")


@pytest.mark.parametrize("mutate,needle", [
    (lambda d: d["engines"]["0.6"]["capabilities"].pop("peft"), "missing key 'peft'"),
    (lambda d: d.update(default="0.9"), "default '0.9' is not one of the engines"),
    (lambda d: d["engines"]["0.4"].update(renamed_flags={"env_eval_freq": 3}), "renamed_flags"),
    (lambda d: d["engines"]["0.4"]["commands"].update(robot_eval="lerobot-record"), "robot_eval"),
    (lambda d: d["engines"]["0.4"].update(extras={"diffusion": 1}), "extras"),
])
def test_engines_yaml_errors_name_the_file_and_key(tmp_path, mutate, needle):
    data = yaml.safe_load((CONFIG / "engines.yaml").read_text())
    mutate(data)
    path = tmp_path / "engines.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(UserError) as info:
        load_engines(path)
    assert str(path) in str(info.value) and needle in str(info.value)


# ---------------------------------------------------------------- policies and variants

def test_variants_extend_their_policy():
    policies = load_policies()
    lora, xvla = policies["xvla_lora"], policies["xvla"]
    assert (lora.type, lora.base_model, lora.extends, lora.cameras) == ("xvla", xvla.base_model, "xvla", "xvla")
    assert lora.args == {**xvla.args, "peft.method_type": "LORA", "peft.r": 64,
                         "peft.target_modules": ["q_proj", "v_proj"]}
    assert lora.extras == ("xvla", "peft") and lora.requires == ("peft",) and lora.title == "X-VLA LoRA"
    expert, pi05 = policies["pi05_expert_only"], policies["pi05"]
    assert expert.args == {**pi05.args, "policy.train_expert_only": True} and expert.steps == pi05.steps
    assert policies["diffusion"].args == {"policy.pretrained_backbone_weights": None, "policy.use_group_norm": True}
    for name in ("smolvla", "pi0_fast"):
        assert name in policies and policies[name].base_model == RAW_POLICIES[name]["base_model"]
    for name in policies:  # each has its per-policy entry points (links to the shared scripts)
        for script in ("train.sh", "eval.sh"):
            link = REPO / "mimic_deployment" / "training_scripts" / name / script
            assert link.is_symlink() and link.resolve().name == f"_policy_{script}", link


@pytest.mark.parametrize("body,needle", [
    ({"v": {"extends": "nope"}}, "extends 'nope'"),
    ({"v": {"extends": "w"}, "w": {"extends": "v"}}, "extends it back"),
    ({"v": {"extends": "act", "requires": ["flying"]}}, "requires 'flying'"),
    ({"v": {"extends": "act", "type": "no_such_type"}}, "type 'no_such_type'"),
    ({"v": {"extends": "act", "lerobot_extra": [1]}}, "lerobot_extra"),
])
def test_variant_errors_name_the_file_and_key(tmp_path, body, needle):
    data = {"policies": {"act": RAW_POLICIES["act"], **body}}
    path = tmp_path / "policies.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(UserError) as info:
        load_policies(path)
    assert str(path) in str(info.value) and needle in str(info.value)


def test_a_policy_type_the_engine_lacks_is_refused_at_plan_time_naming_the_engine(v04, v06):
    policies = dict(load_policies())
    policies["eo1"] = dataclasses.replace(policies["act"], name="eo1", type="eo1")  # 0.6 only
    assert flags(plan_one(v06, "eo1", policies=policies))["policy.type"] == "eo1"
    text = refused(v04, "eo1", policies=policies)
    assert "LeRobot 0.4.x has no policy type 'eo1'" in text and "LeRobot 0.4.4 in" in text


def test_a_policy_needing_a_capability_the_engine_lacks_is_refused(v06):
    policy = load_policies()["xvla_lora"]
    dialect = load_engines().dialect("0.6")
    policy.check_engine(dialect, "here")  # 0.6 has peft
    without = dataclasses.replace(dialect, capabilities={**dialect.capabilities, "peft": False})
    with pytest.raises(UserError, match="xvla_lora needs peft, which LeRobot 0.6.x cannot do"):
        policy.check_engine(without, "here")


def test_xvla_lora_plans_on_04_too(v04):
    """0.4.4's parser takes --peft.* (tests/test_lerobot_argv.py checks it); its env lacks the peft package,
    which the preflight says."""
    v = flags(plan_one(v04, "xvla_lora"))
    assert (v["peft.method_type"], v["peft.r"], json.loads(v["peft.target_modules"])) == ("LORA", "64",
                                                                                          ["q_proj", "v_proj"])


# ---------------------------------------------------------------- plans in the engine's dialect

def test_the_plan_names_its_engine(v06, v04, tmp_path):
    for script, version, series in ((v06, "0.6.1", "0.6"), (v04, "0.4.4", "0.4")):
        plan = plan_one(script)
        assert plan.engine == {"lerobot_train": script, "version": version, "prefix": str(Path(script).parent.parent),
                               "python": str(Path(script).parent / "python"), "dialect": series}
        assert f"engine      LeRobot {version} ({Path(script).parent.parent})\n" in dry_run_text(plan)
        assert RunPlan.from_dict(json.loads(json.dumps(plan.to_dict()))).engine == plan.engine
    unknown = plan_one(str(FAKE_TRAINER))
    assert (unknown.engine["version"], unknown.engine["dialect"]) == (None, "0.6")
    assert (f"engine      unknown (no LeRobot install found beside {FAKE_TRAINER}): planned in the 0.6 dialect"
            in dry_run_text(unknown))


def test_groot_loads_the_engines_base_model(v06, v04):
    for script, series in ((v06, "0.6"), (v04, "0.4")):
        plan = plan_one(script, "groot")
        expected = RAW_ENGINES["engines"][series]["base_models"]["groot"]
        assert plan.base_model == expected and flags(plan)["policy.base_model_path"] == expected
        assert str(plan.sources["base_model"]) == f"policy groot (LeRobot {series})"
    assert flags(plan_one(v04, "groot", base_model="/models/mine"))["policy.base_model_path"] == "/models/mine"


def test_flags_are_written_in_the_engines_words(v06, v04):
    policies = dict(load_policies())
    policies["act"] = dataclasses.replace(policies["act"], args={"env_eval_freq": 0})  # a canonical (0.6) name
    assert flags(plan_one(v06, policies=policies))["env_eval_freq"] == "0"
    on04 = flags(plan_one(v04, policies=policies))
    assert on04["eval_freq"] == "0" and "env_eval_freq" not in on04


def test_a_version_the_toolkit_was_not_checked_with_is_noted(tmp_path):
    plan = plan_one(fake_engine(tmp_path / "e", "0.6.9"))
    assert plan.engine["dialect"] == "0.6" and "0.6.9 was not checked" in plan.engine["note"]
    assert "note: LeRobot 0.6.9 was not checked with the toolkit (checked: 0.6.1)" in dry_run_text(plan)
    text = refused(fake_engine(tmp_path / "f", "0.5.2"))
    assert "LeRobot 0.5.x is not a version the toolkit speaks" in text and str(tmp_path / "f") in text


def test_multi_gpu_runs_the_engines_accelerate(tmp_path, v06):
    two = [GpuInfo(0, "NVIDIA Test", 23.6), GpuInfo(1, "NVIDIA Test", 23.6)]
    plan = plan_one(v06, "groot", gpus=two, hostname="box2")
    assert plan.argv[:5] == [str(Path(v06).parent / "accelerate"), "launch", "--multi_gpu", "--num_processes=2", v06]
    bare = fake_engine(tmp_path / "bare", "0.6.1", accelerate=False)
    text = refused(bare, "groot", gpus=two, hostname="box2")
    assert "accelerate" in text and str(tmp_path / "bare") in text and "--num-gpus 1" in text
    assert plan_one(bare, "groot", gpus=two, hostname="box2", flags={"num_gpus": "1"}).argv[0] == bare
    # no LeRobot beside the command (a stand-in, a wrapper): the accelerate beside it, else the toolkit's
    assert plan_one(str(FAKE_TRAINER), "groot", gpus=two, hostname="box2").argv[0] == TOOLKIT_ACCELERATE


def test_rename_map_only_where_the_engine_applies_it(v06, v04):
    renames = {"groot": {"observation.images.front": "observation.images.ego"},
               "xvla": {"observation.images.front": "observation.images.image"}}
    assert "rename_map" in flags(plan_one(v06, "xvla", rename_maps=renames))  # fine-tuned: --policy.path
    assert "rename_map" not in flags(plan_one(v06, "groot", rename_maps=renames))  # 0.6 refuses it from scratch
    assert json.loads(flags(plan_one(v04, "groot", rename_maps=renames))["rename_map"]) == renames["groot"]


def test_a_rename_map_after_double_dash_needs_a_base_on_06(v06, v04):
    given = ('--rename_map={"observation.images.front": "observation.images.top"}',)
    assert "trained from scratch" in refused(v06, "act", extra_args=given)  # 0.6.1 would refuse it at start
    assert plan_one(v04, "act", extra_args=given).argv[-1] == given[0]  # 0.4 applies it


def test_a_recipe_arg_after_double_dash_replaces_it(v06):
    plan = plan_one(v06, "diffusion", extra_args=("--policy.use_group_norm=false",))
    assert [a for a in plan.argv if a.startswith("--policy.use_group_norm")] == ["--policy.use_group_norm=false"]
    with pytest.raises(UserError, match="--batch-size"):  # what the toolkit resolves still is not overridden
        plans(v06, "diffusion", extra_args=("--batch_size=3",))


# ---------------------------------------------------------------- LeRobot 0.6 features as settings

def test_eval_split_with_its_steps(v06):
    plan = plan_one(v06, flags={"eval_split": "0.1"})
    v = flags(plan)
    assert (v["dataset.eval_split"], v["eval_steps"]) == ("0.1", str(plan.save_freq))
    assert (plan.eval_split, plan.eval_steps) == (0.1, plan.save_freq)
    assert str(plan.sources["eval_steps"]) == "the save freq (default)"
    assert "eval split  hold out 0.1 of each task's episodes (flag --eval-split)" in dry_run_text(plan)
    plan = plan_one(v06, env={"EVAL_SPLIT": "0.25", "EVAL_STEPS": "500"})
    assert (flags(plan)["dataset.eval_split"], flags(plan)["eval_steps"]) == ("0.25", "500")
    assert not {"dataset.eval_split", "eval_steps"} & set(flags(plan_one(v06)))


@pytest.mark.parametrize("kw,needle", [
    ({"flags": {"eval_steps": "100"}}, "--eval-steps given without an eval split"),
    ({"flags": {"eval_split": "1"}}, "--eval-split='1' is not a fraction"),
    ({"flags": {"eval_split": "0"}}, "not a fraction"),
    ({"env": {"EVAL_SPLIT": "lots"}}, "EVAL_SPLIT='lots' is not a fraction"),
])
def test_eval_split_mistakes(v06, kw, needle):
    assert needle in refused(v06, **kw)


def test_push_checkpoints_needs_a_push_that_can_happen(v06):
    online = {"hf_token": True}
    plan = plan_one(v06, push_checkpoints=True, facts_kw=online)
    assert flags(plan)["save_checkpoint_to_hub"] == "true" and plan.push_checkpoints
    assert "every checkpoint too (flag --push-checkpoints)" in dry_run_text(plan)
    assert plan_one(v06, env={"PUSH_CHECKPOINTS": "yes"}, facts_kw=online).push_checkpoints
    assert "save_checkpoint_to_hub" not in flags(plan_one(v06, facts_kw=online))
    assert "HF_HUB_OFFLINE is set" in refused(v06, push_checkpoints=True, env={"HF_HUB_OFFLINE": "1"}, facts_kw=online)
    assert "no Hugging Face token" in refused(v06, push_checkpoints=True)


@pytest.mark.parametrize("kw,needle", [
    ({"flags": {"eval_split": "0.1"}}, "--eval-split: LeRobot 0.4.x has no held-out eval split"),
    ({"push_checkpoints": True, "facts_kw": {"hf_token": True}},
     "--push-checkpoints: LeRobot 0.4.x has no checkpoint push"),
])
def test_04_refuses_the_06_settings_naming_the_engine(v04, kw, needle):
    text = refused(v04, **kw)
    assert needle in text and "LeRobot 0.4.4 in" in text


def test_a_plan_recorded_before_engines_gets_the_dialect_of_its_version(v06):
    data = plan_one(v06).to_dict()
    del data["engine"]
    assert RunPlan.from_dict(data, "0.4.4").engine["dialect"] == "0.4"
    old = RunPlan.from_dict(data)
    assert (old.engine["dialect"], old.engine["version"], old.lerobot_train) == ("0.6", None, v06)


# ---------------------------------------------------------------- through the CLI

def test_dry_run_names_the_engine(toolkit_env, tmp_path):
    script = fake_engine(tmp_path / "env", "0.6.1")
    out = run_cli(toolkit_env, *ONE[:2], "--dataset-group", "new_hands", "--computer", "odin", "--dry-run",
                  LEROBOT_TRAIN=script)
    assert out.returncode == 0, out.stderr
    assert f"  engine      LeRobot 0.6.1 ({tmp_path / 'env'})\n" in out.stdout
    out = run_cli(toolkit_env, *ONE[:2], "--dataset-group", "new_hands", "--computer", "odin", "--dry-run", "--json",
                  LEROBOT_TRAIN=script)
    assert json.loads(out.stdout)[0]["engine"]["version"] == "0.6.1"


@pytest.mark.parametrize("args,env", [(("--eval-split", "0.1"), {}), ((), {"EVAL_SPLIT": "0.1"}),
                                      (("--push-checkpoints",), {})])
def test_cli_refuses_06_settings_on_a_04_engine(toolkit_env, tmp_path, args, env):
    script = fake_engine(tmp_path / "env", "0.4.4")
    for mode in ((), ("--dry-run",)):
        out = run_cli({**toolkit_env, **env}, *ONE[:2], "--dataset-group", "new_hands", "--computer", "odin", *args,
                      *mode, LEROBOT_TRAIN=script)
        assert out.returncode == 2 and out.stdout == "" and out.stderr.count("\n") == 1, out.stderr
        assert "LeRobot 0.4.x has no" in out.stderr and str(tmp_path / "env") in out.stderr
    assert not Path(toolkit_env["MIMIC_OUTPUTS"]).exists()


# ---------------------------------------------------------------- resume keeps the run's engine

def _trained(demo_env, tmp_path, version="0.4.4") -> tuple[str, Path]:
    root = tmp_path / "lab-env"
    script = fake_engine(root, version, trainer=True)
    out = run_cli(demo_env, *ONE, "--steps", "4", "--save-freq", "2", *NO_BACKBONE, LEROBOT_TRAIN=script,
                  FAKE_STEP_SECONDS="0.01")
    assert out.returncode == 0, out.stderr
    name = out.stdout.split()[1]
    wait_state(demo_env, name, "finished")
    assert read_record(demo_env, name)["plan"]["engine"]["version"] == version
    return name, root


def _resume_refused(demo_env, name, *needles) -> None:
    env = {k: v for k, v in demo_env.items() if k != "LEROBOT_TRAIN"}  # the run's own engine counts
    out = run_cli(env, "resume", name, "--steps", "6")
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    for needle in needles:
        assert needle in out.stderr, out.stderr
    assert len(read_record(demo_env, name)["attempts"]) == 1


@pytest.mark.timeout(180)
def test_resume_runs_the_runs_engine(demo_env, tmp_path):
    name, root = _trained(demo_env, tmp_path)
    env = {k: v for k, v in demo_env.items() if k != "LEROBOT_TRAIN"}
    out = run_cli(env, "resume", name, "--steps", "6", FAKE_STEP_SECONDS="0.01")
    assert out.returncode == 0, out.stderr
    wait_state(env, name, "finished")
    attempts = read_record(env, name)["attempts"]
    assert len(attempts) == 2 and attempts[1]["argv"][0] == str(root / "bin" / "lerobot-train")


@pytest.mark.timeout(180)
def test_resume_is_refused_when_the_runs_env_is_gone(demo_env, tmp_path):
    name, root = _trained(demo_env, tmp_path)
    shutil.rmtree(root)
    _resume_refused(demo_env, name, f"run '{name}' was trained with LeRobot 0.4.4 at {root}/bin/lerobot-train, "
                                    "which no longer exists")


@pytest.mark.timeout(180)
def test_resume_is_refused_when_the_runs_env_is_now_another_series(demo_env, tmp_path):
    name, root = _trained(demo_env, tmp_path)
    site = root / "lib" / "python3.12" / "site-packages"
    (site / "lerobot-0.4.4.dist-info").rename(site / "lerobot-0.6.1.dist-info")  # the env rebuilt with 0.6.1
    _resume_refused(demo_env, name, "was trained with LeRobot 0.4.4 (0.4 dialect)", "is now LeRobot 0.6.1")


@pytest.mark.timeout(180)
def test_resume_pointed_at_another_series_is_refused(demo_env, tmp_path):
    name, root = _trained(demo_env, tmp_path)
    other = fake_engine(tmp_path / "env06", "0.6.1")
    out = run_cli(demo_env, "resume", name, "--steps", "6", LEROBOT_TRAIN=other)
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert f"was trained with LeRobot 0.4.4 ({root}/bin/lerobot-train), and LEROBOT_TRAIN points at LeRobot 0.6.1" \
        in out.stderr and "unset LEROBOT_TRAIN" in out.stderr
    assert len(read_record(demo_env, name)["attempts"]) == 1


@pytest.mark.timeout(180)
def test_resume_is_refused_for_a_checkpoint_in_another_versions_words(demo_env, tmp_path):
    name, _ = _trained(demo_env, tmp_path, version="0.6.1")
    config = Path(read_record(demo_env, name)["plan"]["output_dir"]) / "checkpoints" / "last" / "pretrained_model"
    data = json.loads((config / "train_config.json").read_text())
    (config / "train_config.json").write_text(json.dumps({**data, "eval_freq": 20000}))  # as 0.4.4 writes it
    _resume_refused(demo_env, name, "checkpoint config has 'eval_freq', a key of another LeRobot version")


def test_fake_engine_runs_as_a_script(tmp_path):
    script = fake_engine(tmp_path / "env", "0.6.1")
    assert subprocess.run([script], capture_output=True, timeout=30).returncode == 0
