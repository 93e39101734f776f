"""SequenceWindower: per-key time series into fixed-length windows, the same however hot a key."""

from __future__ import annotations

import math
import random
import re
from collections import defaultdict
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, DoubleType, FloatType, LongType, StringType

from spark_dl.feature import SequenceWindower
from spark_dl.feature._windows import WindowSpec, chunk_windows, window_starts

SCHEMA = "k string, t long, x double, y double, l double"
OUT = ["k", "windowStart", "windowEnd", "features", "label"]


def _windower(**kw):
    return SequenceWindower(**{"keyCol": "k", "timeCol": "t", "valueCols": ["x", "y"],
                               "windowLength": 3, **kw})


def _rows(df, cols=OUT):
    return sorted((tuple(r[c] for c in cols) for r in df.collect()), key=repr)


# ------------------------------------------------------------------ exact windows
@pytest.fixture(scope="module")
def tiny(spark):
    a = [("a", t, float(t), 10.0 * t, 100.0 * t) for t in range(1, 8)]  # 7 rows
    b = [("b", t, -float(t), -10.0 * t, -100.0 * t) for t in range(1, 5)]  # 4 rows
    c = [("c", t, 1.0, 1.0, 1.0) for t in range(1, 4)]  # 3 rows: shorter than T + horizon
    return spark.createDataFrame(a + b + c, SCHEMA)


EXPECTED = [
    ("a", 1, 3, [1.0, 10.0, 2.0, 20.0, 3.0, 30.0], 400.0),
    ("a", 3, 5, [3.0, 30.0, 4.0, 40.0, 5.0, 50.0], 600.0),
    ("b", 1, 3, [-1.0, -10.0, -2.0, -20.0, -3.0, -30.0], -400.0),
]


@pytest.mark.compat
def test_windows_and_labels_by_hand(tiny):
    w = _windower(step=2, horizon=1, labelCol="l")
    out = w.transform(tiny)
    assert out.schema == w.transformSchema(tiny.schema)
    assert [f.dataType for f in out.schema] == [
        StringType(), LongType(), LongType(), ArrayType(FloatType()), DoubleType()]
    assert _rows(out) == EXPECTED  # 'c' (3 rows < T + horizon) gives no window, no error


def test_without_label_horizon_still_shortens_the_series(tiny):
    expected = [r[:4] for r in EXPECTED]
    assert _rows(_windower(step=2, horizon=1).transform(tiny), OUT[:4]) == expected
    no_horizon = _rows(_windower(step=2).transform(tiny), OUT[:4])
    assert no_horizon == sorted(expected + [
        ("a", 5, 7, [5.0, 50.0, 6.0, 60.0, 7.0, 70.0]),
        ("c", 1, 3, [1.0] * 6)], key=repr)


def test_only_short_series_gives_an_empty_result(tiny):
    out = _windower(windowLength=4, horizon=1).transform(tiny.where("k = 'c'"))
    assert out.count() == 0 and out.columns == OUT[:4]


def test_unsorted_input_and_duplicate_timestamps(spark):
    rows = [("a", 3, 7.0), ("a", 2, 5.0), ("a", 4, 9.0), ("a", 1, 1.0), ("a", 2, 3.0)]
    random.Random(1).shuffle(rows)
    rows = [(k, date(2024, 1, t), x) for k, t, x in rows]
    df = spark.createDataFrame(rows, "k string, t date, x double").repartition(3)
    out = _windower(valueCols=["x"], windowLength=2).transform(df)
    # The two rows on day 2 are both steps, ordered by value: 3.0 then 5.0.
    day = {t: date(2024, 1, t) for t in range(1, 5)}
    assert _rows(out, OUT[:4]) == [("a", day[1], day[2], [1.0, 3.0]),
                                   ("a", day[2], day[2], [3.0, 5.0]),
                                   ("a", day[2], day[3], [5.0, 7.0]),
                                   ("a", day[3], day[4], [7.0, 9.0])]


