"""Inputs the toolkit must refuse, secrets it must keep out of argv, what a dry-run must say about
the launch, and the per-policy entry points (issue #11 items 2, 3, 6, 8, 10).

Every case runs the real entry points as real processes (train_manager.sh, training_scripts/
<policy>/train.sh and eval.sh), with the fake trainer where a run is launched."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import REPO, read_record, run_cli, wait_for, wait_state

pytestmark = pytest.mark.timeout(180)

SCRIPTS = REPO / "mimic_deployment" / "training_scripts"
ONE = ("--policy", "act", "--dataset-group", "one")
FAST = {"FAKE_STEP_SECONDS": "0.02"}
SLOW = {"FAKE_STEP_SECONDS": "0.05"}
HF_TOKEN = "hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYz012345"  # the shape of a Hugging Face token
REFUSED = "launch would be refused: "


# ------------------------------------------------------------------------------------ helpers

def outputs(env: dict) -> Path:
    return Path(env["MIMIC_OUTPUTS"])


def created(env: dict) -> list[str]:
    out = outputs(env)
    return sorted(str(p) for p in out.rglob("*")) if out.exists() else []


def one_error(result: subprocess.CompletedProcess, env: dict | None = None, *needles: str) -> str:
    """A user mistake: exit 2, one `error:` line, no traceback, and (with env) nothing written."""
    assert result.returncode == 2, (result.returncode, result.stdout[-2000:], result.stderr[-3000:])
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    if env is not None:
        assert not created(env), created(env)
    return lines[0]


def last_line(result: subprocess.CompletedProcess) -> str:
    """The dry-run's last line, what the launch would do or refuse, without its parentheses."""
    assert result.returncode == 0, result.stderr
    line = result.stdout.rstrip("\n").splitlines()[-1]
    assert line.startswith("(") and line.endswith(")"), line
    return line[1:-1]


