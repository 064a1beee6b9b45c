"""GPU busy rules and the --wait loop, fed with GPU readings (NVML itself needs a GPU)."""
from __future__ import annotations

import pytest

from mimic_deployment.host.gpus import GpuInfo, is_busy, wait_until_free
from mimic_deployment.planning.plan import RunPlan
from mimic_deployment.runs.launch import LaunchOptions, assign_gpus
from mimic_deployment.util.errors import UserError

FREE = GpuInfo(0, "RTX 3090 Ti", 24.0, 0.3, ())


def busy(index: int, used: float = 11.0, pids=(4242,)) -> GpuInfo:
    return GpuInfo(index, "RTX 3090 Ti", 24.0, used, tuple(pids))


def test_busy_means_a_compute_process_or_memory_in_use():
    assert not is_busy(FREE)
    assert is_busy(busy(0, used=0.1, pids=(7,)))  # a process, little memory
    assert is_busy(busy(0, used=3.0, pids=()))    # memory held by something NVML cannot name


def test_wait_until_free_polls_until_the_wanted_gpus_are_free():
    readings = iter([[busy(0), GpuInfo(1, "x", 24, 0)],
                     [busy(0), GpuInfo(1, "x", 24, 0)],
                     [GpuInfo(0, "x", 24, 0.2), busy(1)]])  # GPU 1 busy does not matter
    reported, slept = [], []
    assert wait_until_free({0}, read=lambda: next(readings), report=reported.append, sleep=slept.append,
                           poll_seconds=5) is True
    assert [[g.index for g in b] for b in reported] == [[0], [0]] and slept == [5, 5]


def test_wait_until_free_gives_up_when_stopped():
    calls = []
    stop_after = iter([False, False, True])
    assert wait_until_free({0}, read=lambda: calls.append(1) or [busy(0)], should_stop=lambda: next(stop_after),
                           sleep=lambda s: None) is False
    assert len(calls) == 2


def _plan(num_gpus: int) -> RunPlan:
    fields = dict.fromkeys(RunPlan.__dataclass_fields__)
    fields.update(name="r", device="cuda", num_gpus=num_gpus)
    return RunPlan(**fields)


def test_a_busy_gpu_is_refused_with_who_uses_it_unless_waiting():
    with pytest.raises(UserError, match=r"GPU 0 11.0 GB used by PID\(s\) \[4242\]"):
        assign_gpus([_plan(1)], LaunchOptions(), [busy(0)])
    assert assign_gpus([_plan(1)], LaunchOptions(wait=True), [busy(0)]) == ["0"]


def test_free_gpus_are_picked_and_parallel_runs_get_their_own():
    gpus = [busy(0), GpuInfo(1, "x", 24, 0), GpuInfo(2, "x", 24, 0), GpuInfo(3, "x", 24, 0)]
    assert assign_gpus([_plan(1), _plan(2)], LaunchOptions(), gpus) == ["1", "2,3"]
    assert assign_gpus([_plan(1), _plan(1)], LaunchOptions(sequential=True), gpus) == ["1", "1"]
