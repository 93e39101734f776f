"""attributionsCol: per-row feature attributions on data whose driving features are known.

Ten standard-normal features; the target is a function of z = 2 x0 - 1.5 x3 + x7 only.
The noise features have the same scale, so a method that attributes by magnitude alone
fails. The truth is per row: feature i contributes c_i x_i to z, so a driver whose value
is near 0 drives nothing in that row (a fixed "top-3 are {0, 3, 7}" rule would demand
otherwise, and no correct method meets it). The bar is the issue's: in >= 90% of rows the
top attributed features are exactly the row's true drivers (contribution |c_i x_i| >=
0.25), ordered by magnitude, and the top one is the largest true contribution.
"""

from __future__ import annotations

import numpy as np
import pytest
from pyspark.ml.linalg import Vectors

from spark_dl import (
    TorchAnomalyDetectionModel,
    TorchAnomalyDetector,
    TorchClassifier,
    TorchRegressor,
)

D = 10
DRIVERS = [0, 3, 7]
COEF = np.array([2.0, -1.5, 1.0])
MATERIAL = 0.25


def _frame(spark, X, y=None):
    rows = [(i, Vectors.dense(x.tolist()), float(y[i]) if y is not None else 0.0)
            for i, x in enumerate(X)]
    return spark.createDataFrame(rows, ["id", "features", "label"]).repartition(2)


def _true_drivers_found(attr: np.ndarray, X: np.ndarray) -> tuple[float, float]:
    """(share of rows whose m largest |attributions| are the row's m material drivers,
    share of rows whose largest |attribution| is the largest true contribution)."""
    truth = np.zeros_like(X)
    truth[:, DRIVERS] = X[:, DRIVERS] * COEF
    ranked = np.argsort(-np.abs(attr), axis=1)
    material = (np.abs(truth) >= MATERIAL).sum(axis=1)
    exact = np.mean([set(ranked[i, :m]) == set(np.argsort(-np.abs(truth[i]))[:m])
                     for i, m in enumerate(material)])
    top1 = np.mean(ranked[:, 0] == np.argmax(np.abs(truth), axis=1))
    return float(exact), float(top1)


def _collect(df, col="attributions"):
    rows = df.orderBy("id").collect()
    return rows, np.array([r[col].toArray() for r in rows])


@pytest.fixture(scope="module")
def known_drivers():
    rng = np.random.default_rng(7)
    X = rng.normal(size=(1500, D))
    z = X[:, DRIVERS] @ COEF
    return X, z


@pytest.fixture(scope="module")
def classifier_model(spark, known_drivers):
    X, z = known_drivers
    df = _frame(spark, X, (z > 0).astype(float))
    clf = TorchClassifier(modelParams={"hidden_layers": [32]}, maxEpochs=15, batchSize=64,
                          learningRate=0.01, seed=1, attributionsCol="attributions")
    return clf.fit(df), df


@pytest.mark.parametrize("method", ["integrated_gradients", "gradient_x_input"])
def test_classifier_attributes_the_true_drivers(classifier_model, spark, known_drivers, method):
    model, _ = classifier_model
    X, _ = known_drivers
    test = _frame(spark, X[:400])
    scored = model.copy({model.attributionMethod: method}).transform(test)
    rows, attr = _collect(scored)
    assert attr.shape == (400, D)
    exact, top1 = _true_drivers_found(attr, X[:400])
    assert exact >= 0.9, f"{method}: the top features are the true drivers in {exact:.1%}"
    assert top1 >= 0.9, f"{method}: the top feature is the largest driver in {top1:.1%}"
    if method == "integrated_gradients":
        # Completeness: they add up to the predicted class's rawPrediction minus the
        # baseline row's (zeros).
        (base,) = model.transform(_frame(spark, np.zeros((1, D)))).collect()
        gap = np.array([r.rawPrediction[int(r.prediction)] - base.rawPrediction[int(r.prediction)]
                        for r in rows])
        np.testing.assert_allclose(attr.sum(axis=1), gap, atol=0.02 * np.abs(gap).max())


