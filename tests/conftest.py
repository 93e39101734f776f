"""One SparkSession for the whole test session (local[2] with task retries, UI off, loopback)."""

from __future__ import annotations

import os
import sys

import pytest

HELPERS = os.path.join(os.path.dirname(__file__), "helpers")

# Set before Spark starts so that Python workers and torchrun ranks inherit them.
os.environ["PYSPARK_PYTHON"] = sys.executable
os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in [HELPERS, os.environ.get("PYTHONPATH", "")] if p
)
sys.path.insert(0, HELPERS)


@pytest.fixture(scope="session")
def spark():
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2,3]")
        .appName("spark_dl-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.default.parallelism", "2")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.memory", "2g")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
