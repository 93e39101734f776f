"""Schema and value checks, run on the driver before any training or scoring job.

Messages follow one template: they name the parameter or column, show the value, and say
what is accepted.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlparse
from typing import Any

from pyspark.ml.linalg import VectorUDT

from spark_dl.param_table import param_error
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ArrayType,
    BooleanType,
    DataType,
    DoubleType,
    FloatType,
    IntegerType,
    LongType,
    NumericType,
    ShortType,
    StructType,
)

_FLOAT_ELEMENTS = (FloatType, DoubleType)
_INT_ELEMENTS = (IntegerType, LongType, ShortType)


def refuse_streaming(dataset: DataFrame, owner: str, what: str, instead: str) -> None:
    """A clear error, before Spark's own, for work a stream cannot do."""
    if dataset.isStreaming:
        raise ValueError(f"{owner} cannot {what} a streaming DataFrame: {instead}")


def require(cond: bool, owner: str, name: str, expected: str, got: Any) -> None:
    """Raise :func:`param_error` unless ``cond`` holds."""
    if not cond:
        raise param_error(owner, name, expected, got)


@dataclass(frozen=True)
class FeatureInfo:
    """What the driver knows about a features column from its schema alone."""

    column: str
    kind: str  # "vector", "array" (floats) or "ids" (integers: token ids, read as int64)
    num_features: int | None  # from ML attribute metadata, when present


def check_schedule_params(stage: Any, owner: str) -> None:
    """``lrSchedule``, ``warmupEpochs`` and ``lrScheduleParams`` together."""
    from spark_dl.training.schedule import check_schedule

    warmup, epochs = stage.getWarmupEpochs(), stage.getMaxEpochs()
    if warmup > epochs:
        raise ValueError(f"The 'warmupEpochs' parameter of {owner} ({warmup:g}) exceeds "
                         f"maxEpochs ({epochs}): lower it or raise maxEpochs.")
    check_schedule(stage.getLrSchedule(), stage.getLrScheduleParams(), stage.getLearningRate(),
                   epochs, owner)
    tb = stage.getTensorboardDir()
    if tb and urlparse(tb).scheme not in ("", "file"):
        raise ValueError(f"The 'tensorboardDir' parameter of {owner} must be a local or "
                         f"mounted path that the rank-0 process can write. Got {tb!r}.")
    if tb:
        from spark_dl.tracking.tensorboard import check_available

        check_available(owner)


def check_inference_precision(precision: str, use_gpu: bool, owner: str) -> str:
    """The ``inferencePrecision`` Param, refused where the device cannot run it."""
    if precision == "float16" and not use_gpu:
        raise ValueError(
            f"The 'inferencePrecision' parameter of {owner} is 'float16', which is for GPU "
            "scoring (useGpu=True); CPUs compute float16 slowly or not at all. Use "
            "'bfloat16' or 'int8-dynamic' on the CPU, or 'float32'.")
    if precision == "int8-dynamic" and use_gpu:
        raise ValueError(
            f"The 'inferencePrecision' parameter of {owner} is 'int8-dynamic', which "
            "torch runs on the CPU only, but useGpu=True. Use 'float16' or 'bfloat16' "
            "on the GPU, or set useGpu=False.")
    return precision


def _type_name(dt: DataType) -> str:
    return dt.simpleString()


def check_column_exists(schema: StructType, column: str, param: str, owner: str) -> DataType:
    """Return the column's type, or raise naming the parameter, the column and what exists."""
    if column not in schema.names:
        raise ValueError(
            f"The '{param}' column {column!r} of {owner} is not in the DataFrame. "
            f"Available columns: {schema.names}."
        )
    return schema[column].dataType


def check_features_column(schema: StructType, column: str, owner: str) -> FeatureInfo:
    """Check that ``column`` is a Vector or an array of float/double."""
    dt = check_column_exists(schema, column, "featuresCol", owner)
    if isinstance(dt, VectorUDT):
        attrs = schema[column].metadata.get("ml_attr", {})
        n = attrs.get("num_attrs")
        return FeatureInfo(column, "vector", int(n) if n is not None else None)
    if isinstance(dt, ArrayType) and isinstance(dt.elementType, _FLOAT_ELEMENTS):
        return FeatureInfo(column, "array", None)
    if isinstance(dt, ArrayType) and isinstance(dt.elementType, _INT_ELEMENTS):
        return FeatureInfo(column, "ids", None)
    raise TypeError(
        f"The 'featuresCol' column {column!r} of {owner} must be a Vector (for example from "
        "VectorAssembler), an array<float>/array<double> (images, windows), or an "
        f"array<int>/array<bigint> of token ids (VocabularyModel). Got {_type_name(dt)}."
    )


