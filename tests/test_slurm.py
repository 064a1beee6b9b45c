"""The Slurm launcher against a real private single-node Slurm (tests/slurm_cluster.py), with the
fake trainer in place of lerobot-train (one test runs the real one).

What is checked: submit -> queued -> running -> finished (record, status --json, checkpoints);
stop = scancel with no process of the run left; --sequential chains that never overlap and
stop after a failure; USR1 requeue that resumes from the checkpoint; clear one-line refusals
(bad partition, unreachable controller, no sbatch) that record nothing; one squeue call per
status; the golden sbatch script; plan-level Slurm settings (pure, no cluster).
"""
from __future__ import annotations

import json
import os
import re
import stat
import sys
from pathlib import Path

import pytest

from conftest import REPO, marked_pids, read_record, run_cli, wait_for, wait_state
from slurm_cluster import slurm_cluster  # noqa: F401  (the session fixture)

pytestmark = pytest.mark.timeout(240)

GOLDEN = REPO / "tests" / "golden" / "slurm_job.sbatch"
ACT = ("--policy", "act")


# ------------------------------------------------------------------------------------ helpers


@pytest.fixture
def env(demo_env, slurm_cluster):  # noqa: F811
    env = {**demo_env, **slurm_cluster.extra_env, "LAUNCHER": "slurm"}
    yield env
    run_cli(env, "stop", "--all", "--timeout", "2")  # never leave a job behind


def launch_ok(env: dict, *args: str, **extra_env) -> list[str]:
    out = run_cli(env, *args, **extra_env)
    assert out.returncode == 0, out.stderr
    names = [line.split()[1] for line in out.stdout.splitlines() if line.startswith("launched ")]
    assert names and all("(Slurm job " in line for line in out.stdout.splitlines() if line.startswith("launched ")), \
        out.stdout
    return names


def rows(env: dict, *names: str, **extra_env) -> list[dict]:
    out = run_cli(env, "status", "--all", "--json", *names, **extra_env)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def row(env: dict, name: str) -> dict:
    return rows(env, name)[0]


def wait_step(env: dict, name: str, step: int, timeout: float = 60) -> dict:
    return wait_for(lambda: (r := row(env, name))["state"] == "running" and (r["step"] or 0) >= step and r,
                    timeout, 0.2, f"{name} running at step >= {step}")


def log_text(env: dict, name: str) -> str:
    return Path(read_record(env, name)["plan"]["log_file"]).read_text()


def checkpoints(env: dict, name: str) -> list[int]:
    folder = Path(read_record(env, name)["plan"]["output_dir"]) / "checkpoints"
    return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit())


def no_records(env: dict) -> bool:
    runs = Path(env["MIMIC_OUTPUTS"]) / "runs"
    return not runs.exists() or not any(runs.iterdir())


# ------------------------------------------------------------------------------------ lifecycle


def test_submit_runs_queued_running_finished(env, slurm_cluster):  # noqa: F811
    name, = launch_ok(env, *ACT, "--dataset-group", "one", "--partition", "debug", "--steps", "30",
                      "--save-freq", "10", FAKE_STEP_SECONDS="0.1")
    rec = read_record(env, name)
    job = rec["slurm"]["job_id"]
    assert rec["launcher"] == "slurm" and rec["plan"]["launcher"] == "slurm" and job.isdigit()
    assert rec["plan"]["slurm"]["partition"] == "debug"
    assert rec["cuda_visible_devices"] is None  # Slurm gives the GPUs, not us
    script = Path(rec["slurm"]["script"])
    assert script == Path(rec["plan"]["record_dir"]) / "job.sbatch" and "#SBATCH --job-name=act_cpu_one" in \
        script.read_text()
    seen = [row(env, name)]
    assert seen[0]["state"] in ("queued", "running") and seen[0]["slurm_job_id"] == job
    assert seen[0]["launcher"] == "slurm"
    seen.append(wait_step(env, name, 5))
    assert seen[-1]["slurm_state"] == "RUNNING"
    done = wait_state(env, name, "finished", timeout=60)
    order = ["queued", "running", "finished"]
    assert [order.index(r["state"]) for r in seen + [done]] == sorted(order.index(r["state"]) for r in seen + [done])
    assert done["step"] == 30 and done["total_steps"] == 30 and done["exit_code"] == 0
    assert done["slurm_job_id"] == job and done["launcher"] == "slurm"
    assert checkpoints(env, name) == [10, 20, 30]
    rec = read_record(env, name)
    assert rec["started_at"] >= rec["slurm"]["submitted_at"] - 1 and rec["ended_at"] >= rec["started_at"]
    assert f"Slurm job {job} (restart 0)" in log_text(env, name)
    info = slurm_cluster.wait_job(job, timeout=30)
    assert info["JobState"] == "COMPLETED" and info["ExitCode"] == "0:0", info


