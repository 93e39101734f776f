"""Price trend: daily prices per ticker (a few hot tickers) -> daily returns and ranges
-> 16-day windows -> an LSTM forecasting tomorrow's move. Reports accuracy and F1 against
the majority-direction and "same as today" baselines."""

from __future__ import annotations

from typing import Any

from pyspark.ml import Pipeline
from pyspark.ml.feature import SQLTransformer
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from spark_dl import SequenceWindower, TorchClassifier
from spark_dl.jobs.common import multiclass_evaluation, require_columns, torch_params
from spark_dl.jobs.config import Float, Int, Mapping, Schema, Str
from spark_dl.jobs.outputs import Evaluation

TASK = "binary"
#: Daily inputs of each window step, in percent (volume change as a log ratio).
DAILY = ("ret", "range", "body", "vol_chg")
DAILY_SQL = """
SELECT *,
  100 * ln(close / lag(close) OVER w) AS ret,
  100 * (high - low) / close AS range,
  100 * (close - open) / open AS body,
  ln(volume / lag(volume) OVER w) AS vol_chg
FROM __THIS__
WINDOW w AS (PARTITION BY {key} ORDER BY {time})
"""

#: The estimator whose Params the config's model/training keys set.
ESTIMATOR = TorchClassifier
SCHEMA: Schema = {
    "data": {
        "rows": Int(100_000, minimum=10),
        "generator": {"tickers": Int(50, minimum=1), "hot_tickers": Int(3, minimum=0),
                      "hot_share": Float(0.5, low=0.0, high=1.0)},
        "key_col": Str("ticker"),
        "time_col": Str("day"),
        "label_col": Str("next_up"),
    },
    "windows": {"length": Int(16, minimum=2)},
    "model": {"name": Str("lstm"), "params": Mapping({"hidden_size": 32, "num_layers": 1})},
}


def key_col(cfg: dict[str, Any]) -> str | None:
    return cfg["data"]["key_col"]


def label_col(cfg: dict[str, Any]) -> str:
    return cfg["data"]["label_col"]


def generate(spark: Any, cfg: dict[str, Any]) -> DataFrame:
    """Daily prices made on the executors (``spark_dl.datasets.prices``)."""
    from spark_dl.datasets.prices import prices

    d = cfg["data"]
    return prices(spark, d["rows"], seed=d["seed"], partitions=d["partitions"], **d["generator"])


def prepare_input(df: DataFrame, cfg: dict[str, Any]) -> DataFrame:
    d = cfg["data"]
    require_columns(df, [d["key_col"], d["time_col"], d["label_col"], "open", "high", "low",
                         "close", "volume"], "data.key_col / time_col / label_col (+ OHLCV)")
    return df.withColumn(d["label_col"], F.col(d["label_col"]).cast("double"))


def split(df: DataFrame, cfg: dict[str, Any]) -> tuple[DataFrame, DataFrame]:
    """By time: the last ``test_fraction`` of each ticker's days are the test set."""
    d = cfg["data"]
    span = Window.partitionBy(d["key_col"])
    first, last = F.min(d["time_col"]).over(span), F.max(d["time_col"]).over(span)
    cutoff = first + (last - first) * (1.0 - cfg["evaluation"]["test_fraction"])
    marked = df.withColumn("_test", F.col(d["time_col"]) >= cutoff)
    return (marked.filter(~F.col("_test")).drop("_test"),
            marked.filter(F.col("_test")).drop("_test"))


def build_pipeline(cfg: dict[str, Any], train: DataFrame) -> Pipeline:
    """Daily features (SQL window functions) -> SequenceWindower -> TorchClassifier(lstm)."""
    d, length = cfg["data"], cfg["windows"]["length"]
    return Pipeline(stages=[
        SQLTransformer(statement=DAILY_SQL.format(key=d["key_col"], time=d["time_col"])),
        SequenceWindower(keyCol=d["key_col"], timeCol=d["time_col"], valueCols=list(DAILY),
                         windowLength=length, labelCol=d["label_col"], outputLabelCol="label"),
        TorchClassifier(featuresCol="features", labelCol="label",
                        inputShape=[length, len(DAILY)], **torch_params(cfg, ESTIMATOR)),
    ])


def evaluate(scored: DataFrame, cfg: dict[str, Any]) -> Evaluation:
    d, length = cfg["data"], cfg["windows"]["length"]
    cols = [d["key_col"], "windowStart", "windowEnd", "label", "prediction"]
    evaluation = multiclass_evaluation(scored, "label", cols, ["down", "up"])
    last_return = F.element_at("features", (length - 1) * len(DAILY) + 1)  # ret of the last day
    same = scored.select(F.mean(((last_return > 0).cast("double") == F.col("label"))
                                .cast("double"))).first()[0]
    evaluation.baseline["same as today accuracy"] = float(same or 0.0)
    return evaluation
