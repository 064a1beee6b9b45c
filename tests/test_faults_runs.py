"""Runs under faults end in the true state with the true note (issue #11 items 4, 7, 11): the
target steps across resumes, a failed Hub push after a complete training, a multi-line error, a
trainer that outlives its supervisor, helpers that outlive the run, every restart an attempt in
the record and in `history`, and `forget` freeing a name. Real processes through train_manager.sh,
the fake trainer in place of lerobot-train (one test with the real one)."""
from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from conftest import marked_pids, pid_alive, read_record, run_cli, wait_for, wait_state

pytestmark = pytest.mark.timeout(180)

FAST = {"FAKE_STEP_SECONDS": "0.02"}
SLOW = {"FAKE_STEP_SECONDS": "0.05"}
ENDED = ("finished", "failed", "stopped", "lost")
RUN = ("--policy", "act", "--dataset-group", "one")


def hub_that_refuses() -> dict:
    """An explicit push is refused offline or without a token (preflight): online with a token, but
    the Hub at a closed local port, so the push really runs and really fails."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return {"HF_HUB_OFFLINE": "0", "HF_TOKEN": "hf_" + "x" * 30, "HF_ENDPOINT": f"http://127.0.0.1:{port}"}
# the tiny ACT of tests/test_e2e_lerobot.py: a step in well under a second on a CPU, offline
TINY_ACT = ["--policy.pretrained_backbone_weights=null", "--policy.dim_model=64", "--policy.dim_feedforward=256",
            "--policy.n_encoder_layers=1", "--policy.n_decoder_layers=1", "--policy.chunk_size=10",
            "--policy.n_action_steps=10", "--log_freq=1"]


@pytest.fixture
def env(demo_env):
    yield demo_env
    run_cli(demo_env, "stop", "--all", "--timeout", "2")  # never leave a detached run behind


def launch_ok(env: dict, *args: str, **knobs) -> str:
    out = run_cli(env, *args, **knobs)
    assert out.returncode == 0, out.stderr
    names = [line.split()[1] for line in out.stdout.splitlines() if line.startswith("launched ")]
    assert len(names) == 1, out.stdout
    return names[0]


def row(env: dict, name: str) -> dict:
    out = run_cli(env, "status", "--all", "--json", name)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)[0]


def wait_step(env: dict, name: str, step: int, timeout: float = 60) -> dict:
    def check():
        r = row(env, name)
        return r if r["state"] == "running" and (r["step"] or 0) >= step else None

    return wait_for(check, timeout, 0.2, f"{name} running at step >= {step}")


def checkpoints(output_dir: str) -> list[int]:
    folder = Path(output_dir) / "checkpoints"
    return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit()) if folder.exists() else []


def child_of(record: dict) -> int:
    """The stray helper FAKE_CHILD=1 starts (own session, the run's marker in its env)."""
    pid_file = Path(record["plan"]["output_dir"]) / "child.pid"
    return int(wait_for(lambda: pid_file.exists() and pid_file.read_text(), 10, what="child.pid"))


# ------------------------------------------------------------------------------ item 4: end states and notes


def test_resume_trains_to_the_latest_target_even_after_a_stop(env):
    """`resume --steps 200`, stopped before its next checkpoint, then `resume`: the target stays 200
    (LeRobot would take the 30 of the checkpoint's config without --steps)."""
    name = launch_ok(env, *RUN, "--steps", "30", "--save-freq", "30", **FAST)
    wait_state(env, name, "finished")
    out = run_cli(env, "resume", name, "--steps", "200", FAKE_STEP_SECONDS="0.2")
    assert out.returncode == 0 and "from step 30 to 200" in out.stdout, out.stdout + out.stderr
    wait_step(env, name, 32)
    run_cli(env, "stop", name, "--timeout", "2")
    output_dir = read_record(env, name)["plan"]["output_dir"]
    assert checkpoints(output_dir) == [30]  # stopped before step 60: the only checkpoint says steps=30

    out = run_cli(env, "resume", name, **FAST)
    assert out.returncode == 0 and "from step 30 to 200" in out.stdout, out.stdout + out.stderr
    final = wait_state(env, name, ENDED, timeout=60)
    assert final["state"] == "finished" and (final["step"], final["total_steps"]) == (200, 200), final
    record = read_record(env, name)
    assert [a["kind"] for a in record["attempts"]] == ["train", "resume", "resume"]
    assert all("--steps=200" in a["argv"] for a in record["attempts"][1:])
    assert record["plan"]["steps"] == 200 and checkpoints(output_dir)[-1] == 200


def test_a_failed_push_after_a_complete_training_is_finished_with_a_retry(env):
    name = launch_ok(env, *RUN, "--steps", "10", "--save-freq", "5", "--push-to-hub", **FAST, FAKE_PUSH_FAIL="1",
                     **hub_that_refuses())
    final = wait_state(env, name, ENDED)
    record = read_record(env, name)
    assert final["state"] == "finished", final
    note = record["reason"]
    # the last traceback's exception, whatever its name; never the toolkit's own "[mimic]" line
    assert note.startswith("trained, push failed: huggingface_hub.errors.OfflineModeIsEnabled: Cannot reach"), note
    assert "[mimic]" not in note and record["exit_code"] == 1
    model = Path(record["plan"]["output_dir"]) / "checkpoints" / "000010" / "pretrained_model"
    assert f"hf upload {record['plan']['repo_id']} {model}" in note and model.is_dir()
    assert final["reason"] == note and "trained, push failed" in run_cli(env, "status").stdout
    assert run_cli(env, "resume", name).returncode == 2  # trained: nothing left to resume


def test_a_multi_line_error_keeps_its_whole_message(env):
    name = launch_ok(env, *RUN, "--steps", "10", "--save-freq", "5", **FAST, FAKE_FAIL_DRACCUS="1")
    final = wait_state(env, name, ENDED)
    assert final["state"] == "failed", final
    note = read_record(env, name)["reason"]
    assert note == ("crashed: draccus.utils.DecodingError: `policy`: Could not decode the value into any of the "
                    "given types:\n    PreTrainedConfig: `chunk_size`: Couldn't parse '[1, 2]' into a int"), note
    history = json.loads(run_cli(env, "history", "--json").stdout)
    assert history[0]["reason"] == note and history[0]["attempts"][0]["reason"] == note
    table = run_cli(env, "history").stdout
    assert "Could not decode the value into any of the given types: ..." in table  # first line in the table


def test_a_trainer_that_outlives_its_supervisor_and_trains_to_the_end_is_finished(env):
    name = launch_ok(env, *RUN, "--steps", "60", "--save-freq", "20", **SLOW, FAKE_HANG="1")
    wait_step(env, name, 3)
    record = read_record(env, name)
    os.kill(record["supervisor"]["pid"], signal.SIGKILL)  # the trainer ignores the PDEATHSIG SIGTERM
    final = wait_state(env, name, ENDED, timeout=60)
    record = read_record(env, name)
    assert final["state"] == "finished" and (final["step"], final["total_steps"]) == (60, 60), final
    assert record["state"] == "finished" and "supervisor was lost" in record["reason"], record["reason"]
    assert checkpoints(record["plan"]["output_dir"])[-1] == 60


def test_helpers_carrying_the_run_marker_end_with_the_run(env):
    """A stray helper (own session, the run's marker) ends when the run finishes (the supervisor
    reaps it) and when its supervisor is killed (tracking judges it lost and reaps it)."""
    name = launch_ok(env, *RUN, "--steps", "10", "--save-freq", "5", **FAST, FAKE_CHILD="1")
    record = read_record(env, name)
    child = child_of(record)
    assert wait_state(env, name, ENDED)["state"] == "finished"
    wait_for(lambda: not pid_alive(child), 10, what="the helper to end with the finished run")

    lost = launch_ok(env, *RUN, "--steps", "2000", "--save-freq", "50", "--tag", "lost", **SLOW, FAKE_CHILD="1")
    wait_step(env, lost, 2)
    record = read_record(env, lost)
    child = child_of(record)
    os.kill(record["supervisor"]["pid"], signal.SIGKILL)
    wait_for(lambda: not pid_alive(record["trainer"]["pid"]), 10, what="the trainer to die (PDEATHSIG)")
    assert pid_alive(child)
    assert wait_state(env, lost, ENDED, timeout=20)["state"] == "lost"
    wait_for(lambda: not pid_alive(child), 10, what="the helper to end with the lost run")
    assert marked_pids(record["marker"]) == []

    out = run_cli(env, "forget", lost)  # a lost run blocks its name no longer
    assert out.returncode == 0, out.stderr
    assert launch_ok(env, *RUN, "--steps", "10", "--save-freq", "5", "--tag", "lost", **FAST) == lost
    assert wait_state(env, lost, ENDED)["state"] == "finished"


# ------------------------------------------------------------------------------ item 7: attempts and history


def test_every_restart_is_an_attempt_and_history_shows_them(env):
    name = launch_ok(env, *RUN, "--steps", "20", "--save-freq", "5", "--max-restarts", "1", **FAST,
                     FAKE_CRASH_AT="12")
    assert wait_state(env, name, ENDED)["state"] == "finished"
    record = read_record(env, name)
    first, second = record["attempts"]
    assert (first["kind"], first["state"], first["exit_code"]) == ("train", "failed", 1)
    assert "RuntimeError: simulated crash" in first["reason"] and first["started_at"] <= first["ended_at"]
    assert (second["kind"], second["state"], second["exit_code"]) == ("restart", "finished", 0)
    assert first["ended_at"] <= second["started_at"] <= second["ended_at"]
    assert "--resume=true" in second["argv"] and "--steps=20" in second["argv"]
    assert record["restarts"] == 1 and record["supervisor"]

    out = run_cli(env, "history", "--json")
    assert out.returncode == 0, out.stderr
    (item,) = json.loads(out.stdout)
    assert item != row(env, name)  # its own shape, not `status --json`
    assert (item["name"], item["state"], item["restarts"]) == (name, "finished", 1)
    assert [(a["number"], a["kind"], a["state"], a["exit_code"]) for a in item["attempts"]] == [
        (1, "train", "failed", 1), (2, "restart", "finished", 0)]
    assert item["started_at"] == first["started_at"]
    assert item["total_seconds"] == pytest.approx(sum(a["ended_at"] - a["started_at"] for a in (first, second)))

    lines = run_cli(env, "history").stdout.splitlines()
    assert lines[0].split() == ["NAME", "STATE", "STEP", "ATTEMPTS", "RESTARTS", "STARTED", "TIME", "EXIT", "NOTE"]
    run_line = next(line for line in lines if line.startswith(name))
    assert run_line.split()[1:5] == ["finished", "20/20", "2", "1"]
    assert any("#1 train" in line and "failed" in line and "simulated crash" in line for line in lines)
    assert any("#2 restart" in line and "finished" in line for line in lines)


# ------------------------------------------------------------------------------ item 11: forget


def test_forget_moves_a_failed_run_aside_and_frees_its_name(env):
    name = launch_ok(env, *RUN, "--steps", "10", "--save-freq", "5", **FAST, FAKE_FAIL_START="1")
    assert wait_state(env, name, ENDED)["state"] == "failed"
    record = read_record(env, name)
    output_dir, log = Path(record["plan"]["output_dir"]), Path(record["plan"]["log_file"])
    assert output_dir.is_dir() and log.is_file()
    out = run_cli(env, "resume", name)
    assert out.returncode == 2  # no checkpoint: until now the name was blocked for good

    out = run_cli(env, "forget", name)
    assert out.returncode == 0, out.stderr
    aside = list((Path(env["MIMIC_OUTPUTS"]) / "runs" / ".forgotten").iterdir())
    assert len(aside) == 1 and aside[0].name.startswith(f"{name}-") and aside[0].name.endswith("Z")
    folder = aside[0]
    assert json.loads((folder / "run" / "run.json").read_text())["name"] == name
    assert (folder / "train").is_dir() and "RuntimeError: boom" in (folder / log.name).read_text()
    assert not output_dir.exists() and not log.exists()
    for what in ("record", "checkpoints", "log"):
        assert f"{what}: " in out.stdout and str(folder) in out.stdout
    assert json.loads(run_cli(env, "status", "--all", "--json").stdout) == []
    assert json.loads(run_cli(env, "history", "--json").stdout) == []

    assert launch_ok(env, *RUN, "--steps", "10", "--save-freq", "5", **FAST) == name  # the name is free
    assert wait_state(env, name, ENDED)["state"] == "finished"
    assert len(read_record(env, name)["attempts"]) == 1


def test_forget_with_purge_deletes_checkpoints_and_log_but_keeps_the_record(env):
    name = launch_ok(env, *RUN, "--steps", "10", "--save-freq", "5", **FAST)
    assert wait_state(env, name, ENDED)["state"] == "finished"
    record = read_record(env, name)
    out = run_cli(env, "forget", name, "--purge")
    assert out.returncode == 0, out.stderr
    assert "deleted" in out.stdout
    assert not Path(record["plan"]["output_dir"]).exists() and not Path(record["plan"]["log_file"]).exists()
    (folder,) = (Path(env["MIMIC_OUTPUTS"]) / "runs" / ".forgotten").iterdir()
    assert (folder / "run" / "run.json").is_file() and not (folder / "train").exists()


def test_forget_refuses_a_live_run_and_suggests_close_names(env):
    name = launch_ok(env, *RUN, "--steps", "2000", "--save-freq", "50", **SLOW)
    wait_step(env, name, 2)
    out = run_cli(env, "forget", name)
    assert out.returncode == 2 and out.stdout == "", out
    assert out.stderr.startswith(f"error: run '{name}' is running") and "stop it first" in out.stderr
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert row(env, name)["state"] == "running"
    assert not (Path(env["MIMIC_OUTPUTS"]) / "runs" / ".forgotten").exists()
    out = run_cli(env, "forget", name[:-1])
    assert out.returncode == 2 and f"did you mean '{name}'" in out.stderr, out.stderr
    out = run_cli(env, "forget", "../train")
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr


# ------------------------------------------------------------------------------ the real lerobot-train


@pytest.mark.lerobot
@pytest.mark.timeout(900)
def test_real_lerobot_push_failure_and_resume_target(demo_env):
    """With the real lerobot-train: a Hub push that fails after `End of training` (offline) leaves
    the run finished with the retry; `resume --steps 4` stopped before its next checkpoint, then
    `resume`, trains to 4 (not to the 2 of the checkpoint's config)."""
    env = dict(demo_env, **hub_that_refuses())
    env.pop("LEROBOT_TRAIN")
    common = ("--batch-size", "2", "--num-workers", "0")
    out = run_cli(env, *RUN, "--steps", "2", "--save-freq", "2", "--push-to-hub", *common, "--", *TINY_ACT)
    assert out.returncode == 0, out.stderr
    name = "act_cpu_one"
    try:
        final = wait_state(env, name, ENDED, timeout=600)
        record = read_record(env, name)
        log = Path(record["plan"]["log_file"]).read_text()
        assert final["state"] == "finished", log[-3000:]
        assert record["reason"].startswith("trained, push failed: "), record["reason"]
        assert "hf upload " in record["reason"] and record["exit_code"] == 1

        out = run_cli(env, "resume", name, "--steps", "4")
        assert out.returncode == 0 and "from step 2 to 4" in out.stdout, out.stdout + out.stderr
        wait_state(env, name, "running", timeout=60)
        run_cli(env, "stop", name, "--timeout", "20")  # still importing torch: before any new step
        assert checkpoints(record["plan"]["output_dir"]) == [2]

        out = run_cli(env, "resume", name)
        assert out.returncode == 0 and "from step 2 to 4" in out.stdout, out.stdout + out.stderr
        final = wait_state(env, name, ENDED, timeout=600)
        record = read_record(env, name)
        log = Path(record["plan"]["log_file"]).read_text()
        assert final["state"] == "finished" and (final["step"], final["total_steps"]) == (4, 4), log[-3000:]
        assert checkpoints(record["plan"]["output_dir"]) == [2, 4]
        assert [a["state"] for a in record["attempts"]] == ["finished", "stopped", "finished"]
    finally:
        run_cli(env, "stop", "--all", "--timeout", "5")
