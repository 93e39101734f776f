"""Rebalancing: even rows across partitions, every row kept exactly once.

Rows are dealt round-robin by their global row index (see
:func:`spark_dl.training.data.balance`), so each output partition gets ``N // n`` or
``N // n + 1`` rows whatever the input's skew; it costs one count job and one shuffle.
"""

from __future__ import annotations

from pyspark.ml import Transformer
from pyspark.sql import DataFrame
from pyspark.sql.types import StructType

from spark_dl.param_table import ParamSpec, TableParams, at_least, declare, stage, validate_params
from spark_dl.persistence import Persistable
from spark_dl.skew.profile import PartitionStats, partition_stats
from spark_dl.validation import refuse_streaming


def rebalance(df: DataFrame, num_partitions: int | None = None,
              stats: PartitionStats | None = None) -> DataFrame:
    """``df`` with its rows dealt evenly into ``num_partitions`` (default: as many as now)."""
    from spark_dl.skew.rows import balance

    stats = stats or partition_stats(df)
    n = num_partitions or max(stats.num_partitions, 1)
    return balance(df, n, dict(enumerate(stats.counts)))


@stage()
@declare(
    ParamSpec("numPartitions", "Number of output partitions (>= 1); 0 keeps the input's "
              "number of partitions.", kind="int", default=0, check=at_least(0)),
)
class Rebalancer(Transformer, TableParams, Persistable):
    """Even out rows across partitions, keeping every row exactly once.

    Use it before a stage whose tasks would otherwise straggle on a lopsided partition.
    The torch stages do the same automatically (their ``rebalance`` Param).

    Examples
    --------
    >>> even = Rebalancer(numPartitions=8).transform(skewed_df)
    """

    def transformSchema(self, schema: StructType) -> StructType:
        """Rows move between partitions; the schema is unchanged (validates the Params)."""
        validate_params(self)
        return schema

    def _transform(self, dataset: DataFrame) -> DataFrame:
        refuse_streaming(dataset, "Rebalancer", "deal", "dealing counts the rows first. Use "
                         "rebalance='always' on the model, or df.repartition(n), on a stream.")
        validate_params(self)
        return rebalance(dataset, self.getNumPartitions() or None)

    def __repr__(self) -> str:
        return f"Rebalancer(numPartitions={self.getNumPartitions()})"
