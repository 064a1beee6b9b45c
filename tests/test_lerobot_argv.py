"""The train and resume argv of every policy and variant, as the toolkit generates it for each engine
(LEROBOT_TRAIN at that env's lerobot-train), fed to that LeRobot's own parser exactly as
`lerobot-train` does it: LeRobot 0.6.1 in the main env, 0.4.4 in the lerobot-0.4 env.

lerobot-train is `lerobot.scripts.lerobot_train:main`: register_third_party_plugins(), then
`train()`, which is `@parser.wrap()` around `train(cfg: TrainPipelineConfig)` whose first line is
`cfg.validate()`. parser.wrap reads sys.argv[1:] (and so do parser.get_path_arg /
get_cli_overrides inside validate(), for --policy.path). The harness below, run by that env's own
python, imports that very module (so the same config classes are registered), sets sys.argv, wraps
a function with the same signature in parser.wrap() and calls cfg.validate(): nothing else of
training runs, no weights, no dataset, offline. Then it writes the checkpoint config LeRobot's
save_checkpoint writes (train_config.json + the policy's config.json under checkpoints/<step>/, and
the `last` link) and parses the toolkit's resume argv the same way. One process per engine runs
every case (torch and lerobot imported once), each case's output kept apart.

Base models are local folders holding only the config.json the policy's own config class writes
(`<TypeConfig>().save_pretrained(dir)`); groot's base model is the engine's own Hub id (N1.7 on 0.6,
N1.5 on 0.4), which validate() checks by name without downloading it.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from conftest import REPO, TOOLKIT_VARS

# Two processes import torch and lerobot and parse ~15 cases each: over the default timeout on a busy machine.
pytestmark = [pytest.mark.lerobot, pytest.mark.timeout(3600)]

CONFIG = REPO / "mimic_deployment" / "config"
RAW_POLICIES = yaml.safe_load((CONFIG / "policies.yaml").read_text())["policies"]
RAW_ENGINES = yaml.safe_load((CONFIG / "engines.yaml").read_text())["engines"]
ODIN = yaml.safe_load((CONFIG / "machines.yaml").read_text())["machines"]["odin"]
CAMERAS = yaml.safe_load((CONFIG / "cameras.yaml").read_text())["policies"]
POLICIES = ("xvla", "xvla_lora", "pi05", "pi05_expert_only", "pi0", "pi0_fast", "groot", "act", "diffusion",
            "smolvla")
SERIES = ("0.6", "0.4")
GROUP = "high_quality"
PRETRAINED = {"xvla", "pi05", "pi0", "pi0_fast", "smolvla"}  # policy types fine-tuned through --policy.path
RESUME_STEPS = 7  # the resume argv trains on to this step

HARNESS = r'''
import contextlib, io, json, os, sys, traceback


def parse(args):
    """lerobot-train's parse + validate of `args`; the validated config."""
    sys.argv = ["lerobot-train", *args]

    @parser.wrap()
    def train(cfg: TrainPipelineConfig):
        cfg.validate()  # the first line of lerobot_train.train()
        return cfg

    return train()


def summary(cfg):
    p = cfg.policy
    return {"config": draccus.encode(cfg), "policy_type": p.type, "policy_class": type(p).__name__,
            "pretrained_path": str(p.pretrained_path) if p.pretrained_path else None,
            "device": p.device, "resume": cfg.resume, "steps": cfg.steps,
            "checkpoint_path": str(cfg.checkpoint_path) if getattr(cfg, "checkpoint_path", None) else None,
            "optimizer": type(cfg.optimizer).__name__ if cfg.optimizer else None}


def one(spec):
    """One case: (3, None) when LeRobot's parser or validate() refuses the argv, else (0, result)."""
    if spec.get("base_type"):  # a base model folder holding only its config.json
        PreTrainedConfig.get_choice_class(spec["base_type"])().save_pretrained(spec["base_dir"])
    out = {"cuda_available": torch.cuda.is_available()}
    try:
        cfg = parse(spec["args"])
    except BaseException as exc:  # SystemExit from draccus/argparse included
        traceback.print_exc()
        print(f"HARNESS_ERROR {type(exc).__name__}: {exc}", flush=True)
        return 3, None
    out["train"] = summary(cfg)
    if spec.get("resume_args"):
        # what save_checkpoint writes at a step (the config files; no weights), then `last`
        step_dir = cfg.output_dir / "checkpoints" / "000004"
        pretrained = step_dir / "pretrained_model"
        pretrained.mkdir(parents=True)
        cfg.policy.save_pretrained(pretrained)
        cfg.save_pretrained(pretrained)
        (cfg.output_dir / "checkpoints" / "last").symlink_to("000004")
        try:
            out["resume"] = summary(parse(spec["resume_args"]))
        except BaseException as exc:
            traceback.print_exc()
            out["resume_error"] = f"{type(exc).__name__}: {exc}"
    return 0, out


