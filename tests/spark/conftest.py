"""Data and one fitted model shared by the Spark tests."""

from __future__ import annotations

import pytest
from datagen import blobs, vector_df

from spark_dl import TorchClassifier


@pytest.fixture(scope="session")
def binary_df(spark):
    X, y = blobs(n=400, d=4, k=2, seed=0)
    return vector_df(spark, X, y, partitions=2).cache()


@pytest.fixture(scope="session")
def fitted_clf(binary_df):
    clf = TorchClassifier(modelParams={"hidden_layers": [8]}, maxEpochs=5, batchSize=32,
                          learningRate=0.01, validationFraction=0.2, seed=3)
    return clf.fit(binary_df)
