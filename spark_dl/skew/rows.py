"""Row numbering and dealing: the one implementation of skew's core trick.

A row's global index is its partition's offset (the rows of all earlier partitions, from
one counting job) plus its index within the partition. :func:`balance` deals rows by that
index round-robin into exactly ``n`` partitions (training's one partition per rank, the
``Rebalancer``'s exact ``rebalance(df, n)``). Scoring's ``rebalance`` and the
``SequenceWindower`` need no count (:mod:`spark_dl.skew.policy`, Spark's ``row_number``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame


def local_index() -> Column:
    """A row's index within its partition (``monotonically_increasing_id`` puts the
    partition id in the upper 31 bits and the index in the lower 33)."""
    from pyspark.sql import functions as F

    pid = F.spark_partition_id()
    return F.monotonically_increasing_id() - F.shiftleft(pid.cast("long"), 33)


def partition_offsets(rows_per_partition: dict[int, int]) -> list[int]:
    """Each partition's first global row index, from partition id -> rows."""
    offsets, acc = [], 0
    for p in range(max(rows_per_partition, default=-1) + 1):
        offsets.append(acc)
        acc += rows_per_partition.get(p, 0)
    return offsets


def offset_of(offsets: list[int], partition: Column) -> Column:
    """The offset of the row's partition (``partition`` is its id), as a long column.

    A partition the counting job did not see gets offset 0. The same DataFrame can be split
    differently by two queries (under Spark Connect a local relation is scanned as one
    partition by an aggregation and as two by a sort), and dealing must then still place
    every row exactly once: it does, only the split is up to one row per partition less even.
    """
    from pyspark.sql import functions as F

    known = F.array(*[F.lit(o).cast("long") for o in offsets or [0]])
    return F.coalesce(F.try_element_at(known, (partition + 1).cast("int")),
                      F.lit(0).cast("long"))


def _partition_keys(spark: Any, n: int) -> list[int]:
    """For each target partition p, a long key that Spark's hash partitioner sends to p."""
    from pyspark.sql import functions as F

    keys: dict[int, int] = {}
    limit = 64 * n
    while len(keys) < n:
        rows = (
            spark.range(0, limit)
            .select("id", F.pmod(F.hash("id"), F.lit(n)).alias("p"))
            .collect()
        )
        for r in rows:
            keys.setdefault(int(r["p"]), int(r["id"]))
        limit *= 4
    return [keys[p] for p in range(n)]


def deal_keys(df: DataFrame, n: int, rows_per_partition: dict[int, int]) -> DataFrame:
    """``df`` plus ``_k``: a key that Spark's hash partitioner sends to partition ``i % n``
    for the row at global index ``i``.

    A row's index within its partition is counted after sorting the partition by two hashes
    of the row's content, so it depends on which rows the partition holds, not on the order
    they arrive in. An uncached shuffle upstream delivers rows in a different order each
    time it is read; were the index taken in arrival order, a retried map task could deal
    the same row to two partitions and another to none.
    """
    from pyspark.sql import functions as F

    keys = _partition_keys(df.sparkSession, n)
    hashable = [F.col(f"`{f.name}`") for f in df.schema.fields if _hashable(f.dataType)]
    if hashable:
        df = df.sortWithinPartitions(F.xxhash64(*hashable), F.hash(*hashable))
    offset = offset_of(partition_offsets(rows_per_partition), F.spark_partition_id())
    slot = F.pmod(offset + local_index(), F.lit(n))
    key = F.element_at(F.array(*[F.lit(k).cast("long") for k in keys]), (slot + 1).cast("int"))
    return df.withColumn("_k", key)


def _hashable(dtype: Any) -> bool:
    """Whether Spark's hash functions accept the type (they refuse maps)."""
    from pyspark.sql.types import ArrayType, MapType, StructType

    if isinstance(dtype, MapType):
        return False
    if isinstance(dtype, ArrayType):
        return _hashable(dtype.elementType)
    if isinstance(dtype, StructType):
        return all(_hashable(f.dataType) for f in dtype.fields)
    return True


def balance(df: DataFrame, n: int, rows_per_partition: dict[int, int]) -> DataFrame:
    """Deal rows round-robin, by global row index, into exactly ``n`` partitions.

    ``rows_per_partition`` (partition id -> rows, from the stats job) gives each input
    partition's offset, so row ``i`` of the whole DataFrame lands in partition ``i % n``.
    If the input's partitioning changed between jobs the split is less even, but every row
    still appears exactly once, also when tasks are retried (see :func:`deal_keys`).
    """
    return deal_keys(df, n, rows_per_partition).repartition(n, "_k").drop("_k")