def test_stop_cancels_the_job_and_leaves_no_process(env, slurm_cluster):  # noqa: F811
    # FAKE_CHILD: the trainer also starts a process in its own session (like a stray worker)
    name, = launch_ok(env, *ACT, "--dataset-group", "one", "--steps", "2000", "--save-freq", "10",
                      FAKE_STEP_SECONDS="0.05", FAKE_CHILD="1")
    wait_step(env, name, 3)
    rec = read_record(env, name)
    assert len(marked_pids(rec["marker"])) >= 3  # batch shell, supervisor, trainer (+ its child)
    out = run_cli(env, "stop", name)
    assert out.returncode == 0 and out.stdout.strip() == f"{name}: stopped (was running)", out
    rec = read_record(env, name)
    assert rec["state"] == "stopped" and rec["stop_requested"] is True
    assert marked_pids(rec["marker"]) == []
    assert slurm_cluster.job_state(rec["slurm"]["job_id"]) == "CANCELLED"
    assert row(env, name)["state"] == "stopped"


def test_sequential_chain_never_overlaps(env, slurm_cluster):  # noqa: F811
    first, second = launch_ok(env, *ACT, "--dataset-group", "one,two", "--sequential", "--steps", "20",
                              "--save-freq", "10", FAKE_STEP_SECONDS="0.1")
    a, b = read_record(env, first), read_record(env, second)
    assert b["slurm"]["after"] == first and b["slurm"]["after_job"] == a["slurm"]["job_id"]
    assert slurm_cluster.show_job(b["slurm"]["job_id"])["Dependency"].startswith(f"afterany:{a['slurm']['job_id']}")
    waiting = row(env, second)
    assert waiting["state"] == "queued" and waiting["reason"] == "Slurm: pending (Dependency)", waiting
    wait_state(env, second, "finished", timeout=90)
    a, b = read_record(env, first), read_record(env, second)
    assert a["state"] == "finished"
    assert b["started_at"] >= a["ended_at"], (a["ended_at"], b["started_at"])


def test_chain_stops_after_a_failed_run(env):
    first, second = launch_ok(env, *ACT, "--dataset-group", "one,two", "--sequential", "--steps", "20",
                              "--tag", "crash", FAKE_CRASH_AT="3")
    wait_state(env, second, ("stopped", "finished", "failed"), timeout=60)
    assert row(env, first)["state"] == "failed"
    done = row(env, second)
    assert done["state"] == "stopped" and done["reason"] == f"previous run {first} failed", done
    assert read_record(env, second).get("started_at") is None  # never trained
    assert "not starting: previous run" in log_text(env, second)


