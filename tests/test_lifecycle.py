"""Run lifecycle end to end: real detached processes, the fake trainer (tests/fake_trainer.py)
in place of lerobot-train, no mocks of process handling. Each test takes seconds.

What is checked: a detached launch that returns at once; the record (plan without secrets,
identities with create times, exit code, timestamps); states queued/running/finished/failed/
stopped/lost; stop with no process left behind (children that escaped the group, a trainer
that ignores SIGTERM); automatic restarts from a checkpoint; resume; name collisions and
simultaneous launches; sequential queues; logs, history, status --json/--watch.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, TRAIN_MANAGER, marked_pids, pid_alive, read_record, run_cli, wait_for, wait_state

pytestmark = pytest.mark.timeout(120)

FAST = {"FAKE_STEP_SECONDS": "0.02"}  # 20 steps: well under a second of "training"
SLOW = {"FAKE_STEP_SECONDS": "0.05"}  # long runs that get stopped (2000 steps = 100 s)
STATUS_KEYS = {"name", "state", "pid", "step", "total_steps", "log_file", "output_dir", "launcher"}


# ------------------------------------------------------------------------------------ helpers


def launch(env: dict, *args: str, **extra_env) -> tuple[subprocess.CompletedProcess, float]:
    start = time.monotonic()
    out = run_cli(env, *args, **extra_env)
    return out, time.monotonic() - start


def launch_ok(env: dict, *args: str, **extra_env) -> str:
    """Launch one run; return its name (from the `launched NAME (...)` line)."""
    out, _ = launch(env, *args, **extra_env)
    assert out.returncode == 0, out.stderr
    names = [line.split()[1] for line in out.stdout.splitlines() if line.startswith("launched ")]
    assert len(names) == 1, out.stdout
    return names[0]


def status_rows(env: dict, *names: str) -> list[dict]:
    out = run_cli(env, "status", "--all", "--json", *names)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def row(env: dict, name: str) -> dict:
    return status_rows(env, name)[0]


def wait_step(env: dict, name: str, step: int, timeout: float = 60) -> dict:
    def check():
        r = row(env, name)
        return r if r["state"] == "running" and (r["step"] or 0) >= step else None

    return wait_for(check, timeout, 0.2, f"{name} running at step >= {step}")


def log_text(env: dict, name: str) -> str:
    return Path(read_record(env, name)["plan"]["log_file"]).read_text()


def checkpoints(env: dict, name: str) -> list[str]:
    ck = Path(read_record(env, name)["plan"]["output_dir"]) / "checkpoints"
    return sorted(p.name for p in ck.iterdir() if p.name.isdigit())


def write_record(env: dict, name: str, record: dict) -> None:
    """Write run.json by hand. Schema 2: the outcome fields at the top level are a derived copy of
    the current attempt's, so an edit of them is made where the registry reads it."""
    path = Path(env["MIMIC_OUTPUTS"]) / "runs" / name / "run.json"
    record = json.loads(json.dumps(record))
    for key in ("state", "started_at", "ended_at", "exit_code", "reason"):
        if key in record:
            record["attempts"][-1][key] = record[key]
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record))
    os.replace(tmp, path)


def cleanup(env: dict) -> None:
    run_cli(env, "stop", "--all", "--timeout", "2")


@pytest.fixture
def env(demo_env):
    yield demo_env
    cleanup(demo_env)  # never leave a detached run behind, whatever the test did


# ------------------------------------------------------------------------------------ launch