def check_numeric_column(schema: StructType, column: str, param: str, owner: str) -> None:
    """Check that ``column`` exists and is numeric (booleans are accepted as 0/1 labels)."""
    dt = check_column_exists(schema, column, param, owner)
    if not isinstance(dt, (NumericType, BooleanType)):
        raise TypeError(
            f"The '{param}' column {column!r} of {owner} must be numeric. Got {_type_name(dt)}."
        )


def features_as_float_array(column: str, kind: str) -> Any:
    """A JVM-side expression turning the features column into ``array<float>``."""
    from pyspark.ml.functions import vector_to_array

    if kind == "vector":  # vector_to_array rejects nulls; keep them null for the checks
        col = F.col(column)
        return F.when(col.isNotNull(), vector_to_array(col, dtype="float32"))
    return F.col(column).cast(ArrayType(FloatType()))


def nominal_num_classes(schema: StructType, label_col: str) -> int | None:
    """Number of classes declared in the label's ML metadata (StringIndexer output), if any."""
    attr = schema[label_col].metadata.get("ml_attr", {})
    if attr.get("type") == "nominal":
        if "num_vals" in attr:
            return int(attr["num_vals"])
        if "vals" in attr:
            return len(attr["vals"])
    return None


@dataclass(frozen=True)
class DataStats:
    """Per-dataset facts gathered in a single Spark job before training."""

    rows: int
    rows_per_partition: dict[int, int]
    null_features: int
    nan_features: int
    min_len: int | None
    max_len: int | None
    min_value: float | None
    max_value: float | None
    null_labels: int
    nan_labels: int
    min_label: float | None
    max_label: float | None
    nonintegral_labels: int
    bad_weights: int
    weight_sum: float
    val_rows: int
    #: Order-independent checksum of the rows' content (sum of per-row hashes mod 2**31).
    checksum: int = 0


def collect_stats(prepared: DataFrame) -> DataStats:
    """One aggregation over the prepared columns ``f``, ``y``, ``w``, ``v``, grouped by partition."""
    f, y, w = F.col("f"), F.col("y"), F.col("w")
    nan_in_f = F.exists(f, lambda x: F.isnan(x))
    per_part = (
        prepared.groupBy(F.spark_partition_id().alias("p"))
        .agg(
            F.count(F.lit(1)).alias("n"),
            F.sum(F.when(f.isNull(), 1).otherwise(0)).alias("null_f"),
            F.sum(F.when(f.isNotNull() & nan_in_f, 1).otherwise(0)).alias("nan_f"),
            F.min(F.size(f)).alias("min_len"),
            F.max(F.size(f)).alias("max_len"),
            F.min(F.array_min(f)).alias("min_v"),
            F.max(F.array_max(f)).alias("max_v"),
            F.sum(F.when(y.isNull(), 1).otherwise(0)).alias("null_y"),
            F.sum(F.when(F.isnan(y), 1).otherwise(0)).alias("nan_y"),
            F.min(F.when(~F.isnan(y), y)).alias("min_y"),
            F.max(F.when(~F.isnan(y), y)).alias("max_y"),
            F.sum(F.when(~F.isnan(y) & (y != F.floor(y)), 1).otherwise(0)).alias("frac_y"),
            F.sum(F.when(w.isNull() | F.isnan(w) | (w < 0), 1).otherwise(0)).alias("bad_w"),
            F.sum(F.when(~F.isnan(w), w)).alias("sum_w"),
            F.sum(F.when(F.col("v"), 1).otherwise(0)).alias("val"),
            F.sum(F.pmod(F.xxhash64(f, y, w), F.lit(2**31))).alias("hash"),
        )
        .collect()
    )

    def total(key: str) -> int:
        return int(sum(r[key] or 0 for r in per_part))

    def extreme(key: str, fn: Any) -> Any:
        vals = [r[key] for r in per_part if r[key] is not None]
        return fn(vals) if vals else None

    return DataStats(
        rows=total("n"),
        rows_per_partition={int(r["p"]): int(r["n"]) for r in per_part},
        null_features=total("null_f"),
        nan_features=total("nan_f"),
        min_len=extreme("min_len", min),
        max_len=extreme("max_len", max),
        min_value=extreme("min_v", min),
        max_value=extreme("max_v", max),
        null_labels=total("null_y"),
        nan_labels=total("nan_y"),
        min_label=extreme("min_y", min),
        max_label=extreme("max_y", max),
        nonintegral_labels=total("frac_y"),
        bad_weights=total("bad_w"),
        weight_sum=float(sum(r["sum_w"] or 0.0 for r in per_part)),
        val_rows=total("val"),
        checksum=total("hash"),
    )


