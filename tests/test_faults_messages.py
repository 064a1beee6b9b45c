"""Faults and messages of issue #11 (items 1, 3d, 9 and corrupt records in status): no value from a
plan leaves its line of the Slurm job script; one-line refusals that name the real cause and fix;
status shows W&B links, corrupt records and plain --watch frames; compare --json writes no PNG.

Through the real entry points (train_manager.sh via run_cli) with real processes: the fake
trainer, a real sbatch against an unreachable controller, the built job script run by bash.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import FAKE_TRAINER, REPO, TRAIN_MANAGER, read_record, run_cli, wait_for, wait_state
from slurm_cluster import slurm_cluster  # noqa: F401  (the session fixture)

pytestmark = pytest.mark.timeout(180)

FAST = {"FAKE_STEP_SECONDS": "0.02"}
ACT = ("--policy", "act", "--dataset-group", "one")
PWNED = "touch PWNED #"


def launch_ok(env: dict, *args: str, **extra_env) -> str:
    out = run_cli(env, *args, **extra_env)
    assert out.returncode == 0, out.stderr
    names = [line.split()[1] for line in out.stdout.splitlines() if line.startswith("launched ")]
    assert len(names) == 1, out.stdout
    return names[0]


def one_line_error(out: subprocess.CompletedProcess) -> str:
    assert out.returncode == 2 and out.stdout == "", out
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("error: ") and "Traceback" not in out.stderr, \
        out.stderr
    return out.stderr


def no_records(env: dict) -> bool:
    runs = Path(env["MIMIC_OUTPUTS"]) / "runs"
    return not runs.exists() or not any(runs.iterdir())


# ------------------------------------------------------------------ 1. the Slurm job script


def slurm_plan(tmp_path: Path, outputs: str = "/scratch/outputs"):
    """A real plan for the cluster machine (as build_plans makes it), before any hostile value."""
    from mimic_deployment.config.catalog import load_catalog
    from mimic_deployment.planning.plan import Facts, RunRequest, build_plans

    groups = tmp_path / "groups.yaml"
    groups.write_text("groups:\n  one: {datasets: [mimic-demo/demo_a], local: true}\n")
    catalog = load_catalog(groups)
    request = RunRequest(policies=("act",), groups=("one",), computer="cluster", slurm={"gpus": "2"})
    facts = Facts(env={}, hostname="login1", gpus=None, outputs=Path(outputs),
                  lerobot_train="/opt/venv/bin/lerobot-train", accelerate="/opt/venv/bin/accelerate")
    plan, = build_plans(request, facts, policies=catalog.policies, machines=catalog.machines,
                        groups=catalog.groups, lab=catalog.lab, rename_maps={})
    return plan


def stub_bin(tmp_path: Path) -> tuple[Path, Path]:
    """A PATH where sbatch, srun, scontrol and python are harmless stubs that log their argv."""
    bin_dir, calls = tmp_path / "stubs", tmp_path / "calls.log"
    bin_dir.mkdir()
    for tool in ("sbatch", "srun", "scontrol", "python", "python3"):
        stub = bin_dir / tool
        stub.write_text(f'#!/bin/bash\nprintf "%s\\0" {tool} "PYTHONPATH=$PYTHONPATH" "$@" >> {calls}\n'
                        f'printf "\\n" >> {calls}\n')
        stub.chmod(stub.stat().st_mode | stat.S_IXUSR)
    return bin_dir, calls


def run_script(text: str, tmp_path: Path) -> tuple[subprocess.CompletedProcess, Path, Path]:
    """The script run by bash in a sandbox folder, its python a stub (nothing real starts)."""
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()
    script = sandbox / "job.sbatch"
    script.write_text(text)
    bin_dir, calls = stub_bin(tmp_path)
    syntax = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert syntax.returncode == 0, syntax.stderr
    proc = subprocess.run(["bash", str(script)], cwd=sandbox, capture_output=True, text=True, timeout=30,
                          env={"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(sandbox), "SLURM_JOB_ID": "1"})
    return proc, sandbox, calls


def sbatch_lines(text: str) -> list[str]:
    return [line for line in text.split("\n") if line.startswith("#SBATCH")]


@pytest.mark.parametrize("where", ["passthrough", "base_model", "hf_org", "repo", "python"])
def test_hostile_values_never_leave_their_line_of_the_job_script(tmp_path, where):
    from mimic_deployment.launchers.slurm import sbatch_script

    plan = slurm_plan(tmp_path)
    evil = f"x\n{PWNED}"
    python, repo = str(tmp_path / "stubs" / "python"), "/opt/mimic"
    if where == "passthrough":
        plan = dataclasses.replace(plan, argv=[*plan.argv, f"--policy.optimizer_lr=1\n{PWNED}", "--hub_token=s3cr3t"])
    elif where == "base_model":
        plan = dataclasses.replace(plan, argv=[*plan.argv, f"--policy.path=lerobot/x\n{PWNED}"], base_model=evil)
    elif where == "hf_org":
        plan = dataclasses.replace(plan, argv=[*plan.argv, f"--policy.repo_id={evil}/act"], repo_id=f"{evil}/act")
    elif where == "repo":
        repo = f"/opt/mimic\n{PWNED}"
    else:
        python = f"{python}\n{PWNED}"
    text = sbatch_script(plan, python=python, repo=repo)
    # the same plan with every newline a space: the script must have the same lines, the same code
    tame = dataclasses.replace(plan, argv=[a.replace("\n", " ") for a in plan.argv])
    clean = sbatch_script(tame, python=python.replace("\n", " "), repo=repo.replace("\n", " ")).split("\n")
    lines = text.split("\n")
    assert not any(line.startswith("touch PWNED") for line in lines), text
    assert len(lines) == len(clean)  # no value added a line
    for line, expected in zip(lines, clean):
        assert line.startswith("#") == expected.startswith("#"), (line, expected)
        if not line.startswith("#") and "PWNED" not in expected:
            assert line == expected
    assert [d.split("=")[0] for d in sbatch_lines(text)] == [
        "#SBATCH --job-name", "#SBATCH --partition", "#SBATCH --nodes", "#SBATCH --ntasks", "#SBATCH --gres",
        "#SBATCH --cpus-per-task", "#SBATCH --mem", "#SBATCH --time", "#SBATCH --output", "#SBATCH --open-mode",
        "#SBATCH --chdir", "#SBATCH --signal", "#SBATCH --requeue"]
    assert "s3cr3t" not in text  # the comment's argv is redacted
    proc, sandbox, calls = run_script(text, tmp_path)
    assert not (sandbox / "PWNED").exists(), (proc.stdout, proc.stderr)
    if where != "python":  # (a python path with a newline is not the stub: nothing ran, nothing was created)
        assert proc.returncode == 0, proc.stderr
        call = calls.read_text().split("\0")
        assert call[0] in ("python", "python3") or call[0].endswith("python")
        assert call[1] == f"PYTHONPATH={repo}" and call[2:6] == ["-m", "mimic_deployment._entry", "slurm-job",
                                                                 plan.name]


@pytest.mark.parametrize("field", ["log_file", "record_dir", "name"])
def test_a_control_character_in_a_directive_is_refused(tmp_path, field):
    from mimic_deployment.launchers.slurm import sbatch_script
    from mimic_deployment.util.errors import UserError

    plan = slurm_plan(tmp_path)
    plan = dataclasses.replace(plan, **{field: getattr(plan, field) + "\n#SBATCH --uid=0\n" + PWNED})
    with pytest.raises(UserError, match="holds a control character: it cannot go into a Slurm job script"):
        sbatch_script(plan, python="/opt/venv/bin/python", repo="/opt/mimic")


def test_directive_values_are_quoted_as_sbatch_reads_them(tmp_path):
    from mimic_deployment.launchers.slurm import sbatch_directives

    plan = slurm_plan(tmp_path, outputs='/scratch/my "lab" #1')
    out = [d for d in sbatch_directives(plan) if d.startswith(("--output", "--chdir"))]
    assert out == ['--output="/scratch/my \\"lab\\" #1/logs/act_cluster_one.log"',
                   '--chdir="/scratch/my \\"lab\\" #1/runs/act_cluster_one"']


@pytest.mark.parametrize("flags, extra_env", [
    (("--", f"--policy.optimizer_lr=1\n{PWNED}"), {}),
    (("--hf-org", f"lab\n{PWNED}"), {}),
    ((), {"HF_ORG": f"lab\n{PWNED}"}),
    (("--base-model", f"lerobot/x\n{PWNED}"), {}),
    ((), {"BASE_MODEL": f"lerobot/x\n{PWNED}"}),
    ((), {"MIMIC_OUTPUTS": f"\n{PWNED}\n"}),
], ids=["passthrough", "hf-org", "HF_ORG", "base-model", "BASE_MODEL", "MIMIC_OUTPUTS"])
@pytest.mark.parametrize("dry_run", [True, False], ids=["dry-run", "launch"])
def test_hostile_value_with_the_slurm_launcher_is_one_line_exit_2(demo_env, tmp_path, flags, extra_env, dry_run):
    env = dict(demo_env, LAUNCHER="slurm", **extra_env)
    if "MIMIC_OUTPUTS" in extra_env:
        env["MIMIC_OUTPUTS"] = str(tmp_path / "out") + extra_env["MIMIC_OUTPUTS"]
    passthrough = flags[1:] if flags[:1] == ("--",) else ()
    own = () if passthrough else flags
    out = run_cli(env, *ACT, *own, *(("--dry-run",) if dry_run else ()), *(("--", *passthrough) if passthrough else ()))
    err = one_line_error(out)
    assert "control character" in err or "not a Hub organisation" in err, err
    assert not list(tmp_path.rglob("PWNED")) and not (REPO / "PWNED").exists()
    assert not Path(env["MIMIC_OUTPUTS"]).exists() or no_records(env)


def test_an_outputs_path_with_quotes_and_a_hash_runs_through_real_slurm(demo_env, slurm_cluster, tmp_path):  # noqa: F811
    outputs = tmp_path / 'my "lab" #1'  # sbatch would cut an unquoted `#`, and drop a bare quote
    env = {**demo_env, **slurm_cluster.extra_env, "LAUNCHER": "slurm", "MIMIC_OUTPUTS": str(outputs)}
    try:
        name = launch_ok(env, *ACT, "--steps", "10", "--save-freq", "5", **FAST)
        done = wait_state(env, name, ("finished", "failed", "lost", "stopped"), timeout=90)
        assert done["state"] == "finished" and done["step"] == 10, done
        rec = read_record(env, name)
        assert Path(rec["slurm"]["script"]).parent == outputs / "runs" / name
        assert f"Slurm job {rec['slurm']['job_id']} (restart 0)" in (outputs / "logs" / f"{name}.log").read_text()
    finally:
        run_cli(env, "stop", "--all", "--timeout", "2")


# ------------------------------------------------------------------ 9. Slurm with no controller


def slurm_tools() -> bool:
    return all(shutil.which(t) for t in ("sbatch", "squeue", "scancel"))


@pytest.mark.skipif(not slurm_tools(), reason="Slurm client tools not installed (make slurm)")
@pytest.mark.skipif(os.path.exists("/etc/slurm/slurm.conf") or os.path.exists("/etc/slurm-llnl/slurm.conf"),
                    reason="this host has a default slurm.conf")
def test_no_slurm_configuration_is_cannot_reach_the_controller(demo_env):
    env = {k: v for k, v in demo_env.items() if k != "SLURM_CONF"}
    err = one_line_error(run_cli(env, *ACT, "--launcher", "slurm"))
    assert err.startswith("error: cannot reach the Slurm controller: no Slurm configuration"), err
    assert "check `scontrol ping` and SLURM_CONF" in err
    assert "res_nsearch" not in err and "sinfo" not in err
    assert no_records(env)


@pytest.mark.skipif(not slurm_tools(), reason="Slurm client tools not installed (make slurm)")
def test_slurm_conf_that_is_not_a_file(demo_env, tmp_path):
    err = one_line_error(run_cli(demo_env, *ACT, "--launcher", "slurm", SLURM_CONF=str(tmp_path / "nope.conf")))
    assert err.startswith(f"error: cannot reach the Slurm controller: SLURM_CONF={tmp_path / 'nope.conf'} is not "
                          "a file"), err
    assert no_records(demo_env)


def test_controller_that_does_not_answer(demo_env, slurm_cluster, tmp_path):  # noqa: F811
    conf = tmp_path / "slurm.conf"  # the test cluster's configuration, its controller on a dead port
    conf.write_text(re.sub(r"(?m)^SlurmctldPort=\d+$", "SlurmctldPort=1", slurm_cluster.conf.read_text()))
    (tmp_path / "gres.conf").write_text(slurm_cluster.gres_conf.read_text())
    env = {**demo_env, **slurm_cluster.extra_env, "SLURM_CONF": str(conf)}
    err = one_line_error(run_cli(env, *ACT, "--launcher", "slurm"))
    assert err.startswith("error: cannot reach the Slurm controller: it does not answer"), err
    assert "check `scontrol ping` and SLURM_CONF; nothing was submitted" in err and "sinfo" not in err
    assert no_records(env)


# ------------------------------------------------------------------ 9. messages


def test_offline_fetch_hint_says_to_unset_hf_hub_offline(toolkit_env, tmp_path):
    groups = tmp_path / "groups.yaml"
    groups.write_text("groups:\n  remote: {datasets: [some-lab/not_here]}\n")
    err = one_line_error(run_cli(toolkit_env, "datasets", "fetch", "remote", DATASET_GROUPS_FILE=str(groups)))
    assert "HF_HUB_OFFLINE is set" in err and "unset HF_HUB_OFFLINE on a machine with network" in err, err
    err = one_line_error(run_cli(toolkit_env, "check", "remote", DATASET_GROUPS_FILE=str(groups)))
    assert "unset HF_HUB_OFFLINE" in err or "not found" in err, err


def wandb_trainer(tmp_path: Path, url: str) -> Path:
    """lerobot-train's W&B line (as LeRobot logs it, colours and all), then the fake trainer."""
    script = tmp_path / "wandb_trainer.sh"
    script.write_text("#!/bin/bash\n"
                      f"echo $'INFO 2026-01-01 00:00:00 ot_train.py:1 Track this run --> \\e[1;33m{url}\\e[0m' >&2\n"
                      f'exec {sys.executable} {FAKE_TRAINER} "$@"\n')
    script.chmod(0o755)
    return script


