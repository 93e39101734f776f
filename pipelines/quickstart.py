"""The README quickstart as a runnable job: ``python pipelines/quickstart.py`` or spark-submit.

The block between the ``quickstart`` markers is the README's quickstart, verbatim (a test
checks that they stay identical).
"""

from __future__ import annotations

import os
import sys


def _local_env() -> None:
    """Executors must run this interpreter; keep Spark on the loopback interface."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")


def main(save_path: str = "/tmp/spark_dl_quickstart") -> float:
    """Run the quickstart and return the test AUC."""
    _local_env()
    # --8<-- quickstart
    from pyspark.ml import Pipeline, PipelineModel
    from pyspark.ml.evaluation import BinaryClassificationEvaluator
    from pyspark.ml.feature import StandardScaler, VectorAssembler
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    from spark_dl import TorchClassifier
    from spark_dl.persistence import load_atomic, save_atomic

    spark = SparkSession.builder.master("local[2]").getOrCreate()
    cols = [f"x{i}" for i in range(8)]
    df = spark.range(20_000).select(*[(F.randn(seed=i) * (i + 1)).alias(c) for i, c in enumerate(cols)])
    df = df.withColumn("label", ((F.col("x0") + F.col("x1") * F.col("x2") / 6) > 0).cast("double"))
    train, test = df.randomSplit([0.8, 0.2], seed=42)

    pipeline = Pipeline(stages=[
        VectorAssembler(inputCols=cols, outputCol="raw"),
        StandardScaler(inputCol="raw", outputCol="features"),
        TorchClassifier(modelParams={"hidden_layers": [32, 16]}, maxEpochs=8, validationFraction=0.1),
    ])
    model = pipeline.fit(train)
    auc = BinaryClassificationEvaluator().evaluate(model.transform(test))
    print(f"test AUC: {auc:.3f}")

    save_atomic(model, save_path, overwrite=True)  # a crash leaves the old or the new model
    reloaded = load_atomic(PipelineModel, save_path)
    reloaded.transform(test).select("label", "probability", "prediction").show(3, truncate=False)
    # --8<-- quickstart
    return auc


if __name__ == "__main__":
    main()
