"""Pieces the scenario modules share: training Params from the config, input checks,
splits and evaluation helpers."""

from __future__ import annotations

from typing import Any

import numpy as np
from pyspark.ml.functions import vector_to_array
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from spark_dl.jobs.config import ConfigError, stage_kwargs
from spark_dl.jobs.outputs import Evaluation, collect_columns


def torch_params(cfg: dict[str, Any], estimator: type) -> dict[str, Any]:
    """Keyword arguments for ``estimator`` from the ``model`` and ``training`` sections:
    every Param the config can set (see :func:`spark_dl.jobs.config.param_schema`)."""
    return stage_kwargs(cfg, estimator)


def require_columns(df: DataFrame, columns: list[str], key: str) -> None:
    """Raise a ConfigError naming the config key when the data lacks a column."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ConfigError(f"{key}: column(s) {missing} are not in the data. Its columns: "
                          f"{df.columns}.")


def random_split(df: DataFrame, cfg: dict[str, Any]) -> tuple[DataFrame, DataFrame]:
    """Train and test rows by ``evaluation.test_fraction`` and ``data.seed``."""
    f = cfg["evaluation"]["test_fraction"]
    train, test = df.randomSplit([1.0 - f, f], seed=cfg["data"]["seed"])
    return train, test


def positive_score(prob_col: str = "probability") -> Any:
    """The probability of class 1 as a double column."""
    return vector_to_array(F.col(prob_col))[1]


def recall_at_precision(labels: np.ndarray, scores: np.ndarray, target: float) -> float:
    """Best recall over thresholds whose precision is at least ``target`` (0 if none, or
    when the labels hold a single class)."""
    from spark_dl.jobs.curves import precision_recall_curve

    keep = ~(np.isnan(labels) | np.isnan(scores))
    y = labels[keep]
    if not 0 < y.sum() < len(y):
        return 0.0
    precision, recall = precision_recall_curve(y, scores[keep])
    ok = precision >= target
    return float(recall[ok].max()) if ok.any() else 0.0


def binary_evaluation(scored: DataFrame, label_col: str, score: Any, *, task: str,
                      precision_target: float | None, columns: list[str],
                      raw_col: str) -> Evaluation:
    """AUC-PR, AUC-ROC (Spark, over every test row) and recall at a precision target."""
    from pyspark.ml.evaluation import BinaryClassificationEvaluator

    metrics = {}
    for name, metric in (("auc_pr", "areaUnderPR"), ("auc_roc", "areaUnderROC")):
        metrics[name] = BinaryClassificationEvaluator(
            rawPredictionCol=raw_col, labelCol=label_col, metricName=metric).evaluate(scored)
    sample = collect_columns(scored.select(F.col(label_col).cast("double").alias("y"),
                                           score.cast("double").alias("s")), ["y", "s"])
    labels, scores = sample["y"], sample["s"]
    base_rate = float(labels.mean()) if len(labels) else 0.0
    if precision_target is not None:
        metrics[f"recall_at_precision_{precision_target:g}"] = recall_at_precision(
            labels, scores, precision_target)
    return Evaluation(task=task, metrics=metrics, scored_columns=columns, labels=labels,
                      scores=scores, baseline={"auc_pr": base_rate, "auc_roc": 0.5},
                      frame=scored)


def multiclass_evaluation(scored: DataFrame, label_col: str, columns: list[str],
                          class_names: list[str] | None = None) -> Evaluation:
    """Accuracy and weighted F1 (Spark), with the majority-class baseline."""
    from pyspark.ml.evaluation import MulticlassClassificationEvaluator

    metrics = {m: MulticlassClassificationEvaluator(labelCol=label_col, metricName=name)
               .evaluate(scored) for m, name in (("accuracy", "accuracy"), ("f1", "f1"))}
    sample = collect_columns(scored.select(F.col(label_col).cast("double").alias("y"),
                                           F.col("prediction").alias("p")), ["y", "p"])
    counts = scored.groupBy(label_col).count().collect()
    total = sum(r["count"] for r in counts)
    majority = max(r["count"] for r in counts) / total if total else 0.0
    return Evaluation(task="multiclass", metrics=metrics, scored_columns=columns,
                      labels=sample["y"], predictions=sample["p"], class_names=class_names,
                      baseline={"accuracy": majority})
