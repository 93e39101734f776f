"""The petastorm data feed (``dataFeed="petastorm"``): Parquet materialized once, read per rank.

Driver side, :func:`materialize` deals the prepared rows evenly into one partition per rank
(as the Arrow feed does) and hands that frame to ``petastorm.spark.make_spark_converter``,
which writes it as Parquet under ``spark.dl.petastorm.cacheDir`` once: petastorm keeps one
converter per query plan in this process, so later fits on the same rows (the candidates of
a ``CrossValidator`` fold, a refit) reuse the files instead of writing them again.
:func:`clear_cache` deletes what this process wrote.

Rank side, :func:`read_shard` opens this rank's shard with the converter's
``make_torch_dataloader`` (``cur_shard=rank``, ``shard_count=world``: petastorm deals whole
row groups) and concatenates its batches into the arrays the training loop takes, so the
loop's equal-steps-per-rank guarantee holds as it does for the Arrow feed.

petastorm imports only on old pyarrow; :func:`import_petastorm` says which
versions work when it cannot.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import numpy as np

from spark_dl import compat

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

#: The Spark conf petastorm's converter reads its parent cache directory from.
PETASTORM_PARENT_CONF = "petastorm.spark.converter.parentCacheDirUrl"
#: Rows a rank asks the dataloader for at a time (they are concatenated afterwards).
READ_BATCH = 8192
#: Cache directories materialized by this process, url -> converter (for clear_cache).
_MATERIALIZED: dict[str, Any] = {}


def cache_url(raw: str) -> str:
    """``spark.dl.petastorm.cacheDir`` as the URL petastorm wants (a bare path becomes
    ``file://`` + its absolute path)."""
    if urlparse(raw).scheme:
        return raw
    return "file://" + os.path.abspath(raw)


def check_usable(spark: SparkSession, owner: str) -> str:
    """Fail before any job when the petastorm feed cannot run here; returns the cache URL."""
    from spark_dl import conf

    import_petastorm(owner)
    if compat.is_connect(spark):
        raise ValueError(
            f"The 'dataFeed' parameter of {owner} is 'petastorm', but this is a Spark Connect "
            "session: petastorm's make_spark_converter needs the classic session's JVM "
            "(SparkContext, query plans). Use dataFeed='arrow' under Spark Connect."
        )
    raw = conf.get_str(spark, conf.PETASTORM_CACHE_DIR).strip()
    if not raw:
        raise ValueError(
            f"The 'dataFeed' parameter of {owner} is 'petastorm', which needs the Spark conf "
            f"'{conf.PETASTORM_CACHE_DIR[0]}': a directory that Spark can write and every "
            "training rank can read (file:///dbfs/..., hdfs://..., s3a://..., or a local path "
            "on a single machine). Set it, or use dataFeed='arrow'."
        )
    return cache_url(raw)


def materialize(spark: SparkSession, balanced: DataFrame, url: str) -> dict[str, Any]:
    """The converter for ``balanced`` (written now, or found from an earlier fit), as the
    plain values a rank rebuilds it from: ``{"cache_dir_url", "file_urls", "rows"}``."""
    from petastorm.spark import make_spark_converter

    previous = spark.conf.get(PETASTORM_PARENT_CONF, None)
    spark.conf.set(PETASTORM_PARENT_CONF, url)
    try:
        converter = make_spark_converter(balanced, dtype=None)
    finally:
        if previous is None:
            spark.conf.unset(PETASTORM_PARENT_CONF)
        else:
            spark.conf.set(PETASTORM_PARENT_CONF, previous)
    _MATERIALIZED[converter.cache_dir_url] = converter
    return {"cache_dir_url": converter.cache_dir_url, "file_urls": list(converter.file_urls),
            "rows": len(converter)}


def cached_datasets() -> list[str]:
    """The cache directories this process has materialized and not yet deleted."""
    return sorted(_MATERIALIZED)


def clear_cache() -> list[str]:
    """Delete every petastorm cache directory this process materialized for training;
    returns their URLs. (petastorm also deletes them when the interpreter exits.)"""
    deleted = []
    for url, converter in list(_MATERIALIZED.items()):
        converter.delete()
        del _MATERIALIZED[url]
        deleted.append(url)
    return deleted


def read_shard(feed: dict[str, Any], rank: int, world: int) -> dict[str, np.ndarray]:
    """This rank's rows of the materialized dataset, through ``make_torch_dataloader``.

    Row groups are read in order by one reader thread (``reader_pool_type="dummy"``) and
    not shuffled here: the same seed then gives the same rows in the same order, and the
    training loop shuffles them per epoch.
    """
    from petastorm.spark.spark_dataset_converter import SparkDatasetConverter

    converter = SparkDatasetConverter(feed["cache_dir_url"], feed["file_urls"], feed["rows"])
    parts: dict[str, list[np.ndarray]] = {c: [] for c in ("f", "y", "w", "v")}
    loader = converter.make_torch_dataloader(
        batch_size=READ_BATCH, num_epochs=1, cur_shard=rank, shard_count=world,
        reader_pool_type="dummy", shuffle_row_groups=False,
    )
    with loader as batches:
        for batch in batches:
            for column, values in parts.items():
                values.append(batch[column].numpy())
    if not parts["y"]:
        return {}
    return {c: np.concatenate(v) for c, v in parts.items()}


def read_dataset(spark: SparkSession, url: str, fields: list[str] | None = None) -> DataFrame:
    """An existing petastorm dataset (Parquet written with a ``Unischema``) as a DataFrame.

    petastorm's codecs are decoded (``petastorm.spark_utils.dataset_as_rdd``); numpy array
    fields become ``array<float>`` or ``array<double>`` columns holding the values in
    row-major order (set ``inputShape`` to the field's shape), scalars stay scalars. Train
    on it with either data feed; ``dataFeed="petastorm"`` materializes it once into the
    cache, as any DataFrame.
    """
    import_petastorm("read_dataset")
    from petastorm.etl.dataset_metadata import get_schema_from_dataset_url
    from petastorm.spark_utils import dataset_as_rdd
    from pyspark.sql import types as T

    schema = get_schema_from_dataset_url(url)
    chosen = [schema.fields[f] for f in (fields or list(schema.fields))]
    struct = T.StructType([T.StructField(f.name, _spark_type(f), f.nullable) for f in chosen])
    names = [f.name for f in chosen]

    def to_row(record: Any) -> tuple[Any, ...]:
        return tuple(_plain(getattr(record, n)) for n in names)

    rdd = dataset_as_rdd(url, spark, schema_fields=chosen).map(to_row)
    return spark.createDataFrame(rdd, struct)


def _spark_type(field: Any) -> Any:
    from pyspark.sql import types as T

    scalar = {np.float32: T.FloatType(), np.float64: T.DoubleType(), np.int8: T.ByteType(),
              np.int16: T.ShortType(), np.int32: T.IntegerType(), np.int64: T.LongType(),
              np.uint8: T.ShortType(), np.bool_: T.BooleanType(), np.str_: T.StringType()}
    kind = scalar.get(np.dtype(field.numpy_dtype).type)
    if kind is None:
        raise ValueError(f"petastorm field {field.name!r} has dtype {field.numpy_dtype}, which "
                         "read_dataset does not map to a Spark type; pass fields= without it.")
    if field.shape:
        element = T.DoubleType() if kind == T.DoubleType() else (
            T.LongType() if isinstance(kind, (T.IntegerType, T.LongType, T.ShortType,
                                              T.ByteType)) else T.FloatType())
        return T.ArrayType(element, containsNull=False)
    return kind


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.reshape(-1).tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def import_petastorm(owner: str) -> Any:
    """The ``petastorm`` module, or a ValueError saying which versions it imports with.

    petastorm 0.13.1 (the last release, 2023) imports ``pyarrow.filesystem`` and
    ``pyarrow.LocalFileSystem``, the legacy filesystem API that pyarrow removed, and its
    Spark converter uses the JVM query plan of classic pyspark. It imports and trains with
    pyspark 3.5, pyarrow 14 and numpy < 2 (the ``.venv-spark35`` leg of make test).
    """
    try:
        import petastorm
        from petastorm.spark import make_spark_converter  # noqa: F401 - the part we use
    except Exception as exc:  # noqa: BLE001 - ImportError, or AttributeError inside it
        import pyarrow
        import pyspark

        missing = isinstance(exc, ModuleNotFoundError) and exc.name == "petastorm"
        why = "is not installed" if missing else f"does not import here ({exc})"
        raise ValueError(
            f"{owner}: dataFeed='petastorm' needs the petastorm package, which {why}. "
            "petastorm 0.13.1 uses pyarrow's legacy filesystem and dataset API "
            "(pyarrow.filesystem, ParquetDataset(validate_schema=...)), which this "
            f"pyarrow {pyarrow.__version__} no longer has; it is tested with pyspark 3.5.9, "
            "pyarrow 14.0.2 and numpy < 2 (install it with pip's --no-deps: it pins "
            f"setuptools<70). This is pyspark {pyspark.__version__}. Use dataFeed='arrow', "
            "which needs no extra package."
        ) from None
    return petastorm