def check_stats(
    stats: DataStats,
    *,
    owner: str,
    features_col: str,
    label_col: str,
    weight_col: str | None,
    declared_features: int | None,
    classification: bool,
    declared_classes: int | None,
    num_processes: int,
) -> tuple[int, int]:
    """Raise on bad data; return ``(num_features, num_outputs)``."""
    if stats.rows == 0:
        raise ValueError(f"{owner} cannot fit on an empty DataFrame (0 rows).")
    if stats.null_features:
        raise ValueError(
            f"The 'featuresCol' column {features_col!r} has {stats.null_features} null value(s); "
            "training needs every row's features. Drop or impute them first "
            "(for example df.na.drop(subset=[...]) or Imputer)."
        )
    if stats.nan_features:
        raise ValueError(
            f"The 'featuresCol' column {features_col!r} has {stats.nan_features} row(s) with NaN "
            "values; training needs finite features. Impute or filter them first."
        )
    if stats.min_len != stats.max_len:
        raise ValueError(
            f"The 'featuresCol' column {features_col!r} has inconsistent lengths: rows have "
            f"between {stats.min_len} and {stats.max_len} values; every row needs the same."
        )
    n_features = int(stats.max_len or 0)
    if n_features == 0:
        raise ValueError(f"The 'featuresCol' column {features_col!r} holds empty vectors.")
    if declared_features is not None and declared_features != n_features:
        raise ValueError(
            f"The 'featuresCol' column {features_col!r} declares {declared_features} features in "
            f"its metadata but rows hold {n_features}."
        )
    if stats.null_labels or stats.nan_labels:
        raise ValueError(
            f"The 'labelCol' column {label_col!r} has {stats.null_labels} null and "
            f"{stats.nan_labels} NaN value(s); every training row needs a label."
        )
    if weight_col and stats.bad_weights:
        raise ValueError(
            f"The 'weightCol' column {weight_col!r} has {stats.bad_weights} null, NaN or "
            "negative value(s); weights must be finite and >= 0."
        )
    if weight_col and stats.weight_sum <= 0:
        raise ValueError(f"The 'weightCol' column {weight_col!r} sums to 0; no row would count.")
    train_rows = stats.rows - stats.val_rows
    if train_rows < num_processes:
        raise ValueError(
            f"{owner} has {train_rows} training row(s) for numProcesses={num_processes}; "
            "each process needs at least one row. Lower numProcesses or add data."
        )
    if not classification:
        return n_features, 1
    return n_features, _num_classes(stats, label_col, declared_classes)


def check_token_ids(stats: DataStats, features_col: str, vocab_size: Any) -> None:
    """Token ids must be >= 0, exact in float32, and below the network's ``vocab_size``."""
    from spark_dl.inputs import MAX_EXACT_ID

    lo, hi = stats.min_value, stats.max_value
    limit = int(vocab_size) if isinstance(vocab_size, int) else MAX_EXACT_ID
    if lo is None or hi is None or lo < 0 or hi >= min(limit, MAX_EXACT_ID):
        where = (f"the network's vocab_size ({limit}); use VocabularyModel.numIds as vocab_size"
                 if limit < MAX_EXACT_ID else f"{MAX_EXACT_ID}")
        raise ValueError(
            f"The 'featuresCol' column {features_col!r} holds integer token ids in [{lo}, {hi}]; "
            f"ids must be >= 0 and below {where}."
        )


def _num_classes(stats: DataStats, label_col: str, declared: int | None) -> int:
    lo, hi = stats.min_label, stats.max_label
    if stats.nonintegral_labels or lo is None or hi is None or lo < 0:
        raise ValueError(
            f"The 'labelCol' column {label_col!r} must hold class indices 0, 1, ..., k-1 "
            f"(integral and >= 0; use StringIndexer for string labels). Got values in "
            f"[{lo}, {hi}], {stats.nonintegral_labels} of them not integral."
        )
    if declared is not None and hi >= declared:
        raise ValueError(
            f"The 'labelCol' column {label_col!r} declares {declared} classes in its metadata "
            f"but holds label {hi:g}; labels must lie in 0..{declared - 1}."
        )
    if lo == hi:
        raise ValueError(
            f"The 'labelCol' column {label_col!r} holds a single class ({lo:g}); a classifier "
            "needs at least two."
        )
    return max(int(hi) + 1, declared or 0)