try:
    import lerobot.scripts.lerobot_train as lerobot_train  # what the lerobot-train entry point imports
    import draccus
    import torch
    from lerobot.configs import parser
    from lerobot.configs.policies import PreTrainedConfig
    from lerobot.configs.train import TrainPipelineConfig

    lerobot_train.register_third_party_plugins()  # lerobot_train.main() does this first
except BaseException as exc:  # the harness itself failed (not LeRobot's verdict)
    traceback.print_exc()
    print(f"HARNESS_ERROR {type(exc).__name__}: {exc}", flush=True)
    sys.exit(4)

# Every case in one process: torch and lerobot are imported once; each case's output is its own.
for number, spec in enumerate(json.loads(os.environ["HARNESS_SPECS"])):
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            code, result = one(spec)
        except BaseException:  # the harness itself failed on this case
            traceback.print_exc()
            code, result = 4, None
    print("HARNESS_CASE " + json.dumps({"number": number, "returncode": code, "result": result,
                                         "stdout": stdout.getvalue(), "stderr": stderr.getvalue()},
                                        default=str), flush=True)
'''


def raw_policy(name: str) -> dict:
    """A policy's YAML entry with what it extends filled in (read without the toolkit's loader)."""
    raw = dict(RAW_POLICIES[name])
    parent = raw.pop("extends", None)
    if parent is None:
        return raw
    merged = raw_policy(parent)
    return {**merged, **raw, "args": {**(merged.get("args") or {}), **(raw.get("args") or {})}}


def clean_env(tmp: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in TOOLKIT_VARS}
    env.update({"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp / "hf_home"), "WANDB_MODE": "disabled",
                "MIMIC_OUTPUTS": str(tmp / "outputs"), "HF_LEROBOT_HOME": str(tmp / "lerobot_home"),
                "MIMIC_MERGED_HOME": str(tmp / "merged"), "PYTHONPATH": str(REPO), "COMPUTER": "odin",
                "TORCH_HOME": str(tmp / "torch_home")})
    return env


def cli_plan(env: dict, policy: str, *extra: str, base_dir: Path | None = None, tag: str | None = None) -> dict:
    args = ["--policy", policy, "--dataset-group", GROUP, "--dry-run", "--json"]
    args += ["--base-model", str(base_dir)] if base_dir is not None else []
    args += ["--tag", tag] if tag else []
    result = subprocess.run([str(REPO / "mimic_deployment" / "train_manager.sh"), *args, *extra], env=env,
                            capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr
    (plan,) = json.loads(result.stdout)
    return plan


def lerobot_args(argv: list[str]) -> list[str]:
    """The lerobot-train arguments: everything after the lerobot-train executable."""
    index = next(i for i, a in enumerate(argv) if Path(a).name == "lerobot-train")
    return argv[index + 1:]


def toolkit_resume_args(plan: dict) -> list[str]:
    """The resume argv the toolkit generates for the plan (`resume NAME --steps N`)."""
    from mimic_deployment.planning.plan import RunPlan, resume_argv

    return lerobot_args(resume_argv(RunPlan.from_dict(plan), RESUME_STEPS))


def run_harness(python: Path, env: dict, specs: list[dict], cwd: Path) -> list[dict]:
    """Every spec through one process of that env's python: {returncode (0 accepted, 3 refused by
    LeRobot, 4 the harness failed), result, stdout, stderr} per spec, in order."""
    result = subprocess.run([str(python), "-c", HARNESS], env={**env, "HARNESS_SPECS": json.dumps(specs)},
                            capture_output=True, text=True, cwd=cwd, timeout=1800)
    runs = [json.loads(line[len("HARNESS_CASE "):]) for line in result.stdout.splitlines()
            if line.startswith("HARNESS_CASE ")]
    assert result.returncode == 0 and len(runs) == len(specs), result.stdout[-3000:] + result.stderr[-6000:]
    return runs


def engine_roots(engine04: Path | None) -> dict[str, Path]:
    main = Path(sys.executable).parent.parent  # the toolkit's env: LeRobot 0.6.1
    return {"0.6": main, **({"0.4": engine04} if engine04 else {})}


@pytest.fixture(scope="module")
def engine_envs(request) -> dict[str, Path]:
    try:
        engine04 = request.getfixturevalue("engine04")
    except pytest.skip.Exception:
        engine04 = None
    return engine_roots(engine04)


def _case(env: dict, tmp: Path, root: Path, series: str, policy: str, *extra: str, tag: str | None = None,
          resume: bool = True) -> dict:
    raw = raw_policy(policy)
    base_dir = tmp / "base_models" / series / (tag or policy) if raw["type"] in PRETRAINED else None
    plan = cli_plan({**env, "LEROBOT_TRAIN": str(root / "bin" / "lerobot-train")}, policy, *extra,
                    base_dir=base_dir, tag=tag)
    spec = {"args": lerobot_args(plan["argv"]), "base_dir": str(base_dir) if base_dir else None,
            "base_type": raw["type"] if base_dir else None,
            "resume_args": toolkit_resume_args(plan) if resume else None}
    return {"plan": plan, "spec": spec, "root": root, "series": series, "policy": policy}


@pytest.fixture(scope="module")
def cases(engine_envs, tmp_path_factory) -> dict[str, dict]:
    """Plan every case through the CLI, then run them all through the engines' parsers, two at a time."""
    tmp = tmp_path_factory.mktemp("lerobot_argv")
    env = clean_env(tmp)
    found: dict[str, dict] = {}
    for series, root in engine_envs.items():
        tag = series.replace(".", "")
        for policy in POLICIES:
            found[f"{series}:{policy}"] = _case(env, tmp, root, series, policy, tag=f"{policy}{tag}")
        # a bad flag must be refused by the same harness (the --policy.* override reaches the base config too)
        found[f"{series}:bad_field"] = _case(env, tmp, root, series, "act", "--", "--policy.no_such_field=1",
                                             tag=f"bad{tag}", resume=False)
        found[f"{series}:bad_override_on_path"] = _case(env, tmp, root, series, "pi05", "--",
                                                        "--policy.compile_model=maybe", tag=f"badpath{tag}",
                                                        resume=False)
    # LeRobot 0.6's features as toolkit settings: a held-out split (CLI) and checkpoint push (planner:
    # it needs a token and the Hub online, which a test never is)
    found["0.6:act_eval_split"] = _case(env, tmp, engine_envs["0.6"], "0.6", "act", "--eval-split", "0.2",
                                        "--eval-steps", "3", tag="evalsplit")
    found["0.6:act_push_checkpoints"] = _planned_push_checkpoints(env, tmp, engine_envs["0.6"])
    for series, root in engine_envs.items():
        found[f"{series}:groot_multi"] = _planned_groot_multi_gpu(env, tmp, root, series)

    hvenv = {k: v for k, v in env.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH")}
    hvenv["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")  # torch/lerobot ship without .pyc: compile once
    by_engine = {series: [n for n in found if found[n]["series"] == series] for series in engine_envs}

    def run_engine(series: str) -> list[dict]:
        specs = [found[n]["spec"] for n in by_engine[series]]
        return run_harness(engine_envs[series] / "bin" / "python", hvenv, specs, tmp)

    with ThreadPoolExecutor(max_workers=len(by_engine)) as pool:  # the two engines side by side
        for series, runs in zip(by_engine, pool.map(run_engine, by_engine)):
            for name, run in zip(by_engine[series], runs):
                found[name]["run"] = run
    return found


def _planned(env: dict, tmp: Path, root: Path, policy: str, request_kw: dict, facts_kw: dict) -> dict:
    from mimic_deployment.config.catalog import load_catalog
    from mimic_deployment.host.engine import engine_of
    from mimic_deployment.planning.plan import Facts, RunRequest, build_plans

    catalog = load_catalog()
    lerobot_train = str(root / "bin" / "lerobot-train")
    request = RunRequest(policies=(policy,), groups=(GROUP,), **request_kw)
    facts = Facts(outputs=tmp / "outputs", lerobot_train=lerobot_train, accelerate="/toolkit/bin/accelerate",
                  engine=engine_of(lerobot_train), **facts_kw)
    (plan,) = build_plans(request, facts, policies=catalog.policies, machines=catalog.machines,
                          groups=catalog.groups, lab=catalog.lab, rename_maps=catalog.rename_maps([policy]))
    return plan.to_dict()


def _planned_push_checkpoints(env: dict, tmp: Path, root: Path) -> dict:
    online = {k: v for k, v in env.items() if k != "HF_HUB_OFFLINE"}
    plan = _planned(env, tmp, root, "act", {"push_checkpoints": True, "tag": "pushckpt"},
                    {"env": online, "hostname": "odin", "gpus": None, "hf_token": True})
    return {"plan": plan, "root": root, "series": "0.6", "policy": "act",
            "spec": {"args": lerobot_args(plan["argv"]), "resume_args": toolkit_resume_args(plan)}}


def _planned_groot_multi_gpu(env: dict, tmp: Path, root: Path, series: str) -> dict:
    from mimic_deployment.host.gpus import GpuInfo

    gpus = [GpuInfo(0, "NVIDIA Test", 23.6), GpuInfo(1, "NVIDIA Test", 23.6)]
    plan = _planned(env, tmp, root, "groot", {"tag": f"multi{series.replace('.', '')}"},
                    {"env": {k: v for k, v in env.items() if k != "COMPUTER"}, "hostname": "twogpu", "gpus": gpus})
    return {"plan": plan, "root": root, "series": series, "policy": "groot",
            "spec": {"args": lerobot_args(plan["argv"]), "resume_args": toolkit_resume_args(plan)}}


# ---------------------------------------------------------------- checks

def _validated(case: dict) -> dict:
    run = case["run"]
    assert run["returncode"] == 0 and run["result"], run["stdout"][-3000:] + run["stderr"][-6000:]
    return run["result"]


def _lookup(config: dict, key: str):
    node = config
    for part in key.split("."):
        assert isinstance(node, dict) and part in node, f"--{key} is not in the validated config"
        node = node[part]
    return node


def _arrived(flag_value: str, value) -> bool:
    """Whether a --key=value of the argv is what the validated config holds."""
    if flag_value == str(value) or (isinstance(value, bool) and flag_value == str(value).lower()):
        return True
    if flag_value == "null":
        return value is None
    try:
        return yaml.safe_load(flag_value) == value
    except yaml.YAMLError:
        return False


def assert_every_flag_arrived(args: list[str], result: dict) -> None:
    """Every --key=value the toolkit emitted is in the validated config with that value (LeRobot may
    turn policy.device=cuda into cpu on a machine without CUDA, and says so)."""
    config = result["config"]
    for arg in args:
        key, _, value = arg[2:].partition("=")
        if key in ("policy.path", "config_path", "rename_map"):
            continue  # not config fields: the pretrained path and the renames are checked apart
        if key == "policy.device" and _lookup(config, key) != value:
            assert value == "cuda" and _lookup(config, key) == "cpu"
            continue
        assert _arrived(value, _lookup(config, key)), (key, value, _lookup(config, key))


@pytest.mark.parametrize("series", SERIES)
@pytest.mark.parametrize("policy", POLICIES)
def test_engine_accepts_the_train_argv(cases, series, policy):
    if f"{series}:{policy}" not in cases:
        pytest.skip(f"the LeRobot {series} environment is not built")
    case = cases[f"{series}:{policy}"]
    plan, result = case["plan"], _validated(case)
    cfg, raw = result["train"], raw_policy(policy)
    assert plan["engine"]["dialect"] == series and plan["engine"]["version"].startswith(series)
    assert plan["engine"]["prefix"] == str(case["root"].resolve())
    assert_every_flag_arrived(case["spec"]["args"], cfg)
    assert cfg["policy_type"] == raw["type"]
    assert cfg["config"]["batch_size"] == ODIN["batch_sizes"][policy]
    assert cfg["config"]["steps"] == raw["steps"] and cfg["config"]["resume"] is False
    assert cfg["config"]["policy"]["push_to_hub"] is False  # offline; passed, not taken from the base config
    assert cfg["optimizer"]  # the policy preset was applied by validate()
    expected_rename = {f"observation.images.{cam}": f"observation.images.{key}"
                       for cam, key in (CAMERAS.get(raw.get("cameras")) or {}).items()}
    assert cfg["config"]["rename_map"] == expected_rename
    if raw["type"] in PRETRAINED:  # fine-tuned through --policy.path: the recipe's overrides were applied
        assert cfg["pretrained_path"] == case["spec"]["base_dir"]
    else:
        assert cfg["pretrained_path"] is None
    if policy == "groot":  # the engine's own base model: N1.7 on 0.6, N1.5 on 0.4
        assert cfg["config"]["policy"]["base_model_path"] == RAW_ENGINES[series]["base_models"]["groot"]
    if policy == "xvla_lora":
        assert cfg["config"]["peft"]["r"] == 64 and cfg["config"]["peft"]["method_type"] == "LORA"
        assert cfg["config"]["peft"]["target_modules"] == ["q_proj", "v_proj"]
    if policy == "pi05_expert_only":
        assert cfg["config"]["policy"]["train_expert_only"] is True
    if policy == "diffusion":  # the same recipe on both versions (0.6 changed the defaults)
        assert cfg["config"]["policy"]["pretrained_backbone_weights"] is None
        assert cfg["config"]["policy"]["use_group_norm"] is True


@pytest.mark.parametrize("series", SERIES)
@pytest.mark.parametrize("policy", POLICIES)
def test_engine_accepts_the_resume_argv(cases, series, policy):
    if f"{series}:{policy}" not in cases:
        pytest.skip(f"the LeRobot {series} environment is not built")
    case = cases[f"{series}:{policy}"]
    result = _validated(case)
    assert "resume" in result, result.get("resume_error")
    resumed, plan = result["resume"], case["plan"]
    args = case["spec"]["resume_args"]
    checkpoint = Path(plan["output_dir"]) / "checkpoints" / "last" / "pretrained_model"
    assert args == [f"--config_path={checkpoint / 'train_config.json'}", "--resume=true", f"--steps={RESUME_STEPS}"]
    assert resumed["resume"] is True and resumed["steps"] == RESUME_STEPS
    assert resumed["policy_type"] == raw_policy(policy)["type"]
    assert resumed["pretrained_path"] == str(checkpoint)
    assert resumed["config"]["output_dir"] == plan["output_dir"]
    assert resumed["config"]["batch_size"] == ODIN["batch_sizes"][policy]


def test_held_out_split_reaches_lerobot_06(cases):
    case = cases["0.6:act_eval_split"]
    cfg = _validated(case)["train"]
    assert "--dataset.eval_split=0.2" in case["spec"]["args"] and "--eval_steps=3" in case["spec"]["args"]
    assert cfg["config"]["dataset"]["eval_split"] == 0.2 and cfg["config"]["eval_steps"] == 3
    assert_every_flag_arrived(case["spec"]["args"], cfg)
    assert _validated(case)["resume"]["config"]["eval_steps"] == 3  # kept by the checkpoint's config


def test_checkpoint_push_reaches_lerobot_06(cases):
    case = cases["0.6:act_push_checkpoints"]
    cfg = _validated(case)["train"]
    assert "--save_checkpoint_to_hub=true" in case["spec"]["args"]
    assert cfg["config"]["save_checkpoint_to_hub"] is True and cfg["config"]["policy"]["repo_id"]


@pytest.mark.parametrize("series", SERIES)
def test_multi_gpu_runs_the_engines_own_accelerate(cases, series):
    if f"{series}:groot_multi" not in cases:
        pytest.skip(f"the LeRobot {series} environment is not built")
    case = cases[f"{series}:groot_multi"]
    root = case["root"]
    assert case["plan"]["argv"][:5] == [str(root.resolve() / "bin" / "accelerate"), "launch", "--multi_gpu",
                                        "--num_processes=2", str(root / "bin" / "lerobot-train")]
    result = _validated(case)
    assert result["train"]["config"]["batch_size"] == ODIN["batch_sizes"]["groot"]  # per process
    assert result["resume"]["resume"] is True


@pytest.mark.parametrize("series", SERIES)
@pytest.mark.parametrize("bad,needle", [("bad_field", "no_such_field"), ("bad_override_on_path", "compile_model")])
def test_harness_rejects_a_bad_flag(cases, series, bad, needle):
    if f"{series}:{bad}" not in cases:
        pytest.skip(f"the LeRobot {series} environment is not built")
    run = cases[f"{series}:{bad}"]["run"]
    assert run["returncode"] == 3 and run["result"] is None
    assert needle in run["stdout"] + run["stderr"]


def test_a_04_checkpoint_does_not_resume_under_06(cases, engine_envs, tmp_path):
    """Why resume keeps the run's engine: 0.4.4's train_config.json (eval_freq) is refused by 0.6.1."""
    if "0.4:act" not in cases:
        pytest.skip("the LeRobot 0.4 environment is not built")
    args = cases["0.4:act"]["spec"]["resume_args"]
    config = json.loads(Path(args[0].split("=", 1)[1]).read_text())
    assert "eval_freq" in config and "env_eval_freq" not in config
    env = {k: v for k, v in clean_env(tmp_path).items() if k != "PYTHONPATH"}
    (run,) = run_harness(engine_envs["0.6"] / "bin" / "python", env, [{"args": args}], tmp_path)
    assert run["returncode"] == 3 and "eval_freq" in run["stdout"] + run["stderr"]
