"""Synthetic daily stock prices per ticker, with regimes a sequence model can learn."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession

from spark_dl.datasets._blocks import generate, sizes

#: Day 0 of every ticker.
START = np.datetime64("2015-01-01", "D")

#: Per regime: lag-1 autocorrelation of returns, volatility and volume multipliers.
#: Momentum trends on rising volume, reversal chops on its usual volume, quiet drifts.
REGIMES = ((0.4, 1.0, 1.3), (-0.4, 1.0, 1.0), (0.0, 0.6, 0.7))
STAY = 0.97  # a regime lasts about 33 days

SCHEMA = ("ticker string, day long, date date, open double, high double, low double, "
          "close double, volume double, next_up double")


@lru_cache(maxsize=256)
def _ticker(seed: int, ticker: int) -> tuple[float, float, float, float]:
    """``(log start price, daily drift, daily volatility, log volume)`` of one ticker.

    Drawn from a generator seeded by ``(seed, ticker, 2)``, the same in every block.
    """
    rng = np.random.default_rng([int(seed), int(ticker), 2])
    return (float(rng.normal(np.log(50.0), 0.8)), float(rng.normal(2e-4, 3e-4)),
            float(rng.uniform(0.01, 0.025)), float(rng.normal(13.0, 1.0)))


def _anchor(log_start: float, drift: float, day: int) -> float:
    """Log close on a block's first day: a closed form, so neighbouring blocks agree."""
    return log_start + drift * day


def _returns(rng: np.random.Generator, n: int, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """``n`` daily log returns and volume multipliers from regimes and volume spikes.

    After a spike (3% of days, volume 3-6 times usual) the next three days lean against
    the last five days' move three times out of four: capitulation, then a reversal.
    """
    regime = np.empty(n, dtype=np.int64)
    switch = rng.random(n) > STAY
    other = rng.integers(1, len(REGIMES), size=n)
    k = int(rng.integers(0, len(REGIMES)))
    for j in range(n):
        k = (k + int(other[j])) % len(REGIMES) if switch[j] else k
        regime[j] = k
    phi, vol, flow = (np.asarray(v)[regime] for v in zip(*REGIMES))
    eps = (rng.standard_normal(n) * vol * sigma).tolist()
    spike = (rng.random(n) < 0.03).tolist()
    reverts = (rng.random(n) < 0.75).tolist()
    phi_l = phi.tolist()
    r = [0.0] * n
    lean, until = 0.0, -1
    prev = 0.0
    for j in range(n):
        r[j] = phi_l[j] * prev + (lean if j <= until else 0.0) + eps[j]
        prev = r[j]
        if spike[j] and reverts[j]:
            trend = sum(r[max(0, j - 4):j + 1])
            lean, until = -0.6 * sigma * float(np.sign(trend)), j + 3
    volume = flow * np.exp(0.25 * rng.standard_normal(n))
    volume *= np.where(spike, rng.uniform(3.0, 6.0, n), 1.0)
    return np.asarray(r), volume


def _block(rng: np.random.Generator, block: dict[str, Any], seed: int) -> pd.DataFrame:
    """Rows ``start .. start + rows - 1`` of one ticker, pinned to the anchors at both ends."""
    log_start, drift, sigma, log_volume = _ticker(seed, block["ticker"])
    start, n = block["start"], block["rows"]
    last = start + n == block["length"]  # the ticker's last block: no next day to pin to
    r, flow = _returns(rng, n + 1, sigma)  # r[j] moves close j - 1 to close j; r[0] unused
    r[0] = 0.0
    r[1:] += drift
    begin = _anchor(log_start, drift, start)
    if not last:  # close on the anchor of the next block, so the series runs on unbroken
        r[1:] -= (r[1:].sum() - drift * n) / n
    log_close = begin + np.cumsum(r)
    if not last:
        log_close[n] = _anchor(log_start, drift, start + n)
    close = np.exp(log_close)
    r[0] = rng.normal(0.0, sigma)  # the first row's own move, for its open only
    today, tomorrow = close[:n], close[1:]
    open_ = today * np.exp(-(0.7 * r[:n] + rng.normal(0.0, 0.3 * sigma, n)))
    high = np.maximum(open_, today) * np.exp(abs(rng.normal(0.0, 0.5 * sigma, n)))
    low = np.minimum(open_, today) * np.exp(-abs(rng.normal(0.0, 0.5 * sigma, n)))
    volume = np.exp(log_volume) * flow[:n] * (1 + 0.5 * abs(r[:n]) / sigma)
    next_up = (tomorrow > today).astype(float)
    if last:
        next_up[-1] = np.nan
    day = start + np.arange(n)
    return pd.DataFrame({
        "ticker": f"T{block['ticker']:03d}", "day": day,
        "date": pd.Series(START + day.astype("timedelta64[D]")).dt.date,
        "open": open_, "high": high, "low": low, "close": today, "volume": volume.round(0),
        "next_up": next_up,
    })


def prices(spark: SparkSession, rows: int = 100_000, *, tickers: int = 50,
           hot_tickers: int = 3, hot_share: float = 0.5, seed: int = 0,
           block_rows: int = 5_000, partitions: int | None = None) -> DataFrame:
    """Daily open, high, low, close and volume per ticker, made on the executors.

    ``hot_tickers`` tickers hold ``hot_share`` of the rows (long listed, heavily traded),
    the rest share what is left; each ticker's days run ``0 .. n - 1`` without gaps,
    dated from 2015-01-01 one calendar day apart. A ticker's start price, drift,
    volatility and usual volume come from a generator seeded by ``(seed, ticker)``.

    Returns follow hidden regimes lasting about a month: momentum (lag-1
    autocorrelation +0.4, rising volume), reversal (-0.4) and quiet (no autocorrelation,
    low volatility and volume). On 3% of days volume spikes 3-6 fold, and three times out
    of four the next three days lean against the last week's move. So the direction of
    tomorrow's close is predictable from the last couple of weeks of returns and volume
    (a model must infer the regime), yet neither "up always" nor "same as today" does
    better than a coin.

    A ticker longer than ``block_rows`` is made in several blocks; each block starts on
    the closed-form trend level ``log(price) = log(start price) + drift * day`` and its
    returns are shifted by one small constant to end on the next block's start, so the
    series runs on without a jump at block edges.

    Returns columns ``ticker`` (string), ``day`` (long), ``date`` (date), ``open``,
    ``high``, ``low``, ``close``, ``volume`` (double) and ``next_up`` (double: 1.0 if
    the next day's close is higher, else 0.0; null on each ticker's last day, which has
    no next day, so filter ``next_up IS NOT NULL`` before training).

    Examples
    --------
    >>> df = prices(spark, 20_000, tickers=10, seed=1)  # doctest: +SKIP
    >>> df.filter("ticker = 'T000'").orderBy("day").show(3)  # doctest: +SKIP
    """
    blocks = []
    for t, n in enumerate(sizes(rows, tickers, hot_tickers, hot_share)):
        blocks += [{"ticker": t, "start": s, "rows": min(block_rows, n - s), "length": n}
                   for s in range(0, n, block_rows)]

    def make(rng: np.random.Generator, block: dict[str, Any]) -> pd.DataFrame:
        return _block(rng, block, seed)

    return generate(spark, blocks, make, SCHEMA, seed, partitions)
