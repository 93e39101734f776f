"""Rebalancing: even rows across partitions, every row kept exactly once.

Rows are dealt round-robin by their global row index (see
:func:`spark_dl.training.data.balance`), so each output partition gets ``N // n`` or
``N // n + 1`` rows whatever the input's skew; it costs one count job and one shuffle.
"""

from __future__ import annotations

from pyspark import keyword_only
from pyspark.ml import Transformer
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.util import DefaultParamsReadable, DefaultParamsWritable
from pyspark.sql import DataFrame

from spark_dl.skew.profile import PartitionStats, partition_stats


def rebalance(df: DataFrame, num_partitions: int | None = None,
              stats: PartitionStats | None = None) -> DataFrame:
    """``df`` with its rows dealt evenly into ``num_partitions`` (default: as many as now)."""
    from spark_dl.training.data import balance

    stats = stats or partition_stats(df)
    n = num_partitions or max(stats.num_partitions, 1)
    return balance(df, n, dict(enumerate(stats.counts)))


class Rebalancer(Transformer, DefaultParamsReadable, DefaultParamsWritable):
    """Even out rows across partitions, keeping every row exactly once.

    Use it before a stage whose tasks would otherwise straggle on a lopsided partition.
    The torch stages do the same automatically (their ``rebalance`` Param).

    Examples
    --------
    >>> even = Rebalancer(numPartitions=8).transform(skewed_df)
    """

    numPartitions: Param[int] = Param(
        Params._dummy(), "numPartitions",
        "Number of output partitions (>= 1); 0 keeps the input's number of partitions.",
        typeConverter=TypeConverters.toInt,
    )

    @keyword_only
    def __init__(self, *, numPartitions: int = 0) -> None:
        super().__init__()
        self._setDefault(numPartitions=0)
        self._set(**self._input_kwargs)

    @keyword_only
    def setParams(self, *, numPartitions: int = 0) -> Rebalancer:
        """Sets params for this Rebalancer (keyword arguments only)."""
        return self._set(**self._input_kwargs)

    def getNumPartitions(self) -> int:
        """Gets the value of numPartitions or its default value."""
        return self.getOrDefault(self.numPartitions)

    def setNumPartitions(self, value: int) -> Rebalancer:
        """Sets the value of :py:attr:`numPartitions`."""
        return self._set(numPartitions=value)

    def _transform(self, dataset: DataFrame) -> DataFrame:
        n = self.getNumPartitions()
        if n < 0:
            raise ValueError(f"The 'numPartitions' parameter of Rebalancer must be an int >= 0. "
                             f"Got {n} instead.")
        return rebalance(dataset, n or None)

    def __repr__(self) -> str:
        return f"Rebalancer(numPartitions={self.getNumPartitions()})"
