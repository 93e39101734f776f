"""The SparkSession of a job or of the ``spark-dl`` command."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from spark_dl.compat import set_log_level

logger = logging.getLogger(__name__)


def get_spark(cfg: dict[str, Any], verbose: bool = False) -> Any:
    """The job's SparkSession: the one spark-submit configured, or a new one from ``spark``."""
    return spark_session(cfg["spark"]["app_name"] or f"spark_dl-{cfg['pipeline']}",
                         cfg["spark"]["master"], cfg["spark"]["conf"], verbose,
                         remote=cfg["spark"].get("remote"))


def spark_session(app: str, master: str, settings: dict[str, Any], verbose: bool,
                  remote: str | None = None) -> Any:
    """A SparkSession for a job or the ``spark-dl`` command.

    ``remote`` (``sc://host:port``): a Spark Connect client session; ``settings`` are then
    set at runtime, and those a client cannot set (static confs) are logged and skipped.
    Otherwise, under spark-submit its own master and settings win, and else ``master`` is
    used (loopback for ``local[...]``). Executors run this interpreter. Spark's logs stay
    at ERROR and its progress bars off unless ``verbose``.
    """
    from pyspark.sql import SparkSession

    if remote:
        spark = SparkSession.builder.remote(remote).appName(app).getOrCreate()
        for key, value in settings.items():
            try:
                spark.conf.set(key, _text(value))
            except Exception as exc:  # noqa: BLE001 - static confs belong to the server
                logger.warning("spark.conf %s is not set from a Spark Connect client: %s",
                               key, str(exc).splitlines()[0])
        _quiet_torch_distributor(verbose)
        return spark
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
        builder = builder.config(key, _text(value))
    if not verbose:
        builder = builder.config("spark.ui.showConsoleProgress", "false")
    spark = builder.getOrCreate()
    set_log_level(spark, "INFO" if verbose else "ERROR")
    _quiet_torch_distributor(verbose)
    return spark


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _quiet_torch_distributor(verbose: bool) -> None:
    # TorchDistributor logs "Started/Finished ... training" at INFO on every fit, and
    # resets its logger's level each time: a filter is what stays.
    quiet = logging.getLogger("TorchDistributor")
    for f in [f for f in quiet.filters if isinstance(f, _BelowWarning)]:
        quiet.removeFilter(f)
    if not verbose:
        quiet.addFilter(_BelowWarning())


class _BelowWarning(logging.Filter):
    """Drops records below WARNING."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING
