"""The other pyspark's half of the cross-version persistence test (tests/spark/test_compat_matrix).

Run by another virtual environment's interpreter as ``python cross_version.py DIR``:

1. loads the PipelineModel that the calling test saved in ``DIR/here`` and writes its
   predictions on the shared rows to ``DIR/here-scored-by-peer.json``;
2. fits and saves its own PipelineModel in ``DIR/peer`` and writes its predictions to
   ``DIR/peer.json``, for the calling test to load and compare.

The rows and the pipeline come from :func:`pipeline_and_rows`, which both sides import.
"""

from __future__ import annotations

import json
import os
import sys


def pipeline_and_rows(spark):
    """The pipeline both sides fit (a scaler and a classifier) and the rows both score."""
    import numpy as np
    from pyspark.ml import Pipeline
    from pyspark.ml.feature import StandardScaler
    from pyspark.ml.linalg import Vectors

    from spark_dl import TorchClassifier

    rng = np.random.default_rng(7)
    X = rng.normal(size=(200, 3))
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(float)
    rows = [(i, Vectors.dense(x.tolist()), float(t)) for i, (x, t) in enumerate(zip(X, y))]
    df = spark.createDataFrame(rows, ["id", "features", "label"]).repartition(2)
    pipeline = Pipeline(stages=[
        StandardScaler(inputCol="features", outputCol="scaled"),
        TorchClassifier(featuresCol="scaled", modelParams={"hidden_layers": [6]}, maxEpochs=3,
                        batchSize=32, seed=5),
    ])
    return pipeline, df


def predictions(model, df) -> dict[str, list[float]]:
    """``id -> probability`` of ``model`` on ``df``, as JSON-ready lists."""
    out = model.transform(df).select("id", "probability").collect()
    return {str(r.id): [float(p) for p in r.probability] for r in out}


def main(directory: str) -> None:
    import pyspark
    from pyspark.ml import PipelineModel
    from pyspark.sql import SparkSession

    spark = (SparkSession.builder.master("local[2]").appName("spark_dl-cross-version")
             .config("spark.ui.enabled", "false").config("spark.driver.host", "127.0.0.1")
             .config("spark.driver.bindAddress", "127.0.0.1")
             .config("spark.sql.shuffle.partitions", "2").getOrCreate())
    try:
        pipeline, df = pipeline_and_rows(spark)
        theirs = PipelineModel.load(os.path.join(directory, "here"))
        _write(os.path.join(directory, "here-scored-by-peer.json"), predictions(theirs, df))
        mine = pipeline.fit(df)
        mine.write().overwrite().save(os.path.join(directory, "peer"))
        _write(os.path.join(directory, "peer.json"),
               {"pyspark": pyspark.__version__, "predictions": predictions(mine, df)})
    finally:
        spark.stop()


def _write(path: str, value: object) -> None:
    with open(path, "w") as f:
        json.dump(value, f)


if __name__ == "__main__":
    main(sys.argv[1])
