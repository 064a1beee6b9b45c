"""The plan's argv, fed to LeRobot 0.4.4's own parser exactly as `lerobot-train` does it.

lerobot-train is `lerobot.scripts.lerobot_train:main`: register_third_party_plugins(), then
`train()`, which is `@parser.wrap()` around `train(cfg: TrainPipelineConfig)` whose first line is
`cfg.validate()`. parser.wrap reads sys.argv[1:] (and so do parser.get_path_arg /
get_cli_overrides inside validate(), for --policy.path). The harness below imports that very
module (so the same config classes are registered), sets sys.argv, wraps a function with the
same signature in parser.wrap() and calls cfg.validate(): nothing else of training runs, no
weights, no dataset, offline. One subprocess per case, so sys.argv and the registries are clean.

Base models are local folders holding only the config.json the policy's own config class writes
(`XVLAConfig().save_pretrained(dir)` etc.); groot's base model goes to policy.base_model_path,
which validate() does not read, so an empty folder stands in.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import REPO, TOOLKIT_VARS

# The module fixture imports torch in 9 processes (~20 s CPU each): more than the default 900 s
# timeout on a busy 2-core machine.
pytestmark = [pytest.mark.lerobot, pytest.mark.timeout(2400)]

POLICIES = ("xvla", "pi05", "groot", "pi0", "act", "diffusion")
GROUP = "high_quality"
ODIN_BATCH = {"xvla": 8, "pi05": 2, "groot": 4, "pi0": 2, "act": 8, "diffusion": 8}  # reference
STEPS = {"xvla": 20000, "pi05": 10000, "groot": 15000, "pi0": 10000, "act": 100000, "diffusion": 100000}
# The config class that writes each base model's config.json (None: trained from scratch / not a
# LeRobot config).
BASE_CONFIG = {
    "xvla": "lerobot.policies.xvla.configuration_xvla:XVLAConfig",
    "pi05": "lerobot.policies.pi05.configuration_pi05:PI05Config",
    "pi0": "lerobot.policies.pi0.configuration_pi0:PI0Config",
    "groot": None,
}
# cameras.yaml: dataset camera -> the xvla-base image keys (3 views, top is not fed).
XVLA_RENAME = {"observation.images.front": "observation.images.image",
               "observation.images.left_wrist": "observation.images.image2",
               "observation.images.right_wrist": "observation.images.image3"}
# cameras.yaml: the openpi names of lerobot/pi0_base and lerobot/pi05_base (top is not fed).
PI_RENAME = {"observation.images.front": "observation.images.base_0_rgb",
             "observation.images.left_wrist": "observation.images.left_wrist_0_rgb",
             "observation.images.right_wrist": "observation.images.right_wrist_0_rgb"}
RENAME = {"xvla": XVLA_RENAME, "pi05": PI_RENAME, "pi0": PI_RENAME}
DTYPE = {"xvla": "bfloat16", "pi05": "bfloat16", "pi0": "bfloat16"}

HARNESS = r'''
import json, os, sys, traceback

spec = json.loads(os.environ["HARNESS_SPEC"])
try:
    import lerobot.scripts.lerobot_train as lerobot_train  # what the lerobot-train entry point imports
    from lerobot.configs import parser
    from lerobot.configs.train import TrainPipelineConfig
    import torch

    if spec.get("base_config"):  # a base model folder holding only its config.json
        module, _, cls = spec["base_config"].partition(":")
        import importlib
        getattr(importlib.import_module(module), cls)().save_pretrained(spec["base_dir"])
    elif spec.get("base_dir"):
        os.makedirs(spec["base_dir"], exist_ok=True)

    lerobot_train.register_third_party_plugins()  # lerobot_train.main() does this first
    sys.argv = ["lerobot-train", *spec["args"]]

    @parser.wrap()
    def train(cfg: TrainPipelineConfig):
        cfg.validate()  # the first line of lerobot_train.train()
        return cfg

    cfg = train()
    p = cfg.policy
    norm = getattr(p, "normalization_mapping", None) or {}
    result = {
        "cuda_available": torch.cuda.is_available(),
        "policy_class": type(p).__name__, "policy_type": p.type, "device": p.device,
        "push_to_hub": p.push_to_hub, "repo_id": p.repo_id,
        "pretrained_path": str(p.pretrained_path) if p.pretrained_path else None,
        "dtype": getattr(p, "dtype", None), "base_model_path": getattr(p, "base_model_path", None),
        "gradient_checkpointing": getattr(p, "gradient_checkpointing", None),
        "normalization_mapping": {str(k): getattr(v, "value", str(v)) for k, v in norm.items()},
        "batch_size": cfg.batch_size, "steps": cfg.steps, "save_freq": cfg.save_freq,
        "num_workers": cfg.num_workers, "rename_map": cfg.rename_map, "job_name": cfg.job_name,
        "output_dir": str(cfg.output_dir), "dataset_repo_id": cfg.dataset.repo_id,
        "dataset_root": cfg.dataset.root, "wandb_enable": cfg.wandb.enable, "resume": cfg.resume,
        "optimizer": type(cfg.optimizer).__name__ if cfg.optimizer else None,
    }
    print("HARNESS_RESULT " + json.dumps(result), flush=True)
except BaseException as exc:  # SystemExit from draccus/argparse included
    traceback.print_exc()
    print(f"HARNESS_ERROR {type(exc).__name__}: {exc}", flush=True)
    sys.exit(3)
'''


def clean_env(tmp: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in TOOLKIT_VARS}
    env.update({"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp / "hf_home"), "WANDB_MODE": "disabled",
                "MIMIC_OUTPUTS": str(tmp / "outputs"), "HF_LEROBOT_HOME": str(tmp / "lerobot_home"),
                "MIMIC_MERGED_HOME": str(tmp / "merged"), "PYTHONPATH": str(REPO), "COMPUTER": "odin"})
    return env


def cli_plan(env: dict, policy: str, *extra: str, base_dir: Path | None = None) -> dict:
    args = ["--policy", policy, "--dataset-group", GROUP, "--dry-run", "--json"]
    if base_dir is not None:
        args += ["--base-model", str(base_dir)]
    result = subprocess.run([str(REPO / "mimic_deployment" / "train_manager.sh"), *args, *extra], env=env,
                            capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr
    (plan,) = json.loads(result.stdout)
    return plan


def strip_launcher(plan: dict) -> list[str]:
    """The lerobot-train arguments: everything after the lerobot-train executable."""
    argv = plan["argv"]
    index = next(i for i, a in enumerate(argv) if Path(a).name == "lerobot-train")
    return argv[index + 1:]


def run_harness(env: dict, args: list[str], base_dir: Path | None = None, base_config: str | None = None,
                cwd: Path | None = None) -> dict:
    spec = {"args": args, "base_dir": str(base_dir) if base_dir else None, "base_config": base_config}
    result = subprocess.run([sys.executable, "-c", HARNESS], env={**env, "HARNESS_SPEC": json.dumps(spec)},
                            capture_output=True, text=True, cwd=cwd or REPO, timeout=600)
    out = {"returncode": result.returncode, "stderr": result.stderr, "stdout": result.stdout, "result": None}
    for line in result.stdout.splitlines():
        if line.startswith("HARNESS_RESULT "):
            out["result"] = json.loads(line[len("HARNESS_RESULT "):])
    return out


@pytest.fixture(scope="module")
def lerobot_cases(tmp_path_factory):
    """Plan every case through the CLI (or the planner), then validate them all, a few at a time."""
    tmp = tmp_path_factory.mktemp("lerobot_argv")
    env = clean_env(tmp)
    cases: dict[str, dict] = {}
    for policy in POLICIES:
        base_dir = tmp / "base_models" / policy if policy in BASE_CONFIG else None
        plan = cli_plan(env, policy, base_dir=base_dir)
        cases[policy] = {"plan": plan, "args": strip_launcher(plan), "base_dir": base_dir,
                         "base_config": BASE_CONFIG.get(policy)}

    # groot on a 2-GPU host: the planner with a 2-GPU NVML reading (the CLI cannot fake one).
    from mimic_deployment.config.catalog import load_catalog
    from mimic_deployment.host.gpus import GpuInfo
    from mimic_deployment.planning.plan import Facts, RunRequest, build_plans

    catalog = load_catalog()
    base_dir = tmp / "base_models" / "groot_multi"
    request = RunRequest(policies=("groot",), groups=(GROUP,), base_model=str(base_dir))
    facts = Facts(env={k: v for k, v in env.items() if k != "COMPUTER"}, hostname="twogpu",
                  gpus=[GpuInfo(0, "NVIDIA Test", 23.6), GpuInfo(1, "NVIDIA Test", 23.6)],
                  outputs=tmp / "outputs", lerobot_train="/env/bin/lerobot-train", accelerate="/env/bin/accelerate")
    (plan,) = build_plans(request, facts, policies=catalog.policies, machines=catalog.machines,
                          groups=catalog.groups, lab=catalog.lab, rename_maps=catalog.rename_maps(["groot"]))
    plan = plan.to_dict()
    assert plan["argv"][:5] == ["/env/bin/accelerate", "launch", "--multi_gpu", "--num_processes=2",
                                "/env/bin/lerobot-train"]
    cases["groot_multi"] = {"plan": plan, "args": strip_launcher(plan), "base_dir": base_dir, "base_config": None}

    # Negative cases: the same harness must reject these.
    bad = cli_plan(env, "act", "--", "--policy.no_such_field=1")
    cases["bad_field"] = {"plan": bad, "args": strip_launcher(bad), "base_dir": None, "base_config": None}
    base_dir = tmp / "base_models" / "pi05_bad"
    bad = cli_plan(env, "pi05", "--", "--policy.compile_model=maybe", base_dir=base_dir)
    cases["bad_override_on_path"] = {"plan": bad, "args": strip_launcher(bad), "base_dir": base_dir,
                                     "base_config": BASE_CONFIG["pi05"]}

    # The environment ships torch/lerobot without .pyc and this machine may set PYTHONDONTWRITEBYTECODE:
    # every import would compile torch again (~2x slower). Cache the bytecode in this test's temp dir:
    # the first case fills it, the others (in parallel) read it.
    hvenv = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
    hvenv["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
    names = list(cases)
    first = names[0]
    cases[first]["run"] = run_harness(hvenv, cases[first]["args"], cases[first]["base_dir"],
                                      cases[first]["base_config"], tmp)
    workers = max(1, min(4, (os.cpu_count() or 2)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {name: pool.submit(run_harness, hvenv, cases[name]["args"], cases[name]["base_dir"],
                                     cases[name]["base_config"], tmp) for name in names[1:]}
        for name, future in futures.items():
            cases[name]["run"] = future.result()
    return cases


def _validated(case: dict) -> dict:
    run = case["run"]
    assert run["returncode"] == 0 and run["result"], run["stdout"][-3000:] + run["stderr"][-6000:]
    return run["result"]


@pytest.mark.parametrize("policy", POLICIES)
def test_lerobot_accepts_the_plan(lerobot_cases, policy):
    case = lerobot_cases[policy]
    plan, cfg = case["plan"], _validated(case)
    name = f"{policy}_odin_{GROUP}"
    assert plan["name"] == name
    assert cfg["policy_type"] == policy
    assert cfg["batch_size"] == ODIN_BATCH[policy]
    assert cfg["steps"] == STEPS[policy]
    assert cfg["save_freq"] == plan["save_freq"] and cfg["num_workers"] == plan["num_workers"]
    assert cfg["repo_id"] == f"Mimic-Robotics/{name}"
    assert cfg["push_to_hub"] is False  # offline; and explicitly passed, not taken from the base config
    assert cfg["dataset_repo_id"] == f"mimic-merged/{GROUP}"
    assert cfg["dataset_root"] == str(Path(plan["record_dir"]) / "dataset")
    assert cfg["output_dir"] == plan["output_dir"] and cfg["job_name"] == name
    assert cfg["wandb_enable"] is False and cfg["resume"] is False
    assert cfg["optimizer"]  # the policy preset was applied by validate()
    # --policy.device=cuda (odin) arrives; without CUDA LeRobot itself switches to cpu and says so.
    if cfg["cuda_available"]:
        assert cfg["device"] == "cuda"
    else:
        assert cfg["device"] == "cpu"
        assert "Device 'cuda' is not available" in case["run"]["stderr"]
    assert cfg["rename_map"] == RENAME.get(policy, {})
    if policy in DTYPE:
        assert cfg["dtype"] == "bfloat16"
    if policy in ("xvla", "pi05", "pi0"):  # fine-tuned through --policy.path: the overrides were applied
        assert cfg["pretrained_path"] == str(case["base_dir"])
    if policy in ("pi05", "pi0"):
        assert cfg["gradient_checkpointing"] is True
    if policy == "pi05":
        assert cfg["normalization_mapping"] == {"ACTION": "QUANTILES", "STATE": "QUANTILES", "VISUAL": "IDENTITY"}
    if policy == "groot":
        assert cfg["base_model_path"] == str(case["base_dir"]) and cfg["pretrained_path"] is None
    if policy in ("act", "diffusion"):
        assert cfg["pretrained_path"] is None


def test_lerobot_accepts_groot_multi_gpu(lerobot_cases):
    case = lerobot_cases["groot_multi"]
    cfg = _validated(case)
    assert case["plan"]["num_gpus"] == 2
    assert cfg["policy_type"] == "groot" and cfg["batch_size"] == ODIN_BATCH["groot"]  # per process
    assert cfg["base_model_path"] == str(case["base_dir"])
    assert cfg["repo_id"] == "Mimic-Robotics/groot_twogpu_high_quality"


def test_harness_rejects_unknown_field(lerobot_cases):
    run = lerobot_cases["bad_field"]["run"]
    assert run["returncode"] == 3 and run["result"] is None
    assert "no_such_field" in run["stdout"] + run["stderr"]


def test_harness_rejects_bad_override_on_policy_path(lerobot_cases):
    """--policy.* overrides reach the base model's config (validate() re-parses them): a bad one fails."""
    run = lerobot_cases["bad_override_on_path"]["run"]
    assert run["returncode"] == 3 and run["result"] is None
    assert "compile_model" in run["stdout"] + run["stderr"]
