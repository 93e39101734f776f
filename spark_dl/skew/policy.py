"""Skew policy: what the stages do about lopsided partitions, and when.

Training on executors always deals rows evenly, one partition per rank
(:func:`spark_dl.skew.rows.balance`, applied by :mod:`spark_dl.training.distributor`).
Scoring follows the models' ``rebalance`` Param through :func:`before_scoring`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from spark_dl.compat import default_parallelism

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

logger = logging.getLogger(__name__)


def before_scoring(dataset: DataFrame, mode: str, owner: str) -> DataFrame:
    """Apply a model's ``rebalance`` Param to its input; lazily: no Spark job runs here.

    * ``auto``: deal the rows round-robin into the default parallelism (one shuffle of the
      input; the partitions are even to within one row per input partition, so no task
      straggles on a lopsided input and a thousand tiny partitions become a few tasks).
      A streaming DataFrame is scored as it arrives.
    * ``always``: the same, on streaming DataFrames too (each micro-batch is dealt).
    * ``never``: the input as it is (for inputs known to be even: it saves the shuffle).

    Spark's ``REBALANCE`` hint is not used: adaptive execution then packs partitions up to
    ``spark.sql.adaptive.advisoryPartitionSizeInBytes`` (64 MB), which for scoring means
    one task, and one core, for most inputs a heavy network is given.
    """
    if mode == "never" or (mode == "auto" and dataset.isStreaming):
        return dataset
    n = default_parallelism(dataset.sparkSession, probe=False)  # no job in transform()
    logger.debug("%s: dealing rows round-robin into %d partitions before scoring", owner, n)
    return dataset.repartition(n)