def launched_name(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stderr
    (name,) = [line.split()[1] for line in result.stdout.splitlines() if line.startswith("launched ")]
    return name


def has_gpu() -> bool:
    from mimic_deployment.host.gpus import read_gpus

    return bool(read_gpus())


@pytest.fixture
def env(demo_env):
    demo_env["COMPUTER"] = "cpu"  # run names act_cpu_*, on a host with GPUs too
    yield demo_env
    run_cli(demo_env, "stop", "--all", "--timeout", "2")  # never leave a detached run behind


# ------------------------------------------------------------------------------------ item 2: inputs

@pytest.mark.parametrize("tag", ["ok\n", "ok\r", "o k", "../x", ".x"])
def test_a_tag_that_is_not_one_plain_name_part_is_refused(env, tag):
    for extra in (("--dry-run",), ()):
        one_error(run_cli(env, *ONE, "--tag", tag, *extra), env, "tag", repr(tag))


@pytest.mark.parametrize("org", ["my org", "a/b/c", "../..", "lab/", "-lab", "lab..x", "x\ny"])
def test_an_org_is_one_hub_namespace(env, org):
    one_error(run_cli(env, *ONE, "--dry-run", HF_ORG=org), env, "HF_ORG", "Hub organisation")
    one_error(run_cli(env, *ONE, "--dry-run", "--hf-org", org), env, "--hf-org")


def test_a_plain_org_is_kept(env):
    out = run_cli(env, *ONE, "--dry-run", "--json", HF_ORG="other_lab.2")
    assert out.returncode == 0, out.stderr
    assert "--policy.repo_id=other_lab.2/act_" in out.stdout


def test_a_base_model_is_a_hub_id_or_an_existing_folder(env, tmp_path):
    one_error(run_cli(env, *ONE, "--dry-run", "--base-model", "lerobot/act\ntouch /tmp/x"), env,
              "--base-model", "control character")
    for bad in ("not a model!", "/no/such/checkpoint", "a/b/c"):
        for where in ({"BASE_MODEL": bad}, {}):
            args = () if where else ("--base-model", bad)
            source = "BASE_MODEL" if where else "--base-model"
            err = one_error(run_cli(env, *ONE, *args, **where), env, source, "neither an existing folder nor a Hub")
            dry = last_line(run_cli(env, *ONE, *args, "--dry-run", **where))
            assert dry == REFUSED + err.removeprefix("error: ")
    folder = tmp_path / "my_checkpoint"
    folder.mkdir()
    for good in (str(folder), "lerobot/act_base"):
        assert last_line(run_cli(env, *ONE, "--dry-run", "--base-model", good)).startswith("launch: 1 run(s)")


@pytest.mark.parametrize("arg,needles", [
    ("--resume=true", ("--resume", "resume NAME")),
    ("--config_path=/x/train_config.json", ("--config_path", "resume NAME", "--base-model")),
    ("--output_dir=/elsewhere", ("--output_dir", "--tag")),
    ("--job_name=mine", ("--job_name", "--tag")),
    ("--dataset.repo_id=a/b", ("--dataset.repo_id", "--dataset-group")),
    ("--dataset.root=/data", ("--dataset.root", "--dataset-root")),
    ("--policy.device=cpu", ("--policy.device", "--computer")),
    ('--dataset={"repo_id": "a/b"}', ("--dataset", "--dataset.repo_id")),
])
def test_passthrough_flags_the_toolkit_owns_are_refused(env, arg, needles):
    one_error(run_cli(env, *ONE, "--dry-run", "--", arg), env, *needles)


def test_passthrough_key_twice_or_with_a_control_character_is_refused(env, tmp_path):
    one_error(run_cli(env, *ONE, "--dry-run", "--", "--log_freq=1", "--policy.optimizer_lr=1",
                      "--log_freq=2"), env, "--log_freq", "twice")
    pwned = tmp_path / "pwned"
    for value in (f"1\ntouch {pwned} #", "1\r", "1\tx", "1\u2028x"):
        one_error(run_cli(env, *ONE, "--dry-run", "--", f"--policy.optimizer_lr={value}"), env,
                  "--policy.optimizer_lr", "control character")
    assert not pwned.exists()
    ok = run_cli(env, *ONE, "--dry-run", "--json", "--", "--log_freq=1", "--policy.optimizer_lr=1e-5")
    assert ok.returncode == 0, ok.stderr


def test_outputs_with_a_control_character_are_refused(env, tmp_path):
    bad = str(tmp_path / "out\n#SBATCH --wrap=touch")
    for args in ((*ONE, "--dry-run"), ("status",)):
        one_error(run_cli(env, *args, MIMIC_OUTPUTS=bad), None, "MIMIC_OUTPUTS", "control character")
    assert not Path(bad).exists()


def test_a_save_freq_beyond_the_steps_is_refused(env):
    one_error(run_cli(env, *ONE, "--dry-run", "--steps", "1000", "--save-freq", "200000"), env,
              "--save-freq=200000", "1000 steps", "save freq <= steps")
    one_error(run_cli(env, *ONE, "--dry-run", STEPS="1000", SAVE_FREQ="200000"), env, "SAVE_FREQ")
    # the policy's own save freq with a short run: LeRobot saves at the last step, and the dry-run says so
    out = run_cli(env, *ONE, "--dry-run", "--steps", "9")
    assert out.returncode == 0, out.stderr
    assert "checkpoint every 20000 (policy act default): only the final one" in out.stdout


def test_sequential_and_parallel_together_are_refused(env):
    args = ("--policy", "act", "--dataset-group", "one,two", "--sequential", "--parallel")
    err = one_error(run_cli(env, *args), env, "--sequential and --parallel")
    assert last_line(run_cli(env, *args, "--dry-run")) == REFUSED + err.removeprefix("error: ")
    assert not created(env)


def test_a_gpu_machine_named_on_a_host_without_gpus_is_refused(env):
    env.pop("COMPUTER")
    if has_gpu():
        out = run_cli(env, *ONE, "--dry-run", COMPUTER="odin")
        assert last_line(out).startswith("launch: 1 run(s)") and "CUDA_VISIBLE_DEVICES=" in last_line(out)
        return
    err = one_error(run_cli(env, *ONE, "--steps", "4", COMPUTER="odin"), env,
                    "COMPUTER=odin expects 1 GPU but this host has none (LeRobot would silently train on the CPU)",
                    "--computer cpu")
    dry = run_cli(env, *ONE, "--dry-run", COMPUTER="odin")
    assert "--policy.device=cuda" in dry.stdout  # the plan is still shown
    assert last_line(dry) == REFUSED + err.removeprefix("error: ")
    one_error(run_cli(env, *ONE, "--computer", "odin"), env, "--computer=odin expects 1 GPU")
    # on purpose: the cpu profile trains on the CPU
    name = launched_name(run_cli(env, *ONE, "--steps", "4", "--save-freq", "2", COMPUTER="cpu", **FAST))
    assert wait_state(env, name, "finished")["step"] == 4


# ------------------------------------------------------------------------------------ item 3: one line

def test_a_run_name_too_long_for_the_filesystem_is_one_line(env):
    tag = "t" * 300
    for extra in (("--dry-run",), ()):
        one_error(run_cli(env, *ONE, "--tag", tag, *extra), env, "run name", "bytes", "--tag")
    longest = "t" * (255 - len("queue_act_cpu_one_.log"))  # exactly fits every file named after the run
    assert last_line(run_cli(env, *ONE, "--tag", longest, "--dry-run", "--no-push-to-hub")).startswith("launch:")
    one_error(run_cli(env, *ONE, "--tag", longest + "t", "--dry-run"), env, "--tag")


def test_a_group_name_too_long_is_one_line(env, tmp_path):
    groups = tmp_path / "long_groups.yaml"
    group = "g" * 250
    groups.write_text(f"groups:\n  {group}: {{datasets: [mimic-demo/demo_a], local: true}}\n"
                      f"  {'m' * 220}: {{datasets: [mimic-demo/demo_a, mimic-demo/demo_b], local: true}}\n")
    one_error(run_cli(env, "--policy", "act", "--dataset-group", group, "--dry-run", DATASET_GROUPS_FILE=str(groups)),
              env, "run name", "group name")
    one_error(run_cli(env, "--policy", "act", "--dataset-group", "m" * 220, "--dry-run",
                      DATASET_GROUPS_FILE=str(groups)), env, "group name", "merged dataset folder")


def test_a_pushed_run_needs_a_repo_id_the_hub_accepts(env):
    tag = "t" * 90  # act_cpu_one_ + 90 > 96 characters
    one_error(run_cli(env, *ONE, "--tag", tag, "--push-to-hub", "--dry-run"), env,
              "Hub repo id", "96", "--no-push-to-hub")
    one_error(run_cli(env, *ONE, "--tag", "a..b", "--push-to-hub", "--dry-run"), env, "'..'")
    out = run_cli(env, *ONE, "--tag", tag, "--no-push-to-hub", "--dry-run")
    assert out.returncode == 0, out.stderr


def test_a_groups_file_that_is_not_utf8_is_one_line(env, tmp_path):
    groups = tmp_path / "latin1.yaml"
    groups.write_bytes(b"groups:\n  caf\xe9:\n    - a/b\n")
    offset = groups.read_bytes().index(b"\xe9")
    one_error(run_cli(env, *ONE, "--dry-run", DATASET_GROUPS_FILE=str(groups)), env,
              str(groups), f"offset {offset}", "line 2", "UTF-8")
    one_error(run_cli(env, "check", "--config", str(groups)), None, str(groups), f"offset {offset}")
    one_error(run_cli(env, "--list-groups", "--groups-file", str(groups)), None, "UTF-8")


def test_a_full_disk_at_launch_is_one_line_and_leaves_no_folder(env, tmp_path):
    if not shutil.which("unshare") or subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode:
        pytest.skip("needs a mount namespace (unshare -rm) for a tiny tmpfs")
    full = tmp_path / "full"
    full.mkdir()
    # in its own mount namespace: a 1 MiB tmpfs, filled, is MIMIC_OUTPUTS; gone when the shell ends
    script = ('mount -t tmpfs -o size=1m tmpfs "$OUT" && (dd if=/dev/zero of="$OUT/fill" bs=64k 2>/dev/null; true) '
              '&& "$TM" "$@"; code=$?; ls -A "$OUT/runs" 2>/dev/null | sed "s/^/left: /"; exit $code')
    out = subprocess.run(["unshare", "-rm", "sh", "-c", script, "sh", *ONE, "--steps", "4"], capture_output=True,
                         text=True, timeout=120, cwd=REPO,
                         env={**env, "OUT": str(full), "TM": str(REPO / "mimic_deployment" / "train_manager.sh"),
                              "MIMIC_OUTPUTS": str(full)})
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert out.stderr.count("\n") == 1 and "no space left" in out.stderr and "Traceback" not in out.stderr
    assert "left:" not in out.stdout  # no run folder blocks the name


# ------------------------------------------------------------------------------------ item 6: secrets

@pytest.mark.parametrize("arg,needles", [
    (f"--hub_token={HF_TOKEN}", ("--hub_token", "HF_TOKEN")),
    ("--wandb.api_key=0123456789abcdef0123", ("--wandb.api_key", "secret", "WANDB_API_KEY")),
    ("--policy.hub_password=s3cret-value", ("--policy.hub_password", "secret")),
    (f"--policy.notes={HF_TOKEN}", ("--policy.notes", "secret", "HF_TOKEN")),
])
def test_a_secret_after_double_dash_is_refused_and_never_shown(env, arg, needles):
    secret = arg.split("=", 1)[1]
    for extra in (("--dry-run",), ("--dry-run", "--json"), ()):
        out = run_cli(env, *ONE, "--steps", "4", *extra, "--", arg)
        one_error(out, env, *needles)
        assert secret not in out.stdout + out.stderr


def test_tokens_in_the_environment_stay_out_of_the_record_and_the_log(env):
    secrets = {"HF_TOKEN": HF_TOKEN, "WANDB_API_KEY": "wandb" + "K" * 35}
    dry = run_cli(env, *ONE, "--steps", "4", "--dry-run", **secrets)
    assert dry.returncode == 0 and not any(s in dry.stdout for s in secrets.values())
    name = launched_name(run_cli(env, *ONE, "--steps", "4", "--save-freq", "2", "--no-push-to-hub", **FAST,
                                 **secrets))
    wait_state(env, name, "finished")
    stored = (outputs(env) / "runs" / name / "run.json").read_text()
    log = Path(read_record(env, name)["plan"]["log_file"]).read_text()
    for value in secrets.values():
        assert value not in stored and value not in log


# ------------------------------------------------------------------------------------ item 8: dry-run truth

def test_the_dry_run_reports_a_collision_as_the_launch_does(env):
    args = ("--policy", "act", "--dataset-group", "one", "--steps", "2000", "--save-freq", "5")
    name = launched_name(run_cli(env, *args, **SLOW))
    wait_for(lambda: (Path(read_record(env, name)["plan"]["output_dir"]) / "checkpoints" / "last").exists(),
             60, 0.2, "a checkpoint")
    for state in ("running", "stopped"):
        if state == "stopped":
            assert run_cli(env, "stop", name, "--timeout", "2").returncode == 0
        err = one_error(run_cli(env, *args))
        assert state in err
        assert last_line(run_cli(env, *args, "--dry-run")) == REFUSED + err.removeprefix("error: ")
    assert "resume" in err and "checkpoint" in err
    dry = run_cli(env, *args, "--dry-run", "--json")
    assert dry.returncode == 0 and dry.stderr.strip() == REFUSED + err.removeprefix("error: ")


def test_the_dry_run_reports_foreground_on_slurm_as_the_launch_does(env):
    args = (*ONE, "--computer", "cluster", "--foreground")
    err = one_error(run_cli(env, *args), env, "--foreground runs here, not on Slurm")
    assert last_line(run_cli(env, *args, "--dry-run")) == REFUSED + err.removeprefix("error: ")
    assert last_line(run_cli(env, *ONE, "--computer", "cluster", "--dry-run")).startswith("launch: 1 run(s) as Slurm")


def test_the_dry_run_says_sequential_or_parallel_as_the_launch_does(env):
    args = ("--policy", "act", "--dataset-group", "one,two", "--steps", "4", "--save-freq", "2")
    # the cpu profile: several runs default to a queue
    assert "a detached local queue, one run after another" in last_line(run_cli(env, *args, "--dry-run"))
    out = run_cli(env, *args, **FAST)
    assert out.returncode == 0 and "queue position 1/2" in out.stdout and "queue position 2/2" in out.stdout
    for name in ("act_cpu_one", "act_cpu_two"):
        wait_state(env, name, "finished")
    tagged = (*args, "--tag", "par", "--parallel")
    assert "a detached supervisor per run, all at once" in last_line(run_cli(env, *tagged, "--dry-run"))
    out = run_cli(env, *tagged, **FAST)
    assert out.returncode == 0 and "queue position" not in out.stdout and out.stdout.count("(pid ") == 2


# ------------------------------------------------------------------------------------ item 10: entry points

def _script(path: Path | str, *args: str, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([str(path), *args], env=env, capture_output=True, text=True, timeout=120, cwd=cwd)


def test_train_sh_from_inside_its_folder_and_through_a_users_link(env, tmp_path):
    import json

    inside = _script("./train.sh", "--dataset-group", "one", "--dry-run", "--json", cwd=SCRIPTS / "act",
                     env=env)
    assert inside.returncode == 0, inside.stderr
    assert json.loads(inside.stdout)[0]["policy"] == "act"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "train-act").symlink_to(SCRIPTS / "act" / "train.sh")
    (bin_dir / "train-pi0").symlink_to(os.path.relpath(SCRIPTS / "pi0" / "train.sh", bin_dir))  # a relative link
    (bin_dir / "again").symlink_to(bin_dir / "train-act")  # a link to a link
    for link, policy in (("train-act", "act"), ("train-pi0", "pi0"), ("again", "act")):
        out = _script(bin_dir / link, "--dataset-group", "one", "--dry-run", "--json", cwd=tmp_path, env=env)
        assert out.returncode == 0, (link, out.stderr)
        assert json.loads(out.stdout)[0]["policy"] == policy
    lone = tmp_path / "elsewhere"
    lone.mkdir()
    (lone / "train.sh").symlink_to(SCRIPTS / "_policy_train.sh")  # no policy folder on the way
    one_error(_script(lone / "train.sh", "--dry-run", cwd=tmp_path, env=env), None, "training_scripts/<policy>")


def test_eval_sh_from_inside_its_folder_and_through_a_users_link(env, tmp_path):
    import json

    env = dict(env, MODEL_PATH="Mimic-Robotics/act_odin_demo", EVAL_DATASET="Mimic-Robotics/rollout_act_demo")
    (tmp_path / "eval-act").symlink_to(SCRIPTS / "act" / "eval.sh")
    for path, cwd in (("./eval.sh", SCRIPTS / "act"), (tmp_path / "eval-act", tmp_path)):
        out = _script(path, "--dry-run", "--json", cwd=cwd, env=env)
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["policy"] == "act"


def test_train_manager_through_a_users_link(env, tmp_path):
    (tmp_path / "tm").symlink_to(REPO / "mimic_deployment" / "train_manager.sh")
    out = _script(tmp_path / "tm", *ONE, "--dry-run", "--json", cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr  # the link was followed back to this checkout's _python.sh
