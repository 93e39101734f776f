"""The task-slot check before barrier training counts spark.task.cpus once.

It needs its own Spark application (``spark.task.cpus`` is fixed when Spark starts), so it
runs in a subprocess: ``local[4]`` with ``spark.task.cpus=2`` has 2 slots.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

from spark_dl.training.distributor import task_slots, wait_for_slots

SCRIPT = textwrap.dedent("""
    from pyspark.sql import SparkSession
    from spark_dl import TorchClassifier
    from spark_dl.training.distributor import task_slots

    spark = (SparkSession.builder.master("local[4]").config("spark.task.cpus", "2")
             .config("spark.ui.enabled", "false")
             .config("spark.dl.train.slotWaitSeconds", "1").getOrCreate())
    print("slots", task_slots(spark))
    TorchClassifier(numProcesses=2, localMode=False)._check_processes(spark, "TorchClassifier")
    print("numProcesses=2 accepted")
    try:
        TorchClassifier(numProcesses=3, localMode=False)._check_processes(spark, "X")
    except ValueError as exc:
        print("numProcesses=3 refused:", exc)
    spark.stop()
""")


def test_two_processes_fit_local4_with_two_cpus_per_task():
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                         timeout=300, env={**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"})
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    assert "slots 2" in lines and "numProcesses=2 accepted" in lines
    refused = next(line for line in lines if line.startswith("numProcesses=3 refused"))
    assert "exceeds the 2 task slot(s)" in refused


def test_slot_wait_returns_at_once_when_enough_and_gives_up_after_the_timeout(spark):
    slots = task_slots(spark)
    start = time.monotonic()
    assert wait_for_slots(spark, slots, 60) == slots
    assert time.monotonic() - start < 5
    start = time.monotonic()
    assert wait_for_slots(spark, slots + 1, 1.0, poll_s=0.2) == slots
    assert 1.0 <= time.monotonic() - start < 10
