"""Preflight (issue #10 item 3): what the trainer needs at start is refused before anything is written.

Every case runs the real entry point (train_manager.sh) as a real process, against fake engines made
here (a `bin/lerobot-train` whose shebang names the env's `bin/python`, `pyvenv.cfg`, LeRobot's
METADATA with lines copied from the real 0.6.1 / 0.4.4 wheels, and a dist-info folder per installed
distribution), so each missing piece is controlled; one case reads the real `.venv` engine.
Each refusal: exit 2, one `error:` line naming the fix, nothing under MIMIC_OUTPUTS, and the
dry-run says the same (exit 0, `(launch would be refused: <the same>)`).
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import FAKE_TRAINER, REPO, read_record, run_cli, wait_state

pytestmark = pytest.mark.timeout(180)

ONE = ("--computer", "cpu", "--dataset-group", "one")
REFUSED = "launch would be refused: "
# Lines of the real wheels' METADATA (lerobot 0.6.1 and 0.4.4), trimmed to the extras used here.
META_06 = """\
Metadata-Version: 2.4
Name: lerobot
Version: {version}
Provides-Extra: dataset
Requires-Dist: datasets<5.0.0,>=4.8.0; extra == "dataset"
Requires-Dist: pandas<3.0.0,>=2.0.0; extra == "dataset"
Requires-Dist: pyarrow<30.0.0,>=21.0.0; extra == "dataset"
Requires-Dist: lerobot[av-dep]; extra == "dataset"
Requires-Dist: jsonlines<5.0.0,>=4.0.0; extra == "dataset"
Provides-Extra: training
Requires-Dist: lerobot[dataset]; extra == "training"
Requires-Dist: wandb<0.28.0,>=0.24.0; extra == "training"
Requires-Dist: lerobot[accelerate-dep]; extra == "training"
Provides-Extra: av-dep
Requires-Dist: av<16.0.0,>=15.0.0; extra == "av-dep"
Provides-Extra: transformers-dep
Requires-Dist: transformers<5.6.0,>=5.4.0; extra == "transformers-dep"
Provides-Extra: accelerate-dep
Requires-Dist: accelerate<2.0.0,>=1.14.0; extra == "accelerate-dep"
Provides-Extra: scipy-dep
Requires-Dist: scipy<2.0.0,>=1.14.0; extra == "scipy-dep"
Provides-Extra: pi
Requires-Dist: lerobot[transformers-dep]; extra == "pi"
Requires-Dist: lerobot[scipy-dep]; extra == "pi"
Provides-Extra: xvla
Requires-Dist: lerobot[transformers-dep]; extra == "xvla"
"""
META_04 = """\
Metadata-Version: 2.4
Name: lerobot
Version: 0.4.4
Provides-Extra: transformers-dep
Requires-Dist: transformers<5.0.0,>=4.57.1; extra == "transformers-dep"
Provides-Extra: xvla
Requires-Dist: lerobot[transformers-dep]; extra == "xvla"
"""
TRAINING = ("datasets", "pandas", "pyarrow", "av", "jsonlines", "wandb", "accelerate")
EVERYTHING = TRAINING + ("transformers", "scipy")


def fake_engine(root: Path, version: str = "0.6.1", installed: tuple[str, ...] = EVERYTHING,
                meta: str = META_06, trainer: Path | None = None) -> Path:
    """An env holding LeRobot `version` and `installed`; its lerobot-train runs `trainer` (the fake one)."""
    site = root / "lib" / "python3.12" / "site-packages"
    info = site / f"lerobot-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(meta.format(version=version))
    for dist in installed:
        (site / f"{dist}-1.0.dist-info").mkdir()
    (root / "pyvenv.cfg").write_text(f"home = {Path(sys.executable).parent}\nversion = 3.12.1\n")
    (root / "bin").mkdir()
    (root / "bin" / "python").symlink_to(sys.executable)
    (root / "bin" / "pip").write_text("#!/bin/sh\nexit 1\n")
    script = root / "bin" / "lerobot-train"
    script.write_text(f"#!{root}/bin/python\nimport runpy\n"
                      f"runpy.run_path({str(trainer or FAKE_TRAINER)!r}, run_name='__main__')\n")
    script.chmod(0o755)
    return script


def hf_cache(root: Path, *repos: str) -> Path:
    """An HF hub cache holding a snapshot of each repo, as huggingface_hub lays one out."""
    for repo in repos:
        folder = root / ("models--" + repo.replace("/", "--"))
        (folder / "refs").mkdir(parents=True)
        (folder / "refs" / "main").write_text("0123abcd")
        (folder / "snapshots" / "0123abcd").mkdir(parents=True)
        (folder / "snapshots" / "0123abcd" / "config.json").write_text("{}")
    return root


def nothing_written(env: dict) -> None:
    out = Path(env["MIMIC_OUTPUTS"])
    assert not out.exists() or not any(out.rglob("*")), sorted(map(str, out.rglob("*")))


def dry(args: tuple[str, ...]) -> tuple[str, ...]:
    """`--dry-run` among the toolkit's flags (after `--` everything goes to lerobot-train)."""
    cut = args.index("--") if "--" in args else len(args)
    return (*args[:cut], "--dry-run", *args[cut:])


