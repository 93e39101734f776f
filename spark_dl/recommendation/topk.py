"""Driver side of recommendation: the plans behind ``recommendFor*`` and the factors.

Two plans, both lazy (no job until the result is used) and neither collecting the catalogue
to the driver; the network, which holds the embeddings, reaches the executors as the
scoring path's broadcast (:func:`spark_dl.compat.broadcast`):

* ``broadcast``: the queries (users, or items) are dealt over the default parallelism and
  each task scores its queries against every candidate, block by block, keeping each
  query's top k (:func:`spark_dl.inference.recommend.recommend_batches`).
* ``blocked``: blocks of ``blockSize`` queries are cross-joined with ranges of
  ``blockSize`` candidates (only the range numbers travel), each pair of blocks is a unit
  of work yielding per-block top k, and a group-by merges them, as ALS's
  ``recommendForAll`` does. It makes ``query blocks x candidate blocks`` units instead
  of one per query partition, which keeps every core busy when there are few queries.

Both end in one group-by per query that sorts its candidates (score descending, then id)
and keeps ``k``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from spark_dl.compat import active_session, default_parallelism
from spark_dl.inference.recommend import TopK, block_batches, factor_batches, recommend_batches

if TYPE_CHECKING:
    from spark_dl.recommendation.model import TorchRecommendationModel

CANDIDATES = "__q int, __c int, __s float"


def _sides(model: TorchRecommendationModel, side: str) -> tuple[Any, Any, str, str]:
    if side == "user":
        return model._users, model._items, model.getUserCol(), model.getItemCol()
    return model._items, model._users, model.getItemCol(), model.getUserCol()


def _check_k(k: Any, side: str) -> int:
    name = "numItems" if side == "user" else "numUsers"
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"The '{name}' argument of recommendFor* must be an int >= 1. "
                         f"Got {k!r} instead.")
    return k


def strategy(model: TorchRecommendationModel, num_queries: int | None, spark: Any) -> str:
    """The plan ``recommendStrategy`` names; "auto" is blocked when the queries are fewer
    than blockSize times the default parallelism (unknown for a subset: broadcast)."""
    chosen = model.getRecommendStrategy()
    if chosen != "auto":
        return chosen
    if num_queries is None:
        return "broadcast"
    slots = default_parallelism(spark, probe=False)
    return "blocked" if num_queries < model.getBlockSize() * slots else "broadcast"


def recommend(model: TorchRecommendationModel, side: str, k: int,
              subset: DataFrame | None = None) -> DataFrame:
    """The top ``k`` candidates of each query on ``side`` ("user" or "item")."""
    k = _check_k(k, side)
    queries, candidates, q_col, c_col = _sides(model, side)
    spark = subset.sparkSession if subset is not None else active_session()
    qframe = queries.frame(spark, "__key", "__q")
    if subset is not None:
        if q_col not in subset.columns:
            raise ValueError(f"The dataset given to recommendFor{side.title()}Subset has no "
                             f"{q_col!r} column ({side}Col). Columns: {subset.columns}.")
        wanted = subset.select(F.col(q_col).cast(queries.dtype).alias("__key")).distinct()
        qframe = qframe.join(wanted, on="__key", how="inner")
    task = TopK(model._scoring_task(spark), k, side, len(candidates))
    plan = strategy(model, None if subset is not None else len(queries), spark)
    n = default_parallelism(spark, probe=False)
    if plan == "blocked":
        rows = _blocked(spark, qframe, task, len(candidates), model.getBlockSize(), n)
    else:
        rows = qframe.select("__q").repartition(n).mapInArrow(
            lambda it: recommend_batches(it, task), CANDIDATES)
    return _merge(rows, qframe, candidates.frame(spark, "__id", "__c"), k, q_col, c_col)


def _blocked(spark: Any, qframe: DataFrame, task: TopK, num_candidates: int, size: int,
             n: int) -> DataFrame:
    blocks = qframe.groupBy(F.floor(F.col("__q") / size).alias("__b")).agg(
        F.collect_list("__q").alias("__qs"))
    ranges = spark.range(math.ceil(num_candidates / size)).select(
        F.col("id").alias("__cb"))
    block_task = TopK(task.scoring, task.k, task.query, size)
    pairs = blocks.select("__qs").crossJoin(ranges).repartition(n)
    return pairs.mapInArrow(lambda it: _ranges(it, block_task, num_candidates), CANDIDATES)


def _ranges(batches: Any, task: TopK, total: int) -> Any:
    """``(__qs, __cb)`` rows to ``(__qs, candidates)`` blocks for block_batches."""
    import numpy as np
    import pyarrow as pa

    size = task.num_candidates
    for batch in batches:
        starts = batch.column(1).to_numpy(zero_copy_only=False) * size
        cands = [np.arange(s, min(s + size, total), dtype=np.int32) for s in starts]
        yield from block_batches(iter([pa.RecordBatch.from_arrays(
            [batch.column(0), pa.array(cands, type=pa.list_(pa.int32()))],
            names=["__qs", "__cs"])]), task)


def _merge(rows: DataFrame, qframe: DataFrame, cframe: DataFrame, k: int, q_col: str,
           c_col: str) -> DataFrame:
    named = rows.join(cframe, on="__c")
    ranked = F.array_sort(F.collect_list(F.struct((-F.col("__s")).alias("neg"),
                                                  F.col("__id").alias("id"))))
    top = named.groupBy("__q").agg(F.slice(ranked, 1, k).alias("__top"))
    recs = F.transform("__top", lambda x: F.struct(x["id"].alias(c_col),
                                                   (-x["neg"]).alias("rating")))
    return top.join(qframe, on="__q").select(F.col("__key").alias(q_col),
                                             recs.alias("recommendations"))


def factors(model: TorchRecommendationModel, side: str) -> DataFrame:
    """``id``, ``features``: the network's ``user_vectors``/``item_vectors`` per id."""
    net = model.torchModule
    if not hasattr(net, f"{side}_vectors"):
        raise AttributeError(
            f"Network {model.getModel()!r} has no {side} factors (it defines no "
            f"{side}_vectors method); 'two_tower' does. Use recommendFor* or transform.")
    spark = active_session()
    index = model._users if side == "user" else model._items
    frame = index.frame(spark, "id", "__q")
    task = TopK(model._scoring_task(spark), 1, side)
    vectors = frame.select("__q").repartition(default_parallelism(spark, probe=False)) \
        .mapInArrow(lambda it: factor_batches(it, task), "__q int, features array<float>")
    return vectors.join(frame, on="__q").select("id", "features")