def test_usr1_requeues_and_resumes_from_the_checkpoint(env, slurm_cluster):  # noqa: F811
    name, = launch_ok(env, *ACT, "--dataset-group", "one", "--steps", "60", "--save-freq", "10",
                      FAKE_STEP_SECONDS="0.1")
    job = read_record(env, name)["slurm"]["job_id"]
    wait_step(env, name, 14)  # the checkpoint at step 10 exists
    out = slurm_cluster.run("scancel", "--signal=USR1", "--batch", job)
    assert out.returncode == 0, out.stderr
    queued = wait_state(env, name, "queued", timeout=30)  # Slurm holds it a few seconds
    assert queued["reason"] == "requeued by Slurm (restart 1)" and queued["attempts"] == 2, queued
    done = wait_state(env, name, "finished", timeout=90)
    assert done["step"] == 60 and done["restarts"] == 1 and done["attempts"] == 2
    rec = read_record(env, name)
    first, second = rec["attempts"]
    assert first["state"] == "stopped" and first["reason"] == "requeued by Slurm"
    assert second["kind"] == "resume" and second["slurm_restart"] == 1 and "--resume=true" in second["argv"]
    assert rec["slurm"]["restart"] == 1 and rec["slurm"]["job_id"] == job
    log = log_text(env, name)
    assert "USR1 from Slurm: requeueing job" in log and f"Slurm job {job} (restart 1)" in log
    resumed = log.split(f"Slurm job {job} (restart 1)")[1]
    first_step = int(re.search(r"step:(\d+) ", resumed).group(1))
    assert 10 < first_step <= 21, first_step  # continued from the checkpoint, not from zero
    assert checkpoints(env, name)[-1] == 60
    info = slurm_cluster.wait_job(job, timeout=30)
    assert info["JobState"] == "COMPLETED" and info["Restarts"] == "1", info


def test_resume_submits_a_new_job(env, slurm_cluster):  # noqa: F811
    name, = launch_ok(env, *ACT, "--dataset-group", "one", "--steps", "40", "--save-freq", "5",
                      FAKE_STEP_SECONDS="0.1")
    wait_step(env, name, 7)
    assert run_cli(env, "stop", name).returncode == 0
    first_job = read_record(env, name)["slurm"]["job_id"]
    out = run_cli(env, "resume", name, FAKE_STEP_SECONDS="0.02")
    assert out.returncode == 0 and "(Slurm job " in out.stdout, out
    done = wait_state(env, name, ("finished", "failed", "stopped", "lost"), timeout=60)
    assert done["state"] == "finished" and done["step"] == 40 and done["attempts"] == 2, done
    rec = read_record(env, name)
    second_job = rec["slurm"]["job_id"]
    assert second_job != first_job and rec["slurm"]["jobs"] == [first_job, second_job]
    assert rec["attempts"][1]["kind"] == "resume" and rec["attempts"][1]["slurm_job"] == second_job
    assert slurm_cluster.wait_job(second_job, timeout=30)["JobState"] == "COMPLETED"
    out = run_cli(env, "resume", name, "--steps", "50", "--foreground")
    assert out.returncode == 2 and "--foreground runs here, not on Slurm" in out.stderr


def test_requeue_before_any_checkpoint_moves_the_output_aside(env, slurm_cluster):  # noqa: F811
    name, = launch_ok(env, *ACT, "--dataset-group", "one", "--steps", "30", "--save-freq", "30",
                      FAKE_STEP_SECONDS="0.1")
    job = read_record(env, name)["slurm"]["job_id"]
    wait_step(env, name, 3)
    assert slurm_cluster.run("scancel", "--signal=USR1", "--batch", job).returncode == 0
    done = wait_state(env, name, ("finished", "failed"), timeout=90)
    assert done["state"] == "finished" and done["step"] == 30, done
    rec = read_record(env, name)
    assert rec["attempts"][1]["kind"] == "train"  # no checkpoint: a fresh start
    aside = Path(rec["plan"]["output_dir"] + ".requeued-1")
    assert aside.is_dir()  # never deleted


def test_parallel_runs_cost_one_squeue_per_status(env, tmp_path):
    names = launch_ok(env, *ACT, "--dataset-group", "one,two", "--steps", "2000", FAKE_STEP_SECONDS="0.05")
    assert len(names) == 2  # no --sequential: two independent jobs (Slurm schedules them)
    for name in names:
        wait_step(env, name, 2)
    calls = tmp_path / "squeue.calls"
    wrapper = tmp_path / "bin" / "squeue"
    wrapper.parent.mkdir()
    wrapper.write_text(f"#!/bin/sh\necho call >> {calls}\nexec /usr/bin/squeue \"$@\"\n")
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    listed = rows(env, PATH=f"{wrapper.parent}:{env['PATH']}")
    assert [r["state"] for r in listed] == ["running", "running"]
    assert [r["slurm_state"] for r in listed] == ["RUNNING", "RUNNING"]
    assert calls.read_text().count("call") == 1
    out = run_cli(env, "stop", "--all")
    assert out.returncode == 0, out
    for name in names:
        rec = read_record(env, name)
        assert rec["state"] == "stopped" and marked_pids(rec["marker"]) == []


