"""Small deterministic data sets for the tests."""

from __future__ import annotations

import numpy as np
from pyspark.ml.linalg import Vectors


def blobs(n: int = 400, d: int = 4, k: int = 2, seed: int = 0):
    """Separable Gaussian blobs: ``(X, y)`` with ``k`` classes."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=4.0, size=(k, d))
    y = np.arange(n) % k
    X = centers[y] + rng.normal(size=(n, d))
    return X, y.astype(float)


def vector_df(spark, X, y, partitions: int = 2, extra=None):
    """A DataFrame of ``features`` (Vector) and ``label`` (double)."""
    rows = [(Vectors.dense(x.tolist()), float(label)) for x, label in zip(X, y)]
    return spark.createDataFrame(rows, ["features", "label"]).repartition(partitions)