def refused(env: dict, *args: str, **extra_env) -> str:
    """The launch refuses (one line, exit 2, nothing written) and the dry-run says the same."""
    launch = run_cli(env, *args, **extra_env)
    assert launch.returncode == 2, (launch.returncode, launch.stdout[-2000:], launch.stderr[-3000:])
    lines = launch.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in launch.stderr, launch.stderr
    nothing_written(env)
    shown = run_cli(env, *dry(args), **extra_env)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.rstrip().splitlines()[-1] == f"({REFUSED}{lines[0][len('error: '):]})", shown.stdout[-1500:]
    nothing_written(env)
    return lines[0]


def verdict(env: dict, *args: str, **extra_env) -> str:
    """The dry-run's last line: what the launch would do, or the first thing it would refuse."""
    shown = run_cli(env, *dry(args), **extra_env)
    assert shown.returncode == 0, shown.stderr
    nothing_written(env)
    return shown.stdout.rstrip().splitlines()[-1]


def ready_column(env: dict, **extra_env) -> dict[str, str]:
    out = run_cli(env, "--list-policies", **extra_env)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    start = lines[0].index("READY")
    return {line.split()[0]: line[start:].strip() for line in lines[2:] if line and not line.startswith("(")}


@pytest.fixture
def env(demo_env, tmp_path) -> dict:
    """demo_env with its own HF cache, torch home and home folder (no ~/.netrc of the machine's)."""
    home = tmp_path / "home"
    home.mkdir()
    return {**demo_env, "HOME": str(home), "TORCH_HOME": str(tmp_path / "torch"),
            "HF_HUB_CACHE": str(tmp_path / "hub")}


# ------------------------------------------------------------------------ 1. the policy's extra

def test_an_extra_the_engines_lerobot_does_not_have(env, tmp_path):
    engine = fake_engine(tmp_path / "env04", "0.4.4", meta=META_04, installed=("transformers",))
    line = refused(env, "--policy", "pi05", *ONE, LEROBOT_TRAIN=str(engine))
    assert f"pi05 needs lerobot[pi], which LeRobot 0.4.4 ({tmp_path / 'env04'}) does not have" in line
    assert "unset LEROBOT_TRAIN" in line and "LeRobot 0.6.1" in line  # the toolkit's env has it


def test_an_extra_whose_distributions_are_not_installed(env, tmp_path):
    engine = fake_engine(tmp_path / "env", installed=TRAINING + ("scipy",))
    line = refused(env, "--policy", "xvla", *ONE, LEROBOT_TRAIN=str(engine))
    assert "xvla needs lerobot[xvla]: transformers is not installed in LeRobot 0.6.1" in line
    assert f"{tmp_path / 'env' / 'bin' / 'pip'} install 'lerobot[xvla]==0.6.1'" in line
    # lerobot-train's own [training] extra is checked too, whatever the policy
    engine = fake_engine(tmp_path / "bare", installed=("transformers", "scipy", "av"))
    line = refused(env, "--policy", "xvla", *ONE, LEROBOT_TRAIN=str(engine))
    assert "xvla needs lerobot[training]: accelerate, datasets, jsonlines, pandas, pyarrow, wandb are not" in line


# ------------------------------------------------------------------------ 2. the Hub models it loads