# ------------------------------------------------------------------ hot keys
def _hot_data(seed=0):
    """One key with 60 of 80 rows, duplicate timestamps, shuffled; plus 4 keys of 5 rows."""
    rng, t0 = random.Random(seed), datetime(2024, 1, 1)
    rows = [("hot", t0 + timedelta(minutes=i - (i % 9 == 4)), float(rng.randint(-9, 9)),
             0.5 * i, float(i)) for i in range(60)]
    rows += [(f"k{j}", t0 + timedelta(hours=i), float(j), float(i), -float(i))
             for j in range(4) for i in range(5)]
    rng.shuffle(rows)
    return rows


def _reference(rows, length, step, horizon):
    """Windows computed the obvious way, one key at a time on the driver."""
    series = defaultdict(list)
    for k, *rest in rows:
        series[k].append(tuple(rest))
    out = []
    for k, rs in series.items():
        rs.sort()
        for p in range(0, len(rs) - length - horizon + 1, step):
            win = rs[p:p + length]
            feats = [v for r in win for v in r[1:3]]
            out.append((k, win[0][0], win[-1][0], feats, rs[p + length - 1 + horizon][3]))
    return sorted(out, key=repr)


@pytest.fixture(scope="module")
def hot(spark):
    rows = _hot_data()
    return rows, spark.createDataFrame(rows, "k string, t timestamp, x double, y double, l double")


@pytest.mark.parametrize("length,step,horizon,max_rows", [
    (3, 2, 1, 10**6), (3, 2, 1, 7), (3, 2, 1, 4), (2, 3, 0, 2)])
def test_split_output_equals_unsplit_output(hot, length, step, horizon, max_rows):
    rows, df = hot
    w = _windower(windowLength=length, step=step, horizon=horizon, labelCol="l",
                  maxRowsPerTask=max_rows)
    assert _rows(w.transform(df)) == _reference(rows, length, step, horizon)


@pytest.mark.compat
def test_hot_key_is_split_across_tasks_and_groups(spark, hot):
    _, df = hot
    w = _windower(step=2, horizon=1, labelCol="l", maxRowsPerTask=7)
    spark.conf.set("spark.sql.adaptive.coalescePartitions.enabled", "false")
    try:
        chunks = w._chunks(df)
        sizes = {(r["_k"], r["_chunk"]): r["count"]
                 for r in chunks.groupBy("_k", "_chunk").count().collect()}
        hot_parts = (w.transform(df).where(F.col("k") == "hot")
                     .select(F.spark_partition_id().alias("p")).distinct().count())
    finally:
        spark.conf.unset("spark.sql.adaptive.coalescePartitions.enabled")
    assert max(sizes.values()) <= 7 + 3 - 1 + 1  # maxRowsPerTask + halo
    hot_sizes = [n for (k, _), n in sorted(sizes.items()) if k == "hot"]
    assert len(hot_sizes) == math.ceil(60 / 7)
    assert sum(hot_sizes) == 60 + 3 * (len(hot_sizes) - 1)  # every chunk but the last + halo
    assert hot_parts > 1, "the hot key's chunks must be windowed in several tasks"


def test_window_starts_within_a_chunk():
    spec = WindowSpec(3, 2, 1, 4, 1, False, True, ("k", "s", "e", "f"))
    assert window_starts(0, 7, spec).tolist() == [0, 2]  # positions 0, 2
    assert window_starts(4, 7, spec).tolist() == [0, 2]  # positions 4, 6
    assert window_starts(4, 5, spec).tolist() == [0]  # positions 4..8: one window of 3 + 1
    assert window_starts(4, 3, spec).tolist() == []  # key ends at position 6
    odd = WindowSpec(2, 3, 0, 4, 1, False, True, ("k", "s", "e", "f"))
    assert window_starts(4, 5, odd).tolist() == [2]  # position 6; 3 belongs to chunk 0


