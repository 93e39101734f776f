"""Getting training rows from a DataFrame into each rank, in Arrow batches, never row by row.

Driver side: :func:`prepare` projects the four columns training needs; :func:`balance`
spreads rows evenly over exactly ``n`` partitions (so every rank gets ``N // n`` or
``N // n + 1`` rows however skewed the input, and no partition is empty);
:func:`write_local_shards` writes per-rank Arrow IPC files for driver-local training.

Rank side: :func:`load_rank_arrays` reads this rank's rows into numpy arrays.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Iterable

import numpy as np

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame

#: The columns of a prepared training frame.
COLUMNS = ("f", "y", "w", "v")
_VAL_BUCKETS = 1_000_000


def prepare(
    df: DataFrame,
    features: Any,
    label_col: str | None,
    weight_col: str | None,
    validation_fraction: float,
    seed: int,
) -> DataFrame:
    """Project features (``array<float>``), label, weight and a validation flag.

    The validation flag is a hash of the row's features, label and the seed, so the split
    does not depend on how the DataFrame is partitioned or ordered.
    """
    from pyspark.sql import functions as F

    f = features.alias("f")
    y = (F.col(label_col).cast("double") if label_col else F.lit(0.0)).alias("y")
    w = (F.col(weight_col).cast("double") if weight_col else F.lit(1.0)).alias("w")
    out = df.select(f, y, w)
    if validation_fraction > 0:
        bucket = F.pmod(F.xxhash64("f", "y", F.lit(int(seed))), F.lit(_VAL_BUCKETS))
        v = bucket < F.lit(int(round(validation_fraction * _VAL_BUCKETS)))
    else:
        v = F.lit(False)
    return out.withColumn("v", v)


def write_local_shards(batches: Iterable[pa.RecordBatch], n: int, directory: str) -> list[str]:
    """Deal rows ``r::n`` of the ``batches`` stream to ``directory/shard-r.arrow`` for each rank r.

    Batch by batch: the caller's memory holds one batch, never the whole training set (see
    :func:`spark_dl.compat.iter_arrow_batches`). Row ``i`` of the stream goes to rank
    ``i % n``, so the ranks' row counts differ by at most one.
    """
    import pyarrow as pa

    paths = [os.path.join(directory, f"shard-{r}.arrow") for r in range(n)]
    writers: list[Any] = []
    offset = 0
    try:
        for batch in batches:
            if not writers:
                writers = [pa.ipc.new_file(pa.OSFile(p, "wb"), batch.schema) for p in paths]
            for r, writer in enumerate(writers):
                first = (r - offset) % n
                if first < batch.num_rows:
                    rows = np.arange(first, batch.num_rows, n, dtype=np.int64)
                    writer.write_batch(batch.take(pa.array(rows)))
            offset += batch.num_rows
    finally:
        for writer in writers:
            writer.close()
    if not writers:  # no rows at all: empty shards the ranks can still open
        for path in paths:
            with pa.OSFile(path, "wb") as sink, pa.ipc.new_file(sink, pa.schema([])):
                pass
    return paths


def _read_rank_table(shard_paths: list[str] | None, rank: int) -> pa.Table:
    import pyarrow as pa

    if shard_paths:
        return pa.ipc.open_file(pa.memory_map(shard_paths[rank])).read_all()
    # Written by TorchDistributor._train_on_dataframe in this rank's Spark task.
    path = os.environ.get("SPARK_PARTITION_ARROW_DATA_FILE")
    if not path:
        raise RuntimeError(
            "No training data for this rank: neither local shard files nor "
            "SPARK_PARTITION_ARROW_DATA_FILE (set by TorchDistributor) are present."
        )
    return pa.ipc.open_stream(pa.memory_map(path)).read_all()


def table_to_arrays(table: pa.Table, num_features: int) -> dict[str, np.ndarray]:
    """Turn a prepared table into ``X (n, d) float32``, ``y``, ``w`` float64, ``v`` bool."""
    n = table.num_rows
    if n == 0:
        return {
            "X": np.zeros((0, num_features), np.float32),
            "y": np.zeros(0),
            "w": np.zeros(0),
            "v": np.zeros(0, bool),
        }
    f = table.column("f").combine_chunks()
    values = f.flatten().to_numpy(zero_copy_only=False)
    return {
        "X": np.ascontiguousarray(values, dtype=np.float32).reshape(n, num_features),
        "y": np.asarray(table.column("y").to_numpy(), dtype=np.float64),
        "w": np.asarray(table.column("w").to_numpy(), dtype=np.float64),
        "v": table.column("v").to_numpy(zero_copy_only=False).astype(bool),
    }


def load_rank_arrays(shard_paths: list[str] | None, rank: int, num_features: int,
                     petastorm: dict[str, Any] | None = None, world: int = 1) -> dict:
    """This rank's training rows as numpy arrays (from the petastorm cache when ``petastorm``
    describes one, see :mod:`spark_dl.training.petastorm_feed`)."""
    if petastorm is None:
        return table_to_arrays(_read_rank_table(shard_paths, rank), num_features)
    from spark_dl.training.petastorm_feed import read_shard

    got = read_shard(petastorm, rank, world)
    if not got:
        return table_to_arrays(_empty_table(), num_features)
    n = len(got["y"])
    return {
        "X": np.ascontiguousarray(got["f"], dtype=np.float32).reshape(n, num_features),
        "y": np.asarray(got["y"], dtype=np.float64),
        "w": np.asarray(got["w"], dtype=np.float64),
        "v": np.asarray(got["v"]).astype(bool),
    }


def _empty_table() -> pa.Table:
    import pyarrow as pa

    return pa.table({"y": pa.array([], pa.float64())})
