"""Recommendation: user-item interactions (1% of users hold half of them, power-law item
popularity, user and item side features) -> a time-based split -> TorchRecommender.
Reports NDCG@k, precision@k and MAP@k with Spark's RankingEvaluator over the users of the
test period, and RMSE for explicit ratings, side by side with pyspark.ml's ALS trained on
the same split and a most-popular-items baseline."""

from __future__ import annotations

from typing import Any

from pyspark.ml import Pipeline
from pyspark.ml.evaluation import RankingEvaluator, RegressionEvaluator
from pyspark.ml.recommendation import ALS
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from spark_dl.jobs.common import require_columns, torch_params
from spark_dl.jobs.config import Float, Int, Mapping, Schema, Str
from spark_dl.jobs.outputs import Evaluation, collect_columns
from spark_dl.recommendation import TorchRecommender

TASK = "regression"
#: The estimator whose Params the config's model/training keys set.
ESTIMATOR = TorchRecommender
#: RankingEvaluator metric names and how the report names them.
RANKING = {"ndcgAtK": "ndcg@{k}", "precisionAtK": "precision@{k}",
           "meanAveragePrecisionAtK": "map@{k}"}
SCHEMA: Schema = {
    "data": {
        "rows": Int(60_000, minimum=10),
        "generator": {"users": Int(2000, minimum=1), "items": Int(500, minimum=1),
                      "power_users": Float(0.01, low=0.0, high=1.0),
                      "power_share": Float(0.5, low=0.0, high=1.0)},
        "time_col": Str("day"),
    },
    "model": {"name": Str("two_tower"),
              "params": Mapping({"embedding_dim": 32, "tower_layers": [64]}),
              "user_features_col": Str("user_features"),
              "item_features_col": Str("item_features")},
    "evaluation": {"k": Int(10, minimum=1)},
    "baseline": {"als": Mapping({"rank": 32, "maxIter": 10, "regParam": 0.1, "alpha": 10.0})},
}


def key_col(cfg: dict[str, Any]) -> str | None:
    return cfg["model"]["user_col"]


def label_col(cfg: dict[str, Any]) -> str | None:
    return None


def generate(spark: Any, cfg: dict[str, Any]) -> DataFrame:
    """Interactions made on the executors (``spark_dl.datasets.interactions``)."""
    from spark_dl.datasets.interactions import interactions

    d = cfg["data"]
    return interactions(spark, d["rows"], seed=d["seed"], partitions=d["partitions"],
                        **d["generator"])


def _columns(cfg: dict[str, Any]) -> list[str]:
    m = cfg["model"]
    cols = [m["user_col"], m["item_col"], cfg["data"]["time_col"]]
    cols += [m[k] for k in ("rating_col", "user_features_col", "item_features_col") if m[k]]
    return cols


def prepare_input(df: DataFrame, cfg: dict[str, Any]) -> DataFrame:
    require_columns(df, _columns(cfg), "model.user_col / item_col / rating_col / "
                    "user_features_col / item_features_col, data.time_col")
    return df


def split(df: DataFrame, cfg: dict[str, Any]) -> tuple[DataFrame, DataFrame]:
    """By time: interactions after the (1 - test_fraction) quantile of ``time_col``."""
    time_col = cfg["data"]["time_col"]
    (cutoff,) = df.approxQuantile(time_col, [1.0 - cfg["evaluation"]["test_fraction"]], 1e-3)
    return df.filter(F.col(time_col) < cutoff), df.filter(F.col(time_col) >= cutoff)


def build_pipeline(cfg: dict[str, Any], train: DataFrame) -> Pipeline:
    m = cfg["model"]
    params = torch_params(cfg, ESTIMATOR)
    params.update(userFeaturesCol=m["user_features_col"] or None,
                  itemFeaturesCol=m["item_features_col"] or None)
    return Pipeline(stages=[TorchRecommender(**{k: v for k, v in params.items()
                                                if v is not None})])


def _ranking(recs: DataFrame, truth: DataFrame, cfg: dict[str, Any], item_col: str,
             user_col: str) -> dict[str, float]:
    """RankingEvaluator's metrics of ``recs`` (user, recommendations) against ``truth``."""
    k = cfg["evaluation"]["k"]
    predicted = recs.select(user_col, F.transform("recommendations", lambda r: r[item_col]
                                                  .cast("double")).alias("predicted"))
    joined = truth.join(predicted, on=user_col, how="left").select(
        F.coalesce("predicted", F.array().cast("array<double>")).alias("predicted"),
        "relevant").cache()
    out = {name.format(k=k): RankingEvaluator(predictionCol="predicted", labelCol="relevant",
                                              metricName=metric, k=k).evaluate(joined)
           for metric, name in RANKING.items()}
    joined.unpersist()
    return out


def evaluate_model(model: Any, train: DataFrame, test: DataFrame, scored: DataFrame,
                   cfg: dict[str, Any]) -> Evaluation:
    """Ranking metrics (and RMSE for explicit ratings) of the model, ALS and popularity."""
    m, k = cfg["model"], cfg["evaluation"]["k"]
    user_col, item_col, rating_col = m["user_col"], m["item_col"], m["rating_col"]
    rec = model.stages[-1]
    known = train.select(user_col).distinct()
    truth = test.join(known, on=user_col).groupBy(user_col).agg(
        F.collect_set(F.col(item_col).cast("double")).alias("relevant")).cache()
    metrics = _ranking(rec.recommendForUserSubset(truth, k), truth, cfg, item_col, user_col)
    als = _als(cfg).fit(train if m["rating_col"] else train.withColumn("__one", F.lit(1.0)))
    baseline = {f"ALS {n}": v for n, v in
                _ranking(als.recommendForUserSubset(truth, k), truth, cfg, item_col,
                         user_col).items()}
    popular = [r[0] for r in train.groupBy(item_col).count().orderBy(
        F.desc("count"), item_col).limit(k).collect()]
    top = truth.select(user_col, F.array(*[F.struct(F.lit(i).alias(item_col))
                                            for i in popular]).alias("recommendations"))
    baseline.update({f"most popular {n}": v for n, v in
                     _ranking(top, truth, cfg, item_col, user_col).items()})
    notes = [f"Ranking metrics over the {truth.count():,} test-period users seen in training: "
             f"their top {k} against the items they interacted with in the test period."]
    labels = predictions = None
    if not m["implicit_prefs"]:
        rmse = RegressionEvaluator(labelCol=rating_col, predictionCol="prediction")
        metrics["rmse"] = rmse.evaluate(scored.filter(~F.isnan("prediction")))
        baseline["ALS rmse"] = rmse.evaluate(als.transform(test).filter(~F.isnan("prediction")))
        got = collect_columns(scored.filter(~F.isnan("prediction")), [rating_col, "prediction"])
        labels, predictions = got[rating_col], got["prediction"]
    truth.unpersist()
    return Evaluation(TASK, metrics, [user_col, item_col, "prediction"], labels=labels,
                      predictions=predictions, baseline=baseline, notes=notes)


def _als(cfg: dict[str, Any]) -> ALS:
    m = cfg["model"]
    return ALS(userCol=m["user_col"], itemCol=m["item_col"],
               ratingCol=m["rating_col"] or "__one", implicitPrefs=m["implicit_prefs"],
               coldStartStrategy="drop", seed=cfg["training"]["seed"],
               **cfg["baseline"]["als"])