def test_chunk_windows_sorts_its_rows_and_rejects_gaps():
    spec = WindowSpec(2, 1, 0, 2, 1, False, True, ("k", "s", "e", "f"))
    pdf = pd.DataFrame({"_k": ["a"] * 3, "_chunk": [1] * 3, "_pos": [4, 2, 3],
                        "_t": [40, 20, 30], "_v0": [4.0, 2.0, 3.0]})
    out = chunk_windows(pdf, spec)
    assert out["s"].tolist() == [20, 30] and [list(f) for f in out["f"]] == [[2, 3], [3, 4]]
    with pytest.raises(RuntimeError, match="not deterministic"):
        chunk_windows(pdf.assign(_pos=[5, 2, 3]), spec)


# ------------------------------------------------------------------ invalid entries
NULL_ROWS = [("a", 1, 1.0, 100.0), ("a", 2, 2.0, 200.0), ("a", 3, None, 300.0),
             ("a", 4, 4.0, 400.0), ("a", 5, 5.0, None), ("a", None, 9.0, 900.0),
             (None, 1, 7.0, 700.0), (None, 2, 8.0, 800.0)]


@pytest.fixture(scope="module")
def with_nulls(spark):
    return spark.createDataFrame(NULL_ROWS, "k string, t long, x double, l double")


def _null_windower(handle):
    return _windower(valueCols=["x"], windowLength=2, labelCol="l", handleInvalid=handle)


def test_skip_drops_null_keys_times_and_windows_with_null_values(with_nulls):
    # Windows [2,3] and [3,4] hold the null x; [4,5]'s label is null.
    assert _rows(_null_windower("skip").transform(with_nulls)) == [("a", 1, 2, [1.0, 2.0], 200.0)]


def test_keep_keeps_null_keys_and_nan_values(with_nulls):
    got = _rows(_null_windower("keep").transform(with_nulls))
    nan = float("nan")
    expected = [("a", 1, 2, [1.0, 2.0], 200.0), ("a", 2, 3, [2.0, nan], 300.0),
                ("a", 3, 4, [nan, 4.0], 400.0), ("a", 4, 5, [4.0, 5.0], None),
                (None, 1, 2, [7.0, 8.0], 800.0)]  # the null-time row is dropped
    assert [(r[:3], r[4]) for r in got] == [(r[:3], r[4]) for r in expected]
    np.testing.assert_array_equal([r[3] for r in got], [r[3] for r in expected])


@pytest.mark.parametrize("bad_row,fragment", [
    ((None, 9, 1.0, 1.0), "'keyCol' column 'k' of SequenceWindower has a null value"),
    (("a", None, 1.0, 1.0), "'timeCol' column 't' of SequenceWindower has a null value"),
    (("a", 9, float("nan"), 1.0), "'valueCols' column 'x' of SequenceWindower has a null or NaN"),
    (("a", 9, 1.0, None), "'labelCol' column 'l' of SequenceWindower has a null or NaN"),
])
def test_error_names_the_column_when_the_output_is_read(spark, bad_row, fragment):
    df = spark.createDataFrame(NULL_ROWS[:2] + [bad_row], "k string, t long, x double, l double")
    out = _null_windower("error").transform(df)  # lazy: no job yet
    with pytest.raises(Exception, match=re.escape(fragment)):
        out.collect()
    clean = spark.createDataFrame(NULL_ROWS[:2], "k string, t long, x double, l double")
    assert _null_windower("error").transform(clean).count() == 1  # T=2: one window of a


