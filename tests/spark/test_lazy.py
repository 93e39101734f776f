"""transform() builds a plan and runs no Spark job (the input is not even read).

Two witnesses: a marker UDF on the input that leaves a file each time a row of it is
evaluated (it works under Spark Connect too), and, on this classic session, the status
tracker's jobs of a job group. Both are checked to see an action, so they can fail.
"""

from __future__ import annotations

import os
import uuid

import pytest
from pyspark.sql import functions as F

from spark_dl import ImageTensorizer, SequenceWindower, Vocabulary
from spark_dl.skew import Rebalancer


def _marked(df, column, folder):
    """``df`` whose ``column`` leaves a file in ``folder`` per evaluated row."""
    @F.udf(df.schema[column].dataType)
    def mark(value):
        open(os.path.join(folder, uuid.uuid4().hex), "w").close()
        return value

    return df.withColumn(column, mark(column))


def _jobs_during(spark, fn):
    sc = spark.sparkContext
    group = f"lazy-{uuid.uuid4().hex}"
    sc.setJobGroup(group, "transform() must not run jobs")
    try:
        fn()
    finally:
        sc.setLocalProperty("spark.jobGroup.id", None)
    return list(sc.statusTracker().getJobIdsForGroup(group))


@pytest.mark.parametrize("mode", ["auto", "always", "never"])
def test_torch_transform_runs_no_job(spark, fitted_clf, binary_df, tmp_path, mode):
    data = _marked(binary_df, "label", str(tmp_path))
    model = fitted_clf.copy({fitted_clf.rebalance: mode})
    holder = {}
    assert _jobs_during(spark, lambda: holder.update(out=model.transform(data))) == []
    assert os.listdir(tmp_path) == []
    write = holder["out"].write.format("noop").mode("overwrite")
    assert _jobs_during(spark, write.save) != []  # the witnesses see an action
    assert len(os.listdir(tmp_path)) >= binary_df.count()


def test_feature_transforms_run_no_job(spark, tmp_path):
    tokens = spark.createDataFrame([(["a", "b"],), (["c"],)], "tokens array<string>")
    vocab = Vocabulary(vocabSize=4, sequenceLength=2).fit(tokens)
    pixels = spark.createDataFrame([([0.5] * 12,)], "px array<double>")
    tensorizer = ImageTensorizer(inputCol="px", inputShape=[2, 2, 3], size=[2, 2], scale=1.0)
    series = spark.createDataFrame([("k", t, float(t)) for t in range(6)],
                                   "k string, t long, x double")
    windower = SequenceWindower(keyCol="k", timeCol="t", valueCols=["x"], windowLength=3)
    strict = windower.copy({windower.handleInvalid: "error"})
    for i, (stage, df, col) in enumerate([(vocab, tokens, "tokens"),
                                          (tensorizer, pixels, "px"),
                                          (Rebalancer(), pixels, "px"),
                                          (windower, series, "x"),
                                          (strict, series, "x")]):
        folder = tmp_path / str(i)
        folder.mkdir()
        data = _marked(df, col, str(folder))
        assert _jobs_during(spark, lambda: stage.transform(data)) == []
        assert os.listdir(folder) == []


def test_auto_evens_a_lopsided_input_by_the_shuffle_it_adds(spark, fitted_clf):
    """200,000 rows, 90% of them in one partition: auto's round-robin shuffle leaves every
    partition within a few rows of the others (measured on the scored frame itself)."""
    rows = 200_000
    base = spark.range(rows).select(
        "id", F.array(*[(F.col("id") % (k + 3)).cast("float") for k in range(4)]).alias("f"))
    lopsided = base.where("id < 180000").coalesce(1).union(
        base.where("id >= 180000").repartition(3))
    model = fitted_clf.copy({fitted_clf.featuresCol: "f"})
    auto = model.transform(lopsided)
    never = model.copy({model.rebalance: "never"}).transform(lopsided)
    assert max(_scored_per_partition(never)) == 180_000
    counts = _scored_per_partition(auto)
    # round-robin starts each input partition at its own position: a row apart per input
    assert sum(counts) == rows and max(counts) - min(counts) <= 4
    assert len(counts) == spark.sparkContext.defaultParallelism


def _scored_per_partition(scored):
    """Rows per partition of the scored frame (the features flow through the shuffle, as
    when scoring; counting the bare partition ids would let Spark prune them away)."""
    per = (scored.withColumn("p", F.spark_partition_id()).groupBy("p")
           .agg(F.count("prediction").alias("n")).collect())
    return [r["n"] for r in per]
