"""Skew: profiling, the Rebalancer stage, and rebalance='auto' in transform."""

from __future__ import annotations

import pytest
from chispa import assert_df_equality
from pyspark.ml.linalg import Vectors
from pyspark.sql import functions as F

from spark_dl.skew import Rebalancer, partition_stats, profile, rebalance


@pytest.fixture(scope="module")
def lopsided(spark):
    """1000 rows: 900 in one partition, 100 over three, four empty; merchant m0 holds 75%."""
    def rows(lo, hi):
        return [(i, f"m{0 if i % 4 else 1 + i % 7}", Vectors.dense([float(i % 5), float(i % 3)]),
                 float(i % 100 == 0)) for i in range(lo, hi)]
    from pyspark.ml.linalg import VectorUDT
    from pyspark.sql.types import DoubleType, LongType, StringType, StructField, StructType

    schema = StructType([StructField("id", LongType()), StructField("merchant", StringType()),
                         StructField("features", VectorUDT()), StructField("label", DoubleType())])
    hot = spark.createDataFrame(rows(0, 900), schema).coalesce(1)
    cold = spark.createDataFrame(rows(900, 1000), schema).repartition(3)
    empty = spark.createDataFrame(spark.sparkContext.parallelize([], 4), hot.schema)
    return hot.union(cold).union(empty).cache()


def test_partition_stats_and_profile(lopsided):
    stats = partition_stats(lopsided)
    assert stats.num_partitions == 8 and stats.rows == 1000 and stats.empty == 4
    assert stats.max == 900 and stats.max_over_mean == pytest.approx(7.2)
    prof = profile(lopsided, key_col="merchant", label_col="label", top_k=2)
    assert prof.hot_keys[0][0] == "m0" and prof.hot_keys[0][2] == pytest.approx(0.75)
    assert [(c, n) for c, n, _ in prof.classes] == [(0.0, 990), (1.0, 10)]
    assert prof.is_skewed()
    text = str(prof)
    assert "8 partitions (4 empty)" in text and "max/mean 7.20" in text and "'m0' 75.0%" in text


def test_profile_names_a_missing_column(lopsided):
    with pytest.raises(ValueError, match="'key_col' column 'shop'"):
        profile(lopsided, key_col="shop")


def test_rebalancer_evens_rows_and_keeps_each_once(lopsided, tmp_path):
    out = Rebalancer(numPartitions=4).transform(lopsided)
    sizes = out.rdd.glom().map(len).collect()
    assert len(sizes) == 4 and max(sizes) - min(sizes) <= 8  # within a row per input partition
    assert_df_equality(lopsided, out, ignore_row_order=True)
    exact = rebalance(lopsided, 4).rdd.glom().map(len).collect()
    assert exact == [250, 250, 250, 250]
    Rebalancer(numPartitions=4).save(str(tmp_path / "rb"))
    assert Rebalancer.load(str(tmp_path / "rb")).getNumPartitions() == 4


def test_rebalancer_deals_into_the_default_parallelism_by_default(spark, lopsided):
    counts = partition_stats(Rebalancer().transform(lopsided)).counts
    assert len(counts) == spark.sparkContext.defaultParallelism and sum(counts) == 1000
    assert max(counts) - min(counts) <= 8


def test_transform_rebalances_skewed_input_and_scores_the_same(lopsided, fitted_clf_2d):
    cols = ["id", "probability", "prediction"]
    auto = fitted_clf_2d.transform(lopsided)
    always = fitted_clf_2d.copy({fitted_clf_2d.rebalance: "always"}).transform(lopsided)
    never = fitted_clf_2d.copy({fitted_clf_2d.rebalance: "never"}).transform(lopsided)
    assert partition_stats(auto).counts == [500, 500]  # round-robin, default parallelism
    assert partition_stats(always).counts == [500, 500]  # round-robin, default parallelism
    assert max(partition_stats(never).counts) == 900
    assert_df_equality(auto.select(cols), never.select(cols), ignore_row_order=True)
    assert_df_equality(always.select(cols), never.select(cols), ignore_row_order=True)


def test_transform_merges_many_small_partitions(spark, lopsided, fitted_clf_2d):
    """40 even partitions of 25 rows: auto deals them into the default parallelism; never
    keeps the 40; the scores are the same."""
    many = lopsided.repartition(40).cache()
    cols = ["id", "probability", "prediction"]
    auto = fitted_clf_2d.transform(many)
    never = fitted_clf_2d.copy({fitted_clf_2d.rebalance: "never"}).transform(many)
    assert auto.rdd.getNumPartitions() == spark.sparkContext.defaultParallelism == 2
    assert never.rdd.getNumPartitions() == 40
    assert_df_equality(auto.select(cols), never.select(cols), ignore_row_order=True)


@pytest.fixture(scope="module")
def fitted_clf_2d(lopsided):
    from spark_dl import TorchClassifier

    data = lopsided.withColumn("label", (F.col("id") % 2).cast("double"))
    return TorchClassifier(maxEpochs=1, modelParams={"hidden_layers": [4]}).fit(data)


def _arrival_order_changes_every_read(df):
    """``df`` with each partition's rows in a fresh random order on every computation, as
    an uncached shuffle delivers them."""
    import numpy as np

    def shuffle(batches):
        rng = np.random.default_rng()  # seeded by the OS: different on every attempt
        for pdf in batches:
            yield pdf.iloc[rng.permutation(len(pdf))]

    return df.mapInPandas(shuffle, df.schema)


def test_dealing_keys_do_not_depend_on_the_order_rows_arrive_in(spark):
    from spark_dl.skew.rows import deal_keys

    base = spark.range(0, 3000, numPartitions=3).selectExpr(
        "array(cast(id as float), cast(id % 7 as float)) as f", "cast(id % 2 as double) as y")
    counts = {p: 1000 for p in range(3)}
    df = _arrival_order_changes_every_read(base)

    def keys():
        return {tuple(r.f): r["_k"] for r in deal_keys(df, 4, counts).collect()}

    first, second = keys(), keys()
    assert len(first) == 3000
    assert first == second  # a retried task would deal every row to the same partition