def test_launch_is_detached_fast_and_finishes_with_a_full_record(env):
    secrets = {"HF_TOKEN": "hf_SECRETtoken123", "WANDB_API_KEY": "wandbSECRETkey456"}
    out, wall = launch(env, "--policy", "act", "--dataset-group", "one", "--steps", "20", "--save-freq", "5",
                       **FAST, **secrets)
    print(f"launch wall time: {wall * 1000:.0f} ms")
    assert out.returncode == 0, out.stderr
    assert wall < 3.0
    name = "act_cpu_one"
    rec = read_record(env, name)
    sup = rec["supervisor"]
    text = out.stdout
    assert f"launched {name} (pid {sup['pid']})" in text
    assert rec["plan"]["log_file"] in text
    assert f"logs {name} -f" in text and f"stop {name}" in text and "status" in text
    # own session and process group: not tied to the launching terminal
    if pid_alive(sup["pid"]):
        assert os.getsid(sup["pid"]) == sup["pid"] != os.getsid(0)

    final = wait_state(env, name, "finished", timeout=60)
    assert (final["step"], final["total_steps"]) == (20, 20)
    assert final["exit_code"] == 0 and final["loss"] == pytest.approx(0.5)
    assert set(final) >= STATUS_KEYS and final["launcher"] == "local"
    assert final["log_file"] == rec["plan"]["log_file"] and final["output_dir"] == rec["plan"]["output_dir"]
    assert checkpoints(env, name) == ["000005", "000010", "000015", "000020"]
    assert os.readlink(Path(final["output_dir"]) / "checkpoints" / "last") == "000020"

    rec = read_record(env, name)
    assert rec["state"] == "finished" and rec["exit_code"] == 0 and rec["restarts"] == 0
    assert rec["created_at"] <= rec["started_at"] <= rec["ended_at"]
    assert rec["toolkit_commit"] and len(rec["toolkit_commit"]) >= 7
    assert rec["lerobot_version"] is None  # the fake trainer: no LeRobot installed beside it
    for who in ("supervisor", "trainer"):
        assert isinstance(rec[who]["pid"], int) and rec[who]["create_time"] > 0
    assert rec["plan"]["datasets"] == ["mimic-demo/demo_a"] and rec["plan"]["computer"] == "cpu"
    assert "gpus" in rec and "host" in rec and "wandb_url" in rec
    assert not marked_pids(rec["marker"])
    stored = (Path(env["MIMIC_OUTPUTS"]) / "runs" / name / "run.json").read_text()
    for var, value in secrets.items():
        assert value not in stored and var not in rec["plan"]["env"]
    log = log_text(env, name)
    assert f"=== {name}: attempt 1 (train)" in log and "End of training" in log
    assert log.rstrip().endswith(f"=== {name}: finished ===")


def test_status_table_and_history(env):
    name = launch_ok(env, "--policy", "act", "--dataset-group", "one", "--steps", "20", "--save-freq", "5", **FAST)
    other = launch_ok(env, "--policy", "act", "--dataset-group", "two", "--steps", "20", "--save-freq", "5",
                      "--tag", "b", **FAST, FAKE_FAIL_START="1")
    wait_state(env, name, "finished")
    wait_state(env, other, "failed")
    table = run_cli(env, "status").stdout
    assert "NAME" in table and "STATE" in table
    assert any(name in line and "finished" in line and "20/20" in line for line in table.splitlines())
    assert any(other in line and "failed" in line and "RuntimeError: boom" in line for line in table.splitlines())
    hist = run_cli(env, "history")
    assert hist.returncode == 0 and name in hist.stdout and other in hist.stdout
    rows = json.loads(run_cli(env, "history", "--json").stdout)
    assert {r["name"]: r["state"] for r in rows} == {name: "finished", other: "failed"}
    assert [r["name"] for r in json.loads(run_cli(env, "status", "--json").stdout)] == [name, other]


def test_status_hides_runs_that_ended_long_ago_and_names_unknown_runs(env):
    name = launch_ok(env, "--policy", "act", "--dataset-group", "one", "--steps", "20", "--save-freq", "5", **FAST)
    wait_state(env, name, "finished")
    assert name in run_cli(env, "status").stdout
    rec = read_record(env, name)
    write_record(env, name, dict(rec, ended_at=time.time() - 3 * 86400))
    out = run_cli(env, "status")
    assert name not in out.stdout.replace("status --all", "") and "1 older" in out.stdout
    assert name in run_cli(env, "status", "--all").stdout and name in run_cli(env, "status", name).stdout
    assert json.loads(run_cli(env, "status", "--json").stdout) == []
    out = run_cli(env, "status", name, "nope")
    assert out.returncode == 2 and out.stderr.startswith("error: no run named 'nope'")


