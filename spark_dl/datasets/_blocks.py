"""Generate data on the executors, block by block, reproducibly by seed.

A dataset is cut into blocks described by a few plain values (a small driver-side
list); a Spark job hands blocks to tasks, and each block's rows come from a numpy
generator seeded by ``(seed, block id)``. The rows therefore depend on the seed and the
sizes only, never on how many partitions or executors made them.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession

from spark_dl.compat import default_parallelism

#: A block maker: ``(rng, block) -> pandas.DataFrame`` of the block's rows.
BlockFn = Callable[[np.random.Generator, dict[str, Any]], pd.DataFrame]


def generate(spark: SparkSession, blocks: list[dict[str, Any]], make: BlockFn, schema: str,
             seed: int, partitions: int | None = None) -> DataFrame:
    """Run ``make`` once per block on the executors; return the union of the rows.

    ``blocks`` are dicts of ints (each gets an ``"id"``); ``schema`` is the DDL of the rows.
    """
    if not blocks:
        raise ValueError("A dataset needs at least one block of rows.")
    rows = [{**b, "id": i} for i, b in enumerate(blocks)]
    keys = sorted(rows[0])
    n = partitions or max(1, min(len(rows), default_parallelism(spark) * 4))
    frame = spark.createDataFrame([[int(r[k]) for k in keys] for r in rows],
                                  ", ".join(f"{k} long" for k in keys)).repartition(n)

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            for block in batch.to_dict("records"):
                rng = np.random.default_rng([int(seed), int(block["id"])])
                yield make(rng, {k: int(v) for k, v in block.items()})

    # A DDL string: StructType.fromDDL arrived in Spark 4.0.
    return frame.mapInPandas(run, schema)


def sizes(total: int, parts: int, hot: int = 0, hot_share: float = 0.0) -> list[int]:
    """Split ``total`` rows over ``parts`` keys; the first ``hot`` keys share ``hot_share``."""
    hot = min(hot, parts)
    hot_rows = int(round(total * hot_share)) if hot else 0
    cold = parts - hot
    out = [hot_rows // hot + (1 if i < hot_rows % hot else 0) for i in range(hot)] if hot else []
    rest = total - hot_rows
    out += [rest // cold + (1 if i < rest % cold else 0) for i in range(cold)] if cold else []
    if not cold and out:
        out[-1] += rest
    return out
