"""Driver side of scoring: wrap :mod:`spark_dl.inference.scoring` in a Spark Arrow UDF.

The output type is declared up front, so building the scored DataFrame runs no job.
``arrow_udf`` (pyspark >= 4.1) hands the function ``pyarrow`` arrays directly; older
releases fall back to an iterator ``pandas_udf``.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

import pandas as pd
import pyarrow as pa
from pyspark.sql.column import Column

from spark_dl.inference.scoring import ScoringTask, score_batches, score_series

_FIELD_TYPES = {"raw": "array<double>", "prob": "array<double>", "pred": "double"}
REGRESSION_TYPE = "double"


def classification_type(outputs: tuple[str, ...]) -> str:
    """The UDF's struct type holding just the requested fields."""
    return ", ".join(f"{name} {_FIELD_TYPES[name]}" for name in outputs)


def scoring_udf(task: ScoringTask) -> Callable[[Column], Column]:
    """A UDF scoring an ``array<float>`` column: a struct (raw, prob, pred) or a double."""
    if task.task == "classification":
        return_type = classification_type(task.outputs)
    else:  # regression: the prediction; reconstruction: each row's mean squared error
        return_type = REGRESSION_TYPE
    try:
        from pyspark.sql.functions import arrow_udf
    except ImportError:  # pyspark < 4.1
        arrow_udf = None
    if arrow_udf is not None:

        def score(batches: Iterator[pa.Array]) -> Iterator[pa.Array]:
            return score_batches(batches, task)

        return arrow_udf(score, return_type)  # type: ignore[no-any-return]

    from pyspark.sql.functions import pandas_udf

    def score_pd(batches: Iterator[pd.Series]) -> Iterator[Any]:
        return score_series(batches, task)

    return pandas_udf(score_pd, return_type)  # type: ignore[no-any-return]
