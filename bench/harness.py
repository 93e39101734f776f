"""The one timing harness of the benchmarks, and the one result row shape.

* :func:`interleave` runs the arms of a benchmark in rounds, the order reversed every other
  round (A B, B A, ...: no order bias), a warm-up not counted, recording each arm's
  wall-clock seconds, the ratios between arms, and the CPU other processes used meanwhile
  (on a shared machine a busy neighbour changes every figure; see :class:`CpuMeter`).
* :func:`summarize` gives medians (and min, max) of per-round figures: ratios are taken
  within a round, then the median across rounds.
* :class:`Row` is what every benchmark's ``rows(result)`` returns and ``bench/run_all``
  prints: benchmark, what was measured, the measured value, the target, pass.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from typing import Any, Callable, NamedTuple

from bench.memsample import proc_children


class Row(NamedTuple):
    """One result: benchmark, what is measured, the value (text), the target, pass."""

    benchmark: str
    measured: str
    value: str
    target: str
    passed: bool | None  # None: informational, or a smoke run (cold, tiny timings)
    note: str = ""


def format_rows(rows: list[Row]) -> str:
    """The rows as one Markdown table."""
    lines = ["| benchmark | measured | value | target | status | note |",
             "| --- | --- | ---: | --- | --- | --- |"]
    for r in rows:
        status = "" if r.passed is None else ("PASS" if r.passed else "FAIL")
        lines.append(f"| {r.benchmark} | {r.measured} | {r.value} | {r.target} | {status} | "
                     f"{r.note} |")
    return "\n".join(lines)


def get_spark(app: str = "spark_dl-bench") -> tuple[Any, bool]:
    """The active SparkSession, or a new loopback ``local[2]`` one: ``(spark, created)``."""
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active, False
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    spark = (
        SparkSession.builder.master("local[2]")
        .appName(app)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.memory", "4g")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    return spark, True


def noop_write(df: Any) -> None:
    """Evaluate every column of ``df`` without keeping the result."""
    df.write.format("noop").mode("overwrite").save()


def timed(fn: Callable[[], Any]) -> float:
    """Wall-clock seconds of one call."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _machine_jiffies() -> tuple[int, int]:
    """``(total, busy)`` jiffies of all CPUs since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        vals = [int(v) for v in f.readline().split()[1:9]]
    return sum(vals), sum(vals) - vals[3] - vals[4]  # idle and iowait are not busy


def _tree_jiffies(root: int) -> int:
    """CPU jiffies used by ``root`` and its live descendants, reaped children included."""
    kids, total, stack = proc_children(), 0, [root]
    while stack:
        pid = stack.pop()
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
            fields = stat[stat.rindex(b")") + 2:].split()
            total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
        except (OSError, ValueError):
            pass
        stack.extend(kids.get(pid, ()))
    return total


class CpuMeter:
    """CPU the rest of the machine used while we ran, in cores (0 = we had it alone)."""

    def __init__(self) -> None:
        self.start = (_machine_jiffies(), _tree_jiffies(os.getpid()))

    def foreign_cores(self) -> float:
        (total0, busy0), ours0 = self.start
        total1, busy1 = _machine_jiffies()
        ours = _tree_jiffies(os.getpid()) - ours0
        span = max(total1 - total0, 1)
        return max(0.0, (busy1 - busy0 - ours) / span * (os.cpu_count() or 1))


def measure(fn: Callable[[], Any]) -> tuple[float, float]:
    """``(wall seconds, foreign CPU cores)`` of one call."""
    meter = CpuMeter()
    secs = timed(fn)
    return secs, meter.foreign_cores()


def wait_for_quiet(max_wait: float, limit: float = 0.3) -> float:
    """Wait (up to ``max_wait`` s) until other processes use under ``limit`` cores over 1 s;
    returns the seconds waited. Bounds, not removes, the noise of a shared machine."""
    start = time.perf_counter()
    while time.perf_counter() - start < max_wait:
        meter = CpuMeter()
        time.sleep(1.0)
        if meter.foreign_cores() < limit:
            break
    return time.perf_counter() - start


def interleave(runs: dict[str, Callable[[], Any]], rounds: int, warmup: int, label: str,
               ratios: dict[str, tuple[str, str]], quiet_wait: float = 0.0
               ) -> tuple[list[dict[str, float]], list[dict[str, float]]]:
    """Run ``runs`` in order, ``warmup + rounds`` times. Per counted round: seconds of each
    job and the ratios; and, separately, the foreign CPU load (cores) during each job."""
    out, loads = [], []
    for i in range(warmup + rounds):
        waited = wait_for_quiet(quiet_wait) if quiet_wait else 0.0
        secs, load = {}, {}
        order = list(runs) if i % 2 == 0 else list(reversed(runs))  # ABBA: no order bias
        for name in order:
            secs[name], load[name] = measure(runs[name])
        secs = {name: secs[name] for name in runs}
        rec = {**secs, **{r: secs[b] / secs[a] for r, (b, a) in ratios.items()}}
        tag = "warm-up" if i < warmup else f"round {i - warmup + 1}"
        tag += " (reversed order)" if i % 2 else ""
        print(f"  {label} {tag}: " + ", ".join(f"{k} {v:.2f}s" for k, v in secs.items())
              + "; " + ", ".join(f"{r} {rec[r]:.3f}" for r in ratios)
              + f"; foreign load {max(load.values()):.2f} cores (waited {waited:.0f}s)",
              flush=True)
        if i >= warmup:
            out.append(rec)
            loads.append(load)
    return out, loads


def summarize(per_round: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Median, min and max of every figure across rounds."""
    keys = per_round[0].keys()
    return {k: {"median": statistics.median(r[k] for r in per_round),
                "min": min(r[k] for r in per_round), "max": max(r[k] for r in per_round)}
            for k in keys}