def test_job_ended_without_a_recorded_end_is_judged_from_slurm(env, slurm_cluster):  # noqa: F811
    """The supervisor is SIGKILLed: the record keeps `running`; the job ends FAILED (exit 137)."""
    name, = launch_ok(env, *ACT, "--dataset-group", "one", "--steps", "2000", FAKE_STEP_SECONDS="0.05")
    wait_step(env, name, 2)
    rec = read_record(env, name)
    os.kill(rec["supervisor"]["pid"], 9)
    assert slurm_cluster.wait_job(rec["slurm"]["job_id"], timeout=30)["JobState"] == "FAILED"
    assert read_record(env, name)["state"] == "running"  # nobody wrote an end
    done = row(env, name)
    assert done["state"] == "failed" and done["reason"].startswith("Slurm job failed"), done
    assert read_record(env, name)["state"] == "failed"  # persisted
    wait_for(lambda: marked_pids(rec["marker"]) == [], 15, 0.2, "the run's processes to end")


def test_time_limit_requeues_and_resumes(env, slurm_cluster):  # noqa: F811
    """--time 1: Slurm itself sends USR1 before the limit; the run goes on in a requeued job."""
    name, = launch_ok(env, *ACT, "--dataset-group", "one", "--time", "1", "--steps", "600", "--save-freq", "10",
                      FAKE_STEP_SECONDS="0.1")  # > 60 s of training: beyond the limit
    rec = read_record(env, name)
    assert rec["plan"]["slurm"]["time_seconds"] == 60 and rec["plan"]["slurm"]["signal_seconds"] == 6
    assert "#SBATCH --signal=B:USR1@6" in Path(rec["slurm"]["script"]).read_text()
    done = wait_state(env, name, ("finished", "failed", "stopped", "lost"), timeout=230)
    assert done["state"] == "finished" and done["step"] == 600, done
    assert done["restarts"] >= 1 and read_record(env, name)["attempts"][1]["kind"] == "resume"
    assert "USR1 from Slurm: requeueing job" in log_text(env, name)


# ------------------------------------------------------------------------------------ refusals


def test_bad_partition_is_refused_with_slurms_message(env):
    out = run_cli(env, *ACT, "--dataset-group", "one", "--partition", "nosuch")
    assert out.returncode == 2 and out.stdout == "", out
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("error: Slurm refused run act_cpu_one:"), out.stderr
    assert "invalid partition specified: nosuch" in out.stderr
    assert no_records(env)


def test_impossible_gres_is_refused(env):
    out = run_cli(env, *ACT, "--dataset-group", "one", "--computer", "cluster", "--partition", "debug",
                  "--gpus", "4", "--cpus", "1", "--mem", "100M")
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert "Requested node configuration is not available" in out.stderr
    assert no_records(env)


def test_unreachable_controller_is_refused(env, slurm_cluster, tmp_path):  # noqa: F811
    conf = tmp_path / "slurm.conf"
    conf.write_text(re.sub(r"(?m)^SlurmctldPort=\d+$", "SlurmctldPort=1", slurm_cluster.conf.read_text()))
    (tmp_path / "gres.conf").write_text(slurm_cluster.gres_conf.read_text())
    out = run_cli(env, *ACT, "--dataset-group", "one", SLURM_CONF=str(conf))
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert out.stderr.startswith("error: cannot reach the Slurm controller:") and "connect failure" in out.stderr
    assert no_records(env)


def test_no_sbatch_on_path(demo_env, tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "dirname", "env"):
        os.symlink(f"/usr/bin/{tool}" if os.path.exists(f"/usr/bin/{tool}") else f"/bin/{tool}", bin_dir / tool)
    out = run_cli(demo_env, *ACT, "--dataset-group", "one", "--launcher", "slurm", PATH=str(bin_dir))
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert out.stderr.startswith("error: sbatch not found on PATH")
    assert no_records(demo_env)