def test_status_shows_the_wandb_link(demo_env, tmp_path):
    url = "https://wandb.ai/mimic-lab/mimic/runs/abc123xy"
    env = dict(demo_env, LEROBOT_TRAIN=str(wandb_trainer(tmp_path, url)))
    name = launch_ok(env, *ACT, "--steps", "10", "--save-freq", "5", **FAST)
    row = wait_state(env, name, "finished")
    assert row["wandb_url"] == url
    out = run_cli(env, "status", name)
    assert out.returncode == 0 and f"W&B     {url}" in out.stdout, out.stdout
    assert url in run_cli(env, "status").stdout  # the NOTE of a run with nothing else to say


@pytest.mark.parametrize("command", [("status", "act_cpu_oen"), ("status", "--json", "act_cpu_oen"),
                                     ("logs", "act_cpu_oen"), ("evaluate", "act_cpu_oen"),
                                     ("compare", "act_cpu_oen"), ("resume", "act_cpu_oen")])
def test_a_mistyped_run_name_gets_a_close_match(demo_env, command):
    launch_ok(demo_env, *ACT, "--steps", "5", "--save-freq", "5", **FAST)
    wait_state(demo_env, "act_cpu_one", "finished")
    err = one_line_error(run_cli(demo_env, *command))
    assert "did you mean 'act_cpu_one'?" in err, err