def test_status_watch_shows_runs_and_leaves_on_ctrl_c(env):
    name = launch_ok(env, "--policy", "act", "--dataset-group", "one", "--steps", "20", "--save-freq", "5", **FAST)
    wait_state(env, name, "finished")
    proc = subprocess.Popen([str(TRAIN_MANAGER), "status", "--watch", "--interval", "0.2"], env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 130, err
    assert name in out and "finished" in out


# ------------------------------------------------------------------------------------ stop


@pytest.mark.parametrize("knob", ["plain", "FAKE_CHILD", "FAKE_HANG"])
def test_stop_mid_run_leaves_no_process(env, knob):
    extra = {**SLOW, **({knob: "1"} if knob != "plain" else {})}
    name = launch_ok(env, "--policy", "act", "--dataset-group", "one", "--steps", "2000", "--save-freq", "5", **extra)
    r = wait_step(env, name, 3)
    assert r["total_steps"] == 2000 and r["loss"] is not None and r["eta_seconds"] is not None  # progress
    rec = read_record(env, name)
    child = None
    if knob == "FAKE_CHILD":
        pid_file = Path(rec["plan"]["output_dir"]) / "child.pid"
        child = int(wait_for(lambda: pid_file.exists() and pid_file.read_text(), 10, what="child.pid"))
        assert os.getsid(child) == child != os.getsid(rec["trainer"]["pid"])  # escaped group and session
    assert set(marked_pids(rec["marker"])) >= {rec["supervisor"]["pid"], rec["trainer"]["pid"]}

    start = time.monotonic()
    out = run_cli(env, "stop", name, "--timeout", "2")
    took = time.monotonic() - start
    print(f"stop ({knob}) took {took:.2f}s: {out.stdout.strip()}")
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"{name}: stopped" in out.stdout and "survived" not in out.stdout
    if knob == "FAKE_HANG":
        assert took >= 2.0  # SIGTERM ignored: SIGKILL only after --timeout
    assert marked_pids(rec["marker"]) == []
    if child:
        assert not pid_alive(child)
    final = row(env, name)
    assert final["state"] == "stopped" and final["step"] >= 3
    rec = read_record(env, name)
    assert rec["stop_requested"] and rec["ended_at"] and "stop" in rec["reason"]
    time.sleep(0.5)
    assert row(env, name)["state"] == "stopped"  # and it stays so (nothing wrote an end after it)


def test_stop_of_an_ended_run_is_a_no_op_and_unknown_name_is_an_error(env):
    name = launch_ok(env, "--policy", "act", "--dataset-group", "one", "--steps", "20", "--save-freq", "5", **FAST)
    wait_state(env, name, "finished")
    out = run_cli(env, "stop", name)
    assert out.returncode == 0 and out.stdout.strip() == f"{name}: already finished", out.stdout
    assert read_record(env, name)["state"] == "finished"
    out = run_cli(env, "stop", "no_such_run")
    assert out.returncode == 2 and out.stderr.startswith("error: no run named 'no_such_run'")
    assert run_cli(env, "stop", "--all").stdout.strip() == "nothing to stop"


# ------------------------------------------------------------------------------------ crashes


def test_crash_with_max_restarts_resumes_from_checkpoint_and_finishes(env):
    name = launch_ok(env, "--policy", "act", "--dataset-group", "one", "--steps", "20", "--save-freq", "5",
                     "--max-restarts", "1", **FAST, FAKE_CRASH_AT="12")
    final = wait_state(env, name, ("finished", "failed", "stopped", "lost"))
    assert final["state"] == "finished", final
    assert (final["step"], final["total_steps"], final["restarts"], final["exit_code"]) == (20, 20, 1, 0)
    rec = read_record(env, name)
    assert rec["restarts"] == 1 and [a["kind"] for a in rec["attempts"]] == ["train", "restart"]
    log = log_text(env, name)
    assert log.count("Start offline training") == 2  # both trainer runs, appended in one log
    assert log.count("step:12 ") == 2  # crashed at 12, resumed from the checkpoint at 10
    assert log.index("RuntimeError: simulated crash") < log.index("restart 1 of 1") < log.rindex("End of training")
    assert "--resume=true" in log.split("restart 1 of 1", 1)[1]
    assert checkpoints(env, name)[-1] == "000020"


def test_crash_without_restarts_is_failed_with_the_reason(env):
    name = launch_ok(env, "--policy", "act", "--dataset-group", "one", "--steps", "20", "--save-freq", "5",
                     **FAST, FAKE_CRASH_AT="12")
    final = wait_state(env, name, ("finished", "failed", "stopped", "lost"))
    assert final["state"] == "failed" and final["exit_code"] == 1 and final["restarts"] == 0
    assert "RuntimeError: simulated crash" in final["reason"]
    assert final["step"] == 12
    table = run_cli(env, "status").stdout
    assert "RuntimeError: simulated crash" in table
    assert "resuming from the last checkpoint" not in log_text(env, name)


def test_crash_that_keeps_crashing_uses_up_its_restarts(env):
    name = launch_ok(env, "--policy", "act", "--dataset-group", "one", "--steps", "20", "--save-freq", "5",
                     "--max-restarts", "2", **FAST, FAKE_CRASH_AT="12", FAKE_CRASH_ALWAYS="1")
    final = wait_state(env, name, ("finished", "failed", "stopped", "lost"))
    assert final["state"] == "failed" and final["restarts"] == 2
    assert log_text(env, name).count("Start offline training") == 3


def test_a_stop_recorded_before_a_crash_is_not_followed_by_a_restart(env):
    """The window between a crash and the automatic restart: a stop already asked for (recorded,
    its signal not yet delivered) must end the run as stopped, never start another trainer."""
    name = launch_ok(env, "--policy", "act", "--dataset-group", "one", "--steps", "40", "--save-freq", "5",
                     "--max-restarts", "3", FAKE_STEP_SECONDS="0.1", FAKE_CRASH_AT="30")
    wait_step(env, name, 10)
    record_file = Path(env["MIMIC_OUTPUTS"]) / "runs" / name / "run.json"
    subprocess.run([sys.executable, "-c", "import sys; from mimic_deployment.runs import registry; "
                    "registry.update(sys.argv[1], lambda r: setattr(r, 'stop_requested', True))", name],
                   env=env, check=True, cwd=REPO)
    assert json.loads(record_file.read_text())["stop_requested"] is True
    final = wait_state(env, name, ("finished", "failed", "stopped", "lost"))
    assert final["state"] == "stopped" and final["restarts"] == 0, final
    assert log_text(env, name).count("Start offline training") == 1


# ------------------------------------------------------------------------------------ lost


def test_killed_supervisor_is_lost_and_takes_the_trainer_with_it(env):
    name = launch_ok(env, "--policy", "act", "--dataset-group", "one", "--steps", "2000", "--save-freq", "50", **SLOW)
    wait_step(env, name, 2)
    rec = read_record(env, name)
    sup, trainer = rec["supervisor"]["pid"], rec["trainer"]["pid"]
    os.kill(sup, signal.SIGKILL)
    final = wait_state(env, name, ("lost", "stopped", "failed", "finished"), timeout=20)
    assert final["state"] == "lost"
    assert "gone" in (final["reason"] or "")
    wait_for(lambda: not pid_alive(trainer), 10, what="the trainer to die with its supervisor (PDEATHSIG)")
    wait_for(lambda: not marked_pids(rec["marker"]), 10, what="no marked process")
    rec = read_record(env, name)
    assert rec["state"] == "lost" and rec["ended_at"]  # persisted, not only shown
    assert row(env, name)["state"] == "lost"


def test_recorded_pid_reused_by_another_process_is_not_running(env):
    name = launch_ok(env, "--policy", "act", "--dataset-group", "one", "--steps", "20", "--save-freq", "5", **FAST)
    wait_state(env, name, "finished")
    base = read_record(env, name)
    sleeper = subprocess.Popen(["sleep", "120"])
    try:
        import psutil

        real_ct = psutil.Process(sleeper.pid).create_time()

        def fake_running(pid: int, create_time: float) -> None:
            rec = dict(base, state="running", ended_at=None, exit_code=None, reason=None,
                       supervisor={"pid": pid, "create_time": create_time})
            write_record(env, name, rec)

        # 1. the right identity (pid + create time) of a live process: running
        fake_running(sleeper.pid, real_ct)
        assert row(env, name)["state"] == "running"
        # 2. the same PID with another create time (a reused PID): someone else's process, so the
        # run's owner is gone; its log says it trained to the end, so it is finished, not lost
        fake_running(sleeper.pid, real_ct - 1000)
        judged = row(env, name)
        assert judged["state"] == "finished" and "supervisor was lost" in judged["reason"], judged
        assert read_record(env, name)["state"] == "finished"
        # 3. the pytest process itself as the "supervisor": lost, and stop must not touch it
        fake_running(os.getpid(), psutil.Process().create_time() - 5000)
        out = run_cli(env, "stop", name, "--timeout", "1")
        assert out.returncode == 0, out.stderr
        assert read_record(env, name)["state"] == "finished"  # trained to the end (its log says so)
        fake_running(sleeper.pid, real_ct + 7)
        run_cli(env, "stop", name, "--timeout", "1")
        assert sleeper.poll() is None  # not ours: never signalled
    finally:
        sleeper.kill()
        sleeper.wait()


# ------------------------------------------------------------------------------------ collisions


def test_two_launches_of_one_name_at_the_same_moment(env):
    args = [str(TRAIN_MANAGER), "--policy", "act", "--dataset-group", "one", "--steps", "20", "--save-freq", "5"]
    procs = [subprocess.Popen(args, env={**env, **FAST}, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    results = [(p.wait(timeout=60), *p.communicate()) for p in procs]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 2], results
    loser = next(r for r in results if r[0] == 2)
    assert loser[2].startswith("error: run 'act_cpu_one'") and loser[2].count("\n") == 1
    final = wait_state(env, "act_cpu_one", ("finished", "failed", "stopped", "lost"))
    assert final["state"] == "finished", final
    rec = read_record(env, "act_cpu_one")
    assert len(rec["attempts"]) == 1
    assert log_text(env, "act_cpu_one").count("=== act_cpu_one: attempt") == 1


def _refused(env: dict, name: str, args: tuple, *words: str) -> str:
    """Launching `args` (whose run is `name`) is refused with one line naming it; nothing changes."""
    before = read_record(env, name)
    log = Path(before["plan"]["log_file"])
    size = log.stat().st_size
    out, _ = launch(env, *args, **SLOW)
    assert out.returncode == 2 and out.stdout == "", out
    assert out.stderr.startswith(f"error: run '{name}'") and out.stderr.count("\n") == 1, out.stderr
    for word in words:
        assert word in out.stderr, out.stderr
    after = read_record(env, name)
    assert after["attempts"] == before["attempts"] and after["supervisor"] == before["supervisor"]
    if before["state"] != "running":
        assert log.stat().st_size == size  # nothing started: not even a header line
    return out.stderr


def test_collisions_refuse_and_launch_nothing(env):
    args = ("--policy", "act", "--dataset-group", "one", "--steps", "2000", "--save-freq", "5")
    name = launch_ok(env, *args, **SLOW)
    wait_step(env, name, 6)  # a checkpoint exists
    _refused(env, name, args, "running", f"logs {name} -f", f"stop {name}", "--tag")
    run_cli(env, "stop", name, "--timeout", "2")
    _refused(env, name, args, "stopped", "checkpoint", f"resume {name}", "--tag")
    # finished: only a new name (--tag) can go on
    done = ("--policy", "act", "--dataset-group", "one", "--steps", "10", "--save-freq", "5", "--tag", "done")
    name = launch_ok(env, *done, **FAST)
    wait_state(env, name, "finished")
    err = _refused(env, name, done, "finished", "--tag")
    assert "resume" not in err


def test_a_run_stopped_before_any_checkpoint_suggests_tag(env):
    args = ("--policy", "act", "--dataset-group", "one", "--steps", "2000", "--save-freq", "1000")
    name = launch_ok(env, *args, **SLOW)
    wait_step(env, name, 2)
    run_cli(env, "stop", name, "--timeout", "2")
    out, _ = launch(env, *args)
    assert out.returncode == 2 and "--tag" in out.stderr and "resume" not in out.stderr.split("(", 1)[0]


# ------------------------------------------------------------------------------------ resume


def test_resume_a_stopped_run_appends_and_finishes(env):
    name = launch_ok(env, "--policy", "act", "--dataset-group", "one", "--steps", "40", "--save-freq", "5", **SLOW)
    wait_step(env, name, 11)
    run_cli(env, "stop", name, "--timeout", "2")
    stopped_at = read_record(env, name)
    first_log = log_text(env, name)
    out = run_cli(env, "resume", name, **FAST)
    assert out.returncode == 0, out.stderr
    assert f"resuming {name} from step" in out.stdout and "to 40" in out.stdout
    final = wait_state(env, name, ("finished", "failed", "stopped", "lost"))
    assert final["state"] == "finished" and (final["step"], final["total_steps"]) == (40, 40), final
    rec = read_record(env, name)
    assert len(rec["attempts"]) == 2 and rec["attempts"][0]["state"] == "stopped"
    assert rec["attempts"][1]["kind"] == "resume" and rec["started_at"] > stopped_at["ended_at"]
    log = log_text(env, name)
    assert log.startswith(first_log)  # appended, never overwritten
    assert f"=== {name}: attempt 2 (resume)" in log[len(first_log):]
    assert checkpoints(env, name)[-1] == "000040"


def test_resume_with_steps_extends_a_finished_run(env):
    name = launch_ok(env, "--policy", "act", "--dataset-group", "one", "--steps", "20", "--save-freq", "5", **FAST)
    wait_state(env, name, "finished")
    out = run_cli(env, "resume", name)
    assert out.returncode == 2 and "already at step 20" in out.stderr and "--steps" in out.stderr
    assert row(env, name)["state"] == "finished"  # its row is cached now (an end is final) ...
    out = run_cli(env, "resume", name, "--steps", "30", **FAST)
    assert out.returncode == 0, out.stderr
    assert row(env, name)["state"] in ("queued", "running", "finished")  # ... until the record changes
    assert row(env, name)["attempts"] == 2
    final = wait_state(env, name, ("finished", "failed", "stopped", "lost"))
    # the first attempt's end is archived, the new one must be waited for
    wait_for(lambda: read_record(env, name)["state"] == "finished" and len(read_record(env, name)["attempts"]) == 2,
             30, what="the resumed attempt to finish")
    final = wait_state(env, name, "finished")
    assert (final["step"], final["total_steps"]) == (30, 30), final
    assert checkpoints(env, name)[-1] == "000030"


def test_resume_without_checkpoint_is_a_clear_error(env):
    name = launch_ok(env, "--policy", "act", "--dataset-group", "one", "--steps", "20", "--save-freq", "5",
                     **FAST, FAKE_FAIL_START="1")
    final = wait_state(env, name, ("finished", "failed", "stopped", "lost"))
    assert final["state"] == "failed" and "RuntimeError: boom" in final["reason"]
    out = run_cli(env, "resume", name)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.startswith(f"error: run '{name}' has no checkpoint") and out.stderr.count("\n") == 1
    assert len(read_record(env, name)["attempts"]) == 1
    assert run_cli(env, "resume", "nope").returncode == 2


def test_resume_of_a_running_run_is_refused(env):
    name = launch_ok(env, "--policy", "act", "--dataset-group", "one", "--steps", "2000", "--save-freq", "5", **SLOW)
    wait_step(env, name, 6)
    out = run_cli(env, "resume", name)
    assert out.returncode == 2 and "running" in out.stderr and f"stop {name}" in out.stderr


# ------------------------------------------------------------------------------------ sequential


def test_sequential_runs_one_after_another_and_queued_is_visible(env):
    out, wall = launch(env, "--policy", "act,diffusion", "--dataset-group", "one", "--steps", "20",
                       "--save-freq", "5", **SLOW)
    print(f"launch of 2 runs: {wall * 1000:.0f} ms")
    assert out.returncode == 0, out.stderr
    first, second = "act_cpu_one", "diffusion_cpu_one"
    assert "queue position 1/2" in out.stdout and "queue position 2/2" in out.stdout and "stop --all" in out.stdout

    def first_running_second_queued():
        rows = {r["name"]: r["state"] for r in status_rows(env)}
        return rows == {first: "running", second: "queued"}

    wait_for(first_running_second_queued, 30, 0.2, "first running while second queued")
    a = wait_state(env, first, "finished")
    b = wait_state(env, second, ("finished", "failed", "stopped", "lost"))
    assert b["state"] == "finished", b
    assert (a["step"], b["step"]) == (20, 20)
    ra, rb = read_record(env, first), read_record(env, second)
    assert rb["started_at"] >= ra["ended_at"]  # no overlap
    assert ra["queue"]["pid"] == rb["queue"]["pid"]


def _queue_of_three(env, *extra: str, steps: str = "20", **knobs):
    """Three runs in one sequential queue (three policies on one dataset: no merge to wait for)."""
    out = run_cli(env, "--policy", "act,diffusion,pi0", "--dataset-group", "one", "--steps", steps,
                  "--save-freq", "5", "--tag", "q", *extra, **knobs)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("queue position") == 3
    return ["act_cpu_one_q", "diffusion_cpu_one_q", "pi0_cpu_one_q"]


def test_sequential_failure_in_the_middle_stops_the_queue(env):
    names = _queue_of_three(env, **SLOW)
    # LeRobot refuses an existing output folder: this makes the second run (only) fail at start
    Path(read_record(env, names[1])["plan"]["output_dir"]).mkdir(parents=True)
    for name in names:
        wait_state(env, name, ("finished", "failed", "stopped", "lost"))
    rows = {r["name"]: r for r in status_rows(env)}
    assert [rows[n]["state"] for n in names] == ["finished", "failed", "stopped"]
    assert "FileExistsError" in rows[names[1]]["reason"]
    assert "queue" in rows[names[2]]["reason"] and names[1] in rows[names[2]]["reason"]
    third = read_record(env, names[2])
    assert third.get("started_at") is None and third["supervisor"] is None  # never started
    queue = read_record(env, names[0])["queue"]
    wait_for(lambda: not pid_alive(queue["pid"]), 10, what="the queue to exit")


def test_sequential_all_failing_stops_at_first_or_continues_on_failure(env):
    names = _queue_of_three(env, **FAST, FAKE_FAIL_START="1")
    for name in names:
        wait_state(env, name, ("finished", "failed", "stopped", "lost"))
    recs = [read_record(env, n) for n in names]
    assert [r["state"] for r in recs] == ["failed", "stopped", "stopped"]
    assert all(r.get("started_at") is None for r in recs[1:])

    out = run_cli(env, "--policy", "act,diffusion,pi0", "--dataset-group", "one", "--steps", "20", "--save-freq", "5",
                  "--tag", "c", "--continue-on-failure", **FAST, FAKE_FAIL_START="1")
    assert out.returncode == 0, out.stderr
    names = ["act_cpu_one_c", "diffusion_cpu_one_c", "pi0_cpu_one_c"]
    for name in names:
        wait_state(env, name, ("finished", "failed", "stopped", "lost"))
    recs = [read_record(env, n) for n in names]
    assert [r["state"] for r in recs] == ["failed"] * 3
    assert all("RuntimeError: boom" in r["reason"] for r in recs)
    assert recs[0]["ended_at"] <= recs[1]["started_at"] and recs[1]["ended_at"] <= recs[2]["started_at"]


def test_stop_all_cancels_queued_runs_and_the_queue(env):
    names = _queue_of_three(env, steps="2000", **SLOW)
    wait_for(lambda: row(env, names[0])["state"] == "running", 30, 0.2, "first running")
    rec0 = read_record(env, names[0])
    out = run_cli(env, "stop", "--all", "--timeout", "2")
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"{names[0]}: stopped (was running)" in out.stdout, out.stdout
    for name in names[1:]:
        assert f"{name}: cancelled (was queued)" in out.stdout, out.stdout
    wait_for(lambda: not pid_alive(rec0["queue"]["pid"]), 10, what="the queue to exit")
    time.sleep(1.0)  # nothing may start afterwards
    recs = [read_record(env, n) for n in names]
    assert [r["state"] for r in recs] == ["stopped"] * 3
    assert all(r.get("started_at") is None and r["supervisor"] is None for r in recs[1:])
    for r in recs:
        assert marked_pids(r["marker"]) == []


# ------------------------------------------------------------------------------------ logs


def test_logs_last_lines_and_follow_until_the_end(env):
    name = launch_ok(env, "--policy", "act", "--dataset-group", "one", "--steps", "60", "--save-freq", "20", **SLOW)
    wait_step(env, name, 1)
    start = time.monotonic()
    follow = run_cli(env, "logs", name, "-f", "-n", "2", timeout=60)
    took = time.monotonic() - start
    assert follow.returncode == 0, follow.stderr
    assert "End of training" in follow.stdout and f"=== {name}: finished ===" in follow.stdout
    assert took < 30
    out = run_cli(env, "logs", name, "-n", "5")
    assert out.returncode == 0
    lines = out.stdout.splitlines()
    assert len(lines) == 5 and lines == log_text(env, name).splitlines()[-5:]
    assert run_cli(env, "logs", name, "-n", "0").stdout == ""
    out = run_cli(env, "logs", "nope")
    assert out.returncode == 2 and "no run named 'nope'" in out.stderr


# ------------------------------------------------------------------------------------ regressions


def test_foreground_sequence_keeps_waiting_runs_queued_not_lost(env):
    """Records waiting for their turn in a --foreground sequence (or in the instant between the
    claim of a name and the start of its supervisor) are owned by the launching process."""
    proc = subprocess.Popen([str(TRAIN_MANAGER), "--policy", "act,diffusion", "--dataset-group", "one", "--steps",
                             "30", "--save-freq", "5", "--foreground"], env={**env, **SLOW}, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: {r["name"]: r["state"] for r in status_rows(env)}
                 == {"act_cpu_one": "running", "diffusion_cpu_one": "queued"}, 30, 0.2, "running + queued")
        assert row(env, "diffusion_cpu_one")["pid"] == proc.pid
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, out
    assert [r["state"] for r in status_rows(env)] == ["finished", "finished"]


def test_stop_one_member_of_a_queue_lets_a_continue_on_failure_queue_go_on(env):
    names = _queue_of_three(env, "--continue-on-failure", steps="60", **SLOW)
    wait_step(env, names[0], 2)
    out = run_cli(env, "stop", names[0], "--timeout", "2")
    assert out.returncode == 0 and f"{names[0]}: stopped" in out.stdout
    for name in names[1:]:
        wait_state(env, name, ("finished", "failed", "stopped", "lost"))
    assert [row(env, n)["state"] for n in names] == ["stopped", "finished", "finished"]


def test_stop_one_member_of_a_queue_cancels_the_rest_with_the_reason(env):
    names = _queue_of_three(env, steps="60", **SLOW)
    wait_step(env, names[0], 2)
    run_cli(env, "stop", names[0], "--timeout", "2")
    for name in names[1:]:
        wait_state(env, name, ("finished", "failed", "stopped", "lost"))
    rows = [row(env, n) for n in names]
    assert [r["state"] for r in rows] == ["stopped"] * 3
    assert all(f"queue stopped: {names[0]} stopped" in r["reason"] for r in rows[1:])


def test_supervisor_killed_while_the_trainer_ignores_sigterm_is_not_lost_until_it_is_gone(env):
    name = launch_ok(env, "--policy", "act", "--dataset-group", "one", "--steps", "2000", "--save-freq", "50",
                     **SLOW, FAKE_HANG="1")
    wait_step(env, name, 2)
    rec = read_record(env, name)
    os.kill(rec["supervisor"]["pid"], signal.SIGKILL)
    time.sleep(1.0)
    assert pid_alive(rec["trainer"]["pid"])  # PDEATHSIG's SIGTERM ignored: it still trains
    assert row(env, name)["state"] == "running"
    out = run_cli(env, "resume", name)
    assert out.returncode == 2 and "running" in out.stderr  # no second trainer on the same output
    out = run_cli(env, "stop", name, "--timeout", "1")
    assert f"{name}: stopped" in out.stdout, out.stdout + out.stderr
    assert marked_pids(rec["marker"]) == [] and row(env, name)["state"] == "stopped"


def test_resume_of_a_run_from_a_queue_is_its_own_run(env):
    names = _queue_of_three(env, steps="20", **FAST, FAKE_CRASH_AT="12")
    wait_state(env, names[0], "failed")
    wait_state(env, names[2], "stopped")
    out = run_cli(env, "resume", names[0], **FAST)
    assert out.returncode == 0, out.stderr
    assert "queue position" not in out.stdout and f"launched {names[0]} (pid " in out.stdout
    assert read_record(env, names[0])["queue"] is None
    final = wait_state(env, names[0], ("finished", "failed", "stopped", "lost"))
    assert final["state"] == "finished" and final["step"] == 20
    assert [row(env, n)["state"] for n in names[1:]] == ["stopped", "stopped"]  # not woken up


def test_a_stop_before_the_prepare_step_ends_the_run_once_and_starts_no_trainer(env):
    """SIGTERM reaches the supervisor before its prepare step (held on the record's lock here):
    one `stopped` end, no `running:` line, no trainer."""
    import fcntl

    name = "act_cpu_one"
    run_dir = Path(env["MIMIC_OUTPUTS"]) / "runs" / name
    proc = subprocess.Popen([str(TRAIN_MANAGER), "--policy", "act", "--dataset-group", "one", "--steps", "20"],
                            env={**env, **FAST}, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(run_dir.is_dir, 30, 0.001, "the run's record folder")
    with open(run_dir / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the supervisor's first record update waits for it
        marker = wait_for(lambda: (run_dir / "run.json").exists() and read_record(env, name)["marker"], 30)

        def blocked_supervisor():
            for pid in marked_pids(marker):
                try:
                    if "lock" in Path(f"/proc/{pid}/wchan").read_text():
                        return pid
                except OSError:
                    continue
            return None

        pid = wait_for(blocked_supervisor, 30, 0.05, "the supervisor waiting on the record's lock")
        os.kill(pid, signal.SIGTERM)
        time.sleep(0.3)
    proc.communicate(timeout=60)
    final = wait_state(env, name, "stopped", timeout=30)
    log = log_text(env, name)
    assert log.count(f"=== {name}: stopped") == 1, log
    assert "running: " not in log and "preparing the dataset" not in log, log
    assert final["exit_code"] is None and marked_pids(marker) == []