# ------------------------------------------------------------------------------------ pure parts


def golden_plan(tmp_path):
    from mimic_deployment.config.catalog import load_catalog
    from mimic_deployment.planning.plan import Facts, RunRequest, build_plans

    groups = tmp_path / "groups.yaml"
    groups.write_text("groups:\n  one: {datasets: [mimic-demo/demo_a], local: true}\n")
    catalog = load_catalog(groups)
    request = RunRequest(policies=("act",), groups=("one",), computer="cluster", slurm={"gpus": "2"})
    facts = Facts(env={}, hostname="login1", gpus=None, outputs=Path("/scratch/outputs"),
                  lerobot_train="/opt/venv/bin/lerobot-train", accelerate="/opt/venv/bin/accelerate")
    plan, = build_plans(request, facts, policies=catalog.policies, machines=catalog.machines,
                        groups=catalog.groups, lab=catalog.lab, rename_maps={})
    return plan


def test_golden_sbatch_script(tmp_path):
    from mimic_deployment.launchers.slurm import sbatch_script

    plan = golden_plan(tmp_path)
    text = sbatch_script(plan, python="/opt/venv/bin/python", repo="/opt/mimic")
    assert sbatch_script(plan, python="/opt/venv/bin/python", repo="/opt/mimic") == text  # pure
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()


def test_dry_run_shows_the_sbatch_script(demo_env):
    out = run_cli(demo_env, *ACT, "--dataset-group", "one", "--computer", "cluster", "--gpus", "2", "--dry-run")
    assert out.returncode == 0, out.stderr
    script = out.stdout.split("job.sbatch):\n", 1)[1].split("\n(dry run")[0]
    script = "\n".join(line[4:] for line in script.splitlines()) + "\n"
    outputs, venv = demo_env["MIMIC_OUTPUTS"], str(Path(sys.executable).parent)
    golden = GOLDEN.read_text()
    normalised = (script.replace(outputs, "/scratch/outputs").replace(f"{venv}/python", "/opt/venv/bin/python")
                  .replace(f"{venv}/accelerate", "/opt/venv/bin/accelerate")
                  .replace(str(REPO / "tests" / "fake_trainer.py"), "/opt/venv/bin/lerobot-train")
                  .replace(str(REPO), "/opt/mimic"))
    assert normalised == golden
    assert "launcher    slurm (machine cluster): partition gpu (machine cluster), 2 GPU(s) --gres=gpu:2" in out.stdout
    assert not (Path(outputs) / "runs").exists()


def test_sbatch_argv_and_job_id():
    from mimic_deployment.launchers.slurm import final_state, parse_job_id, parse_squeue, sbatch_argv
    from mimic_deployment.runs.registry import State
    from mimic_deployment.util.errors import UserError

    assert sbatch_argv("/r/job.sbatch", dependency="41", marker="m:1") == [
        "--parsable", "--dependency=afterany:41", "--export=ALL,MIMIC_RUN_MARKER=m:1", "/r/job.sbatch"]
    assert sbatch_argv(None, test_only=True) == ["--test-only"]
    assert parse_job_id("1234\n") == "1234" and parse_job_id("77;cluster\n") == "77"
    with pytest.raises(UserError):
        parse_job_id("Submitted batch job\n")
    assert parse_squeue("5|PENDING|Dependency\n6|RUNNING|None\n") == {"5": ("PENDING", "Dependency"),
                                                                       "6": ("RUNNING", "None")}
    assert final_state("TIMEOUT") == (State.FAILED, "timeout: Slurm's time limit was reached")
    assert final_state("CANCELLED")[0] is State.STOPPED and final_state("COMPLETED")[0] is State.FINISHED
    assert final_state(None)[0] is State.LOST


