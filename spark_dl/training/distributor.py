"""The one place that calls TorchDistributor (and its private DataFrame entry point).

``launch`` sends the prepared training rows to the ranks, runs them, and verifies from the
ranks' own reports that every rank finished the same number of steps before returning
rank 0's result. A failure raises :class:`~spark_dl.errors.TrainingFailedError` with the
failing rank's traceback.
"""

from __future__ import annotations

import logging
import tempfile
from typing import TYPE_CHECKING, Any

from spark_dl.errors import TrainingFailedError
from spark_dl.training.data import balance, collect_arrow, write_local_shards
from spark_dl.training.report import ReportServer
from spark_dl.training.worker import run_rank

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

logger = logging.getLogger(__name__)
MIN_PYSPARK = (3, 5)


def check_pyspark() -> None:
    """TorchDistributor's DataFrame input needs pyspark >= 3.5."""
    import pyspark

    version = tuple(int(p) for p in pyspark.__version__.split(".")[:2])
    if version < MIN_PYSPARK:
        raise RuntimeError(
            f"spark_dl needs pyspark >= {'.'.join(map(str, MIN_PYSPARK))} for TorchDistributor "
            f"training. Found {pyspark.__version__}."
        )


def task_slots(spark: SparkSession) -> int:
    """How many tasks the cluster can run at once with the default resource profile."""
    sc = spark.sparkContext
    try:
        jsc = sc._jsc.sc()
        profile = jsc.resourceProfileManager().defaultResourceProfile()
        return int(jsc.maxNumConcurrentTasks(profile))
    except Exception:  # noqa: BLE001 - private JVM API; fall back to the public estimate
        return int(sc.defaultParallelism)


def _distributor(num_processes: int, local_mode: bool, use_gpu: bool) -> Any:
    from pyspark.ml.torch.distributor import TorchDistributor

    return TorchDistributor(num_processes=num_processes, local_mode=local_mode, use_gpu=use_gpu)


def launch(
    spark: SparkSession,
    prepared: DataFrame,
    cfg: dict[str, Any],
    rows_per_partition: dict[int, int],
    *,
    num_processes: int,
    local_mode: bool,
    use_gpu: bool,
) -> dict[str, Any]:
    """Run ``run_rank`` on ``num_processes`` ranks and return rank 0's verified result.

    The result (``weights`` and ``history``) comes from the report store, not from
    TorchDistributor's return value (see :mod:`spark_dl.training.report`).
    """
    check_pyspark()
    host = "127.0.0.1" if local_mode else spark.conf.get("spark.driver.host", "127.0.0.1")
    server = ReportServer(host)
    cfg = {**cfg, "report_address": server.address}
    try:
        try:
            if local_mode:
                _run_on_driver(prepared, cfg, num_processes, use_gpu)
            else:
                balanced = balance(prepared, num_processes, rows_per_partition)
                cfg["shard_paths"] = None
                distributor = _distributor(num_processes, False, use_gpu)
                distributor._train_on_dataframe(run_rank, balanced, cfg)
        except Exception as exc:  # noqa: BLE001 - rewrapped with the ranks' own tracebacks
            raise _failure(server, num_processes, exc) from exc
        result = server.result()
        _verify(server, num_processes, result)
        return result
    finally:
        server.close()


def _run_on_driver(prepared: DataFrame, cfg: dict[str, Any], n: int, use_gpu: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="spark_dl-train-") as tmp:
        cfg["shard_paths"] = write_local_shards(collect_arrow(prepared), n, tmp)
        _distributor(n, True, use_gpu).run(run_rank, cfg)


def _failure(server: ReportServer, n: int, exc: BaseException) -> TrainingFailedError:
    errors = server.errors(n)
    if not errors:
        return TrainingFailedError(
            f"Training failed and no rank reported a Python error (a process may have been "
            f"killed or failed to start). TorchDistributor reported: {exc}"
        )
    first = min(errors.values(), key=lambda e: e["time"])
    others = sorted(r for r in errors if r != first["rank"])
    note = f" Ranks {others} failed after it." if others else ""
    return TrainingFailedError(
        f"Training failed on rank {first['rank']} of {n}.{note} Traceback from rank "
        f"{first['rank']}:\n{first['traceback']}",
        {r: e["traceback"] for r, e in errors.items()},
    )


def _verify(server: ReportServer, n: int, result: Any) -> None:
    reports = server.reports(n)
    errors = server.errors(n)
    if errors:
        raise _failure(server, n, RuntimeError("TorchDistributor returned success"))
    missing = sorted(set(range(n)) - set(reports))
    if missing:
        raise TrainingFailedError(
            f"TorchDistributor returned, but rank(s) {missing} of {n} never reported finishing "
            "training; refusing to return a model that not every rank agreed on."
        )
    worlds = {r["world_size"] for r in reports.values()}
    steps = {r["steps"] for r in reports.values()}
    if worlds != {n} or len(steps) != 1:
        raise TrainingFailedError(
            f"Training ranks disagree: world sizes {sorted(worlds)} (expected {n}), optimizer "
            f"steps per rank {[reports[r]['steps'] for r in sorted(reports)]}."
        )
    if not isinstance(result, dict) or "weights" not in result:
        raise TrainingFailedError("Rank 0 returned no trained weights.")
    logger.info("All %d ranks finished %d optimizer steps.", n, steps.pop())
