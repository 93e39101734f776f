"""Skew policy: what the stages do about lopsided partitions, and when.

Training on executors always deals rows evenly, one partition per rank
(:func:`spark_dl.skew.rows.balance`, applied by :mod:`spark_dl.training.distributor`).
Scoring follows the models' ``rebalance`` Param through :func:`before_scoring`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from spark_dl import conf
from spark_dl.compat import default_parallelism

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

logger = logging.getLogger(__name__)


def before_scoring(dataset: DataFrame, mode: str, owner: str) -> DataFrame:
    """Apply a model's ``rebalance`` Param (``auto``, ``always`` or ``never``) to its input.

    ``auto`` counts rows per partition (one job) and deals them evenly when the largest
    partition holds more than ``spark.dl.skew.maxPartitionRatio`` times the mean; many
    small partitions are merged (no shuffle) down to what keeps every task slot busy.
    """
    from spark_dl.skew.profile import partition_stats
    from spark_dl.skew.rebalance import rebalance

    if mode == "never":
        return dataset
    spark = dataset.sparkSession
    stats = partition_stats(dataset)
    threshold = conf.get_float(spark, conf.SKEW_RATIO)
    if mode == "always" or stats.max_over_mean > threshold:
        logger.info("%s: rebalancing %d rows over %d partitions (max/mean %.2f)", owner,
                    stats.rows, stats.num_partitions, stats.max_over_mean)
        return rebalance(dataset, stats=stats)
    # Many small partitions: merge neighbours (no shuffle), keeping every task slot busy.
    min_rows = max(1, conf.get_int(spark, conf.MIN_ROWS_PER_TASK))
    target = max(default_parallelism(spark), -(-stats.rows // min_rows))
    if stats.num_partitions > 2 * target:
        logger.info("%s: coalescing %d partitions of %d rows on average into %d", owner,
                    stats.num_partitions, stats.rows // max(stats.num_partitions, 1), target)
        return dataset.coalesce(target)
    return dataset
