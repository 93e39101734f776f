"""A fitted model scores a Structured Streaming DataFrame: each input row exactly once,
across a restart from the checkpoint, with the scores batch scoring gives.

This module also runs from a Spark Connect client (``tests/connect/test_connect.py``
points the ``spark`` fixture at a Connect server), so it uses no classic-only API."""

from __future__ import annotations

import os

import pytest
from pyspark.ml import PipelineModel
from pyspark.ml.feature import VectorAssembler
from pyspark.sql import functions as F

SCHEMA = "id long, a double, b double, c double, d double"


def _write_batch(spark, folder, start, n):
    rows = [(i, float(i % 7), float(i % 5) - 2, float(i % 3), float(i % 11) / 10)
            for i in range(start, start + n)]
    spark.createDataFrame(rows, SCHEMA).coalesce(1).write.mode("append").parquet(str(folder))


@pytest.fixture(scope="module")
def pipeline_model(spark):
    from spark_dl import TorchClassifier

    rows = [(i, float(i % 7), float(i % 5) - 2, float(i % 3), float(i % 11) / 10,
             float(i % 7 > 3)) for i in range(300)]
    df = spark.createDataFrame(rows, SCHEMA + ", label double")
    assembler = VectorAssembler(inputCols=["a", "b", "c", "d"], outputCol="features")
    clf = TorchClassifier(maxEpochs=2, modelParams={"hidden_layers": [4]})
    return PipelineModel(stages=[assembler, clf.fit(assembler.transform(df))])


def test_streamed_rows_are_scored_once_across_a_restart(spark, pipeline_model, tmp_path):
    src, out, ckpt = tmp_path / "in", tmp_path / "out", tmp_path / "ckpt"
    _write_batch(spark, src, 0, 100)

    def run_once():
        stream = spark.readStream.schema(SCHEMA).parquet(str(src))
        scored = pipeline_model.transform(stream).select("id", "prediction", "probability")
        query = (scored.writeStream.format("parquet").option("path", str(out))
                 .option("checkpointLocation", str(ckpt)).trigger(availableNow=True).start())
        query.awaitTermination(240)
        assert query.exception() is None

    run_once()
    _write_batch(spark, src, 100, 50)
    run_once()  # a new query, restarted from the checkpoint
    streamed = spark.read.parquet(str(out))
    assert streamed.count() == 150 and streamed.select("id").distinct().count() == 150
    batch = pipeline_model.transform(spark.read.schema(SCHEMA).parquet(str(src)))
    joined = streamed.alias("s").join(batch.alias("b"), "id")
    assert joined.count() == 150
    assert joined.filter(F.col("s.prediction") != F.col("b.prediction")).count() == 0


def test_foreach_batch_scores_a_rate_source(spark, pipeline_model, tmp_path):
    # The batch function writes where the test can read: under Spark Connect it runs in a
    # Python process of the server's, not in this one.
    target = str(tmp_path / "batches")

    def sink(batch, epoch_id):
        batch.select("id", "prediction").write.mode("append").parquet(target)

    stream = (spark.readStream.format("rate").option("rowsPerSecond", 50).load()
              .select(F.col("value").alias("id"), (F.col("value") % 7).cast("double").alias("a"),
                      F.lit(0.0).alias("b"), F.lit(1.0).alias("c"), F.lit(0.5).alias("d")))
    query = (pipeline_model.transform(stream).writeStream.foreachBatch(sink)
             .option("checkpointLocation", str(tmp_path / "ckpt")).start())
    try:
        import time

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            query.processAllAvailable()
            if os.path.exists(target) and spark.read.parquet(target).count() >= 20:
                break
            time.sleep(0.5)
    finally:
        query.stop()
    assert query.exception() is None
    seen = spark.read.parquet(target)
    assert seen.count() >= 20 and seen.select("id").distinct().count() == seen.count()
    assert {r.prediction for r in seen.select("prediction").distinct().collect()} <= {0.0, 1.0}


def test_stages_that_cannot_stream_say_so(spark, tmp_path):
    from spark_dl import SequenceWindower, TorchClassifier, Vocabulary
    from spark_dl.skew import Rebalancer

    _write_batch(spark, tmp_path, 0, 5)
    stream = spark.readStream.schema(SCHEMA).parquet(str(tmp_path))
    with pytest.raises(ValueError, match="SequenceWindower cannot window a streaming"):
        SequenceWindower(keyCol="id", timeCol="a", valueCols=["b"], windowLength=2
                         ).transform(stream)
    assert Rebalancer().transform(stream).isStreaming  # dealt per micro-batch, no error
    tokens = stream.select(F.array(F.col("id").cast("string")).alias("tokens"))
    with pytest.raises(ValueError, match="Vocabulary cannot fit on a streaming"):
        Vocabulary().fit(tokens)
    vectors = VectorAssembler(inputCols=["a", "b"], outputCol="features").transform(stream)
    with pytest.raises(ValueError, match="TorchClassifier cannot fit on a streaming"):
        TorchClassifier().fit(vectors.withColumn("label", F.lit(0.0)))


def test_spark_dl_score_stream_scores_new_files_once(spark, pipeline_model, tmp_path, capsys):
    from spark_dl.cli import main as cli

    model, src = str(tmp_path / "model"), tmp_path / "in"
    out, ckpt = str(tmp_path / "out"), str(tmp_path / "ckpt")
    pipeline_model.save(model)
    args = ["score", "--stream", "--model", model, "--input", str(src), "--output", out,
            "--columns", "id,prediction"]
    if os.environ.get("SPARK_DL_TEST_REMOTE"):  # this module also runs from a Connect client
        args += ["--remote", os.environ["SPARK_DL_TEST_REMOTE"]]
    assert cli(args) == 2 and "--stream needs --checkpoint" in capsys.readouterr().err
    _write_batch(spark, src, 0, 100)
    assert cli(args + ["--checkpoint", ckpt]) == 0
    _write_batch(spark, src, 100, 50)
    assert cli(args + ["--checkpoint", ckpt]) == 0  # a rerun scores only the new file
    streamed = spark.read.parquet(out)
    assert streamed.count() == 150 and streamed.select("id").distinct().count() == 150
    batch = pipeline_model.transform(spark.read.parquet(str(src))).select("id", "prediction")
    assert streamed.exceptAll(batch).count() == 0
