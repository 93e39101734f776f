"""TorchRegressor: fits a linear target and works with RegressionEvaluator."""

from __future__ import annotations

import numpy as np
from pyspark.ml.evaluation import RegressionEvaluator
from pyspark.ml.linalg import Vectors

from spark_dl import TorchRegressionModel, TorchRegressor


def test_regressor_learns_linear_target(spark):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 3))
    y = X @ np.array([1.5, -2.0, 0.5]) + 0.3
    df = spark.createDataFrame([(Vectors.dense(x), float(t)) for x, t in zip(X, y)],
                               ["features", "label"])
    reg = TorchRegressor(modelParams={"hidden_layers": []}, maxEpochs=30, batchSize=32,
                         learningRate=0.05, validationFraction=0.1)
    model = reg.fit(df)
    assert isinstance(model, TorchRegressionModel)
    rmse = RegressionEvaluator(metricName="rmse").evaluate(model.transform(df))
    assert rmse < 0.1
    assert model.history[-1]["metric"] == "rmse"
