"""Rebalancing: even rows across partitions, every row kept exactly once.

* :class:`Rebalancer`, the pipeline stage, builds a plan and runs no job (so it also works
  on streams and in a fitted pipeline): Spark's round-robin repartition, each input
  partition dealt in turn from its own starting partition, so outputs differ by at most
  one row per input partition; Spark sorts rows before dealing, so retried tasks deal
  every row to the same partition again.
* :func:`rebalance` is exact: rows are dealt by their global row index
  (:func:`spark_dl.skew.rows.balance`), ``N // n`` or ``N // n + 1`` per partition, at the
  price of one count job before the shuffle.
"""

from __future__ import annotations

from pyspark.ml import Transformer
from pyspark.sql import DataFrame
from pyspark.sql.types import StructType

from spark_dl.compat import default_parallelism
from spark_dl.param_table import ParamSpec, TableParams, at_least, declare, stage, validate_params
from spark_dl.persistence import Persistable
from spark_dl.skew.profile import PartitionStats, partition_stats


def rebalance(df: DataFrame, num_partitions: int | None = None,
              stats: PartitionStats | None = None) -> DataFrame:
    """``df`` with its rows dealt into ``num_partitions`` (default: as many as now) of
    ``N // n`` or ``N // n + 1`` rows; runs one job to count rows per partition unless
    ``stats`` (from :func:`partition_stats`) are given."""
    from spark_dl.skew.rows import balance

    stats = stats or partition_stats(df)
    n = num_partitions or max(stats.num_partitions, 1)
    return balance(df, n, dict(enumerate(stats.counts)))


@stage()
@declare(
    ParamSpec("numPartitions", "Number of output partitions (>= 1); 0 takes the default "
              "parallelism (the task slots), as the torch models' rebalance='auto' does.",
              kind="int", default=0, check=at_least(0)),
)
class Rebalancer(Transformer, TableParams, Persistable):
    """Even out rows across partitions, keeping every row exactly once.

    Use it before a stage whose tasks would otherwise straggle on a lopsided partition.
    The torch stages do the same automatically (their ``rebalance`` Param). ``transform``
    runs no job: rows are dealt round-robin (Spark's ``repartition(n)``), so partitions
    differ by at most one row per input partition; :func:`rebalance` is exact but counts
    rows first.

    Examples
    --------
    >>> even = Rebalancer(numPartitions=8).transform(skewed_df)
    """

    def transformSchema(self, schema: StructType) -> StructType:
        """Rows move between partitions; the schema is unchanged (validates the Params)."""
        validate_params(self)
        return schema

    def _transform(self, dataset: DataFrame) -> DataFrame:
        validate_params(self)
        n = self.getNumPartitions() or default_parallelism(dataset.sparkSession, probe=False)
        return dataset.repartition(n)

    def __repr__(self) -> str:
        return f"Rebalancer(numPartitions={self.getNumPartitions()})"
