"""CPU and memory of processes and of the whole machine, read from /proc (Linux only).

CPU is reported as a percentage of one core over a sampled interval (200 % is two busy cores);
machine busy % is the share of all cores not idle or waiting for I/O. Above about 95 % busy the
machine, not the server, is being measured: the table prints this beside every row.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds used by ``pid`` so far (None if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            raw = fh.read()
    except OSError:
        return None
    fields = raw[raw.rindex(b")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime


def rss_bytes(pid: int) -> int | None:
    """Resident set size of ``pid`` in bytes (None if it is gone)."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return None


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies over all cores since boot."""
    with open("/proc/stat", "rb") as fh:
        fields = [int(x) for x in fh.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already inside user
    return total - idle, total


@dataclass
class Sample:
    """A snapshot: wall time, machine ticks and CPU seconds of each watched process."""

    wall: float
    machine: tuple[int, int]
    cpu: dict[int, float | None]


def sample(pids: list[int]) -> Sample:
    return Sample(time.monotonic(), machine_ticks(), {pid: cpu_seconds(pid) for pid in pids})


def cpu_percent(before: Sample, after: Sample, pid: int) -> float | None:
    """CPU of ``pid`` between two samples, in % of one core."""
    a, b = before.cpu.get(pid), after.cpu.get(pid)
    wall = after.wall - before.wall
    if a is None or b is None or wall <= 0:
        return None
    return 100.0 * (b - a) / wall


def cpu_used(before: Sample, after: Sample, pids: list[int]) -> float:
    """CPU seconds used by ``pids`` between two samples."""
    total = 0.0
    for pid in pids:
        a, b = before.cpu.get(pid), after.cpu.get(pid)
        if a is not None and b is not None:
            total += b - a
    return total


def machine_busy(before: Sample, after: Sample) -> float | None:
    """Busy % of the whole machine (all cores) between two samples."""
    busy = after.machine[0] - before.machine[0]
    total = after.machine[1] - before.machine[1]
    return 100.0 * busy / total if total > 0 else None


def machine_info() -> dict:
    """nproc, memory and CPU model, for the results file."""
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_kib = 0
    try:
        with open("/proc/meminfo") as fh:
            mem_kib = int(fh.readline().split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return {"nproc": os.cpu_count(), "memory_gib": round(mem_kib / 1048576, 1), "cpu_model": model}
