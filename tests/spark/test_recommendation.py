"""TorchRecommender as a specification: ALS's API, cold start, both top-k plans against a
brute force, persistence, tuning, implicit feedback, even ranks and its errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pyspark.ml.evaluation import RegressionEvaluator
from pyspark.ml.tuning import ParamGridBuilder, TrainValidationSplit
from pyspark.sql import functions as F

from spark_dl import TorchRecommendationModel, TorchRecommender
from spark_dl.datasets.interactions import interactions

SCHEMA = "user string, item int, rating double, uf array<double>"


@pytest.fixture(scope="module")
def ratings(spark):
    """Ratings from a rank-3 structure; string user ids, sparse int item ids, and user side
    features that carry the user's factors."""
    rng = np.random.default_rng(3)
    U, V = rng.normal(size=(80, 3)), rng.normal(size=(30, 3))
    rows = [(f"u{u}", int(i) * 7 + 1, float(U[u] @ V[i]), U[u].tolist())
            for u in range(80) for i in rng.choice(30, 12, replace=False)]
    return spark.createDataFrame(rows, SCHEMA)


@pytest.fixture(scope="module")
def fitted(ratings):
    rec = TorchRecommender(userFeaturesCol="uf", maxEpochs=25, learningRate=0.02,
                           batchSize=128, modelParams={"embedding_dim": 8, "tower_layers": [16]})
    return rec.fit(ratings)


def test_explicit_ratings_are_learned_far_below_their_spread(ratings, fitted):
    scored = fitted.transform(ratings)
    assert scored.columns == ratings.columns + ["prediction"]
    rmse = RegressionEvaluator(labelCol="rating").evaluate(scored)
    std = ratings.agg(F.stddev("rating")).first()[0]
    assert rmse < 0.5 * std, (rmse, std)
    assert (fitted.numUsers, fitted.numItems) == (80, 30)
    assert fitted.getModelParams()["user_features"] == 3


def test_unknown_ids_follow_cold_start_strategy(spark, fitted):
    df = spark.createDataFrame([("u1", 8, 0.0, None), ("stranger", 8, 0.0, None),
                                ("u1", 999, 0.0, None)], SCHEMA)
    preds = {(r["user"], r["item"]): r["prediction"] for r in fitted.transform(df).collect()}
    assert np.isfinite(preds["u1", 8]), preds
    assert np.isnan(preds["stranger", 8]) and np.isnan(preds["u1", 999]), preds
    dropped = fitted.copy({fitted.coldStartStrategy: "drop"}).transform(df)
    assert [r["user"] for r in dropped.collect()] == ["u1"]


def brute_force(model, side: str, k: int) -> dict:
    net = model.torchModule
    with torch.no_grad():
        scores = net.score_matrix(torch.arange(model.numUsers), torch.arange(model.numItems))
    if side == "item":
        scores = scores.T
    queries, cands = ((model._users, model._items) if side == "user"
                      else (model._items, model._users))
    top = scores.topk(k, dim=1).indices.numpy()
    return {queries.ids[q]: [cands.ids[c] for c in top[q]] for q in range(len(queries))}


@pytest.mark.parametrize("strategy", ["broadcast", "blocked"])
def test_both_top_k_plans_equal_a_brute_force_for_users_items_and_subsets(fitted, ratings,
                                                                          strategy):
    model = fitted.copy({fitted.recommendStrategy: strategy, fitted.blockSize: 7})
    for side, recs in (("user", model.recommendForAllUsers(4)),
                       ("item", model.recommendForAllItems(4))):
        col, other = ("user", "item") if side == "user" else ("item", "user")
        got = {r[col]: [x[other] for x in r["recommendations"]] for r in recs.collect()}
        assert got == brute_force(model, side, 4)
        scores = [x["rating"] for r in recs.collect() for x in r["recommendations"][:1]]
        assert all(np.isfinite(scores))
    subset = model.recommendForUserSubset(ratings.filter(F.col("user").isin("u3", "u9")), 2)
    assert sorted(r["user"] for r in subset.collect()) == ["u3", "u9"]
    assert subset.schema["recommendations"].dataType.elementType.names == ["item", "rating"]


def test_factors_and_persistence_keep_the_scores(spark, fitted, ratings, tmp_path):
    factors = {r["id"]: r["features"] for r in fitted.userFactors.collect()}
    assert len(factors) == 80 and len(factors["u0"]) == 8
    assert fitted.itemFactors.count() == 30
    fitted.write().save(str(tmp_path / "rec"))
    loaded = TorchRecommendationModel.load(str(tmp_path / "rec"))
    a = fitted.transform(ratings).orderBy("user", "item").select("prediction").collect()
    b = loaded.transform(ratings).orderBy("user", "item").select("prediction").collect()
    assert a == b
    assert loaded.numUsers == 80 and loaded._users.ids == fitted._users.ids


