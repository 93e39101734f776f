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


@pytest.fixture(scope="session")
def mlflow_store(tmp_path_factory):
    """A real local MLflow tracking store (sqlite: MLflow 3 refuses the file store) with an
    experiment of its own, made current; the previous tracking URI comes back after."""
    mlflow = pytest.importorskip("mlflow")
    yield from _store(mlflow, tmp_path_factory)


@pytest.fixture(scope="session")
def optional_mlflow_store(request):
    """:func:`mlflow_store` where mlflow is installed (the pinned stack), else None (the
    compatibility environments, which run the same tests without it)."""
    try:
        import mlflow  # noqa: F401
    except ImportError:
        return None
    return request.getfixturevalue("mlflow_store")


def _store(mlflow, tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflow")
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{root}/mlflow.db")
    experiment = mlflow.create_experiment("spark_dl-tests", artifact_location=str(root / "art"))
    mlflow.set_experiment(experiment_id=experiment)
    yield experiment
    mlflow.set_tracking_uri(previous)
