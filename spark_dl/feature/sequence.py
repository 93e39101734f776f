"""Fixed-length windows over per-key time series, for LSTM, Transformer and autoencoder training.

Driver side: :class:`SequenceWindower` validates its Params and plans, without a job:
every row's position within its key (Spark's ``row_number`` window), then each key cut
into chunks of ``maxRowsPerTask`` rows that overlap by ``windowLength - 1 + horizon`` rows
(the halo), one pandas group per chunk. Executor side:
:func:`chunk_windows` turns one chunk into windows with numpy, given plain values only.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.ml import Transformer
from pyspark.ml.param.shared import HasOutputCol
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ArrayType,
    DateType,
    DoubleType,
    FloatType,
    NumericType,
    StructField,
    StructType,
    TimestampNTZType,
    TimestampType,
)

from spark_dl.feature._windows import WindowSpec, _group_function
from spark_dl.param_table import (
    HANDLE_INVALID,
    Check,
    ParamSpec,
    TableParams,
    at_least,
    declare,
    one_of,
    stage,
    validate_params,
)
from spark_dl.persistence import Persistable
from spark_dl.validation import (
    check_column_exists,
    check_numeric_column,
    refuse_streaming,
    require,
)

WINDOW_START, WINDOW_END = "windowStart", "windowEnd"
_OWNER = "SequenceWindower"
_TIME_TYPES = (TimestampType, TimestampNTZType, DateType, NumericType)



@dataclass(frozen=True)
class _Plan:
    """The resolved, validated Params of one transform() call."""

    key: str
    time: str
    values: tuple[str, ...]
    label: str | None
    handle: str
    spec: WindowSpec


@declare(
    ParamSpec("keyCol", "Column naming the series each row belongs to; rows with equal keys "
              "form one series.", required=True),
    ParamSpec("timeCol", "Timestamp, date or numeric column that orders the rows of each "
              "series.", required=True),
    ParamSpec("valueCols", "Numeric columns holding the F values of each time step, in this "
              "order.", kind="strs", required=True,
              check=Check(lambda v: len(v) > 0, "a non-empty list of column names")),
    ParamSpec("windowLength", "Number of time steps T in each window (>= 1).", kind="int",
              required=True, check=at_least(1)),
    ParamSpec("step", "Rows between the starts of consecutive windows of a series (>= 1).",
              kind="int", default=1, check=at_least(1)),
    ParamSpec("horizon", "The label is read this many rows after a window's last step (>= 0); "
              "a window needs that row to exist even without labelCol.", kind="int",
              default=0, check=at_least(0)),
    ParamSpec("labelCol", "Optional numeric column whose value at row start + windowLength - 1 "
              "+ horizon of the series becomes the window's label. Unset: no label column."),
    ParamSpec("outputCol", default="features"),
    ParamSpec("outputLabelCol", "Output column holding each window's label (double), when "
              "labelCol is set.", default="label"),
    ParamSpec("maxRowsPerTask", "A series with more rows is cut into chunks of this many rows, "
              "so no Python task holds it whole (>= windowLength + horizon).", kind="int",
              default=100_000),
    ParamSpec("handleInvalid", "What to do with null keys or times and null or NaN values or "
              "labels: 'skip' drops them (and the windows holding them), 'error' fails the "
              "query that reads the output, "
              "'keep' keeps null keys as a series, NaN values in windows and null labels.",
              default="skip", check=one_of(HANDLE_INVALID)),
)
class _SequenceWindowerParams(TableParams, HasOutputCol):
    """Params of :class:`SequenceWindower`."""


@stage()
class SequenceWindower(Transformer, _SequenceWindowerParams, Persistable):
    """Turns per-key time series into fixed-length windows, one output row per window.

    Within each key the rows are sorted by ``timeCol``; a window is ``windowLength`` (T)
    consecutive rows, flattened row-major into ``outputCol`` (``array<float>`` of T * F
    values: step 0's F ``valueCols``, then step 1's, ...). Windows start at rows 0, step,
    2*step, ... of the key and need ``T + horizon`` rows, so the label row exists:
    ``outputLabelCol`` is ``labelCol`` (as double) at row ``start + T - 1 + horizon``.
    Output columns: keyCol, ``windowStart`` and ``windowEnd`` (the times of the first and
    last step), outputCol and, when labelCol is set, outputLabelCol. Other input columns
    are not carried over.

    Hot keys: the windowing (the Python part) never holds a key with more than
    ``maxRowsPerTask`` rows whole. Rows are numbered within their key by Spark's
    ``row_number`` window (a key's rows pass once through one task's external sort, which
    spills to disk rather than hold them), and each key is cut into chunks of
    ``maxRowsPerTask`` rows; each chunk also receives the next ``T - 1 + horizon`` rows,
    so every pandas group holds at most ``maxRowsPerTask + T - 1 + horizon`` rows and the
    chunks of a hot key spread over many tasks. The output does not depend on
    ``maxRowsPerTask``. ``transform()`` runs no job: numbering and windowing happen in the
    query that reads the output.

    Edge cases:

    * Unsorted input is sorted by time within each key.
    * Duplicate timestamps are kept and each counts as a step; ties are ordered by the
      value columns (then the label), so the output is deterministic.
    * Gaps in time are not filled: windows count rows, not time. To drop windows that
      span a gap, keep those whose ``windowEnd - windowStart`` is (T - 1) sampling steps.
    * A series shorter than ``T + horizon`` rows yields no windows (no error).
    * ``handleInvalid``: a null key or time, and a null or NaN value or label, are invalid.
      ``'skip'`` (default) drops rows with a null key or time, and the windows holding a
      null/NaN value or label (such a row still counts as a step, so windows never stitch
      across it). ``'error'`` fails the query that reads the output at the first invalid
      entry, naming its column (``transform`` runs no job to look for them). ``'keep'``
      treats null keys as one series of their own and keeps every window: a null/NaN
      value is NaN in outputCol, a null/NaN label is a null outputLabelCol. Rows with a
      null time are still dropped (they have no place).

    Examples
    --------
    >>> df = spark.createDataFrame([("a", t, float(t), 10.0 * t) for t in range(6)],
    ...                            "k string, t long, x double, y double")
    >>> w = SequenceWindower(keyCol="k", timeCol="t", valueCols=["x"], windowLength=3,
    ...                      step=2, horizon=1, labelCol="y")
    >>> out = w.transform(df).orderBy("windowStart")
    >>> [(r.windowStart, r.features, r.label) for r in out.collect()]
    [(0, [0.0, 1.0, 2.0], 30.0), (2, [2.0, 3.0, 4.0], 50.0)]
    """

    # ------------------------------------------------------------------ driver: validation
    def _resolve(self, schema: StructType) -> _Plan:
        """Validate every Param against ``schema`` (no Spark job) into plain values."""
        self._check_ranges()
        key, time, values = self.getKeyCol(), self.getTimeCol(), tuple(self.getValueCols())
        check_column_exists(schema, key, "keyCol", _OWNER)
        time_type = check_column_exists(schema, time, "timeCol", _OWNER)
        if not isinstance(time_type, _TIME_TYPES):
            raise TypeError(f"The 'timeCol' column {time!r} of {_OWNER} must be a timestamp, "
                            f"date or numeric column. Got {time_type.simpleString()}.")
        for col in values:
            check_numeric_column(schema, col, "valueCols", _OWNER)
        label = self.getLabelCol()
        if label is not None:
            check_numeric_column(schema, label, "labelCol", _OWNER)
        names: tuple[str, ...] = (key, WINDOW_START, WINDOW_END, self.getOutputCol())
        names += (self.getOutputLabelCol(),) if label is not None else ()
        if len(set(names)) < len(names):
            raise ValueError(f"The output columns of {_OWNER} must have distinct names "
                             f"(keyCol, windowStart, windowEnd, outputCol, outputLabelCol). "
                             f"Got {list(names)}.")
        spec = WindowSpec(self.getWindowLength(), self.getStep(), self.getHorizon(),
                          self.getMaxRowsPerTask(), len(values), label is not None,
                          self.getHandleInvalid() == "skip", names)
        return _Plan(key, time, values, label, self.getHandleInvalid(), spec)

    def _check_ranges(self) -> None:
        validate_params(self, _OWNER)
        t, h, m = self.getWindowLength(), self.getHorizon(), self.getMaxRowsPerTask()
        require(m >= t + h, _OWNER, "maxRowsPerTask",
                f"an int >= windowLength + horizon ({t + h})", m)

    def transformSchema(self, schema: StructType) -> StructType:
        """The output schema, from the input schema alone (validates the Params)."""
        return _output_schema(schema, self._resolve(schema))

    # ------------------------------------------------------------------ driver: plan
    def _transform(self, dataset: DataFrame) -> DataFrame:
        refuse_streaming(dataset, _OWNER, "window", "a series spans micro-batches. Window "
                         "each micro-batch yourself in foreachBatch (its rows only), or window "
                         "the stream's stored history as a batch DataFrame.")
        plan = self._resolve(dataset.schema)
        if plan.handle == "error":
            dataset = _fail_on_invalid(dataset, plan)
        schema = _output_schema(dataset.schema, plan)
        # Hash by the chunk too: a grouping on (_k, _chunk) is already satisfied by the
        # numbering's partitioning on _k, which would window a hot key in one task.
        chunks = self._chunks(dataset, plan).repartition("_k", "_chunk")
        groups = chunks.groupBy("_k", "_chunk")
        return groups.applyInPandas(_group_function(plan.spec), schema)

    def _chunks(self, dataset: DataFrame, plan: _Plan | None = None) -> DataFrame:
        """The rows each pandas group receives, halo rows included (for tests and debugging).

        Columns ``_k``, ``_t``, ``_v0``... (and ``_y``), ``_pos`` (row index within the key)
        and ``_chunk``; groups are ``(_k, _chunk)``.
        """
        plan = plan or self._resolve(dataset.schema)
        m, halo = plan.spec.max_rows, plan.spec.halo
        rows = _with_positions(_projected_rows(dataset, plan))
        own = F.expr(f"_pos div {m}")
        borrowed = (F.pmod(F.col("_pos"), F.lit(m)) < halo) & (own > 0)
        chunks = F.when(borrowed, F.array(own, own - 1)).otherwise(F.array(own))
        return rows.select("*", F.explode(chunks).alias("_chunk"))


def _output_schema(schema: StructType, plan: _Plan) -> StructType:
    key, start, end, out = plan.spec.names[:4]
    time_type = schema[plan.time].dataType
    fields = [StructField(key, schema[plan.key].dataType), StructField(start, time_type),
              StructField(end, time_type), StructField(out, ArrayType(FloatType()))]
    if plan.label is not None:
        fields.append(StructField(plan.spec.names[4], DoubleType()))
    return StructType(fields)


def _null_or_nan(col: str) -> Column:
    return F.col(col).isNull() | F.isnan(F.col(col).cast("double"))


def _fail_on_invalid(rows: DataFrame, plan: _Plan) -> DataFrame:
    """handleInvalid='error': the query that reads the output fails at the first invalid
    entry, naming its column (Spark's ``raise_error``; ``transform`` itself runs no job)."""
    checks = [("keyCol", plan.key, F.col(plan.key).isNull(), "a null value"),
              ("timeCol", plan.time, F.col(plan.time).isNull(), "a null value")]
    checks += [("valueCols", c, _null_or_nan(c), "a null or NaN value") for c in plan.values]
    if plan.label is not None:
        checks.append(("labelCol", plan.label, _null_or_nan(plan.label), "a null or NaN value"))
    failure = F.lit(None)
    for param, col, invalid, what in reversed(checks):
        msg = (f"The '{param}' column {col!r} of {_OWNER} has {what} and "
               "handleInvalid='error'. Filter or impute them first, or set "
               "handleInvalid='skip' (drops them) or 'keep'.")
        failure = F.when(invalid, F.raise_error(F.lit(msg))).otherwise(failure)
    return rows.where(failure.isNull())


def _projected_rows(df: DataFrame, plan: _Plan) -> DataFrame:
    """Project to internal names ``_k``, ``_t``, ``_v0``... (and ``_y``); drop what has no place."""
    cols = [F.col(plan.key).alias("_k"), F.col(plan.time).alias("_t")]
    cols += [F.col(c).cast("double").alias(f"_v{i}") for i, c in enumerate(plan.values)]
    if plan.label is not None:
        cols.append(F.col(plan.label).cast("double").alias("_y"))
    rows = df.select(*cols)
    if plan.handle == "error":  # _fail_on_invalid's filter: the optimizer may run these first
        return rows
    rows = rows.where(F.col("_t").isNotNull())
    return rows.where(F.col("_k").isNotNull()) if plan.handle == "skip" else rows


def _with_positions(rows: DataFrame) -> DataFrame:
    """Add ``_pos``, each row's index within its key, in the same query (no job).

    Spark's window ``row_number()`` over the key, ordered by every other column: rows that
    tie are identical, so the numbering is deterministic. A key's rows pass through one
    task here, in Spark's external sort, which spills to disk rather than hold them; the
    Python windowing after it receives chunks of at most ``maxRowsPerTask`` rows.
    """
    order = Window.partitionBy("_k").orderBy(*rows.columns[1:])
    return rows.select("*", (F.row_number().over(order) - 1).alias("_pos"))