def test_ncf_has_no_factors_and_implicit_feedback_learns_the_structure(spark):
    data = interactions(spark, 6000, users=300, items=80, seed=2)
    model = TorchRecommender(model="ncf", implicitPrefs=True, ratingCol="", maxEpochs=4,
                             batchSize=256, validationFraction=0.2, numNegatives=3,
                             userFeaturesCol="user_features",
                             itemFeaturesCol="item_features").fit(data)
    last = model.history[-1]
    assert last["metric"] == "sampled_auc" and last["val_metric"] > 0.75, last
    with pytest.raises(AttributeError, match="'ncf' has no user factors"):
        model.userFactors


def test_power_users_do_not_unbalance_the_training_ranks(spark):
    data = interactions(spark, 4000, users=200, items=50, power_users=0.01, power_share=0.5,
                        seed=4)
    top = data.groupBy("user").count().orderBy(F.desc("count")).first()["count"]
    assert top >= 900  # two power users hold half the rows
    model = TorchRecommender(implicitPrefs=True, ratingCol="", maxEpochs=1, numProcesses=2,
                             modelParams={"embedding_dim": 4, "tower_layers": []}).fit(data)
    rows = [r["train"] for r in model.rowsPerRank]
    assert sum(rows) == 4000 and max(rows) - min(rows) <= 1, rows


def test_tuning_picks_a_candidate_and_refits(ratings):
    rec = TorchRecommender(maxEpochs=10, batchSize=128, userFeaturesCol="uf",
                           coldStartStrategy="drop",
                           modelParams={"embedding_dim": 4, "tower_layers": [8]})
    grid = ParamGridBuilder().addGrid(rec.learningRate, [1e-4, 0.02]).build()
    tvs = TrainValidationSplit(estimator=rec, estimatorParamMaps=grid, trainRatio=0.8, seed=1,
                               evaluator=RegressionEvaluator(labelCol="rating"))
    tuned = tvs.fit(ratings)
    assert np.argmin(tuned.validationMetrics) == 1
    assert isinstance(tuned.bestModel, TorchRecommendationModel)


@pytest.mark.parametrize("kwargs,data,error,match", [
    ({"modelParams": {"num_users": 3}}, None, ValueError, r"must not set \['num_users'\]"),
    ({"ratingCol": ""}, None, ValueError, "'ratingCol' parameter of TorchRecommender is empty"),
    ({"userCol": "score"}, None, TypeError, "'userCol' column 'score'.*integer or string"),
    ({"itemCol": "nope"}, None, ValueError, "'itemCol' column 'nope' .* does not exist"),
    ({}, [(None, 1, 1.0, 2.0)], ValueError, "'userCol' column 'user' .* 1 row\\(s\\) with a "
     "null id"),
    ({"implicitPrefs": True, "ratingCol": "stars"}, None, ValueError,
     "'ratingCol' column 'stars' .* does not exist"),
])
def test_bad_input_is_refused_before_training(spark, kwargs, data, error, match):
    rows = data or [("a", 1, 4.0, 2.0), ("b", 2, 3.0, 1.0)]
    df = spark.createDataFrame(rows, "user string, item int, rating double, score double")
    with pytest.raises(error, match=match):
        TorchRecommender(maxEpochs=1, **kwargs).fit(df)


def test_recommend_refuses_a_bad_k(fitted):
    with pytest.raises(ValueError, match="'numItems' argument of recommendFor\\* must be"):
        fitted.recommendForAllUsers(0)


@pytest.mark.slow
def test_recommendation_pipeline_beats_als_and_popularity_on_ndcg(spark, tmp_path):
    from tests.spark.test_jobs import run_tiny

    result, out = run_tiny(spark, "recommendation", tmp_path, "data.rows=30000",
                           "data.generator.users=1000", "data.generator.items=300",
                           "training.max_epochs=6")
    baseline = result_baseline(out)
    assert result.metrics["ndcg@10"] >= baseline["ALS ndcg@10"] + 0.02, (result.metrics,
                                                                         baseline)
    assert result.metrics["ndcg@10"] > baseline["most popular ndcg@10"], baseline
    assert "ALS ndcg@10" in (out / "report.md").read_text()


def result_baseline(out) -> dict:
    import json

    return json.loads((out / "metrics.json").read_text())["baseline"]
