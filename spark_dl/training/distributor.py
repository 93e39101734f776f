"""The one place that calls TorchDistributor (and its private DataFrame entry point).

``launch`` sends the prepared training rows to the ranks, runs them, and verifies from the
ranks' own reports that every rank finished the same number of steps before returning
rank 0's result. A failure raises :class:`~spark_dl.errors.TrainingFailedError` with the
failing rank's traceback.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from spark_dl.errors import TrainingFailedError
from spark_dl import compat
from spark_dl.compat import (
    default_parallelism,
    iter_arrow_batches,
    max_concurrent_tasks,
    train_on_dataframe,
)
from spark_dl.skew.rows import balance
from spark_dl.training.data import write_local_shards
from spark_dl.training.channel import read_payload
from spark_dl.training.worker import run_rank

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from spark_dl.training.plan import TrainPlan

logger = logging.getLogger(__name__)
def task_slots(spark: SparkSession) -> int:
    """How many tasks the cluster can run at once with the default resource profile.

    Spark's own count divides each executor's cores by ``spark.task.cpus``; the fallback
    (cores from ``defaultParallelism``) divides them here.
    """
    from spark_dl import conf

    slots = max_concurrent_tasks(spark)
    if slots is not None:
        return slots
    return default_parallelism(spark) // max(conf.task_cpus(spark), 1)


def wait_for_slots(spark: SparkSession, needed: int, timeout_s: float,
                   poll_s: float = 0.5) -> int:
    """Poll :func:`task_slots` until it reaches ``needed`` or ``timeout_s`` passes.

    Executors register with the driver over the first seconds of an application (and
    again after one is lost), so one early count can be short of what the cluster has.
    Returns the last count seen.
    """
    import time

    deadline = time.monotonic() + timeout_s
    slots = task_slots(spark)
    while slots < needed and time.monotonic() < deadline:
        time.sleep(poll_s)
        slots = task_slots(spark)
    return slots


def _distributor(num_processes: int, local_mode: bool, use_gpu: bool) -> Any:
    from pyspark.ml.torch.distributor import TorchDistributor

    return TorchDistributor(num_processes=num_processes, local_mode=local_mode, use_gpu=use_gpu)


def launch(
    prepared: DataFrame,
    plan: TrainPlan,
    rows_per_partition: dict[int, int],
    *,
    num_processes: int,
    local_mode: bool,
    use_gpu: bool,
    max_attempts: int = 1,
    resume: bool = False,
    petastorm_url: str | None = None,
) -> dict[str, Any]:
    """Train with up to ``max_attempts`` attempts; each retry resumes from the latest checkpoint.

    Without a ``checkpoint_dir`` in ``plan``, driver-local training checkpoints to a
    temporary directory for the duration of the fit, so retries still resume; on executors
    a retry then starts from epoch 0 (their disks are not the driver's).

    With ``petastorm_url`` (dataFeed="petastorm") the rows are dealt evenly into one
    partition per rank and materialized there once (:mod:`~spark_dl.training.petastorm_feed`);
    every attempt's ranks read their shards from it.
    """
    compat.check_pyspark()
    tmp_ckpt = None
    if plan.checkpoint_dir is None and local_mode and max_attempts > 1:
        tmp_ckpt = tempfile.mkdtemp(prefix="spark_dl-ckpt-")
        plan = replace(plan, checkpoint_dir=tmp_ckpt)
    elif plan.checkpoint_dir is None and max_attempts > 1:
        logger.warning("No checkpointDir: a failed training attempt on the executors restarts "
                       "from epoch 0. Set checkpointDir to shared storage to resume instead.")
    if petastorm_url is not None:
        from spark_dl.training.petastorm_feed import materialize

        balanced = balance(prepared, num_processes, rows_per_partition)
        plan = replace(plan, petastorm=materialize(prepared.sparkSession, balanced,
                                                   petastorm_url))
    failures: list[TrainingFailedError] = []
    try:
        for attempt in range(1, max_attempts + 1):
            attempt_plan = replace(plan, attempt=attempt, resume=resume or attempt > 1)
            try:
                return _launch_once(prepared, attempt_plan, rows_per_partition,
                                    num_processes, local_mode, use_gpu)
            except TrainingFailedError as exc:
                failures.append(exc)
                if attempt < max_attempts:
                    logger.warning("Training attempt %d of %d failed; retrying from the latest "
                                   "checkpoint. Cause: %s", attempt, max_attempts,
                                   str(exc).splitlines()[0])
    finally:
        if tmp_ckpt:
            shutil.rmtree(tmp_ckpt, ignore_errors=True)
    last = failures[-1]
    raise TrainingFailedError(
        f"Training failed in all {max_attempts} attempt(s) (maxTrainAttempts / "
        f"spark.dl.train.maxAttempts). Last failure: {last}", last.rank_errors,
    )


def _launch_once(
    prepared: DataFrame,
    plan: TrainPlan,
    rows_per_partition: dict[int, int],
    num_processes: int,
    local_mode: bool,
    use_gpu: bool,
) -> dict[str, Any]:
    """One training attempt: run ``run_rank`` on every rank and verify rank 0's payload.

    The payload carries every rank's outcome (see :mod:`spark_dl.training.channel`): it
    comes back as the barrier job's result on executors, or in a driver folder.
    """
    with tempfile.TemporaryDirectory(prefix="spark_dl-train-") as tmp:
        try:
            if plan.petastorm is not None:
                feed_plan = replace(plan, result_dir=tmp if local_mode else None)
                distributor = _distributor(num_processes, local_mode, use_gpu)
                returned = distributor.run(run_rank, feed_plan)
            elif local_mode:
                batches = iter_arrow_batches(prepared, tmp)
                shards = tuple(write_local_shards(batches, num_processes, tmp))
                local_plan = replace(plan, shard_paths=shards, result_dir=tmp)
                returned = _distributor(num_processes, True, use_gpu).run(run_rank, local_plan)
            else:
                balanced = balance(prepared, num_processes, rows_per_partition)
                distributor = _distributor(num_processes, False, use_gpu)
                returned = train_on_dataframe(distributor, run_rank, balanced, plan)
        except Exception as exc:  # noqa: BLE001 - rewrapped: no rank could report
            raise TrainingFailedError(
                "Training failed and no rank reported a Python error (a process may have been "
                f"killed or failed to start). TorchDistributor reported: {exc}"
            ) from exc
        payload = read_payload(returned, tmp if local_mode else None)
    return verify(payload, num_processes)


def _failure(outcomes: dict[int, dict[str, Any]], n: int) -> TrainingFailedError:
    errors = {r: o for r, o in outcomes.items() if o.get("status") == "error"}
    first = min(errors.values(), key=lambda e: e["time"])
    others = sorted(r for r in errors if r != first["rank"])
    note = f" Ranks {others} failed after it." if others else ""
    return TrainingFailedError(
        f"Training failed on rank {first['rank']} of {n}.{note} Traceback from rank "
        f"{first['rank']}:\n{first['traceback']}",
        {r: e["traceback"] for r, e in errors.items()},
    )


def verify(payload: dict[str, Any] | None, n: int) -> dict[str, Any]:
    """The training result if every one of the ``n`` ranks finished alike; else raise.

    Returns rank 0's result (``weights``, ``history``, ...) plus ``rows_per_rank``.
    """
    if payload is None:
        raise TrainingFailedError(
            "TorchDistributor returned, but rank 0 delivered no result; refusing to guess one.")
    outcomes = payload["outcomes"]
    if any(o.get("status") == "error" for o in outcomes.values()):
        raise _failure(outcomes, n)
    missing = sorted(set(range(n)) - set(outcomes))
    if missing:
        raise TrainingFailedError(
            f"TorchDistributor returned, but rank(s) {missing} of {n} never reported finishing "
            "training; refusing to return a model that not every rank agreed on."
        )
    worlds = {o["world_size"] for o in outcomes.values()}
    steps = {o["steps"] for o in outcomes.values()}
    if worlds != {n} or len(steps) != 1:
        raise TrainingFailedError(
            f"Training ranks disagree: world sizes {sorted(worlds)} (expected {n}), optimizer "
            f"steps per rank {[outcomes[r]['steps'] for r in sorted(outcomes)]}."
        )
    if payload.get("weights") is None:
        raise TrainingFailedError("Rank 0 returned no trained weights.")
    logger.info("All %d ranks finished %d optimizer steps.", n, steps.pop())
    result = {k: v for k, v in payload.items() if k != "outcomes"}
    result["rows_per_rank"] = [outcomes[r].get("rows", {}) for r in range(n)]
    return result
