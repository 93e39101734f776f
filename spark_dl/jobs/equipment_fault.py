"""Equipment faults: multivariate sensor series per machine (a few very chatty machines)
-> windows -> an autoencoder anomaly detector. Reports AUC against the injected faults,
and precision and recall of the fitted threshold."""

from __future__ import annotations

from typing import Any

from pyspark.ml import Pipeline
from pyspark.ml.feature import SQLTransformer
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from spark_dl import SequenceWindower, TorchAnomalyDetector
from spark_dl.datasets.sensors import SENSORS
from spark_dl.jobs.common import binary_evaluation, require_columns, torch_params
from spark_dl.jobs.config import Bool, Float, Int, Mapping, Schema, Str, Strings
from spark_dl.jobs.outputs import Evaluation

TASK = "anomaly"

#: The estimator whose Params the config's model/training keys set.
ESTIMATOR = TorchAnomalyDetector
SCHEMA: Schema = {
    "data": {
        "rows": Int(100_000, minimum=10),
        "generator": {"machines": Int(20, minimum=1), "chatty": Int(2, minimum=0),
                      "chatty_share": Float(0.6, low=0.0, high=1.0),
                      "fault_rate": Float(0.03, low=0.0, high=1.0)},
        "key_col": Str("machine"),
        "time_col": Str("t"),
        "value_cols": Strings(list(SENSORS)),
        "label_col": Str("fault"),
    },
    "windows": {"length": Int(16, minimum=1), "step": Int(4, minimum=1),
                "segment_rows": Int(2000, minimum=2)},
    "model": {"name": Str("autoencoder"),
              "params": Mapping({"kind": "dense", "hidden_layers": [32], "latent_dim": 6})},
    "training": {"exclude_labelled_faults": Bool(True)},
    "explain": {"report_rows": Int(10, minimum=0), "report_features": Int(3, minimum=1)},
}


def key_col(cfg: dict[str, Any]) -> str | None:
    return cfg["data"]["key_col"]


def label_col(cfg: dict[str, Any]) -> str:
    return cfg["data"]["label_col"]


def generate(spark: Any, cfg: dict[str, Any]) -> DataFrame:
    """Sensor series made on the executors (``spark_dl.datasets.sensor_series``)."""
    from spark_dl.datasets import sensor_series

    d = cfg["data"]
    return sensor_series(spark, d["rows"], seed=d["seed"], partitions=d["partitions"],
                         **d["generator"])


def prepare_input(df: DataFrame, cfg: dict[str, Any]) -> DataFrame:
    """Cut each machine's series into segments of ``windows.segment_rows`` time steps: a
    segment is one series for the windower and the unit of the train/test split."""
    d = cfg["data"]
    require_columns(df, [d["key_col"], d["time_col"], d["label_col"], *d["value_cols"]],
                    "data.key_col / time_col / label_col / value_cols")
    segment = F.floor(F.col(d["time_col"]) / cfg["windows"]["segment_rows"])
    return (df.withColumn("series", F.concat_ws("#", F.col(d["key_col"]).cast("string"),
                                                segment.cast("string")))
            .withColumn(d["label_col"], F.col(d["label_col"]).cast("double")))


def split(df: DataFrame, cfg: dict[str, Any]) -> tuple[DataFrame, DataFrame]:
    """Whole segments go to train or test, so no window straddles the two."""
    f = cfg["evaluation"]["test_fraction"]
    bucket = F.pmod(F.xxhash64("series", F.lit(cfg["data"]["seed"])), F.lit(1000))
    is_test = bucket < F.lit(int(round(f * 1000)))
    return df.filter(~is_test), df.filter(is_test)


def build_pipeline(cfg: dict[str, Any], train: DataFrame) -> Pipeline:
    """SequenceWindower -> (weight 0 for labelled faults) -> TorchAnomalyDetector."""
    d, w, t = cfg["data"], cfg["windows"], cfg["training"]
    stages: list[Any] = [SequenceWindower(
        keyCol="series", timeCol=d["time_col"], valueCols=d["value_cols"],
        windowLength=w["length"], step=w["step"], labelCol=d["label_col"],
        outputLabelCol="label")]
    weight = None
    if t["exclude_labelled_faults"]:
        stages.append(SQLTransformer(
            statement="SELECT *, CAST(label = 0 AS DOUBLE) AS normal_weight FROM __THIS__"))
        weight = "normal_weight"
    params = torch_params(cfg, ESTIMATOR)
    stages.append(TorchAnomalyDetector(
        featuresCol="features", inputShape=[w["length"], len(d["value_cols"])],
        weightCol=weight, **params))
    return Pipeline(stages=stages)


def evaluate_model(model: Any, train: DataFrame, test: DataFrame, scored: DataFrame,
                   cfg: dict[str, Any]) -> Evaluation:
    """:func:`evaluate`, plus the sensors behind the most anomalous windows."""
    from spark_dl.jobs.explain import explain_top_rows

    evaluation = evaluate(scored, cfg)
    sensors = cfg["data"]["value_cols"]
    evaluation.top_features = explain_top_rows(
        model, scored, F.col("anomalyScore"), cfg, score_name="anomaly score",
        keep=["series", "windowStart", "label"],
        names=sensors * cfg["windows"]["length"])  # row-major (step, sensor) windows
    return evaluation


def evaluate(scored: DataFrame, cfg: dict[str, Any]) -> Evaluation:
    evaluation = binary_evaluation(
        scored, "label", F.col("anomalyScore"), task="anomaly", precision_target=None,
        columns=["series", "windowStart", "windowEnd", "label", "anomalyScore", "isAnomaly"],
        raw_col="anomalyScore")
    counts = scored.groupBy("label", "isAnomaly").count().collect()
    n = {(r["label"], r["isAnomaly"]): r["count"] for r in counts}
    tp, fp, fn = n.get((1.0, True), 0), n.get((0.0, True), 0), n.get((1.0, False), 0)
    evaluation.metrics["precision_at_threshold"] = tp / (tp + fp) if tp + fp else 0.0
    evaluation.metrics["recall_at_threshold"] = tp / (tp + fn) if tp + fn else 0.0
    return evaluation
