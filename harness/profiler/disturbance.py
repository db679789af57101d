"""How much CPU other processes took while we measured (a 2-core machine is easily disturbed).

Busy CPU time of the whole machine comes from /proc/stat (user+nice+system+irq+softirq+steal),
our own from /proc/<pid>/stat (utime+stime) of the coordinator and every worker. Their
difference over a measurement is the CPU the rest of the machine used; divided by the
wall time it is the number of cores others occupied on average. A measurement above
`DISTURBED_CORES` is flagged (and the profiler / fidelity run repeats it once).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

DISTURBED_CORES = 0.10     # others using > 10% of one core on average: flag the measurement
_HZ = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _machine_busy_s() -> float:
    try:
        with open("/proc/stat") as f:
            parts = f.readline().split()[1:]
    except OSError:
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in parts[:8])
    return (user + nice + system + irq + softirq + steal) / _HZ


def _proc_cpu_s(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(rest[11]) + int(rest[12])) / _HZ     # utime, stime (fields 14, 15)


@dataclass(frozen=True, slots=True)
class Disturbance:
    wall_s: float
    own_cpu_s: float
    other_cpu_s: float        # CPU time of every other process during the measurement

    @property
    def other_cores(self) -> float:
        return self.other_cpu_s / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def disturbed(self) -> bool:
        return self.other_cores > DISTURBED_CORES


class CpuMeter:
    """`with CpuMeter(pids) as m: ...; m.result` -> Disturbance."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = sorted({os.getpid(), *pids})
        self.result: Disturbance | None = None

    def _snap(self) -> tuple[float, float, float]:
        return time.perf_counter(), _machine_busy_s(), sum(_proc_cpu_s(p) for p in self.pids)

    def __enter__(self) -> CpuMeter:
        self._t0 = self._snap()
        return self

    def __exit__(self, *exc) -> None:
        t1 = self._snap()
        wall, busy, own = (b - a for a, b in zip(self._t0, t1, strict=True))
        self.result = Disturbance(wall, own, max(0.0, busy - own))