def test_models_neither_cached_nor_downloadable_offline(env, tmp_path):
    engine = str(fake_engine(tmp_path / "env"))
    line = refused(env, "--policy", "xvla", *ONE, LEROBOT_TRAIN=engine)
    cache = tmp_path / "hub"
    assert (f"xvla needs lerobot/xvla-base and facebook/bart-large, which are not in the HF cache ({cache}) "
            "and HF_HUB_OFFLINE=1") in line
    assert f"`hf download lerobot/xvla-base && hf download facebook/bart-large` with HF_HUB_CACHE={cache}" in line
    # a local folder as the base model: only the tokenizer is left to find
    base = tmp_path / "my-xvla"
    base.mkdir()
    line = refused(env, "--policy", "xvla", *ONE, "--base-model", str(base), LEROBOT_TRAIN=engine)
    assert "xvla needs facebook/bart-large, which is not in the HF cache" in line
    assert "`hf download facebook/bart-large`" in line
    # both in the cache: nothing left to refuse
    hf_cache(cache, "lerobot/xvla-base", "facebook/bart-large")
    assert verdict(env, "--policy", "xvla", *ONE, LEROBOT_TRAIN=engine).startswith("(launch: 1 run(s)")


def test_an_empty_or_unreferenced_snapshot_is_not_cached(env, tmp_path):
    engine = str(fake_engine(tmp_path / "env"))
    cache = hf_cache(tmp_path / "hub", "lerobot/xvla-base")
    (cache / "models--facebook--bart-large" / "snapshots" / "0123abcd").mkdir(parents=True)  # no refs/main
    assert "needs facebook/bart-large," in refused(env, "--policy", "xvla", *ONE, LEROBOT_TRAIN=engine)
    (cache / "models--facebook--bart-large" / "refs").mkdir()
    (cache / "models--facebook--bart-large" / "refs" / "main").write_text("0123abcd")  # an empty snapshot
    assert "needs facebook/bart-large," in refused(env, "--policy", "xvla", *ONE, LEROBOT_TRAIN=engine)


def test_what_the_plan_loads_instead_is_what_is_checked(env, tmp_path):
    """A tokenizer the plan names by flag (`-- --policy.tokenizer_name=<folder>`) replaces the default."""
    engine = str(fake_engine(tmp_path / "env"))
    hf_cache(tmp_path / "hub", "lerobot/xvla-base")
    tokenizer = tmp_path / "tokenizer"
    tokenizer.mkdir()
    args = ("--policy", "xvla", *ONE, "--")
    assert verdict(env, *args, f"--policy.tokenizer_name={tokenizer}", LEROBOT_TRAIN=engine).startswith("(launch:")
    line = refused(env, *args, "--policy.tokenizer_name=lab/tokenizer", LEROBOT_TRAIN=engine)
    assert "xvla needs lab/tokenizer, which is not in the HF cache" in line
    # without the flag, the tokenizer the base model's config.json names is the one that loads
    config = tmp_path / "hub" / "models--lerobot--xvla-base" / "snapshots" / "0123abcd" / "config.json"
    config.write_text(json.dumps({"type": "xvla", "tokenizer_name": "lab/base-tokenizer"}))
    line = refused(env, "--policy", "xvla", *ONE, LEROBOT_TRAIN=engine)
    assert "xvla needs lab/base-tokenizer, which is not in the HF cache" in line


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_online_the_hub_must_be_reachable(env, tmp_path):
    """Without HF_HUB_OFFLINE a model not in the cache is downloaded at start: refused only when the
    Hub (HF_ENDPOINT) does not answer."""
    engine = str(fake_engine(tmp_path / "env"))
    port = closed_port()
    online = {"HF_HUB_OFFLINE": "0", "LEROBOT_TRAIN": engine}
    line = refused(env, "--policy", "xvla", *ONE, HF_ENDPOINT=f"http://127.0.0.1:{port}", **online)
    assert f"not in the HF cache ({tmp_path / 'hub'}) and 127.0.0.1:{port} is unreachable" in line
    with socket.socket() as hub:  # something answers there now
        hub.bind(("127.0.0.1", 0))
        hub.listen(8)
        endpoint = f"http://127.0.0.1:{hub.getsockname()[1]}"
        assert verdict(env, "--policy", "xvla", *ONE, HF_ENDPOINT=endpoint, **online).startswith("(launch:")


