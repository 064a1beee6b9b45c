"""GPU facts through NVML (nvidia-ml-py). No NVML, no driver or no GPU -> an empty list."""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

# Without one of these there is no NVIDIA driver, and importing NVML is wasted time.
_DRIVER_FILES = ("/proc/driver/nvidia/version", "/dev/nvidiactl", "/dev/dxg")


def driver_present() -> bool:
    return any(os.path.exists(f) for f in _DRIVER_FILES)


@dataclass(frozen=True)
class GpuInfo:
    index: int
    name: str
    memory_gb: float          # total, GiB
    used_gb: float = 0.0
    processes: tuple[int, ...] = ()  # PIDs of compute processes on it

    def to_dict(self) -> dict:
        return {"index": self.index, "name": self.name, "memory_gb": round(self.memory_gb, 2),
                "used_gb": round(self.used_gb, 2), "processes": list(self.processes)}


BUSY_GPU_GB = 1.0  # more memory than this in use, or any compute process: the GPU is busy


def is_busy(gpu: GpuInfo) -> bool:
    return bool(gpu.processes) or gpu.used_gb > BUSY_GPU_GB


def wait_until_free(indices: set[int], *, read: Callable[[], list[GpuInfo]] | None = None,
                    should_stop: Callable[[], bool] = lambda: False,
                    report: Callable[[list[GpuInfo]], object] = lambda busy: None,
                    poll_seconds: float = 5.0, sleep: Callable[[float], object] | None = None) -> bool:
    """Block until none of `indices` is busy (True), or `should_stop()` (False). `report` gets
    the busy GPUs on each poll that finds some; `read` defaults to NVML."""
    import time

    read, sleep = read or read_gpus, sleep or time.sleep
    while not should_stop():
        busy = [g for g in read() if g.index in indices and is_busy(g)]
        if not busy:
            return True
        report(busy)
        sleep(poll_seconds)
    return False


def read_gpus() -> list[GpuInfo]:
    if not driver_present():
        return []
    try:
        import pynvml
    except ImportError:
        return []
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return []
    try:
        return [_read_one(pynvml, i) for i in range(pynvml.nvmlDeviceGetCount())]
    finally:
        pynvml.nvmlShutdown()


def _read_one(pynvml, index: int) -> GpuInfo:
    handle = pynvml.nvmlDeviceGetHandleByIndex(index)
    name = pynvml.nvmlDeviceGetName(handle)
    name = name.decode() if isinstance(name, bytes) else name
    memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
    try:
        procs = tuple(p.pid for p in pynvml.nvmlDeviceGetComputeRunningProcesses(handle))
    except pynvml.NVMLError:
        procs = ()
    gib = 1024 ** 3
    return GpuInfo(index, name, memory.total / gib, memory.used / gib, procs)


def process_memory_gb() -> dict[int, float]:
    """GPU memory used per PID, over all GPUs (empty without NVML)."""
    if not driver_present():
        return {}
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:
        return {}
    used: dict[int, float] = {}
    try:
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            for proc in pynvml.nvmlDeviceGetComputeRunningProcesses(handle):
                used[proc.pid] = used.get(proc.pid, 0.0) + (proc.usedGpuMemory or 0) / 1024 ** 3
    except pynvml.NVMLError:
        pass
    finally:
        pynvml.nvmlShutdown()
    return used