def test_attributions_change_nothing_else_and_cost_nothing_unset(classifier_model, spark,
                                                                 known_drivers):
    model, _ = classifier_model
    X, _ = known_drivers
    test = _frame(spark, X[:100])
    with_attr = model.transform(test)
    plain_model = model.copy({model.attributionsCol: ""})
    plain = plain_model.transform(test)
    assert "attributions" not in plain.columns
    assert with_attr.schema == model.transformSchema(test.schema)
    assert plain.schema == plain_model.transformSchema(test.schema)
    a = np.array([r.probability.toArray() for r in with_attr.orderBy("id").collect()])
    b = np.array([r.probability.toArray() for r in plain.orderBy("id").collect()])
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_regressor_attributions_are_the_drivers_and_add_up(spark, known_drivers, tmp_path):
    X, z = known_drivers
    df = _frame(spark, X, z)
    reg = TorchRegressor(modelParams={"hidden_layers": [32]}, maxEpochs=20, batchSize=64,
                         learningRate=0.01, seed=2)
    model = reg.fit(df).setAttributionsCol("why").setAttributionSteps(64)
    model.write().overwrite().save(str(tmp_path / "reg"))
    loaded = type(model).load(str(tmp_path / "reg"))
    assert loaded.getAttributionsCol() == "why" and loaded.getAttributionSteps() == 64
    test = _frame(spark, X[:300])
    rows, attr = _collect(loaded.transform(test), "why")
    exact, top1 = _true_drivers_found(attr, X[:300])
    assert exact >= 0.9 and top1 >= 0.9, (exact, top1)
    # Completeness: a row's attributions add up to its prediction minus the baseline's.
    zero = _frame(spark, np.zeros((1, D)))
    (base,) = [r.prediction for r in model.transform(zero).collect()]
    pred = np.array([r.prediction for r in rows])
    np.testing.assert_allclose(attr.sum(axis=1), pred - base, atol=0.02 * np.std(pred))


def test_anomaly_attributions_name_the_broken_sensor(spark):
    # Ten sensors driven by three hidden factors; in each test row one known sensor breaks
    # away from them by 6 standard deviations.
    rng = np.random.default_rng(3)
    mixing = rng.normal(size=(3, D)) / np.sqrt(3)

    def sensors(n):
        return rng.normal(size=(n, 3)) @ mixing + 0.05 * rng.normal(size=(n, D))

    X, broken_rows = sensors(1200), 120
    test = sensors(broken_rows)
    broken = rng.integers(0, D, size=broken_rows)
    test[np.arange(broken_rows), broken] += rng.choice([-6.0, 6.0], size=broken_rows)
    detector = TorchAnomalyDetector(modelParams={"hidden_layers": [32], "latent_dim": 3},
                                    maxEpochs=25, batchSize=64, learningRate=0.01, seed=0)
    model = detector.fit(_frame(spark, X))
    assert isinstance(model, TorchAnomalyDetectionModel)
    assert model.getAttributionMethod() == "reconstruction_error"
    scored = model.setAttributionsCol("perFeature").transform(_frame(spark, test))
    rows, attr = _collect(scored, "perFeature")
    top = np.argmax(attr, axis=1)
    assert np.mean(top == broken) >= 0.9, np.mean(top == broken)
    # The per-feature errors add up to the anomaly score.
    np.testing.assert_allclose(attr.sum(axis=1), [r.anomalyScore for r in rows], rtol=1e-5)
    assert np.mean([r.isAnomaly for r in rows]) > 0.9


def test_attribution_errors_name_the_param(classifier_model, spark, known_drivers):
    model, _ = classifier_model
    test = _frame(spark, known_drivers[0][:10])
    cases = [
        ({model.attributionMethod: "reconstruction_error"}, "'attributionMethod'"),
        ({model.inferencePrecision: "int8-dynamic"}, "int8-dynamic"),
        ({model.attributionBaseline: [0.0, 1.0]}, "one value per feature (10)"),
        ({model.attributionSteps: 0}, "'attributionSteps' parameter of "
                                      "TorchClassificationModel must be an int >= 1"),
    ]
    cases += [
        ({model.attributionsCol: "prediction"}, "is also its 'predictionCol'"),
        ({model.attributionBaseline: [float("nan")] * D}, "a list of finite floats"),
    ]
    for extra, words in cases:
        with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
            model.copy(extra).transform(test)


def test_the_estimator_refuses_what_its_model_could_not_explain_before_training(
        spark, known_drivers):
    from pyspark.sql import functions as F

    X, z = known_drivers
    df = _frame(spark, X[:50], (z[:50] > 0).astype(float))
    with pytest.raises(ValueError, match="'attributionMethod' parameter of TorchClassifier"):
        TorchClassifier(attributionsCol="a", attributionMethod="reconstruction_error").fit(df)
    ids = df.select(F.array(F.lit(1), F.lit(2)).alias("features"), "label")
    with pytest.raises(ValueError, match="integer token ids"):
        TorchClassifier(attributionsCol="a", model="lstm", inputShape=[2],
                        modelParams={"vocab_size": 4}).fit(ids)
    with pytest.raises(ValueError, match=r"one value per feature \(10\)"):
        TorchRegressor(attributionsCol="a", attributionBaseline=[0.0]).fit(df)
