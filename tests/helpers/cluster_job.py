"""A spark-submit job for the standalone-cluster tests.

``train OUT``: fit with 2 processes on the executors, save the model to OUT/model, then
announce SCORING and score a larger DataFrame (the test kills a worker meanwhile), and
write counts and predictions under OUT.
``score OUT``: in a new process, load OUT/model and write its predictions to OUT/again.
"""

from __future__ import annotations

import json
import sys

from pyspark.ml.linalg import Vectors
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from spark_dl import TorchClassificationModel, TorchClassifier


def _train_df(spark):
    rows = [(Vectors.dense([float(i % 7), float(i % 5) - 2.0]), float(i % 7 > 3)) for i in range(600)]
    return spark.createDataFrame(rows, ["features", "label"]).repartition(3)


def _score_df(spark, n):
    return (spark.range(n, numPartitions=24)
            .select("id", F.array((F.col("id") % 7).cast("double"),
                                  (F.col("id") % 5 - 2).cast("double")).alias("features")))


def train(spark, out):
    model = TorchClassifier(numProcesses=2, localMode=False, maxEpochs=2, batchSize=32,
                            learningRate=0.05, modelParams={"hidden_layers": [8]},
                            maxTrainAttempts=1).fit(_train_df(spark))
    model.write().overwrite().save(f"{out}/model")
    model.transform(_score_df(spark, 1000)).select("id", "probability").write.parquet(
        f"{out}/first")
    print("SCORING", flush=True)
    n = 3_000_000
    scored = model.transform(_score_df(spark, n)).select("id", "prediction")
    # Aggregate the predictions too, or the optimizer prunes the scoring away.
    stats = scored.agg(F.count("prediction").alias("rows"), F.countDistinct("id").alias("ids"),
                       F.sum("id").alias("id_sum"), F.sum("prediction").alias("positives")
                       ).first()
    json.dump({"n": n, **stats.asDict(), "epochs": len(model.history)},
              open(f"{out}/train.json", "w"))


def score(spark, out):
    model = TorchClassificationModel.load(f"{out}/model")
    model.transform(_score_df(spark, 1000)).select("id", "probability").write.parquet(
        f"{out}/again")


if __name__ == "__main__":
    session = SparkSession.builder.getOrCreate()
    {"train": train, "score": score}[sys.argv[1]](session, sys.argv[2])
    session.stop()
