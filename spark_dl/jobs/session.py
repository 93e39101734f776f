"""The SparkSession of a job or of the ``spark-dl`` command."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from spark_dl.compat import set_log_level


def get_spark(cfg: dict[str, Any], verbose: bool = False) -> Any:
    """The job's SparkSession: the one spark-submit configured, or a new one from ``spark``."""
    return spark_session(cfg["spark"]["app_name"] or f"spark_dl-{cfg['pipeline']}",
                         cfg["spark"]["master"], cfg["spark"]["conf"], verbose)


def spark_session(app: str, master: str, settings: dict[str, Any], verbose: bool) -> Any:
    """A SparkSession for a job or the ``spark-dl`` command.

    Under spark-submit its own master and settings win; otherwise ``master`` is used
    (loopback for ``local[...]``). Executors run this interpreter. Spark's logs stay at
    ERROR and its progress bars off unless ``verbose``.
    """
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app)
    if "PYSPARK_GATEWAY_PORT" not in os.environ:  # not launched by spark-submit
        builder = builder.master(master)
        if master.startswith("local"):
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
            builder = builder.config("spark.driver.host", "127.0.0.1").config(
                "spark.driver.bindAddress", "127.0.0.1")
    for key, value in settings.items():
        builder = builder.config(key, str(value).lower() if isinstance(value, bool) else str(value))
    if not verbose:
        builder = builder.config("spark.ui.showConsoleProgress", "false")
    spark = builder.getOrCreate()
    set_log_level(spark, "INFO" if verbose else "ERROR")
    # TorchDistributor logs "Started/Finished ... training" at INFO on every fit, and
    # resets its logger's level each time: a filter is what stays.
    quiet = logging.getLogger("TorchDistributor")
    for f in [f for f in quiet.filters if isinstance(f, _BelowWarning)]:
        quiet.removeFilter(f)
    if not verbose:
        quiet.addFilter(_BelowWarning())
    return spark


class _BelowWarning(logging.Filter):
    """Drops records below WARNING."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING
