"""classWeights on rare classes: balanced weighting finds more of the 1% positives."""

from __future__ import annotations

import numpy as np
import pytest
from pyspark.ml.evaluation import BinaryClassificationEvaluator
from pyspark.ml.linalg import Vectors

from spark_dl import TorchClassifier


def _rare(spark, n, seed):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.01).astype(float)
    X = rng.normal(size=(n, 2)) + y[:, None] * 1.5
    return spark.createDataFrame([(Vectors.dense(x), float(t)) for x, t in zip(X, y)],
                                 ["features", "label"]).repartition(2).cache()


def _recall_at_precision(rows, precision=0.2):
    scored = sorted(((r.probability[1], r.label) for r in rows), reverse=True)
    positives = sum(label for _, label in scored)
    best, hits = 0.0, 0
    for i, (_, label) in enumerate(scored, 1):
        hits += label
        if hits / i >= precision:
            best = max(best, hits / positives)
    return best


@pytest.mark.slow
def test_balanced_weights_raise_recall_on_one_percent_positives(spark):
    train, test = _rare(spark, 20_000, 0), _rare(spark, 20_000, 1)
    base = dict(modelParams={"hidden_layers": [8]}, maxEpochs=1, batchSize=128,
                learningRate=0.003, seed=0)
    models = {cw: TorchClassifier(classWeights=cw, **base).fit(train)
              for cw in ("none", "balanced")}
    recall, auc_pr = {}, {}
    for cw, model in models.items():
        out = model.transform(test)
        recall[cw] = _recall_at_precision(out.select("probability", "label").collect())
        auc_pr[cw] = BinaryClassificationEvaluator(metricName="areaUnderPR").evaluate(out)
    print(f"recall@precision0.2 {recall}, AUC-PR {auc_pr}")
    # The README's figures (one seeded process, so they repeat): recall at precision 0.2
    # from 0.0 to 0.59, AUC-PR from 0.007 (the base rate) to 0.27.
    assert recall["none"] < 0.05 and recall["balanced"] >= 0.55
    assert auc_pr["none"] < 0.02 and auc_pr["balanced"] >= 0.25
    assert models["balanced"].transform(test).filter("prediction = 1").count() > \
        models["none"].transform(test).filter("prediction = 1").count()


def test_explicit_class_weight_map_is_validated(spark):
    df = _rare(spark, 500, 2)
    with pytest.raises(ValueError, match="'classWeights'.*0..1"):
        TorchClassifier(classWeights={"5": 2.0}, maxEpochs=1).fit(df.union(
            df.limit(5).selectExpr("features", "1.0 as label")))


def test_class_weight_map_round_trips_as_json():
    clf = TorchClassifier(classWeights={"1": 50.0})
    assert clf.getClassWeights() == '{"1": 50.0}'
    assert TorchClassifier(classWeights="BALANCED").getClassWeights() == "balanced"
