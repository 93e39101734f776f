"""TorchClassifier as a Spark ML classifier: outputs, evaluators, history, the module."""

from __future__ import annotations

import numpy as np
import torch
from datagen import blobs, vector_df
from pyspark.ml.evaluation import BinaryClassificationEvaluator, MulticlassClassificationEvaluator
from pyspark.ml.linalg import VectorUDT
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType

from spark_dl import TorchClassificationModel, TorchClassifier


def _held_out(spark, n, d, k, seed):
    """Rows ``n..2n`` of the blobs whose first ``n`` rows the model trained on: the same
    distribution, never seen in training."""
    X, y = blobs(n=2 * n, d=d, k=k, seed=seed)
    return X[n:], y[n:]


def test_binary_outputs_work_with_spark_evaluators(spark, fitted_clf):
    X, y = _held_out(spark, 400, 4, 2, seed=0)
    out = fitted_clf.transform(vector_df(spark, X, y))
    schema = out.schema
    assert isinstance(schema["rawPrediction"].dataType, VectorUDT)
    assert isinstance(schema["probability"].dataType, VectorUDT)
    assert schema["prediction"].dataType == DoubleType()
    assert BinaryClassificationEvaluator().evaluate(out) > 0.95
    assert MulticlassClassificationEvaluator(metricName="accuracy").evaluate(out) > 0.9
    assert out.count() == 400


def test_history_and_torch_module(fitted_clf, binary_df):
    history = fitted_clf.history
    assert [h["epoch"] for h in history] == [1, 2, 3, 4, 5]
    assert {"train_loss", "val_loss", "val_metric"} <= set(history[0])
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert isinstance(fitted_clf.torchModule, torch.nn.Module)
    assert fitted_clf.numFeatures == 4 and fitted_clf.numClasses == 2
    timings = fitted_clf.trainingTimings
    assert list(timings)[0] == "data_checked" and list(timings)[-1] == "fit_finished"
    assert 0 < timings["rank_started"] < timings["data_loaded"] < timings["first_step"]
    row = binary_df.select("features").first()
    with torch.no_grad():
        logits = fitted_clf.torchModule(torch.tensor(row.features.toArray()[None, :], dtype=torch.float32))
    scored = fitted_clf.transform(binary_df.limit(1)).first()
    # rawPrediction as LogisticRegressionModel: [-m, m], m = l1 - l0 the log-odds, and
    # probability[1] = sigmoid(rawPrediction[1]).
    m = float(logits[0, 1] - logits[0, 0])
    np.testing.assert_allclose(scored.rawPrediction.toArray(), [-m, m], rtol=1e-5, atol=1e-6)
    p1 = 1.0 / (1.0 + np.exp(-scored.rawPrediction[1]))
    np.testing.assert_allclose(scored.probability.toArray(), [1 - p1, p1], rtol=1e-12)
    np.testing.assert_allclose(scored.probability.toArray(),
                               torch.softmax(logits[0].double(), 0).numpy(), rtol=1e-5)


def test_multiclass_from_float_arrays(spark):
    def frame(X, y):
        return spark.createDataFrame([(x.tolist(), float(l)) for x, l in zip(X, y)],
                                     "feats array<double>, cls double")

    X, y = blobs(n=300, d=3, k=3, seed=1)
    clf = TorchClassifier(featuresCol="feats", labelCol="cls", predictionCol="p",
                          modelParams={"hidden_layers": [16]}, maxEpochs=20, learningRate=0.02)
    model = clf.fit(frame(X, y))
    assert isinstance(model, TorchClassificationModel) and model.numClasses == 3
    out = model.transform(frame(*_held_out(spark, 300, 3, 3, seed=1)))
    acc = MulticlassClassificationEvaluator(labelCol="cls", predictionCol="p").evaluate(out)
    assert acc > 0.88  # logistic regression reaches 0.93 on these held-out rows
    rows = out.select("rawPrediction", "probability").collect()
    raw = np.array([r.rawPrediction.toArray() for r in rows])
    probs = np.array([r.probability.toArray() for r in rows])
    assert probs.shape == (300, 3)
    # rawPrediction: the logits centred per row; probability = softmax(rawPrediction).
    np.testing.assert_allclose(raw.sum(axis=1), 0.0, atol=1e-9)
    np.testing.assert_allclose(probs, np.exp(raw) / np.exp(raw).sum(axis=1, keepdims=True),
                               rtol=1e-9)


def test_weights_change_the_fit(spark):
    # Labels independent of the features, 30% positives: unweighted, the model predicts
    # class 0; with class 1 weighted 5x (an effective 68% share) it predicts class 1.
    rng = np.random.default_rng(2)
    X, y = rng.normal(size=(400, 2)), (rng.random(400) < 0.3).astype(float)
    df = vector_df(spark, X, y).withColumn("w", F.when(F.col("label") == 1, 5.0).otherwise(1.0))
    base = dict(modelParams={"hidden_layers": []}, maxEpochs=6, learningRate=0.05, seed=0)
    plain = TorchClassifier(**base).fit(df)
    weighted = TorchClassifier(weightCol="w", **base).fit(df)
    a = plain.transform(df).agg(F.avg(F.col("prediction"))).first()[0]
    b = weighted.transform(df).agg(F.avg(F.col("prediction"))).first()[0]
    assert a < 0.2 and b > 0.8


def test_output_columns_can_be_disabled(fitted_clf, binary_df):
    model = fitted_clf.copy()
    model.setProbabilityCol("").setRawPredictionCol("")
    out = model.transform(binary_df)
    assert out.columns == ["features", "label", "prediction"]
    assert fitted_clf.getProbabilityCol() == "probability"


def test_scored_schema_is_declared_without_running_the_model(fitted_clf, binary_df):
    # Building the plan and reading its schema must not touch the data.
    out = fitted_clf.transform(binary_df.filter(F.col("label") > 1e9))
    assert out.columns[-3:] == ["rawPrediction", "probability", "prediction"]
    assert out.count() == 0


def test_empty_partitions_score_fine(fitted_clf, binary_df, spark):
    skewed = binary_df.repartition(8).filter(F.spark_partition_id() < 3)
    scored = fitted_clf.transform(skewed).agg(F.count("prediction")).first()[0]
    assert scored == skewed.count()  # counting predictions forces the scoring to run
