"""A private, real, single-node Slurm cluster for tests (Slurm 22.05 from Debian's slurm-wlm).

Everything lives under one temp dir: munge key/socket/pid/log/seed, slurm.conf + gres.conf,
state/spool/pid/log files, fake GPU device nodes. Ports are picked free at start, so several
clusters (parallel test sessions) can run on one machine. Daemons run in the foreground as our
children (munged -F, slurmctld -D, slurmd -D) and are stopped by pid, never by name.

    with SlurmCluster(tmp_dir, gpus=2) as cluster:
        subprocess.run(["sbatch", "--parsable", script], env=cluster.env)

Pytest: ``from tests.slurm_cluster import slurm_cluster`` in a conftest (or test module) gives
the session-scoped fixture ``slurm_cluster``. It skips only when the Slurm binaries are missing
and scripts/install_slurm.sh cannot install them (not root); with ``$CI`` set it fails instead.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
INSTALLER = REPO / "scripts" / "install_slurm.sh"
SBIN = ("/usr/sbin", "/sbin")
BINARIES = ("sbatch", "squeue", "scontrol", "scancel", "sinfo", "slurmctld", "slurmd", "munged")


class SlurmClusterError(RuntimeError):
    """The private cluster could not be started (message names the log to read)."""


def which(name: str) -> str | None:
    path = os.environ.get("PATH", "") + os.pathsep + os.pathsep.join(SBIN)
    return shutil.which(name, path=path)


def missing_binaries() -> list[str]:
    return [b for b in BINARIES if which(b) is None]


def ensure_slurm_installed() -> str | None:
    """Install Slurm if needed and possible. Returns None when usable, else the reason why not."""
    if not missing_binaries():
        return None
    out = ""
    if INSTALLER.exists():
        proc = subprocess.run(["bash", str(INSTALLER)], capture_output=True, text=True)
        out = (proc.stdout + proc.stderr).strip()
    still = missing_binaries()
    if not still:
        return None
    return f"Slurm binaries missing ({', '.join(still)}); {out or 'no installer'}"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def _free_ports(n: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < n:
        p = _free_port()
        if p not in ports:
            ports.append(p)
    return ports


def _real_memory_mb(headroom_mb: int = 1024) -> int:
    total_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            total_kb = int(line.split()[1])
    mb = total_kb // 1024
    return max(256, min(mb - headroom_mb, int(mb * 0.9)))


def _pid_from_file(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


class SlurmCluster:
    """A private single-node Slurm cluster. Use as a context manager or call start()/stop()."""

    partition = "debug"

    def __init__(self, tmp_dir: str | os.PathLike, gpus: int = 2, node_name: str = "mimicnode",
                 kill_wait: int = 5, cred_expire: int = 5, start_timeout: float = 30.0):
        self.root = Path(tmp_dir).resolve()
        self.gpus = gpus
        self.node_name = node_name
        self.kill_wait = kill_wait
        self.cred_expire = cred_expire
        self.start_timeout = start_timeout
        self.hostname = socket.gethostname().split(".")[0]
        self.cpus = os.cpu_count() or 1
        self.real_memory = _real_memory_mb()
        self.etc = self.root / "etc"
        self.conf = self.etc / "slurm.conf"
        self.gres_conf = self.etc / "gres.conf"
        self.log_dir = self.root / "log"
        self.state_dir = self.root / "state"
        self.spool_dir = self.root / "spool"
        self.run_dir = self.root / "run"
        self.dev_dir = self.root / "dev"
        self.munge_dir = self.root / "munge"
        self.munge_key = self.munge_dir / "munge.key"
        # A unix socket path must stay under 108 bytes: munge's socket, and each job step's socket
        # `<spool>/slurmd.<node>/<node>_<job id>.<step id>` (the batch step's id has 10 digits), so a
        # deep temp dir (pytest-of-root/pytest-161/<test name>/...) puts them in a short private dir.
        self._short_dir: str | None = None
        self.munge_socket = self.munge_dir / "munge.socket"
        step_socket = self.spool_dir / f"slurmd.{node_name}" / f"{node_name}_{'9' * 7}.{'9' * 10}"
        if len(str(self.munge_socket)) > 100 or len(str(step_socket)) > 100:
            self._short_dir = tempfile.mkdtemp(prefix="slurm-")
            if len(str(self.munge_socket)) > 100:
                self.munge_socket = Path(self._short_dir) / "munge.socket"
            if len(str(step_socket)) > 100:
                self.spool_dir = Path(self._short_dir) / "spool"
        self.ctld_port, self.slurmd_port = _free_ports(2)
        self.cluster_name = f"mimic{os.getpid() % 100000}x{self.ctld_port}"
        self._procs: dict[str, subprocess.Popen] = {}
        self._logs: list = []
        self.env: dict[str, str] = {}
        self.extra_env: dict[str, str] = {}

    # ---- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> SlurmCluster:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> SlurmCluster:
        missing = missing_binaries()
        if missing:
            raise SlurmClusterError(f"Slurm binaries missing: {', '.join(missing)} "
                                    f"(run scripts/install_slurm.sh as root)")
        for d in (self.etc, self.log_dir, self.state_dir, self.spool_dir, self.run_dir,
                  self.dev_dir, self.munge_dir):
            d.mkdir(parents=True, exist_ok=True)
        # munged refuses group/other-writable dirs on the way to its files.
        for d in (self.root, self.munge_dir):
            d.chmod(0o700)
        self.extra_env = {"SLURM_CONF": str(self.conf)}
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_",
                                                                        "SQUEUE_", "SCANCEL_"))}
        env["PATH"] = env.get("PATH", "/usr/bin:/bin") + ":" + ":".join(SBIN)
        env.update(self.extra_env)
        self.env = env
        try:
            self._start_munge()
            self._make_gpus()
            self._write_conf()
            self._spawn("slurmctld", [which("slurmctld"), "-D", "-f", str(self.conf)])
            self._wait_ctld()
            self._spawn("slurmd", [which("slurmd"), "-D", "-f", str(self.conf),
                                   "-N", self.node_name])
            self._wait_idle()
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, name: str, argv: list) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.out", "ab")  # noqa: SIM115  (the daemon's output while it lives; closed in stop())
        self._logs.append(log)
        proc = subprocess.Popen([str(a) for a in argv], stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, env=self.env, start_new_session=True)
        self._procs[name] = proc
        return proc

    def _start_munge(self) -> None:
        if not self.munge_key.exists():
            mungekey = which("mungekey")
            made = False
            if mungekey:
                made = subprocess.run([mungekey, "-c", "-k", str(self.munge_key)],
                                      capture_output=True).returncode == 0
            if not made:
                self.munge_key.write_bytes(os.urandom(1024))
            self.munge_key.chmod(0o400)
        self._spawn("munged", [
            which("munged"), "-F", "--force",
            f"--socket={self.munge_socket}",
            f"--key-file={self.munge_key}",
            f"--pid-file={self.munge_dir / 'munged.pid'}",
            f"--log-file={self.munge_dir / 'munged.log'}",
            f"--seed-file={self.munge_dir / 'munged.seed'}",
        ])
        self._wait(lambda: self.munge_socket.exists(), 10,
                   "munged did not create its socket", self.munge_dir / "munged.log", "munged")

    def _make_gpus(self) -> None:
        for i in range(self.gpus):
            dev = self.dev_dir / f"nvidia{i}"
            if not dev.exists():
                os.mknod(dev, 0o666 | 0o020000, os.makedev(1, 3))  # char dev like /dev/null

    def _write_conf(self) -> None:
        node = (f"NodeName={self.node_name} NodeHostname={self.hostname} NodeAddr=127.0.0.1 "
                f"CPUs={self.cpus} RealMemory={self.real_memory} State=UNKNOWN")
        if self.gpus:
            node += f" Gres=gpu:{self.gpus}"
        lines = [
            f"ClusterName={self.cluster_name}",
            f"SlurmctldHost={self.hostname}(127.0.0.1)",
            f"SlurmctldPort={self.ctld_port}",
            f"SlurmdPort={self.slurmd_port}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            # cred_expire also sets how long a requeued job waits before it may start again
            # (BeginTime = requeue + cred_expire + 1; default 120 s).
            f"AuthInfo=socket={self.munge_socket},cred_expire={self.cred_expire}",
            f"StateSaveLocation={self.state_dir}",
            f"SlurmdSpoolDir={self.spool_dir}/slurmd.%n",
            f"SlurmctldPidFile={self.run_dir}/slurmctld.pid",
            f"SlurmdPidFile={self.run_dir}/slurmd.%n.pid",
            f"SlurmctldLogFile={self.log_dir}/slurmctld.log",
            f"SlurmdLogFile={self.log_dir}/slurmd.%n.log",
            "SlurmctldDebug=info",
            "SlurmdDebug=info",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core",
            "SchedulerType=sched/backfill",
            "SchedulerParameters=bf_interval=1,sched_interval=1",
            "ReturnToService=2",
            "MpiDefault=none",
            "SwitchType=switch/none",
            "JobCompType=jobcomp/none",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "MailProg=/bin/true",
            f"KillWait={self.kill_wait}",
            "MinJobAge=300",
            "InactiveLimit=0",
            "SlurmctldTimeout=30",
            "SlurmdTimeout=60",
            "MessageTimeout=10",
            "ReconfigFlags=KeepPartState",
        ]
        if self.gpus:
            lines.append("GresTypes=gpu")
        lines += [
            node,
            f"PartitionName={self.partition} Nodes={self.node_name} Default=YES "
            f"MaxTime=INFINITE State=UP",
        ]
        self.conf.write_text("\n".join(lines) + "\n")
        gres = ""
        if self.gpus:
            last = self.gpus - 1
            files = f"{self.dev_dir}/nvidia0" if last == 0 else f"{self.dev_dir}/nvidia[0-{last}]"
            gres = f"NodeName={self.node_name} Name=gpu File={files}\n"
        self.gres_conf.write_text(gres)

    def _wait(self, ok, timeout: float, what: str, log: Path | None, proc_name: str | None):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ok():
                return
            proc = self._procs.get(proc_name) if proc_name else None
            if proc is not None and proc.poll() is not None:
                raise SlurmClusterError(f"{what}: {proc_name} exited with {proc.returncode}"
                                        f"{self._tail(log)}")
            time.sleep(0.1)
        raise SlurmClusterError(f"{what} within {timeout:.0f} s{self._tail(log)}")

    def _tail(self, log: Path | None, n: int = 15) -> str:
        texts = []
        for p in [log] + [self.log_dir / f"{k}.out" for k in self._procs]:
            if p and p.exists():
                tail = p.read_text(errors="replace").splitlines()[-n:]
                if tail:
                    texts.append(f"\n--- {p} (tail) ---\n" + "\n".join(tail))
        return "".join(texts)

    def _wait_ctld(self) -> None:
        self._wait(lambda: self.run("scontrol", "ping").returncode == 0
                   and "UP" in self.run("scontrol", "ping").stdout,
                   self.start_timeout, "slurmctld did not answer `scontrol ping`",
                   self.log_dir / "slurmctld.log", "slurmctld")

    def node_state(self) -> str:
        r = self.run("sinfo", "-h", "-N", "-n", self.node_name, "-o", "%t")
        return r.stdout.strip()

    def _wait_idle(self) -> None:
        self._wait(lambda: self.node_state() == "idle", self.start_timeout,
                   f"node {self.node_name} did not become idle in sinfo "
                   f"(state: {self.node_state()!r})",
                   self.log_dir / f"slurmd.{self.node_name}.log", "slurmd")

    # ---- stop -------------------------------------------------------------------------------
    def _ours(self) -> list[psutil.Process]:
        """Job-side processes of this cluster, found by pid: our slurmstepds (they have our
        slurmd log / spool socket open; their environment is empty) and our job processes
        (SLURM_CONF is ours and SLURM_JOB_ID is set), plus their children. Never the daemons
        we started or their own children (slurmscriptd)."""
        daemons = {p.pid for p in self._procs.values()}
        roots = tuple(str(r) + os.sep for r in (self.root, self._short_dir) if r)  # the spool may be in the short dir
        found: dict[int, psutil.Process] = {}
        me = os.getpid()
        for p in psutil.process_iter():
            if p.pid == me or p.pid in daemons:
                continue
            try:
                if p.status() == psutil.STATUS_ZOMBIE:
                    continue
                if p.name() == "slurmstepd":
                    mine = any(f.path.startswith(roots) for f in p.open_files()) or any(
                        str(c.laddr).startswith(roots) for c in p.net_connections("unix"))
                else:
                    env = p.environ()
                    mine = env.get("SLURM_CONF") == str(self.conf) and "SLURM_JOB_ID" in env
                if not mine or any(a.pid in daemons for a in p.parents()):
                    continue
                found[p.pid] = p
                for c in p.children(recursive=True):
                    found[c.pid] = c
            except (psutil.Error, OSError):
                continue
        return list(found.values())

    def stop(self) -> None:
        """Stop slurmd, leftover job processes, slurmctld and munged, by pid; wait for them."""
        # Pids from pid files too (covers a daemon that forked away from its Popen handle).
        pidfiles = {"slurmd": self.run_dir / f"slurmd.{self.node_name}.pid",
                    "slurmctld": self.run_dir / "slurmctld.pid",
                    "munged": self.munge_dir / "munged.pid"}
        for name in ("slurmd", "jobs", "slurmctld", "munged"):
            if name == "jobs":
                procs = [p for p in self._ours()
                         if p.pid not in {q.pid for q in self._procs.values()}]
                self._kill_procs(procs, signal.SIGKILL)
                continue
            procs = []
            popen = self._procs.get(name)
            if popen is not None and popen.poll() is None:
                procs.append(psutil.Process(popen.pid))
            pid = _pid_from_file(pidfiles[name])
            if pid and (popen is None or pid != popen.pid):
                try:
                    p = psutil.Process(pid)
                    if name in p.name():
                        procs.append(p)
                except psutil.Error:
                    pass
            self._kill_procs(procs, signal.SIGTERM)
            if popen is not None:
                try:
                    popen.wait(timeout=1)
                except subprocess.TimeoutExpired:
                    pass
        # Final sweep: anything still carrying our SLURM_CONF (e.g. a slurmstepd that forked late).
        self._kill_procs(self._ours(), signal.SIGKILL)
        self._procs.clear()
        for f in self._logs:
            f.close()
        self._logs.clear()
        if self._short_dir:
            shutil.rmtree(self._short_dir, ignore_errors=True)
            self._short_dir = None

    @staticmethod
    def _kill_procs(procs: list[psutil.Process], sig: int, timeout: float = 10.0) -> None:
        """Signal by pid, wait until gone (a zombie counts as gone), SIGKILL what remains."""
        def alive(p: psutil.Process) -> bool:
            try:
                p.wait(timeout=0)  # reaps it if it is our child
                return False
            except psutil.TimeoutExpired:
                pass
            except (psutil.Error, ChildProcessError):
                return False
            try:
                return p.status() != psutil.STATUS_ZOMBIE
            except psutil.Error:
                return False

        for p in procs:
            try:
                p.send_signal(sig)
            except psutil.Error:
                pass
        for final in (False, True):
            deadline = time.monotonic() + (5.0 if final else timeout)
            procs = [p for p in procs if alive(p)]
            while procs and time.monotonic() < deadline:
                time.sleep(0.05)
                procs = [p for p in procs if alive(p)]
            if not procs or final:
                return
            for p in procs:
                try:
                    p.kill()
                except psutil.Error:
                    pass

    # ---- client helpers ---------------------------------------------------------------------
    def run(self, *args: str, check: bool = False,
            timeout: float = 30) -> subprocess.CompletedProcess:
        """Run a Slurm client command against this cluster."""
        return subprocess.run([str(a) for a in args], env=self.env, capture_output=True,
                              text=True, check=check, timeout=timeout)

    def sbatch(self, *args: str) -> str:
        """sbatch --parsable ARGS -> job id (raises CalledProcessError with Slurm's message)."""
        r = self.run("sbatch", "--parsable", *args)
        if r.returncode != 0:
            raise subprocess.CalledProcessError(r.returncode, r.args, r.stdout, r.stderr)
        return r.stdout.strip().split(";")[0]

    def show_job(self, job_id: str) -> dict[str, str]:
        """`scontrol show job -o` as a dict ({} once the job is gone after MinJobAge)."""
        r = self.run("scontrol", "show", "job", "-o", str(job_id))
        if r.returncode != 0:
            return {}
        out: dict[str, str] = {}
        for m in re.finditer(r"(\S+?)=(.*?)(?=\s+\S+?=|$)", r.stdout.strip()):
            out[m.group(1)] = m.group(2)
        return out

    def job_state(self, job_id: str) -> str:
        return self.show_job(job_id).get("JobState", "")

    def wait_job(self, job_id: str, states=("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT",
                                             "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED"),
                 timeout: float = 30.0) -> dict[str, str]:
        """Poll until the job is in one of `states`; returns its scontrol fields."""
        deadline = time.monotonic() + timeout
        job: dict[str, str] = {}
        while time.monotonic() < deadline:
            job = self.show_job(job_id)
            if job.get("JobState") in states:
                return job
            time.sleep(0.2)
        raise TimeoutError(f"job {job_id} not in {states} after {timeout} s: "
                           f"{job.get('JobState')!r} ({job.get('Reason')})")


# ---- pytest fixture ----------------------------------------------------------------------
try:
    import pytest
except ImportError:  # pragma: no cover - module also usable outside pytest
    pytest = None

_shared: dict = {"cluster": None, "users": 0}


def require_slurm() -> None:
    """In a test: skip if Slurm is missing and cannot be installed; fail instead under $CI."""
    reason = ensure_slurm_installed()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"CI must not skip the Slurm tests: {reason}", pytrace=False)
        pytest.skip(reason)


def _acquire(tmp_path_factory) -> SlurmCluster:
    """One cluster per process, even if the fixture is imported in several places."""
    if _shared["cluster"] is None:
        require_slurm()
        cluster = SlurmCluster(tmp_path_factory.mktemp("slurm"), gpus=2)
        cluster.start()
        _shared["cluster"] = cluster
    _shared["users"] += 1
    return _shared["cluster"]


def _release() -> None:
    _shared["users"] -= 1
    if _shared["users"] <= 0 and _shared["cluster"] is not None:
        cluster, _shared["cluster"] = _shared["cluster"], None
        cluster.stop()


if pytest is not None:
    @pytest.fixture(scope="session")
    def slurm_cluster(tmp_path_factory):
        """A running private Slurm cluster (2 fake GPUs, partition `debug`) for the session.

        Skips only if Slurm is missing and cannot be installed (not root); fails under $CI."""
        cluster = _acquire(tmp_path_factory)
        try:
            yield cluster
        finally:
            _release()
