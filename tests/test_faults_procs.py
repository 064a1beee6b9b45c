"""Faults around a run's processes and record (issue #11, items 5, 9 (stop wording), 12 and the
fault loop): real detached runs of the fake trainer, real SIGKILLs, real unrelated processes,
real hook scripts; no mocks.

- a helper left behind by a trainer whose supervisor (or itself) was SIGKILLed is ended by `stop`
  of the ended run, which says so and records the truthful end (`lost`, `failed`);
- a live run whose run.json was truncated is still found (`stop NAME`, `stop --all`) and ended
  by its marker; its record is left as it was;
- a record whose PID and start time point at an unrelated process never gets it signalled;
- stop lines say the same thing whatever the run was (running, queued, ended);
- lab.yaml's notify command runs once per end with the record on stdin; a hook that fails or
  hangs changes nothing but its note; a shell string instead of an argv is refused at load;
- benchmarks/bench_faults.py: 5 cycles of launch / kill -9 / status / stop with nothing wrong.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from conftest import REPO, marked_pids, pid_alive, read_record, run_cli, wait_for, wait_state
from slurm_cluster import slurm_cluster  # noqa: F401  (the session fixture)

pytestmark = pytest.mark.timeout(180)

SLOW = {"FAKE_STEP_SECONDS": "0.05"}
FAST = {"FAKE_STEP_SECONDS": "0.02"}
ENDS = ("finished", "failed", "stopped", "lost")


@pytest.fixture
def env(demo_env):
    yield demo_env
    run_cli(demo_env, "stop", "--all", "--timeout", "2")


def launch_ok(env: dict, *args: str, **extra_env) -> str:
    out = run_cli(env, "--policy", "act", "--dataset-group", "one", *args, **extra_env)
    assert out.returncode == 0, out.stderr
    names = [line.split()[1] for line in out.stdout.splitlines() if line.startswith("launched ")]
    assert len(names) == 1, out.stdout
    return names[0]


def running_with_child(env: dict) -> tuple[str, dict, int]:
    """A long run whose trainer has started its helper (FAKE_CHILD: own session, the run's marker)."""
    name = launch_ok(env, "--steps", "2000", "--save-freq", "50", **SLOW, FAKE_CHILD="1")
    wait_for(lambda: (read_record(env, name).get("trainer") or {}).get("pid"), 30, what="a trainer")
    rec = read_record(env, name)
    pid_file = Path(rec["plan"]["output_dir"]) / "child.pid"
    child = int(wait_for(lambda: pid_file.exists() and pid_file.read_text(), 30, what="child.pid"))
    rec = read_record(env, name)
    assert child in marked_pids(rec["marker"])
    return name, rec, child


def record_file(env: dict, name: str) -> Path:
    return Path(env["MIMIC_OUTPUTS"]) / "runs" / name / "run.json"


# ------------------------------------------------------------------ item 5a: left-behind helpers


@pytest.mark.parametrize("killed", ["supervisor", "trainer"])
def test_stop_of_a_run_ended_by_kill_9_ends_what_carries_its_marker(env, killed):
    name, rec, child = running_with_child(env)
    os.kill(rec[killed]["pid"], signal.SIGKILL)
    if killed == "supervisor":  # PDEATHSIG takes the trainer down; its helper is in its own session
        wait_for(lambda: not pid_alive(rec["trainer"]["pid"]), 10, what="the trainer to follow its supervisor")
    else:
        wait_for(lambda: not pid_alive(rec["supervisor"]["pid"]), 10, what="the supervisor to record the end")
    out = run_cli(env, "stop", name, "--timeout", "2")
    assert out.returncode == 0, out.stdout + out.stderr
    ended = "lost" if killed == "supervisor" else "failed"
    line, = out.stdout.splitlines()
    # the end that happened, not "stopped": the run was over before the stop asked anything
    assert line.startswith(f"{name}: already {ended}"), line
    if "by marker" in line:  # unless whoever judged the end already ended the helper
        assert line == f"{name}: already {ended}; ended 1 process left behind, by marker"
    assert marked_pids(rec["marker"]) == [] and not pid_alive(child)
    assert read_record(env, name)["state"] == ended
    assert wait_state(env, name, ENDS)["state"] == ended


# ------------------------------------------------------------------ item 5b: corrupt records


def test_a_live_run_with_a_truncated_record_is_stopped_by_its_marker(env):
    name, rec, child = running_with_child(env)
    file = record_file(env, name)
    torn = file.read_bytes()[: file.stat().st_size // 2]
    file.write_bytes(torn)  # a torn write (another tool, a full disk): JSON cut in the middle
    out = run_cli(env, "stop", "--all", "--timeout", "2")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    line = next(li for li in out.stdout.splitlines() if li.startswith(f"{name}:"))
    assert line.startswith(f"{name}: corrupt record; ended "), line
    assert line.endswith(" by marker") and int(line.split("ended ")[1].split()[0]) >= 3, line  # sup, trainer, child
    assert marked_pids(rec["marker"]) == [] and not pid_alive(child)
    assert file.read_bytes() == torn  # kept as it was, for inspection
    log = Path(rec["plan"]["log_file"]).read_text()
    assert "Traceback" not in log, log[-2000:]  # the supervisor read the torn record and said so in one line
    assert "cannot read the run record" in log, log[-2000:]
    out = run_cli(env, "stop", name)  # by name too; nothing left to end
    assert out.returncode == 0 and out.stdout.strip() == f"{name}: corrupt record; ended 0 processes by marker"
    assert run_cli(env, "stop", "--all").stdout.strip() == "nothing to stop"


def test_a_corrupt_record_without_its_marker_file_says_its_processes_cannot_be_found(env):
    name = launch_ok(env, "--steps", "20", "--save-freq", "5", **FAST)
    wait_state(env, name, "finished")
    record_file(env, name).write_text('{"schema": 2, "name": ')
    (record_file(env, name).parent / "marker").unlink()
    out = run_cli(env, "stop", name)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stdout.strip() == f"{name}: corrupt record, and no marker file to find its processes by"


# ------------------------------------------------------------------ item 5c: a PID that is not the run's


def test_a_recorded_pid_of_an_unrelated_process_is_never_signalled(env):
    name = launch_ok(env, "--steps", "20", "--save-freq", "5", **FAST)
    wait_state(env, name, "finished")
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        ident = {"pid": stranger.pid, "create_time": psutil.Process(stranger.pid).create_time()}
        raw = read_record(env, name)  # the exact pid and start time of a live process: a stale or copied record
        raw["attempts"][-1].update(state="running", ended_at=None, exit_code=None, reason=None)
        raw.update(state="running", ended_at=None, exit_code=None, reason=None, supervisor=ident, trainer=ident)
        record_file(env, name).write_text(json.dumps(raw))
        out = run_cli(env, "stop", name, "--timeout", "1")
        assert out.returncode == 0, out.stdout + out.stderr
        assert stranger.poll() is None  # never signalled
        assert out.stdout.strip() == (f"{name}: stopped (was running); recorded PID {stranger.pid} is not the "
                                      "run's (no marker): left alone")
        assert read_record(env, name)["state"] == "stopped"
    finally:
        stranger.kill()
        stranger.wait()


def test_a_foreground_supervisor_is_still_the_runs_and_is_stopped(env):
    """A --foreground supervisor sets its marker after exec (so /proc does not show it): it is the
    toolkit's own process all the same, and `stop` ends it (the rest of its sequence is not started)."""
    proc = subprocess.Popen([str(REPO / "mimic_deployment" / "train_manager.sh"), "--policy", "act,diffusion",
                             "--dataset-group", "one", "--steps", "2000", "--save-freq", "50", "--foreground"],
                            env={**env, **SLOW}, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        file = record_file(env, "act_cpu_one")
        wait_for(lambda: file.exists() and (read_record(env, "act_cpu_one").get("trainer") or {}).get("pid"), 30,
                 what="a trainer")
        assert read_record(env, "act_cpu_one")["supervisor"]["pid"] == proc.pid
        out = run_cli(env, "stop", "act_cpu_one", "--timeout", "5")
        assert out.stdout.strip() == "act_cpu_one: stopped (was running)", out.stdout + out.stderr
        assert proc.wait(timeout=20) != 0  # its supervisor got the stop: it ended, not only its trainer
        assert read_record(env, "act_cpu_one")["state"] == "stopped"
        assert read_record(env, "diffusion_cpu_one")["state"] == "stopped"
        assert read_record(env, "diffusion_cpu_one").get("started_at") is None
    finally:
        proc.kill()
        proc.wait()


# ------------------------------------------------------------------ item 9: one stop wording


def test_stop_lines_say_what_the_run_was(env):
    out = run_cli(env, "--policy", "act,diffusion", "--dataset-group", "one", "--steps", "2000", "--save-freq", "50",
                  "--tag", "w", "--sequential", **SLOW)
    assert out.returncode == 0, out.stderr
    running, queued = "act_cpu_one_w", "diffusion_cpu_one_w"
    wait_for(lambda: read_record(env, running)["state"] == "running", 30, what="the first run to start")
    out = run_cli(env, "stop", running, queued, "--timeout", "2")
    assert out.returncode == 0, out.stdout + out.stderr
    assert sorted(out.stdout.splitlines()) == [f"{running}: stopped (was running)", f"{queued}: cancelled (was queued)"]
    out = run_cli(env, "stop", running, queued)
    assert sorted(out.stdout.splitlines()) == [f"{running}: already stopped", f"{queued}: already stopped"]
    finished = launch_ok(env, "--steps", "20", "--save-freq", "5", "--tag", "done", **FAST)
    wait_state(env, finished, "finished")
    out = run_cli(env, "stop", finished)
    assert out.returncode == 0 and out.stdout.strip() == f"{finished}: already finished"
    out = run_cli(env, "stop", "act_cpu_one_x")
    assert out.returncode == 2 and "did you mean" in out.stderr and "Traceback" not in out.stderr
    out = run_cli(env, "stop", finished, "--timeout", "-1")
    assert out.returncode == 2 and "--timeout" in out.stderr and "Traceback" not in out.stderr


def test_stop_lines_are_the_same_for_slurm_runs(demo_env, slurm_cluster):  # noqa: F811
    env = {**demo_env, **slurm_cluster.extra_env, "LAUNCHER": "slurm"}
    try:
        out = run_cli(env, "--policy", "act", "--dataset-group", "one,two", "--sequential", "--steps", "2000",
                      "--save-freq", "50", "--tag", "sw", **SLOW)
        assert out.returncode == 0, out.stderr
        running, pending = "act_cpu_one_sw", "act_cpu_two_sw"
        wait_for(lambda: read_record(env, running)["state"] == "running", 60, what="the first job to run")
        assert read_record(env, pending)["state"] == "queued"  # its job waits on the first one's
        out = run_cli(env, "stop", pending, running, "--timeout", "2")
        assert out.returncode == 0, out.stdout + out.stderr
        assert sorted(out.stdout.splitlines()) == [f"{running}: stopped (was running)",
                                                   f"{pending}: cancelled (was queued)"]
        assert marked_pids(read_record(env, running)["marker"]) == []
    finally:
        run_cli(env, "stop", "--all", "--timeout", "2")


# ------------------------------------------------------------------ item 12: notifications


HOOK = """import json, os, sys, time
data = sys.stdin.read()
with open(sys.argv[1], "a") as f:
    f.write(json.dumps({"name": os.environ["MIMIC_RUN_NAME"], "state": os.environ["MIMIC_RUN_STATE"],
                        "record": json.loads(data), "pid": os.getpid()}) + "\\n")
mode = sys.argv[2] if len(sys.argv) > 2 else "ok"
print("hook output for", os.environ["MIMIC_RUN_NAME"])
if mode == "hang":
    time.sleep(600)
sys.exit(1 if mode == "fail" else 0)
"""


def with_hook(env: dict, tmp_path: Path, *mode: str, on: str = "[finished, failed, stopped, lost]",
              timeout: float = 30) -> Path:
    """A lab file whose notify command is a real script that appends what it got to calls.jsonl."""
    script, calls = tmp_path / "hook.py", tmp_path / "calls.jsonl"
    script.write_text(HOOK)
    lab = tmp_path / "lab.yaml"
    command = json.dumps([sys.executable, str(script), str(calls), *mode])
    lab.write_text("hub_org: test-org\nwandb_project: test\nmerged_namespace: test-merged\n"
                   f"notify: {{command: {command}, on: {on}, timeout: {timeout}}}\n")
    env["MIMIC_LAB_FILE"] = str(lab)
    return calls


def calls_of(calls: Path) -> list[dict]:
    return [json.loads(line) for line in calls.read_text().splitlines()] if calls.exists() else []


def notify_note(env: dict, name: str, timeout: float = 30) -> dict:
    return wait_for(lambda: read_record(env, name)["attempts"][-1].get("notify"), timeout, what="the notify note")


def test_notify_runs_once_per_end_with_the_record_on_stdin(env, tmp_path):
    calls = with_hook(env, tmp_path)
    done = launch_ok(env, "--steps", "20", "--save-freq", "5", "--tag", "ok", **FAST)
    crashed = launch_ok(env, "--steps", "20", "--save-freq", "5", "--tag", "crash", **FAST, FAKE_CRASH_AT="8")
    assert wait_state(env, done, ENDS)["state"] == "finished"
    assert wait_state(env, crashed, ENDS)["state"] == "failed"
    for name in (done, crashed):
        assert notify_note(env, name) == {**notify_note(env, name), "ok": True, "note": "exited with code 0"}
    got = {c["name"]: c for c in calls_of(calls)}
    assert len(calls_of(calls)) == 2 and set(got) == {done, crashed}
    assert got[done]["state"] == "finished" and got[crashed]["state"] == "failed"
    assert got[done]["record"]["name"] == done and got[done]["record"]["state"] == "finished"
    assert got[crashed]["record"]["state"] == "failed" and got[crashed]["record"]["exit_code"] == 1
    log = (record_file(env, done).parent / "notify.log").read_text()
    assert f"hook output for {done}" in log and "sent" in log
    for name in (done, crashed):  # nothing after an end is another end: no second call
        run_cli(env, "stop", name)
        run_cli(env, "status", name)
    time.sleep(1.0)
    assert len(calls_of(calls)) == 2
    assert marked_pids(read_record(env, done)["marker"]) == []


def test_notify_on_lost_and_only_on_the_ends_it_names(env, tmp_path):
    calls = with_hook(env, tmp_path, on="[lost]")
    name = launch_ok(env, "--steps", "2000", "--save-freq", "50", **SLOW)
    wait_for(lambda: (read_record(env, name).get("trainer") or {}).get("pid"), 30, what="a trainer")
    finished = launch_ok(env, "--steps", "20", "--save-freq", "5", "--tag", "fin", **FAST)
    os.kill(read_record(env, name)["supervisor"]["pid"], signal.SIGKILL)
    assert wait_state(env, name, ENDS)["state"] == "lost"  # judged by `status`: the hook is started from there
    assert wait_state(env, finished, ENDS)["state"] == "finished"
    assert notify_note(env, name)["ok"] is True
    time.sleep(1.0)
    assert [(c["name"], c["state"]) for c in calls_of(calls)] == [(name, "lost")]


@pytest.mark.parametrize("mode", ["fail", "hang"])
def test_a_failing_or_hanging_hook_leaves_the_state_and_is_noted(env, tmp_path, mode):
    calls = with_hook(env, tmp_path, mode, timeout=1)
    name = launch_ok(env, "--steps", "20", "--save-freq", "5", **FAST)
    assert wait_state(env, name, ENDS)["state"] == "finished"
    note = notify_note(env, name)
    assert note["ok"] is False and note["state"] == "finished"
    assert note["note"] == ("exited with code 1" if mode == "fail" else "timed out after 1 s (killed)")
    rec = read_record(env, name)
    assert rec["state"] == "finished" and rec["exit_code"] == 0
    call, = calls_of(calls)
    assert not pid_alive(call["pid"])  # a hung hook is killed at its timeout
    assert "FAILED" in (record_file(env, name).parent / "notify.log").read_text()
    assert wait_state(env, name, ENDS)["state"] == "finished"


@pytest.mark.parametrize(("notify", "problem"), [
    ('{command: "/usr/bin/curl -d done http://chat"}', "'command' must be a list of arguments, not a shell"),
    ("{command: [/no/such/hook]}", "'command': '/no/such/hook' is not an executable file"),
    ("{command: ['true'], on: [crashed]}", "'on': 'crashed' is not a run end"),
    ("{command: ['true'], timeout: -1}", "'timeout' must be a number of seconds"),
    ("{command: ['true'], when: [lost]}", "unknown key 'when'"),
])
def test_a_wrong_notify_setting_is_one_line_before_anything_is_written(env, tmp_path, notify, problem):
    lab = tmp_path / "lab.yaml"
    lab.write_text(f"hub_org: o\nwandb_project: p\nmerged_namespace: m\nnotify: {notify}\n")
    out = run_cli(env, "--policy", "act", "--dataset-group", "one", "--steps", "20", MIMIC_LAB_FILE=str(lab))
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert out.stderr.startswith(f"error: {lab}: notify: {problem}"), out.stderr
    assert not (Path(env["MIMIC_OUTPUTS"]) / "runs").exists() or not os.listdir(Path(env["MIMIC_OUTPUTS"]) / "runs")


# ------------------------------------------------------------------ the fault loop


def test_fault_loop_of_five_cycles_leaves_nothing_wrong(env, demo_home):
    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_faults.py"), "--cycles", "5",
                          "--seed", "11", "--lerobot-home", str(demo_home), "--verbose"],
                         env={**env, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=150, cwd=REPO)
    print(out.stdout)
    assert out.returncode == 0, out.stdout + out.stderr
    for count in ("orphans       0", "wrong states  0", "tracebacks    0", "failed calls  0"):
        assert count in out.stdout
