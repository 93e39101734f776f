"""Fraud detection: card transactions with ~0.2% fraud and a few merchants holding most
rows -> assembled, scaled features -> an MLP with balanced class weights. Reports AUC-PR,
AUC-ROC and recall at a fixed precision."""

from __future__ import annotations

from typing import Any

from pyspark.ml import Pipeline
from pyspark.ml.feature import SQLTransformer, StandardScaler, VectorAssembler
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from spark_dl import TorchClassifier
from spark_dl.jobs.common import (
    binary_evaluation,
    positive_score,
    random_split,
    require_columns,
    torch_params,
)
from spark_dl.jobs.config import ConfigError, Float, Int, Mapping, Schema, Str, Strings
from spark_dl.jobs.outputs import Evaluation

TASK = "binary"
FEATURES = ["amount", "hour", "card_age_days", "distance_km", "num_tx_24h", "foreign", "online",
            "merchant_risk"]

#: The estimator whose Params the config's model/training keys set.
ESTIMATOR = TorchClassifier
SCHEMA: Schema = {
    "data": {
        "rows": Int(200_000, minimum=10),
        "generator": {
            "fraud_rate": Float(0.002, low=0.0, high=1.0, open_low=True, open_high=True),
            "merchants": Int(1000, minimum=1),
            "hot_merchants": Int(5, minimum=0),
            "hot_share": Float(0.6, low=0.0, high=1.0),
        },
        "feature_cols": Strings(FEATURES),
        "log_cols": Strings(["amount", "card_age_days", "distance_km"]),
        "label_col": Str("label"),
        "key_col": Str("merchant"),
        "id_col": Str("id"),
    },
    "model": {"name": Str("mlp"), "params": Mapping({"hidden_layers": [64, 32],
                                                     "dropout": 0.1})},
    "evaluation": {"precision_target": Float(0.5, low=0.0, high=1.0, open_low=True)},
    "explain": {"report_rows": Int(10, minimum=0), "report_features": Int(3, minimum=1)},
}


def key_col(cfg: dict[str, Any]) -> str | None:
    return cfg["data"]["key_col"] or None


def label_col(cfg: dict[str, Any]) -> str:
    return cfg["data"]["label_col"]


def generate(spark: Any, cfg: dict[str, Any]) -> DataFrame:
    """Transactions made on the executors (``spark_dl.datasets.transactions``)."""
    from spark_dl.datasets.transactions import transactions

    d = cfg["data"]
    return transactions(spark, d["rows"], seed=d["seed"], partitions=d["partitions"],
                        **d["generator"])


def prepare_input(df: DataFrame, cfg: dict[str, Any]) -> DataFrame:
    """Check the configured columns exist; label as double."""
    d = cfg["data"]
    require_columns(df, d["feature_cols"], "data.feature_cols")
    unknown = [c for c in d["log_cols"] if c not in d["feature_cols"]]
    if unknown:
        raise ConfigError(f"data.log_cols {unknown} must also be in data.feature_cols.")
    require_columns(df, [d["label_col"]], "data.label_col")
    if d["key_col"]:
        require_columns(df, [d["key_col"]], "data.key_col")
    return df.withColumn(d["label_col"], F.col(d["label_col"]).cast("double"))


def split(df: DataFrame, cfg: dict[str, Any]) -> tuple[DataFrame, DataFrame]:
    return random_split(df, cfg)


def build_pipeline(cfg: dict[str, Any], train: DataFrame) -> Pipeline:
    """log1p of skewed amounts -> VectorAssembler -> StandardScaler -> TorchClassifier (MLP,
    balanced class weights)."""
    d = cfg["data"]
    logs = ", ".join(f"ln(1 + greatest(`{c}`, 0)) AS `{c}__log`" for c in d["log_cols"])
    inputs = [f"{c}__log" if c in d["log_cols"] else c for c in d["feature_cols"]]
    stages: list[Any] = []
    if logs:
        stages.append(SQLTransformer(statement=f"SELECT *, {logs} FROM __THIS__"))
    return Pipeline(stages=stages + [
        VectorAssembler(inputCols=inputs, outputCol="raw_features", handleInvalid="skip"),
        StandardScaler(inputCol="raw_features", outputCol="features", withMean=True),
        TorchClassifier(featuresCol="features", labelCol=d["label_col"],
                        **torch_params(cfg, ESTIMATOR)),
    ])


def evaluate_model(model: Any, train: DataFrame, test: DataFrame, scored: DataFrame,
                   cfg: dict[str, Any]) -> Evaluation:
    """:func:`evaluate`, plus the features behind the most likely frauds (toward fraud)."""
    from spark_dl.jobs.explain import explain_top_rows

    evaluation = evaluate(scored, cfg)
    d = cfg["data"]
    names = [f"{c} (log)" if c in d["log_cols"] else c for c in d["feature_cols"]]
    keep = [c for c in (d["id_col"], d["key_col"], d["label_col"]) if c and c in scored.columns]
    evaluation.top_features = explain_top_rows(
        model, scored, positive_score(), cfg, score_name="fraud probability", keep=keep,
        names=names, toward_class=1)
    return evaluation


def evaluate(scored: DataFrame, cfg: dict[str, Any]) -> Evaluation:
    d = cfg["data"]
    keep = [c for c in (d["id_col"], d["key_col"]) if c and c in scored.columns]
    scored_cols = keep + [d["label_col"], "prediction"]
    scored = scored.withColumn("fraud_probability", positive_score())
    return binary_evaluation(
        scored, d["label_col"], F.col("fraud_probability"), task="binary",
        precision_target=cfg["evaluation"]["precision_target"],
        columns=scored_cols + ["fraud_probability"], raw_col="rawPrediction")
