"""User and item ids <-> contiguous indices, fitted by the recommender and saved with it.

Ids of any integer type or strings are indexed by descending interaction count (ties by
id), as ``StringIndexer``'s ``frequencyDesc``: index 0 is the most popular item. The index
is gathered in one aggregation per side, together with the per-entity mean of the side
features, and kept on the driver as two arrays (ids, counts). Scoring joins a DataFrame
built from them (local data: no job), so an id the model has not seen finds no index and
follows ``coldStartStrategy``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ByteType,
    DataType,
    IntegerType,
    LongType,
    ShortType,
    StringType,
    StructType,
)

from spark_dl.inputs import MAX_EXACT_ID

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

#: Id column types the recommender indexes.
ID_TYPES = (ByteType, ShortType, IntegerType, LongType, StringType)


def check_id_column(schema: StructType, column: str, param: str, owner: str) -> DataType:
    """The id column's type; ``TypeError`` unless it is an integer type or a string."""
    if column not in schema.names:
        raise ValueError(f"The '{param}' column {column!r} of {owner} does not exist. "
                         f"Available columns: {schema.names}.")
    dt = schema[column].dataType
    if not isinstance(dt, ID_TYPES):
        raise TypeError(
            f"The '{param}' column {column!r} of {owner} must hold integer or string ids. "
            f"Got {dt.simpleString()}; cast it first (for example "
            f"df.withColumn({column!r}, F.col({column!r}).cast('long')) for integral doubles).")
    return dt


@dataclass
class IdIndex:
    """One side's index: ``ids[k]`` is the id of index ``k``, ``counts[k]`` its rows."""

    column: str
    dtype: str  # Spark SQL type of the ids, e.g. "bigint" or "string"
    ids: list[Any]
    counts: np.ndarray
    #: Per-entity mean side features ``(n, d)`` float32, or None.
    features: np.ndarray | None = None
    _frames: dict[int, Any] = field(default_factory=dict, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.ids)

    def frame(self, spark: SparkSession, key: str, index: str) -> DataFrame:
        """A DataFrame ``(key: id, index: int)`` of local data (building it runs no job),
        cached per session."""
        import pandas as pd

        cached = self._frames.get(id(spark))
        if cached is not None:
            return cached.withColumnsRenamed({"__id": key, "__index": index})
        pdf = pd.DataFrame({"__id": pd.Series(self.ids, dtype=object),
                            "__index": np.arange(len(self.ids), dtype=np.int32)})
        df = spark.createDataFrame(pdf, f"__id {self.dtype}, __index int")
        self._frames = {id(spark): df}
        return df.withColumnsRenamed({"__id": key, "__index": index})

    def to_metadata(self) -> dict[str, Any]:
        return {"column": self.column, "dtype": self.dtype, "size": len(self.ids)}

    def save(self, spark: SparkSession, path: str) -> None:
        """Parquet ``(id, index, count)`` under ``path``."""
        import pandas as pd

        pdf = pd.DataFrame({"id": pd.Series(self.ids, dtype=object),
                            "index": np.arange(len(self.ids), dtype=np.int32),
                            "count": self.counts.astype(np.int64)})
        spark.createDataFrame(pdf, f"id {self.dtype}, index int, count bigint").coalesce(
            1).write.parquet(path)

    @classmethod
    def load(cls, spark: SparkSession, path: str, meta: dict[str, Any]) -> IdIndex:
        """Read what :meth:`save` wrote; checks that the indices are ``0..size-1``."""
        pdf = spark.read.parquet(path).toPandas().sort_values("index")
        size = int(meta["size"])
        if len(pdf) != size or not (pdf["index"].to_numpy() == np.arange(size)).all():
            raise ValueError(f"The id index at {path!r} is incomplete or corrupt: expected "
                             f"indices 0..{size - 1}, found {len(pdf)} rows. Save the model "
                             "again.")
        return cls(meta["column"], meta["dtype"], pdf["id"].tolist(),
                   pdf["count"].to_numpy(np.int64))


def build_index(df: DataFrame, column: str, param: str, owner: str, dtype: DataType,
                features: Any | None = None, width: int = 0,
                features_param: str = "") -> IdIndex:
    """Index ``column`` of ``df`` by descending count (one aggregation job), with the mean of
    each of the ``width`` side-feature values per id when ``features`` (an ``array<float>``
    expression) is given. Null ids were refused or skipped before."""
    aggs = [F.count(F.lit(1)).alias("n")]
    if features is not None:
        aggs += [F.min(F.size(features)).alias("lo"), F.max(F.size(features)).alias("hi"),
                 F.sum(F.when(features.isNull(), 1).otherwise(0)).alias("nulls")]
        aggs += [F.avg(features[j]).alias(f"f{j}") for j in range(width)]
    rows = df.groupBy(column).agg(*aggs).collect()
    rows.sort(key=lambda r: (-int(r["n"]), r[column]))
    if len(rows) >= MAX_EXACT_ID:
        raise ValueError(f"The '{param}' column {column!r} of {owner} holds {len(rows)} "
                         f"distinct ids; at most {MAX_EXACT_ID - 1} are supported.")
    index = IdIndex(column, dtype.simpleString(), [r[column] for r in rows],
                    np.array([int(r["n"]) for r in rows], dtype=np.int64))
    if features is not None:
        _check_side(rows, width, features_param, owner)
        index.features = np.array([[r[f"f{j}"] for j in range(width)] for r in rows],
                                  dtype=np.float32).reshape(len(rows), width)
    return index


def _check_side(rows: list[Any], width: int, name: str, owner: str) -> None:
    nulls = sum(int(r["nulls"]) for r in rows)
    sizes = {int(v) for r in rows for v in (r["lo"], r["hi"]) if v is not None}
    if nulls:
        raise ValueError(f"The '{name}' column of {owner} has {nulls} null row(s); every "
                         "row needs its side features. Fill or drop them first.")
    if sizes != {width}:
        raise ValueError(f"The '{name}' column of {owner} holds rows of {sorted(sizes)} "
                         f"values; every row needs the same number ({width}).")
    if any(r[f"f{j}"] is None or r[f"f{j}"] != r[f"f{j}"] for r in rows for j in range(width)):
        raise ValueError(f"The '{name}' column of {owner} holds NaN values; side features "
                         "must be finite. Impute them first.")
