"""The private test Slurm cluster (tests/slurm_cluster.py) behaves like the real thing."""

from __future__ import annotations

import subprocess
from pathlib import Path

import psutil
import pytest

from conftest import wait_for

try:
    from slurm_cluster import SlurmCluster, require_slurm, slurm_cluster
except ImportError:  # tests/ made a package
    from tests.slurm_cluster import SlurmCluster, require_slurm, slurm_cluster  # noqa: F401


def script(tmp_path: Path, name: str, body: str, sbatch: str = "") -> Path:
    path = tmp_path / name
    path.write_text(f"#!/bin/bash\n{sbatch}set -u\n{body}\n")
    return path


def submit(cluster: SlurmCluster, tmp_path: Path, path: Path, *args: str) -> str:
    return cluster.sbatch(f"--chdir={tmp_path}", f"--output={tmp_path}/{path.stem}-%j.out",
                          *args, str(path))


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_env_and_partition(slurm_cluster):
    assert slurm_cluster.env["SLURM_CONF"] == str(slurm_cluster.conf)
    assert slurm_cluster.partition == "debug"
    r = slurm_cluster.run("sinfo", "-h", "-o", "%P %a %G")
    assert r.returncode == 0 and r.stdout.split() == ["debug*", "up", "gpu:2"], r.stdout


def test_sbatch_squeue_completes_and_writes_output(slurm_cluster, tmp_path):
    s = script(tmp_path, "hello.sh", "echo hello from $SLURM_JOB_ID; sleep 1; echo done > marker")
    job = submit(slurm_cluster, tmp_path, s)
    assert job.isdigit()
    listed = slurm_cluster.run("squeue", "-h", "-j", job, "-o", "%i %T %P").stdout.split()
    assert listed[0] == job and listed[2] == "debug", listed
    info = slurm_cluster.wait_job(job)
    assert info["JobState"] == "COMPLETED" and info["ExitCode"] == "0:0", info
    assert (tmp_path / "marker").read_text() == "done\n"
    assert (tmp_path / f"hello-{job}.out").read_text() == f"hello from {job}\n"


def test_failed_job_exit_code(slurm_cluster, tmp_path):
    job = submit(slurm_cluster, tmp_path, script(tmp_path, "fail.sh", "exit 3"))
    info = slurm_cluster.wait_job(job)
    assert info["JobState"] == "FAILED" and info["ExitCode"] == "3:0", info


def test_gres_gpu_sets_cuda_visible_devices(slurm_cluster, tmp_path):
    s = script(tmp_path, "gpu.sh", 'echo "${CUDA_VISIBLE_DEVICES-unset}" > cvd')
    job = submit(slurm_cluster, tmp_path, s, "--gres=gpu:1")
    assert slurm_cluster.wait_job(job)["JobState"] == "COMPLETED"
    assert (tmp_path / "cvd").read_text().strip() in {"0", "1"}
    # More GPUs than the node has: refused at submit time.
    r = slurm_cluster.run("sbatch", "--gres=gpu:3", str(s))
    assert r.returncode != 0 and "Requested node configuration is not available" in r.stderr


def test_dependency_afterany_chains(slurm_cluster, tmp_path):
    first = script(tmp_path, "first.sh", "date +%s.%N > a_start; sleep 2; date +%s.%N > a_end")
    second = script(tmp_path, "second.sh", "date +%s.%N > b_start")
    a = submit(slurm_cluster, tmp_path, first)
    b = submit(slurm_cluster, tmp_path, second, f"--dependency=afterany:{a}")
    info = slurm_cluster.show_job(b)
    assert info["JobState"] == "PENDING" and info["Reason"] == "Dependency", info
    assert slurm_cluster.wait_job(b)["JobState"] == "COMPLETED"
    a_end = float((tmp_path / "a_end").read_text())
    assert float((tmp_path / "b_start").read_text()) >= a_end


def test_scancel_ends_running_job(slurm_cluster, tmp_path):
    s = script(tmp_path, "long.sh", "echo $$ > pids; sleep 300 & echo $! >> pids; wait")
    job = submit(slurm_cluster, tmp_path, s)
    pids_file = tmp_path / "pids"
    pids = wait_for(lambda: pids_file.exists() and len(pids_file.read_text().split()) == 2
                    and [int(p) for p in pids_file.read_text().split()], timeout=30, what="job pids")
    assert slurm_cluster.job_state(job) == "RUNNING"
    assert not any(gone(p) for p in pids)
    assert slurm_cluster.run("scancel", job).returncode == 0
    info = slurm_cluster.wait_job(job, timeout=15)
    assert info["JobState"] == "CANCELLED", info
    wait_for(lambda: all(gone(p) for p in pids), timeout=15, what="job processes to exit")


REQUEUE_BODY = """\
echo "start restart=${SLURM_RESTART_COUNT:-0} $(date +%s.%N)" >> log
if [ "${SLURM_RESTART_COUNT:-0}" -ge 1 ]; then echo finished >> log; exit 0; fi
trap 'echo usr1 >> log; scontrol requeue $SLURM_JOB_ID; exit 0' USR1
echo ready >> log
sleep 300 &
wait
"""


def test_usr1_trap_requeues_job(slurm_cluster, tmp_path):
    s = script(tmp_path, "requeue.sh", REQUEUE_BODY,
               sbatch="#SBATCH --requeue\n#SBATCH --open-mode=append\n")
    job = submit(slurm_cluster, tmp_path, s)
    log = tmp_path / "log"
    wait_for(lambda: log.exists() and "ready" in log.read_text(), timeout=30, what="job to be ready")
    r = slurm_cluster.run("scancel", "--signal=USR1", "--batch", job)
    assert r.returncode == 0, r.stderr
    info = slurm_cluster.wait_job(job, timeout=45)
    assert info["JobState"] == "COMPLETED" and info["Restarts"] == "1", info
    lines = log.read_text().splitlines()
    assert [ln.split()[1] for ln in lines if ln.startswith("start")] == \
        ["restart=0", "restart=1"], lines
    assert "usr1" in lines and lines[-1] == "finished", lines


def test_nonexistent_partition_is_refused(slurm_cluster, tmp_path):
    s = script(tmp_path, "nop.sh", "true")
    with pytest.raises(subprocess.CalledProcessError) as err:
        slurm_cluster.sbatch("--partition=nosuchpart", str(s))
    assert "invalid partition name specified" in err.value.stderr.lower(), err.value.stderr


def test_stop_leaves_no_process(tmp_path):
    """A second cluster runs beside the session one; stop() kills daemons and jobs by pid."""
    require_slurm()
    cluster = SlurmCluster(tmp_path / "c2", gpus=1)
    with cluster:
        pids = [p.pid for p in cluster._procs.values()]
        assert cluster.ctld_port != cluster.slurmd_port
        pid_file = tmp_path / "pid"
        cluster.sbatch(f"--output={tmp_path}/x.out",
                       f"--wrap=sleep 300 & echo $$ > {pid_file}; wait")
        pid = int(wait_for(lambda: pid_file.exists() and pid_file.read_text(), timeout=30, what="job start"))
        stepd = cluster._ours()
        names = sorted(p.name() for p in stepd)
        assert pid in [p.pid for p in stepd] and "slurmstepd" in names and "sleep" in names, names
    assert all(gone(p) for p in pids + [p.pid for p in stepd])
    assert cluster._ours() == []
