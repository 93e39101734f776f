"""What the skew benchmarks share: their settings, targets and data layouts (see
:mod:`bench.skew`)."""

from __future__ import annotations

import argparse
from typing import Any, NamedTuple

BENCHES = ("scoring", "training", "windowing")


SCORING_FEATURES = 64


TRAIN_FEATURES = 16


NUM_VALUES = 4
#: (benchmark, ratio, comparison, target) printed beside the measured medians.
TARGETS = {
    "scoring B/A (rebalance=auto)": ("<=", 1.15),
    "training B/A": ("<=", 1.15),
    "windowing B/A": ("<=", 1.2),
    "windowing: plain peak / windower peak": (">=", 4.0),
}


class Config(NamedTuple):
    """Command-line settings."""

    only: tuple[str, ...]
    score_rows: int
    score_hidden: tuple[int, ...]
    score_rounds: int
    fit_rows: int
    train_rows: int
    train_rounds: int
    train_epochs: int
    train_timeout: float
    window_rows: int
    window_keys: int
    hot_share: float
    window_length: int
    window_step: int
    horizon: int
    max_rows_per_task: int
    window_rounds: int
    warmup: int
    quiet_wait: float
    smoke: bool


def parse_args(argv: list[str] | None) -> tuple[Config, argparse.Namespace]:
    """Parse ``argv`` (``None``: ``sys.argv[1:]``); ``--smoke`` overrides the sizes."""
    p = argparse.ArgumentParser(description="Skew benchmarks: scoring, distributed training and sequence windowing on lopsided data.")
    p.add_argument("--only", default=",".join(BENCHES), help="comma-separated benchmarks")
    p.add_argument("--score-rows", type=int, default=800_000)
    p.add_argument("--score-hidden", default="1024,1024", help="hidden layers of the scorer")
    p.add_argument("--score-rounds", type=int, default=5)
    p.add_argument("--train-rows", type=int, default=200_000)
    p.add_argument("--train-rounds", type=int, default=3)
    p.add_argument("--train-timeout", type=float, default=300.0, help="seconds per fit")
    p.add_argument("--window-rows", type=int, default=2_000_000)
    p.add_argument("--window-keys", type=int, default=40)
    p.add_argument("--hot-share", type=float, default=0.75)
    p.add_argument("--window-length", type=int, default=16)
    p.add_argument("--window-rounds", type=int, default=5)
    p.add_argument("--quiet-wait", type=float, default=60.0,
                   help="before each round, wait up to this many s for other load to stop")
    p.add_argument("--smoke", action="store_true", help="tiny sizes, one round, checks")
    # internal: one memory-measurement subprocess
    p.add_argument("--mem-child", choices=("windower", "plain"), help=argparse.SUPPRESS)
    p.add_argument("--max-rows-per-task", type=int, default=100_000, help=argparse.SUPPRESS)
    p.add_argument("--range-sample", type=int, default=0, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    only = tuple(b for b in a.only.split(",") if b)
    bad = set(only) - set(BENCHES)
    if bad:
        p.error(f"unknown benchmark(s) {sorted(bad)}; choose from {list(BENCHES)}")
    hidden = tuple(int(h) for h in a.score_hidden.split(",") if h)
    if a.smoke:
        cfg = Config(only, score_rows=4000, score_hidden=(16,), score_rounds=1, fit_rows=1000,
                     train_rows=2000, train_rounds=1, train_epochs=1, train_timeout=240.0,
                     window_rows=6000, window_keys=6, hot_share=0.75, window_length=5,
                     window_step=2, horizon=1, max_rows_per_task=700, window_rounds=1,
                     warmup=0, quiet_wait=0.0, smoke=True)
    else:
        cfg = Config(only, a.score_rows, hidden, a.score_rounds, fit_rows=5000,
                     train_rows=a.train_rows, train_rounds=a.train_rounds, train_epochs=2,
                     train_timeout=a.train_timeout, window_rows=a.window_rows,
                     window_keys=a.window_keys, hot_share=a.hot_share,
                     window_length=a.window_length, window_step=1, horizon=1,
                     max_rows_per_task=a.max_rows_per_task, window_rounds=a.window_rounds,
                     warmup=1, quiet_wait=a.quiet_wait, smoke=False)
    return cfg, a


def cached(df: Any, rows: int | None = None) -> Any:
    """``df`` cached and counted (asserting ``rows`` when given)."""
    df = df.cache()
    n = df.count()
    assert rows is None or n == rows, f"expected {rows} rows, got {n}"
    return df


def rows_per_partition(df: Any) -> list[int]:
    """Rows in each partition of ``df`` (one job)."""
    from spark_dl.skew import partition_stats

    return partition_stats(df).counts


def skewed_layout(base: Any, rows: int, share: float, rest_parts: int) -> Any:
    """``base`` (with an ``id`` column 0..rows-1) as one partition holding ``share`` of the
    rows followed by ``rest_parts`` partitions holding the rest."""
    from pyspark.sql import functions as F

    cut = int(rows * share)
    if rest_parts == 1:
        # A union of two single-partition inputs is itself single-partition in Spark 4
        # (spark.sql.unionOutputPartitioning), so split by range on the flag instead.
        return base.repartitionByRange(2, (F.col("id") >= cut).alias("_rest"))
    hot = base.where(F.col("id") < cut).coalesce(1)
    return hot.union(base.where(F.col("id") >= cut).repartition(rest_parts))
