"""What the benchmark drivers share: server CPU from /proc and the latency summary."""

from __future__ import annotations

import os
import statistics
from pathlib import Path


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (children excluded), from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def summary(latencies: list[float], elapsed: float, cpu: float | None) -> dict[str, float]:
    latencies = sorted(latencies)
    out: dict[str, float] = {
        "done": len(latencies),
        "per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 1) if latencies else 0.0,
        "p95_ms": round(latencies[max(0, int(len(latencies) * 0.95) - 1)] * 1000, 1)
        if latencies
        else 0.0,
    }
    if cpu is not None:
        out["server_cpu_ms_per_cert"] = round(cpu * 1000 / max(1, len(latencies)), 2)
    return out
