"""The supervisor: owns one run from its prepare step to its recorded end.

Started detached (own session: survives logout and terminal close) by the local launcher, or
attached with --foreground (make demo, Slurm batch jobs). It runs the plan's command with
stdout and stderr going straight to the run's log (append-only), records PIDs with their
start times, the exit code and the end, and resumes from the last checkpoint after a crash
when the run allows restarts (each restart an attempt of its own). A trainer that exits non-zero
after it trained to the end (a failed Hub push) leaves the run finished, with the note saying
so. Usage: python -m mimic_deployment._entry supervise RUN_NAME
"""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from mimic_deployment.host import paths, procs
from mimic_deployment.logs import markers
from mimic_deployment.logs.progress import Progress, read_progress, trained_to_the_end
from mimic_deployment.planning.plan import RunPlan, resume_argv
from mimic_deployment.runs import registry
from mimic_deployment.runs.record import RunRecord, State
from mimic_deployment.util.errors import UserError
from mimic_deployment.util.secrets import redact_argv
from mimic_deployment.util.shell import one_line

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the trainer (preexec): if the supervisor is killed, the kernel sends SIGTERM to it."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


class Supervisor:
    def __init__(self, name: str, echo: bool = False):
        self.name = name
        record = registry.require(name)
        self.plan = RunPlan.from_dict(record.plan)
        self.marker = record.marker
        Path(self.plan.log_file).parent.mkdir(parents=True, exist_ok=True)
        # open for the supervisor's whole life: the trainer's stdout/stderr are handed this handle
        self.log = open(self.plan.log_file, "ab", buffering=0)  # noqa: SIM115
        self.stop_signal: int | None = None
        self.trainer: subprocess.Popen | None = None
        self.echo = echo
        self.said_corrupt = False

    # -- record and log -------------------------------------------------------------------
    def say(self, message: str) -> None:
        self.log.write(f"[mimic] {time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n".encode())

    def _echo_log(self) -> None:
        """Foreground on a terminal: show the log as it grows (the log stays the record)."""
        with open(self.plan.log_file, "rb") as log:
            log.seek(0, os.SEEK_END)
            while True:
                chunk = log.read(65536)
                if chunk:
                    sys.stdout.buffer.write(chunk)
                    sys.stdout.buffer.flush()
                else:
                    time.sleep(0.2)

    def update(self, change: Callable[[RunRecord], object]) -> RunRecord | None:
        try:
            return registry.update(self.name, change)
        except OSError as exc:  # a full disk must not kill the training; the log says what happened
            self.say(f"could not write the run record: {exc}")
        except UserError as exc:  # a record corrupted under us: keep it as it is for inspection
            self._corrupt(exc)
        return None

    def read(self) -> RunRecord | None:
        try:
            return registry.read(self.name)
        except UserError as exc:
            self._corrupt(exc)
            return None

    def _corrupt(self, exc: UserError) -> None:
        if not self.said_corrupt:  # once: the supervisor reads the record every few seconds
            self.said_corrupt = True
            self.say(f"cannot read the run record ({exc}); training goes on, the record is left as it is")

    # -- signals ---------------------------------------------------------------------------
    def _on_signal(self, signum, _frame) -> None:
        self.stop_signal = signum
        if self.trainer and self.trainer.poll() is None:
            try:
                self.trainer.send_signal(signal.SIGTERM)  # its workers follow it down
            except ProcessLookupError:
                pass

    # -- the run ----------------------------------------------------------------------------
    def run(self, resume_steps: int | None = None) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_signal)
        os.environ.update(procs.child_env(self.marker))  # this process too: `stop` finds it by the marker
        if self.echo:
            threading.Thread(target=self._echo_log, daemon=True).start()
        started = {}

        def start(r: RunRecord) -> None:
            started["now"] = registry.advance(r, State.RUNNING, started_at=registry.now(),
                                              supervisor=procs.identity(os.getpid()))
        record = self.update(start)
        if record is None or not started["now"]:
            self.say(f"not starting: the run is {record and record.state.value}")
            return 1
        kind = record.current.kind
        self.log.write(markers.attempt_start_line(len(record.attempts)).encode())  # what log readers match
        self.say(f"=== {self.name}: attempt {len(record.attempts)} ({kind}) starting, "
                 f"supervisor pid {os.getpid()} ===")
        if kind != "resume":
            code = self.prepare()
            if code is not None:
                return code
        if not self.wait_for_gpus(record) or self._stopping():
            return self.finish(None)  # stopped before the trainer started: it never starts
        return self.train_loop(record.current.argv, record.max_restarts)

    def prepare(self) -> int | None:
        """The dataset step: make the plan's dataset folder exist (download, check, merge, link).
        None: go on to train; else the run has ended (failed or stopped) and this is its exit code."""
        if self._stopping():  # a stop that came before the step: end once, start nothing
            return self.finish(None)
        cmd = procs.entry_argv(sys.executable, "prepare", self.name)
        self.say("preparing the dataset: " + ", ".join(self.plan.datasets))
        code = self._run_child(cmd)
        if code != 0 or self._stopping():
            return self.finish(code, reason=None if self._stopping() else "dataset preparation failed (see the log)")
        return None

    def wait_for_gpus(self, record: RunRecord) -> bool:
        """--wait: hold the start until the run's GPUs are free; False when stopped meanwhile."""
        devices = record.cuda_visible_devices
        if not record.wait_for_gpus or not devices:
            return True
        from mimic_deployment.host.gpus import wait_until_free

        last_said = [0.0]

        def report(busy) -> None:
            if time.time() - last_said[0] >= 60:
                last_said[0] = time.time()
                self.say("waiting for GPU(s) " + ", ".join(
                    f"{g.index} ({g.used_gb:.1f} GB used by PID(s) {list(g.processes) or '?'})" for g in busy))

        return wait_until_free({int(i) for i in devices.split(",")}, should_stop=self._stopping, report=report)

    def _stopping(self) -> bool:
        record = self.read()
        return bool(self.stop_signal or (record and record.stop_requested))

    def _run_child(self, argv: list[str]) -> int:
        if self._stopping():  # a stop that came between two children (a restart): start nothing
            self.stop_signal = self.stop_signal or signal.SIGTERM
            return -signal.SIGTERM
        env = {**procs.child_env(self.marker), **self.plan.env, **self._gpu_env()}
        self.trainer = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
                                        env=env, cwd=self.plan.record_dir, preexec_fn=_die_with_parent)
        if self.stop_signal:  # it came while the child was starting: the handler saw no child yet
            self.trainer.send_signal(signal.SIGTERM)
        trainer = procs.identity(self.trainer.pid)
        self.update(lambda r: r.set(trainer=trainer))
        while True:
            try:
                return self.trainer.wait()
            except InterruptedError:
                continue

    def _gpu_env(self) -> dict:
        record = self.read()
        devices = record.cuda_visible_devices if record else None
        return {"CUDA_VISIBLE_DEVICES": devices} if devices is not None else {}

    def train_loop(self, argv: list[str], max_restarts: int) -> int:
        restarts = 0
        while True:
            self.say("running: " + one_line(redact_argv(argv)))  # a token after `--` never reaches the log
            code = self._run_child(argv)
            self.say(f"trainer exited with code {code}")
            if code == 0 or self._stopping() or self._trained():
                return self.finish(code)
            if restarts < max_restarts and paths.last_checkpoint_config(self.plan.output_dir).exists():
                argv = resume_argv(self.plan, self.plan.steps)  # the run's target, never the checkpoint's
                if not self._open_restart(code, argv):
                    return self.finish(code)  # a stop came meanwhile: nothing starts
                restarts += 1
                self.log.write(markers.restart_start_line(restarts).encode())
                self.say(f"restart {restarts} of {max_restarts} starting: resuming from the last checkpoint")
                continue
            return self.finish(code)

    def _progress(self) -> Progress:
        return read_progress(self.plan.log_file, self.plan.output_dir, self.plan.steps)

    def _trained(self) -> bool:
        return trained_to_the_end(self._progress(), self.plan.output_dir, self.plan.steps)

    def _open_restart(self, code: int, argv: list[str]) -> bool:
        """The crashed attempt ends failed with its note, a `restart` attempt opens, in one write
        under the run's lock; False (nothing changed) when a stop was asked for first."""
        reason = self._progress().failure or f"exit code {code}"
        opened = []

        def change(r: RunRecord) -> None:
            if r.stop_requested or r.state is not State.RUNNING:
                return
            r.open_restart(argv, ended_at=registry.now(), exit_code=code, reason=reason)
            opened.append(True)

        self.update(change)
        return bool(opened) and not self._stopping()

    def finish(self, code: int | None, reason: str | None = None) -> int:
        progress = self._progress()
        stopped = self._stopping()
        state = State.STOPPED if stopped else State.FINISHED if code == 0 else State.FAILED
        if stopped and not reason:
            reason = "stopped by " + (signal.Signals(self.stop_signal).name if self.stop_signal else "request")
        if state is State.FAILED and code is not None and not reason and \
                trained_to_the_end(progress, self.plan.output_dir, self.plan.steps):
            state, reason = State.FINISHED, self._after_training(code, progress.failure)
        if state is State.FAILED and not reason:
            reason = progress.failure or f"exit code {code}"
        self.update(lambda r: registry.advance(r, state, ended_at=registry.now(), exit_code=code, reason=reason,
                                               progress=progress.to_dict(), wandb_url=progress.wandb_url))
        self.say(f"=== {self.name}: {state.value}" + (f" ({reason})" if reason else "") + " ===")
        self._reap_leftovers()
        time.sleep(0.3 if self.echo else 0)  # let the echo thread print the last lines
        return 0 if state is State.FINISHED else (code or 1)

    def _after_training(self, code: int, failure: str | None) -> str:
        """The note of a run that trained to the end and then exited non-zero (a failed Hub push)."""
        what = failure.split(": ", 1)[1] if failure and failure.startswith("crashed: ") else failure
        if not self.plan.push_to_hub:
            return f"trained to the end, then the trainer exited with code {code}" + (f": {what}" if what else "")
        what = what or f"exit code {code}"
        model = paths.checkpoints_dir(self.plan.output_dir) / "last"
        retry = one_line(["hf", "upload", self.plan.repo_id, str(model.resolve() / "pretrained_model")])
        return f"trained, push failed: {what} (retry the push: {retry})"

    def _reap_leftovers(self) -> None:
        """The run has ended: whatever still carries its marker (a dataloader worker, a stray child)
        is ended too. Not in a Slurm job: there the job shell carries the marker, and the job side
        sweeps what is left itself (launchers/slurm/job.py)."""
        if self.plan.launcher != "slurm":
            procs.reap_marked(self.marker)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    return Supervisor(argv[0]).run()


if __name__ == "__main__":
    sys.exit(main())