# ------------------------------------------------------------------ params and persistence
@pytest.mark.parametrize("kwargs,exc,message", [
    ({"windowLength": 0}, ValueError,
     "The 'windowLength' parameter of SequenceWindower must be an int >= 1. Got 0 instead."),
    ({"step": 0}, ValueError, "'step' parameter of SequenceWindower must be an int >= 1. Got 0"),
    ({"horizon": -1}, ValueError, "'horizon' parameter of SequenceWindower must be an int >= 0"),
    ({"horizon": 1, "maxRowsPerTask": 3}, ValueError,
     "'maxRowsPerTask' parameter of SequenceWindower must be an int >= windowLength + horizon "
     "(4). Got 3 instead."),
    ({"handleInvalid": "drop"}, ValueError, "one of ['error', 'skip', 'keep']. Got 'drop'"),
    ({"windowLength": None}, ValueError,
     "The 'windowLength' parameter of SequenceWindower must be set. Got None instead."),
    ({"valueCols": []}, ValueError,
     "'valueCols' parameter of SequenceWindower must be a non-empty list of column names"),
    ({"keyCol": "nope"}, ValueError, "'keyCol' column 'nope' of SequenceWindower is not in"),
    ({"valueCols": ["x", "name"]}, TypeError, "'valueCols' column 'name' of SequenceWindower must"
     " be numeric. Got string."),
    ({"timeCol": "name"}, TypeError, "'timeCol' column 'name' of SequenceWindower must be a "
     "timestamp, date or numeric column. Got string."),
    ({"labelCol": "name"}, TypeError, "'labelCol' column 'name'"),
    ({"outputCol": "k"}, ValueError, "must have distinct names"),
])
def test_bad_params_fail_before_any_job(spark, tiny, kwargs, exc, message):
    df, sc = tiny.withColumn("name", F.lit("n")), spark.sparkContext
    sc.setJobGroup("sequence-bad-params", "no job may run")
    try:
        with pytest.raises(exc) as info:
            _bad(kwargs).transform(df)
    finally:
        sc.setLocalProperty("spark.jobGroup.id", None)
        sc.setLocalProperty("spark.job.description", None)
    assert message in str(info.value)
    assert sc.statusTracker().getJobIdsForGroup("sequence-bad-params") == []


def _bad(kwargs):
    w = _windower(**{k: v for k, v in kwargs.items() if v is not None})
    for k in (k for k, v in kwargs.items() if v is None):
        w.clear(w.getParam(k))
    return w


def test_non_integer_window_length_is_a_type_error():
    with pytest.raises(TypeError, match="windowLength"):
        SequenceWindower(windowLength=2.5)


def test_save_load_round_trip(tiny, tmp_path):
    w = _windower(step=2, horizon=1, labelCol="l", maxRowsPerTask=5, handleInvalid="keep")
    w.save(str(tmp_path / "windower"))
    loaded = SequenceWindower.load(str(tmp_path / "windower"))
    assert {p.name: v for p, v in loaded.extractParamMap().items()} == {
        p.name: v for p, v in w.extractParamMap().items()}
    assert _rows(loaded.transform(tiny)) == EXPECTED


def test_sampled_range_partitioning_still_numbers_rows_exactly(spark):
    # Thousands of rows per partition make Spark's range partitioner sample (with a seed
    # tied to the RDD id); positions must still be exact in every job.
    n_hot, n_cold = 9000, 1500
    rows = [("hot", t, float(t)) for t in range(n_hot)]
    rows += [(f"c{k}", t, float(t)) for k in range(2) for t in range(n_cold)]
    df = spark.createDataFrame(rows, "key string, t long, v double").repartition(3)
    w = SequenceWindower(keyCol="key", timeCol="t", valueCols=["v"], windowLength=5,
                         maxRowsPerTask=1000)
    out = w.transform(df)
    expected = (n_hot - 4) + 2 * (n_cold - 4)
    assert out.count() == expected
    # v equals t, so each window must start at its windowStart and run 5 steps
    wrong = out.where("features[0] != windowStart or windowEnd - windowStart != 4 or "
                      "features[4] != windowEnd")
    assert wrong.count() == 0
