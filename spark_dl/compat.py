"""Differences between the pyspark releases spark_dl supports, in one place.

Every branch on the pyspark version lives here, with the Spark change that needs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame

#: Values of the ``spark.dl.udf.kind`` conf.
UDF_KINDS = ("auto", "arrow", "pandas")


def arrow_udf(kind: str = "auto") -> Callable[..., Any] | None:
    """``pyspark.sql.functions.arrow_udf``, or None where the pandas-UDF fallback is used.

    Spark 4.1 added ``arrow_udf`` (iterator of ``pyarrow.Array`` in and out, no pandas);
    pyspark 3.5 and 4.0 have only ``pandas_udf``. ``kind`` is the ``spark.dl.udf.kind``
    conf: ``"pandas"`` forces the fallback (for testing it on a recent pyspark, or to work
    around an Arrow UDF problem), ``"arrow"`` refuses to fall back.
    """
    if kind not in UDF_KINDS:
        raise ValueError(f"Spark conf 'spark.dl.udf.kind' must be one of {list(UDF_KINDS)}. "
                         f"Got {kind!r}.")
    if kind == "pandas":
        return None
    try:
        from pyspark.sql.functions import arrow_udf as factory
    except ImportError:  # pyspark < 4.1
        if kind == "arrow":
            import pyspark

            raise ValueError(
                f"Spark conf 'spark.dl.udf.kind' is 'arrow', but pyspark {pyspark.__version__} "
                "has no arrow_udf (added in Spark 4.1). Set it to 'auto' or 'pandas'."
            ) from None
        return None
    return factory  # type: ignore[no-any-return]


def collect_arrow(df: DataFrame) -> pa.Table:
    """Collect a DataFrame to the driver as one Arrow table.

    ``DataFrame.toArrow`` arrived in Spark 4.0; pyspark 3.5 has only the private
    ``_collect_as_arrow``.
    """
    import pyarrow as pa

    if hasattr(df, "toArrow"):
        return df.toArrow()
    batches = df._collect_as_arrow()  # pyspark 3.5
    return pa.Table.from_batches(batches, schema=batches[0].schema) if batches else pa.table({})
