"""Python-worker memory of a Spark job: a sampler of every ``pyspark.daemon`` process's peak
RSS (``VmHWM`` in ``/proc/<pid>/status``), and running a measurement in a child process
that prints its result as one tagged JSON line."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from typing import Any

#: The repository root: children run ``python -m bench.<name>`` from here.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

MEM_TAG = "SKEW_MEM_RESULT "


def proc_children() -> dict[int, list[int]]:
    """Parent pid -> child pids, from /proc/*/stat."""
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def _status_kib(pid: int) -> dict[str, int]:
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("VmHWM:", "VmRSS:")):
                    out[line.split(":")[0]] = int(line.split()[1])
    except OSError:
        pass
    return out


class WorkerMemory(threading.Thread):
    """Polls every ``interval`` s the peak RSS (VmHWM) of each ``pyspark.daemon`` process
    descending from ``root`` (this driver): the daemon and its forked workers."""

    def __init__(self, root: int, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.root, self.interval = root, interval
        self.peak: dict[int, int] = {}  # pid -> largest VmHWM seen, KiB
        self.parent: dict[int, int] = {}
        self.pyspark: set[int] = set()  # pids whose command line is pyspark.daemon/worker
        self.polls = 0
        self._stop_event = threading.Event()

    def poll(self) -> None:
        kids = proc_children()
        stack, seen = [self.root], set()
        while stack:
            pid = stack.pop()
            for c in kids.get(pid, ()):
                if c in seen:
                    continue
                seen.add(c)
                stack.append(c)
                self.parent[c] = pid
                if c not in self.pyspark:  # re-read until it matches: fork comes before exec
                    try:
                        with open(f"/proc/{c}/cmdline", "rb") as f:
                            cmd = f.read()
                    except OSError:
                        continue
                    if b"pyspark.daemon" in cmd or b"pyspark.worker" in cmd:
                        self.pyspark.add(c)
                    else:
                        continue
                hwm = _status_kib(c).get("VmHWM")
                if hwm:
                    self.peak[c] = max(self.peak.get(c, 0), hwm)
        self.polls += 1

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.poll()
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()
        self.poll()

    def workers(self) -> dict[int, int]:
        """Peak KiB of forked workers (processes whose parent is itself a daemon)."""
        return {p: v for p, v in self.peak.items() if self.parent.get(p) in self.pyspark}

    def daemons(self) -> dict[int, int]:
        return {p: v for p, v in self.peak.items() if self.parent.get(p) not in self.pyspark}


def worker_baseline(spark: Any, sampler: WorkerMemory) -> int:
    """Start the Python workers with pandas and pyarrow imported (an identity
    ``mapInPandas`` over 2 partitions) and return their largest peak, KiB: the baseline of
    any worker. ``sampler`` must be running."""
    spark.range(0, 1000, 1, 2).mapInPandas(lambda it: it, "id long").count()
    time.sleep(0.3)
    sampler.poll()
    return max(sampler.workers().values(), default=0)


def run_tagged(cmd: list[str], what: str, timeout: float = 900.0) -> dict[str, Any]:
    """Run ``cmd``, a child that prints its result as ``MEM_TAG`` + JSON, and return that
    result with the child's wall seconds added as ``process_seconds``."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(MEM_TAG)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"memory child {what} failed (rc {proc.returncode}):\n"
                           f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    res = json.loads(lines[-1][len(MEM_TAG):])
    res["process_seconds"] = time.perf_counter() - start
    return res