def test_a_mistyped_policy_gets_a_close_match(demo_env):
    for policy in ("ACT", "Act", "actt"):
        err = one_line_error(run_cli(demo_env, "--policy", policy, "--dataset-group", "one", "--dry-run"))
        assert f"unknown policy '{policy}'" in err and "did you mean 'act'?" in err, err


@pytest.mark.parametrize("value", ["-1", "0", "nan", "inf", "soon"])
def test_watch_interval_must_be_positive(demo_env, value):
    err = one_line_error(run_cli(demo_env, "status", "--watch", "--interval", value, timeout=20))
    assert f"--interval {value}: must be a number of seconds >= 0.1" in err


def test_status_watch_to_a_file_writes_plain_frames(demo_env, tmp_path):
    name = launch_ok(demo_env, *ACT, "--steps", "5", "--save-freq", "5", **FAST)
    wait_state(demo_env, name, "finished")
    frames = tmp_path / "frames.txt"
    with open(frames, "w") as handle:
        proc = subprocess.Popen([str(TRAIN_MANAGER), "status", "--watch", "--interval", "0.3"], env=demo_env,
                                cwd=REPO, stdout=handle, stderr=subprocess.PIPE, text=True)
        try:
            # read while it runs: each frame is flushed as it is written
            text = wait_for(lambda: (t := frames.read_text()).count("\n--- ") >= 2 and t, 30, 0.2, "three frames")
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    assert "\x1b" not in text  # no terminal escape codes
    blocks = [b for b in text.split("\n\n") if b.strip()]
    assert len(blocks) >= 3
    for block in blocks[:3]:
        head, *table = block.split("\n")
        assert re.fullmatch(r"--- \d{4}-\d\d-\d\d \d\d:\d\d:\d\d", head), block
        assert table[0].split()[:2] == ["NAME", "STATE"] and any(name in line and "finished" in line
                                                                 for line in table)