def test_real_engine_names_what_pi05_loads_offline(env, tmp_path):
    """The toolkit's own env (LeRobot 0.6.1 in .venv), offline, an empty cache: pi05's base model and
    the PaliGemma tokenizer its processor loads, by name; a cache holding both makes it pass."""
    real = dict(env)
    real.pop("LEROBOT_TRAIN")
    line = refused(real, "--policy", "pi05", *ONE)
    assert ("pi05 needs lerobot/pi05_base and google/paligemma-3b-pt-224, which are not in the HF cache "
            f"({tmp_path / 'hub'}) and HF_HUB_OFFLINE=1") in line
    assert "`hf download lerobot/pi05_base && hf download google/paligemma-3b-pt-224`" in line
    hf_cache(tmp_path / "hub", "lerobot/pi05_base", "google/paligemma-3b-pt-224")
    assert verdict(real, "--policy", "pi05", *ONE).startswith("(launch: 1 run(s)")
    assert ready_column(real)["pi05"] == "ready"


# ------------------------------------------------------------------------ 3. the ImageNet backbone

def test_act_backbone_cached_or_turned_off(env, tmp_path):
    engine = str(fake_engine(tmp_path / "env"))
    line = refused(env, "--policy", "act", *ONE, LEROBOT_TRAIN=engine)
    folder = tmp_path / "torch" / "hub" / "checkpoints"
    assert f"act loads torchvision's ImageNet backbone resnet18-f37072fd.pth at start, which is not in {folder}" in line
    assert "HF_HUB_OFFLINE=1" in line and "-- --policy.pretrained_backbone_weights=null" in line
    assert "load_state_dict_from_url(\"https://download.pytorch.org/models/resnet18-f37072fd.pth\")" in line
    off = verdict(env, "--policy", "act", *ONE, "--", "--policy.pretrained_backbone_weights=null", LEROBOT_TRAIN=engine)
    assert off.startswith("(launch: 1 run(s)")
    folder.mkdir(parents=True)
    (folder / "resnet18-f37072fd.pth").write_bytes(b"weights")
    assert verdict(env, "--policy", "act", *ONE, LEROBOT_TRAIN=engine).startswith("(launch: 1 run(s)")


# ------------------------------------------------------------------------ 4. W&B key, Hub token

def test_wandb_needs_a_key_or_an_offline_mode(env, tmp_path):
    nokey = {k: v for k, v in env.items() if k != "WANDB_MODE"}
    line = refused(nokey, "--policy", "act", *ONE, "--wandb")
    assert "W&B logging is on (--wandb) but there is no W&B API key" in line and "wandb login" in line
    line = refused(nokey, "--policy", "act", *ONE, WANDB_ENABLE="1")
    assert "W&B logging is on (env WANDB_ENABLE) but there is no W&B API key" in line
    for ok in ({"WANDB_MODE": "offline"}, {"WANDB_API_KEY": "k" * 40}):
        assert verdict(nokey, "--policy", "act", *ONE, "--wandb", **ok).startswith("(launch:"), ok
    netrc = tmp_path / "netrc"
    netrc.write_text("machine api.wandb.ai\n  login user\n  password " + "k" * 40 + "\n")
    assert verdict(nokey, "--policy", "act", *ONE, "--wandb", NETRC=str(netrc)).startswith("(launch:")
    # without --wandb, no key: W&B stays off and nothing is refused
    assert verdict(nokey, "--policy", "act", *ONE).startswith("(launch:")