def test_slurm_settings_precedence_and_refusals(demo_env):
    def plan(*args, **extra):
        out = run_cli(demo_env, *ACT, "--dataset-group", "one", "--dry-run", "--json", *args, **extra)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)[0]

    p = plan("--computer", "cluster")
    assert p["launcher"] == "slurm" and p["sources"]["launcher"] == "machine cluster"
    assert p["slurm"] | {"extra": []} == {"partition": "gpu", "gpus": 1, "gres": "gpu:1", "cpus": 8, "mem": "64G",
                                         "time": "24:00:00", "time_seconds": 86400, "signal_seconds": 300,
                                         "extra": []}
    assert p["batch_size"] == 32 and p["num_gpus"] == 1
    p = plan("--computer", "cluster", "--partition", "a100", "--time", "30", SBATCH_PARTITION="env_part",
             SBATCH_TIMELIMIT="2:00:00")
    assert p["slurm"]["partition"] == "a100" and p["sources"]["slurm.partition"] == "flag --partition"
    assert p["slurm"]["time_seconds"] == 1800 and p["slurm"]["signal_seconds"] == 180
    p = plan("--computer", "cluster", SBATCH_PARTITION="env_part")
    assert p["slurm"]["partition"] == "env_part" and p["sources"]["slurm.partition"] == "env SBATCH_PARTITION"
    p = plan("--computer", "cluster", "--launcher", "local")
    assert p["launcher"] == "local" and p["slurm"] == {}
    p = plan(LAUNCHER="slurm")  # the cpu profile on Slurm: no gres, the cluster's defaults
    assert p["launcher"] == "slurm" and p["slurm"]["gres"] is None and p["slurm"]["partition"] is None
    assert plan()["launcher"] == "local"  # the cpu profile and host detection never pick the cluster
    for args, words in [(("--partition", "gpu"), "--partition is a Slurm setting but the launcher is local"),
                        (("--launcher", "pbs"), "unknown launcher 'pbs'"),
                        (("--computer", "cluster", "--time", "soon"), "--time='soon' is not a Slurm time"),
                        (("--computer", "cluster", "--mem", "lots"), "--mem='lots' is not a Slurm memory size"),
                        (("--computer", "cluster", "--gpus", "2", "--num-gpus", "1"), "disagree"),
                        (("--computer", "cluster", "--gpus", "9"), "node has 4 GPU(s)"),
                        (("--launcher", "slurm", "--gpus", "1"), "trains on CPU"),
                        (("--computer", "cluster", "--foreground"), "--foreground runs here")]:
        out = run_cli(demo_env, *ACT, "--dataset-group", "one", *args)
        assert out.returncode == 2 and out.stderr.count("\n") == 1 and words in out.stderr, (args, out.stderr)
    assert no_records(demo_env)


# ------------------------------------------------------------------------------------ real lerobot


@pytest.mark.lerobot
@pytest.mark.timeout(600)  # imports torch in the job: ~30 s on an idle CPU, minutes on a busy one
def test_real_lerobot_act_through_slurm(env, slurm_cluster):  # noqa: F811
    real = {k: v for k, v in env.items() if k != "LEROBOT_TRAIN"}
    name, = launch_ok(real, *ACT, "--dataset-group", "one", "--partition", "debug", "--steps", "4",
                      "--save-freq", "2", "--batch-size", "2", "--num-workers", "0", "--tag", "real", "--",
                      "--policy.pretrained_backbone_weights=null", "--policy.dim_model=64",
                      "--policy.dim_feedforward=256", "--policy.n_encoder_layers=1", "--policy.n_decoder_layers=1",
                      "--policy.chunk_size=10", "--policy.n_action_steps=10", "--log_freq=2")
    done = wait_state(real, name, ("finished", "failed", "lost", "stopped"), timeout=540)
    assert done["state"] == "finished", (done, log_text(real, name)[-3000:])
    assert done["step"] == 4 and done["slurm_job_id"] and done["launcher"] == "slurm"
    assert checkpoints(real, name) == [2, 4]
    out_dir = Path(read_record(real, name)["plan"]["output_dir"])
    assert (out_dir / "checkpoints" / "last" / "pretrained_model" / "model.safetensors").exists()
    assert slurm_cluster.wait_job(done["slurm_job_id"], timeout=30)["JobState"] == "COMPLETED"