def test_compare_json_writes_no_png_unless_asked(demo_env, tmp_path):
    name = launch_ok(demo_env, *ACT, "--steps", "5", "--save-freq", "5", **FAST)
    wait_state(demo_env, name, "finished")
    out = run_cli(demo_env, "compare", name, "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["plot"] is None
    assert not list(Path(demo_env["MIMIC_OUTPUTS"]).rglob("*.png"))
    png = tmp_path / "asked.png"
    out = run_cli(demo_env, "compare", name, "--json", "--out", str(png))
    assert out.returncode == 0 and json.loads(out.stdout)["plot"] == str(png) and png.stat().st_size > 0, out.stderr
    one_line_error(run_cli(demo_env, "compare", name, "--no-plot", "--out", str(png)))


# ------------------------------------------------------------------ corrupt records


def test_a_truncated_record_shows_as_corrupt(demo_env):
    name = launch_ok(demo_env, *ACT, "--steps", "5", "--save-freq", "5", **FAST)
    wait_state(demo_env, name, "finished")
    other = launch_ok(demo_env, "--policy", "act", "--dataset-group", "two", "--steps", "5", "--save-freq", "5",
                      **FAST)
    wait_state(demo_env, other, "finished")
    record = Path(read_record(demo_env, name)["plan"]["record_dir"]) / "run.json"
    record.write_bytes(record.read_bytes()[:100])  # as a disk-full write outside the toolkit would leave it

    rows = {r["name"]: r for r in json.loads(run_cli(demo_env, "status", "--json").stdout)}
    assert set(rows) == {name, other} and rows[other]["state"] == "finished"
    assert rows[name]["state"] == "corrupt" and "corrupt record" in rows[name]["reason"]
    assert f"`stop {name}` ends any by their marker" in rows[name]["reason"]
    table = run_cli(demo_env, "status").stdout
    assert re.search(rf"^{name}\s+corrupt\s+-\s", table, re.M), table
    out = run_cli(demo_env, "status", name)
    assert out.returncode == 0 and "no run named" not in out.stderr + out.stdout, out
    assert re.search(rf"^{name}\s+corrupt\s", out.stdout, re.M) and f"`stop {name}`" in out.stdout, out.stdout
    again = run_cli(demo_env, "status", "--json")  # never cached: the same answer a second time
    assert {r["name"]: r["state"] for r in json.loads(again.stdout)} == {name: "corrupt", other: "finished"}
    history = {r["name"]: r for r in json.loads(run_cli(demo_env, "history", "--json").stdout)}
    assert history[name]["state"] == "corrupt" and history[other]["state"] == "finished"  # not vanished
    assert re.search(rf"^{name}\s+corrupt\s", run_cli(demo_env, "history").stdout, re.M)


def test_a_corrupt_record_of_a_live_run_says_its_processes_run(demo_env):
    name = launch_ok(demo_env, *ACT, "--steps", "2000", "--save-freq", "5", FAKE_STEP_SECONDS="0.05")
    wait_for(lambda: run_cli(demo_env, "status", "--json", name).stdout.count('"running"'), 30, 0.2, "running")
    record = Path(read_record(demo_env, name)["plan"]["record_dir"]) / "run.json"
    try:
        record.write_text("{")
        row, = json.loads(run_cli(demo_env, "status", "--json", name).stdout)
        assert row["state"] == "corrupt" and re.search(rf"\d+ of its processes still run: `stop {name}` ends them",
                                                      row["reason"]), row
    finally:
        run_cli(demo_env, "stop", name, "--timeout", "5")
        from conftest import marked_pids

        marker = (record.parent / "marker").read_text().strip()
        for pid in marked_pids(marker):  # whatever stop of a corrupt run does today: leave nothing behind
            os.kill(pid, 9)
        time.sleep(0.2)