def test_push_needs_a_token_and_no_offline_flag(env, tmp_path):
    line = refused(env, "--policy", "act", *ONE, "--push-to-hub")
    assert "pushing to the Hub is on (--push-to-hub) but HF_HUB_OFFLINE=1: the upload would fail" in line
    assert "--no-push-to-hub" in line
    online = {"HF_HUB_OFFLINE": "0"}
    line = refused(env, "--policy", "act", *ONE, "--push-to-hub", **online)
    assert "but there is no Hugging Face token" in line and "hf auth login" in line
    line = refused(env, "--policy", "act", *ONE, PUSH_TO_HUB="1", **online)
    assert "pushing to the Hub is on (env PUSH_TO_HUB) but there is no Hugging Face token" in line
    assert verdict(env, "--policy", "act", *ONE, "--push-to-hub", HF_TOKEN="hf_" + "x" * 30,
                   **online).startswith("(launch:")
    (tmp_path / "hf_home").mkdir(exist_ok=True)
    (tmp_path / "hf_home" / "token").write_text("hf_" + "y" * 30 + "\n")  # `hf auth login`'s file
    assert verdict(env, "--policy", "act", *ONE, "--push-to-hub", **online).startswith("(launch:")
    # a token but offline: the default turns the push off, nothing to refuse
    assert verdict(env, "--policy", "act", *ONE, HF_TOKEN="hf_" + "x" * 30).startswith("(launch:")


# ------------------------------------------------------------------------ 5. READY in --list-policies

def test_list_policies_ready_column(env, tmp_path):
    env04 = fake_engine(tmp_path / "env04", "0.4.4", meta=META_04, installed=("transformers",))
    ready = ready_column(env, LEROBOT_TRAIN=str(env04))
    assert ready["pi05"] == "no extra pi" and ready["pi0"] == "no extra pi"
    assert ready["xvla"] == "needs lerobot/xvla-base"  # the extra is there: the base model is next
    assert ready["act"] == "needs resnet18-f37072fd.pth"
    partial = fake_engine(tmp_path / "partial", installed=TRAINING)
    assert ready_column(env, LEROBOT_TRAIN=str(partial))["xvla"] == "lerobot[xvla] not installed"
    full = fake_engine(tmp_path / "full")
    hf_cache(tmp_path / "hub", "lerobot/xvla-base", "facebook/bart-large")
    assert ready_column(env, LEROBOT_TRAIN=str(full))["xvla"] == "ready"
    assert set(ready_column(env).values()) == {"? (no LeRobot)"}  # the fake trainer: nothing to check


def test_list_policies_reads_files_only(env, tmp_path):
    """READY is computed without importing torch, lerobot, huggingface_hub or numpy."""
    code = ("import sys\nfrom mimic_deployment.cli import main\nmain(['--list-policies'])\n"
            "heavy = sorted(m for m in ('torch', 'lerobot', 'huggingface_hub', 'numpy') if m in sys.modules)\n"
            "assert not heavy, heavy\n")
    full = fake_engine(tmp_path / "full")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                         env={**env, "LEROBOT_TRAIN": str(full)})
    assert out.returncode == 0, out.stderr
    assert "READY" in out.stdout and f"with LeRobot 0.6.1 in {tmp_path / 'full'}" in out.stdout


def test_check_policy_alone_is_its_preflight(env, tmp_path):
    engine = str(fake_engine(tmp_path / "env"))
    out = run_cli(env, "check", "--policy", "xvla", LEROBOT_TRAIN=engine)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "needs lerobot/xvla-base" in out.stderr
    hf_cache(tmp_path / "hub", "lerobot/xvla-base", "facebook/bart-large")
    out = run_cli(env, "check", "--policy", "xvla", LEROBOT_TRAIN=engine)
    assert out.returncode == 0 and out.stdout.strip().endswith(": ready"), out.stdout + out.stderr


# ------------------------------------------------------------------------ 6. the record's engine

def test_the_record_names_the_plans_engine(env, tmp_path):
    """lerobot_version comes from the env of the run's lerobot-train (0.6.0 here), not the toolkit's."""
    engine = fake_engine(tmp_path / "env060", "0.6.0")
    out = run_cli(env, "--policy", "act", *ONE, "--steps", "4", "--save-freq", "2", "--",
                  "--policy.pretrained_backbone_weights=null", LEROBOT_TRAIN=str(engine), FAKE_STEP_SECONDS="0.02")
    assert out.returncode == 0, out.stderr
    name = "act_cpu_one"
    record = read_record(env, name)
    assert record["lerobot_version"] == "0.6.0"
    assert record["plan"]["engine"]["version"] == "0.6.0"
    assert record["plan"]["engine"]["prefix"] == str(tmp_path / "env060")
    final = wait_state(env, name, {"finished", "failed"})
    assert final["state"] == "finished", json.dumps(final)[:2000]
    assert os.path.isdir(Path(record["plan"]["output_dir"]) / "checkpoints")
