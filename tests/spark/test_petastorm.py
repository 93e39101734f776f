"""dataFeed="petastorm": training data through petastorm's converter (marker ``compat``).

petastorm imports only on old pyarrow, so the training tests run in make test's
``.venv-spark35`` leg (pyspark 3.5.9, pyarrow 14); on the pinned stack the refusal is tested.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from datagen import blobs, vector_df

from spark_dl import TorchClassifier
from spark_dl.training import petastorm_feed

pytestmark = pytest.mark.compat

try:
    from spark_dl import compat

    petastorm_feed.import_petastorm("test")
    HAVE_PETASTORM = True
except ValueError:
    HAVE_PETASTORM = False

needs_petastorm = pytest.mark.skipif(
    not HAVE_PETASTORM, reason="petastorm imports only with pyarrow 14 (the spark35 leg)")


@pytest.fixture
def cache_dir(spark, tmp_path):
    spark.conf.set("spark.dl.petastorm.cacheDir", str(tmp_path / "petastorm-cache"))
    yield tmp_path / "petastorm-cache"
    spark.conf.unset("spark.dl.petastorm.cacheDir")
    petastorm_feed.clear_cache()


def _jobs(spark, group, action):
    sc = spark.sparkContext
    sc.setJobGroup(group, group)
    try:
        action()
    finally:
        sc.setLocalProperty("spark.jobGroup.id", None)
    return list(sc.statusTracker().getJobIdsForGroup(group))


@pytest.mark.skipif(HAVE_PETASTORM, reason="petastorm imports here")
def test_petastorm_feed_is_refused_before_any_job_where_petastorm_cannot_import(
        spark, binary_df, tmp_path):
    spark.conf.set("spark.dl.petastorm.cacheDir", str(tmp_path))
    clf = TorchClassifier(dataFeed="petastorm", maxEpochs=1)
    errors: list[Exception] = []

    def fit():
        try:
            clf.fit(binary_df)
        except ValueError as exc:
            errors.append(exc)

    try:
        assert _jobs(spark, "petastorm-refused", fit) == []
    finally:
        spark.conf.unset("spark.dl.petastorm.cacheDir")
    assert errors, "fit must refuse dataFeed='petastorm' here"
    message = str(errors[0])
    assert "TorchClassifier" in message and "pyarrow 14.0.2" in message
    assert "pyspark 3.5.9" in message and "dataFeed='arrow'" in message


@needs_petastorm
def test_petastorm_feed_needs_a_cache_dir(spark, binary_df):
    with pytest.raises(ValueError, match=r"spark\.dl\.petastorm\.cacheDir"):
        TorchClassifier(dataFeed="petastorm", maxEpochs=1).fit(binary_df)


@needs_petastorm
@pytest.mark.timeout(400)
def test_petastorm_feed_trains_skewed_data_on_equal_steps_and_reuses_its_cache(spark,
                                                                               cache_dir):
    X, y = blobs(n=1000, d=4, k=2, seed=5)
    hot = vector_df(spark, X[:950], y[:950], partitions=1)
    cold = vector_df(spark, X[950:], y[950:], partitions=3)
    empty = spark.createDataFrame(spark.sparkContext.parallelize([], 4), cold.schema)
    df = hot.union(cold).union(empty).cache()  # 950 rows, 50 over three, four empty
    assert sorted(df.rdd.glom().map(len).collect()) == [0, 0, 0, 0, 16, 17, 17, 950]
    params = dict(modelParams={"hidden_layers": [8]}, maxEpochs=4, batchSize=32,
                  learningRate=0.02, numProcesses=2, validationFraction=0.1, seed=1)

    feed = TorchClassifier(dataFeed="petastorm", **params)
    first = feed.fit(df)
    assert len(petastorm_feed.cached_datasets()) == 1
    written = sorted(os.listdir(cache_dir))
    assert len(written) == 1

    # Dealt evenly before materializing: one 500-row file per rank, equal steps (verified
    # by the launcher from every rank's report).
    assert [r["train"] + r["validation"] for r in first.rowsPerRank] == [500, 500]
    accuracy = first.transform(df).where("prediction = label").count() / 1000
    assert accuracy > 0.9, accuracy

    again = feed.fit(df)  # same rows: the materialized Parquet is reused
    assert sorted(os.listdir(cache_dir)) == written
    assert np.allclose([h["train_loss"] for h in again.history],
                       [h["train_loss"] for h in first.history])

    deleted = petastorm_feed.clear_cache()
    assert len(deleted) == 1 and os.listdir(cache_dir) == []


@needs_petastorm
@pytest.mark.timeout(300)
def test_an_existing_petastorm_dataset_reads_and_trains(spark, cache_dir, tmp_path):
    from petastorm.codecs import NdarrayCodec, ScalarCodec
    from petastorm.etl.dataset_metadata import materialize_dataset
    from petastorm.unischema import Unischema, UnischemaField, dict_to_spark_row
    from pyspark.sql import types as T

    schema = Unischema("Readings", [
        UnischemaField("id", np.int64, (), ScalarCodec(T.LongType()), False),
        UnischemaField("signal", np.float32, (2, 3), NdarrayCodec(), False),
        UnischemaField("label", np.int32, (), ScalarCodec(T.IntegerType()), False),
    ])
    rng = np.random.default_rng(0)
    signals = rng.normal(size=(120, 2, 3)).astype(np.float32)
    labels = (signals[:, 0, 0] > 0).astype(np.int32)
    url = "file://" + str(tmp_path / "readings")
    with materialize_dataset(spark, url, schema, row_group_size_mb=1):
        rows = [dict_to_spark_row(schema, {"id": i, "signal": signals[i], "label": int(labels[i])})
                for i in range(120)]
        spark.createDataFrame(rows, schema.as_spark_schema()).coalesce(2) \
            .write.mode("overwrite").parquet(url)

    df = petastorm_feed.read_dataset(spark, url)
    assert dict(df.dtypes) == {"id": "bigint", "signal": "array<float>", "label": "int"}
    got = {r.id: (r.signal, r.label) for r in df.collect()}
    assert len(got) == 120
    for i in (0, 57, 119):
        assert np.allclose(got[i][0], signals[i].reshape(-1)) and got[i][1] == labels[i]

    model = TorchClassifier(featuresCol="signal", dataFeed="petastorm", maxEpochs=8,
                            batchSize=16, learningRate=0.05, seed=2).fit(df)
    accuracy = model.transform(df).where("prediction = label").count() / 120
    assert accuracy > 0.8, accuracy
