"""Dataset generators: exact sizes, the same rows for a seed however partitioned, the
intended skew and label rates, and a signal that a simple model on the driver learns."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import Window
from pyspark.sql import functions as F
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from spark_dl.datasets import digits, images, prices, transactions
from spark_dl.datasets.transactions import FEATURES


def _rows(df, key):
    return [tuple(r) for r in df.orderBy(*key).collect()]


def _ddl(df):
    return [(f.name, f.dataType.simpleString()) for f in df.schema.fields]


# ------------------------------------------------------------------ transactions
def test_transactions_schema_and_exact_row_count(spark):
    df = transactions(spark, 2_500, merchants=50, block_rows=1_000)
    assert _ddl(df) == [("id", "bigint"), ("merchant", "string"), ("amount", "double"),
                        ("hour", "int"), ("card_age_days", "double"),
                        ("distance_km", "double"), ("num_tx_24h", "int"), ("foreign", "int"),
                        ("online", "int"), ("merchant_risk", "double"), ("label", "double")]
    stats = df.agg(F.count("*"), F.countDistinct("id"), F.min("id"), F.max("id"),
                   F.min("hour"), F.max("hour")).first()
    assert tuple(stats) == (2_500, 2_500, 0, 2_499, 0, 23)
    assert df.filter("amount <= 0 OR card_age_days <= 0 OR distance_km <= 0 OR num_tx_24h < 0 "
                     "OR foreign NOT IN (0, 1) OR online NOT IN (0, 1) OR merchant_risk <= 0 "
                     "OR merchant_risk >= 1 OR label NOT IN (0.0, 1.0)").count() == 0


def test_transactions_same_seed_same_rows_however_partitioned(spark):
    kw = dict(rows=3_000, merchants=40, block_rows=700)
    a = _rows(transactions(spark, seed=4, partitions=1, **kw), ["id"])
    b = _rows(transactions(spark, seed=4, partitions=3, **kw), ["id"])
    c = _rows(transactions(spark, seed=5, partitions=3, **kw), ["id"])
    assert a == b
    assert a != c


@pytest.fixture(scope="module")
def many_transactions(spark):
    return transactions(spark, 50_000, block_rows=10_000, seed=2).cache()


def test_transactions_hot_merchants_and_fraud_rate(many_transactions):
    df = many_transactions
    hot = [f"merchant_{i:05d}" for i in range(5)]
    shares = df.agg(F.mean(F.col("merchant").isin(hot).cast("double")),
                    F.mean("label")).first()
    assert abs(shares[0] - 0.6) < 0.02, shares
    # 100 frauds expected: +-8 standard deviations would still pass.
    assert 0.0012 <= shares[1] <= 0.0028, shares
    # A merchant is the same in every block: one risk score each.
    per = df.groupBy("merchant").agg(F.countDistinct("merchant_risk").alias("n"))
    assert per.agg(F.max("n")).first()[0] == 1


def test_transactions_fraud_needs_a_nonlinear_model(spark):
    pdf = transactions(spark, 20_000, fraud_rate=0.02, seed=3, block_rows=5_000).toPandas()
    X, y = pdf[list(FEATURES)].to_numpy(float), pdf["label"].to_numpy()
    half = len(y) // 2
    trees = HistGradientBoostingClassifier(max_iter=150, random_state=0).fit(X[:half], y[:half])
    linear = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    linear.fit(X[:half], y[:half])
    base = y[half:].mean()
    ap_trees = average_precision_score(y[half:], trees.predict_proba(X[half:])[:, 1])
    ap_linear = average_precision_score(y[half:], linear.predict_proba(X[half:])[:, 1])
    assert ap_linear >= 5 * base, (ap_linear, base)
    assert ap_trees >= 0.6 and ap_trees >= ap_linear + 0.15, (ap_trees, ap_linear)


# ------------------------------------------------------------------ images
def test_images_shape_range_and_labels(spark):
    df = images(spark, 400, size=16, block_rows=150)
    assert _ddl(df) == [("id", "bigint"), ("image", "array<float>"), ("label", "double")]
    stats = df.agg(F.count("*"), F.min(F.size("image")), F.max(F.size("image")),
                   F.min(F.array_min("image")), F.max(F.array_max("image")),
                   F.countDistinct("label"), F.min("label"), F.max("label")).first()
    assert stats[:3] == (400, 3 * 16 * 16, 3 * 16 * 16)
    assert 0.0 <= stats[3] < 0.05 and 0.95 < stats[4] <= 1.0, stats
    assert tuple(stats[5:]) == (10, 0.0, 9.0)
    grey = images(spark, 30, classes=4, channels=1, size=12, seed=1)
    assert grey.agg(F.max(F.size("image")), F.max("label")).first() == (144, 3.0)


def test_images_same_seed_same_rows_however_partitioned(spark):
    kw = dict(rows=300, size=12, block_rows=70)
    a = _rows(images(spark, seed=1, partitions=1, **kw), ["id"])
    b = _rows(images(spark, seed=1, partitions=4, **kw), ["id"])
    c = _rows(images(spark, seed=2, partitions=4, **kw), ["id"])
    assert a == b
    assert a != c


def test_images_rejects_more_classes_than_shapes(spark):
    with pytest.raises(ValueError, match=r"'classes' argument of images must be an int in "
                                         r"\[2, 12\]. Got 13 instead"):
        images(spark, 10, classes=13)


def _orientation_histogram(x: np.ndarray) -> np.ndarray:
    """Gradient energy in 8 orientation bins of the grey image: where edges point."""
    gy, gx = np.gradient(x.mean(axis=1), axis=(1, 2))
    magnitude = np.hypot(gx, gy)
    bins = np.minimum((np.mod(np.arctan2(gy, gx), np.pi) / np.pi * 8).astype(int), 7)
    h = np.stack([(magnitude * (bins == k)).sum(axis=(1, 2)) for k in range(8)], axis=1)
    return h / (h.sum(axis=1, keepdims=True) + 1e-9)


def test_image_classes_lie_in_shapes_not_pixels(spark):
    pdf = images(spark, 3_000, size=16, seed=5).toPandas()
    x, y = np.stack(pdf["image"].to_numpy()).reshape(-1, 3, 16, 16), pdf["label"].to_numpy()
    cut = 2_000
    edges = _orientation_histogram(x)
    shape_acc = LogisticRegression(max_iter=1000).fit(edges[:cut], y[:cut]).score(edges[cut:],
                                                                                y[cut:])
    flat = x.reshape(len(x), -1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lbfgs stops at max_iter; the point is made by then
        pixel_acc = LogisticRegression(max_iter=100).fit(flat[:cut], y[:cut]).score(
            flat[cut:], y[cut:])
    # Chance is 0.1: edge orientations alone carry much of the class, single pixels little.
    assert shape_acc >= 0.3 and shape_acc >= pixel_acc + 0.1, (shape_acc, pixel_acc)


def test_digits_match_scikit_learn(spark):
    from sklearn.datasets import load_digits

    df = digits(spark, seed=0, partitions=2)
    assert _ddl(df) == [("id", "bigint"), ("image", "array<float>"), ("label", "double")]
    rows = df.orderBy("id").collect()
    data = load_digits()
    order = np.random.default_rng(0).permutation(len(data.target))
    assert len(rows) == 1_797 and [r.id for r in rows] == list(range(1_797))
    np.testing.assert_allclose(np.asarray([r.image for r in rows]), data.data[order] / 16,
                               rtol=1e-6)
    assert [r.label for r in rows] == data.target[order].astype(float).tolist()


# ------------------------------------------------------------------ prices
@pytest.fixture(scope="module")
def price_df(spark):
    return prices(spark, 20_000, tickers=20, hot_tickers=2, hot_share=0.5, block_rows=1_000,
                  seed=1).cache()


def test_prices_schema_count_and_hot_tickers(price_df):
    assert _ddl(price_df) == [("ticker", "string"), ("day", "bigint"), ("date", "date"),
                              ("open", "double"), ("high", "double"), ("low", "double"),
                              ("close", "double"), ("volume", "double"),
                              ("next_up", "double")]
    counts = {r.ticker: r["count"] for r in price_df.groupBy("ticker").count().collect()}
    assert len(counts) == 20 and sum(counts.values()) == 20_000
    assert counts["T000"] + counts["T001"] == 10_000


def test_prices_days_are_contiguous_and_bars_consistent(price_df):
    per = price_df.groupBy("ticker").agg(F.count("*").alias("n"), F.min("day").alias("lo"),
                                         F.max("day").alias("hi"),
                                         F.countDistinct("day").alias("distinct"))
    assert per.filter("lo != 0 OR hi != n - 1 OR distinct != n").count() == 0
    bad = price_df.filter(
        (F.datediff("date", F.lit("2015-01-01").cast("date")) != F.col("day"))
        | (F.col("low") > F.least("open", "close")) | (F.col("high") < F.greatest("open", "close"))
        | (F.col("low") <= 0) | (F.col("volume") <= 0))
    assert bad.count() == 0


def test_prices_next_up_follows_the_next_close_without_jumps_at_block_edges(price_df):
    w = Window.partitionBy("ticker").orderBy("day")
    df = price_df.select("ticker", "day", "close", "next_up",
                         F.lead("close").over(w).alias("tomorrow"),
                         F.log(F.col("close") / F.lag("close").over(w)).alias("ret"))
    wrong = df.filter((F.col("next_up").isNull() != F.col("tomorrow").isNull())
                      | (F.col("next_up") != (F.col("tomorrow") > F.col("close")).cast("double")))
    assert wrong.count() == 0
    assert df.filter(F.col("next_up").isNull()).count() == 20  # each ticker's last day
    sd = df.agg(F.stddev("ret")).first()[0]
    edges = df.filter((F.col("day") % 1_000 == 0) & (F.col("day") > 0)).collect()
    assert len(edges) == 8  # the two hot tickers of 5,000 days span five blocks each
    assert max(abs(r.ret) for r in edges) < 4 * sd and df.agg(F.max(F.abs("ret"))).first()[0] < 0.2


def test_prices_same_seed_same_rows_however_partitioned(spark):
    kw = dict(rows=2_000, tickers=6, hot_tickers=1, block_rows=300)
    a = _rows(prices(spark, seed=3, partitions=1, **kw), ["ticker", "day"])
    b = _rows(prices(spark, seed=3, partitions=5, **kw), ["ticker", "day"])
    c = _rows(prices(spark, seed=4, partitions=5, **kw), ["ticker", "day"])
    assert a == b
    assert a != c


def _momentum_features(pdf: pd.DataFrame) -> pd.DataFrame:
    """Per ticker: the last returns, their recent autocorrelation and the volume surprise."""
    pdf = pdf.sort_values(["ticker", "day"])
    g = pdf.groupby("ticker")
    ret = np.log(pdf["close"] / g["close"].shift(1))
    ret = ret / ret.groupby(pdf["ticker"]).transform("std")
    volume = np.log(pdf["volume"])
    surprise = volume - volume.groupby(pdf["ticker"]).transform(
        lambda v: v.rolling(20, min_periods=1).mean())
    lags = pd.concat([ret.groupby(pdf["ticker"]).shift(k) for k in range(17)], axis=1)
    r = lags.to_numpy()
    autocorr = np.nansum(r[:, :-1] * r[:, 1:], axis=1) / (np.nansum(r ** 2, axis=1) + 1e-9)
    week = r[:, :5].sum(axis=1)
    out = pd.DataFrame({"r0": r[:, 0], "r1": r[:, 1], "ac": autocorr, "ac_r0": autocorr * r[:, 0],
                        "week": week, "spike_week": surprise.to_numpy() * week,
                        "surprise": surprise.to_numpy(), "y": pdf["next_up"].to_numpy(),
                        "day": pdf["day"].to_numpy(), "n": g["day"].transform("size").to_numpy()})
    return out[np.isfinite(r).all(axis=1) & out["y"].notna().to_numpy()]


def test_price_direction_is_learnable_beyond_naive_baselines(price_df):
    feats = _momentum_features(price_df.toPandas())
    train = feats[feats["day"] < 0.7 * feats["n"]]
    test = feats[feats["day"] >= 0.7 * feats["n"]]
    cols = ["r0", "r1", "ac", "ac_r0", "week", "spike_week", "surprise"]
    model = LogisticRegression(max_iter=1000).fit(train[cols], train["y"])
    accuracy = model.score(test[cols], test["y"])
    up = test["y"].mean()
    same_as_today = ((test["r0"] > 0) == (test["y"] > 0)).mean()
    baseline = max(up, 1 - up, same_as_today)
    assert accuracy >= baseline + 0.025, (accuracy, up, same_as_today)
