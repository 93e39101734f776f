"""Driver side of scoring: wrap :mod:`spark_dl.inference.scoring` in a Spark Arrow UDF.

The output type is declared up front, so no job runs to discover a schema (and the
model's ``rebalance`` adds no job either: see :mod:`spark_dl.skew.policy`).
``arrow_udf`` (pyspark >= 4.1) hands the function ``pyarrow`` arrays directly; older
releases fall back to an iterator ``pandas_udf`` (also forced by
``spark.dl.udf.kind=pandas``).
"""

from __future__ import annotations

from typing import Callable, Iterator

import pandas as pd
import pyarrow as pa
from pyspark.sql.column import Column

from spark_dl.compat import arrow_udf
from spark_dl.inference.scoring import ScoringTask, score_batches, score_series

_FIELD_TYPES = {"raw": "array<double>", "prob": "array<double>", "pred": "double",
                "attr": "array<double>"}
REGRESSION_TYPE = "double"


def struct_type(outputs: tuple[str, ...]) -> str:
    """The UDF's struct type holding just the requested fields."""
    return ", ".join(f"{name} {_FIELD_TYPES[name]}" for name in outputs)


def scoring_udf(task: ScoringTask, kind: str = "auto") -> Callable[[Column], Column]:
    """A UDF scoring an ``array<float>`` column: a struct of ``task.fields`` (raw, prob,
    pred, attr) or, for regression and reconstruction without attributions, a double.

    ``kind`` is the ``spark.dl.udf.kind`` conf (see :func:`spark_dl.compat.arrow_udf`).
    """
    structured = bool(task.fields)
    # regression: the prediction; reconstruction: each row's mean squared error
    return_type = struct_type(task.fields) if structured else REGRESSION_TYPE
    factory = arrow_udf(kind)
    if factory is not None:

        def score(batches: Iterator[pa.Array]) -> Iterator[pa.Array]:
            return score_batches(batches, task)

        return factory(score, return_type)  # type: ignore[no-any-return]

    from pyspark.sql.functions import pandas_udf

    # pandas_udf infers its kind from the type hints, so each output shape needs its own.
    if structured:

        def score_struct(batches: Iterator[pd.Series]) -> Iterator[pd.DataFrame]:
            return score_series(batches, task)  # type: ignore[return-value]

        struct_udf = pandas_udf(score_struct, return_type)
        return lambda col: _restore_nan(struct_udf(col), task.fields)

    def score_double(batches: Iterator[pd.Series]) -> Iterator[pd.Series]:
        return score_series(batches, task)  # type: ignore[return-value]

    double_udf = pandas_udf(score_double, return_type)
    return lambda col: _nan_for_null(double_udf(col))


def _nan_for_null(col: Column) -> Column:
    from pyspark.sql import functions as F

    return F.coalesce(col, F.lit(float("nan")))


def _restore_nan(col: Column, outputs: tuple[str, ...]) -> Column:
    """Undo pandas' NaN -> null on the way back to Arrow (pyspark converts with
    ``mask=series.isnull()``): the scores of rows kept by ``handleInvalid='keep'`` are NaN
    on the Arrow path and must be NaN here too. The network never yields a null."""
    from pyspark.sql import functions as F

    fields = []
    for name in outputs:
        field = col.getField(name)
        if _FIELD_TYPES[name].startswith("array"):
            field = F.transform(field, _nan_for_null)
        else:
            field = _nan_for_null(field)
        fields.append(field.alias(name))
    return F.struct(*fields)
