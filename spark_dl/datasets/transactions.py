"""Synthetic card transactions for fraud detection, with a few very busy merchants."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession

from spark_dl.datasets._blocks import generate

#: The feature columns, in output order (``id``, ``merchant`` and ``label`` aside).
FEATURES = ("amount", "hour", "card_age_days", "distance_km", "num_tx_24h", "foreign",
            "online", "merchant_risk")

#: Legitimate spending by hour of day: low at night, a midday peak and an evening peak.
_HOURS = np.arange(24)
_DAY = (0.04 + np.exp(-0.5 * ((_HOURS - 13) / 3.5) ** 2)
        + 0.6 * np.exp(-0.5 * ((_HOURS - 20) / 2.0) ** 2))
_DAY = _DAY / _DAY.sum()


@lru_cache(maxsize=8)
def _merchants(seed: int, merchants: int) -> dict[str, np.ndarray]:
    """Per-merchant parameters, each from a generator seeded by ``(seed, merchant, 1)``.

    They are the same in every block (and every executor), whatever the block's own
    generator draws.
    """
    cols: dict[str, list[float]] = {k: [] for k in
                                    ("mu", "sigma", "online", "foreign", "propensity",
                                     "risk", "popularity")}
    for m in range(merchants):
        rng = np.random.default_rng([int(seed), m, 1])
        cols["mu"].append(rng.normal(3.4, 0.6))          # log of the typical amount
        cols["sigma"].append(rng.uniform(0.35, 0.75))    # spread of log amounts
        cols["online"].append(rng.beta(1.2, 2.5))        # share of card-not-present sales
        cols["foreign"].append(rng.beta(0.5, 40.0))      # share of foreign cards
        propensity = rng.lognormal(0.0, 0.8)             # how much fraud it attracts
        cols["propensity"].append(propensity)
        # The published risk score only sees the propensity through noise.
        cols["risk"].append(1 / (1 + np.exp(-(0.9 * np.log(propensity) + rng.normal(0, 0.6)))))
        cols["popularity"].append(rng.lognormal(0.0, 1.0))
    return {k: np.asarray(v) for k, v in cols.items()}


@lru_cache(maxsize=8)
def _mix(seed: int, merchants: int, hot: int, hot_share: float) -> np.ndarray:
    """Probability of each merchant per row: ``hot_share`` at the first ``hot`` ones."""
    hot = min(max(hot, 0), merchants)
    if hot == merchants:
        return np.full(merchants, 1.0 / merchants)
    mix = _merchants(seed, merchants)["popularity"].copy()
    mix[:hot] = 0.0
    mix *= (1.0 - (hot_share if hot else 0.0)) / mix.sum()
    if hot:
        mix[:hot] = hot_share / hot
    return mix


def _fraud_odds(table: dict[str, np.ndarray], mix: np.ndarray, fraud_rate: float) -> np.ndarray:
    """Per-merchant fraud probability whose mean over the merchant mix is ``fraud_rate``."""
    lift = table["propensity"] / float(mix @ table["propensity"])  # mean 1 over the mix
    # Shrink the lift towards 1 where the most targeted merchant would pass p = 1.
    shrink = min(1.0, (1 / fraud_rate - 1) / max(float(lift.max()) - 1, 1e-12))
    return fraud_rate * (1 + shrink * (lift - 1))


def _legit(rng: np.random.Generator, m: np.ndarray,
           table: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Features of ordinary spending (rare look-alikes of fraud included)."""
    n = len(m)
    foreign = (rng.random(n) < table["foreign"][m]).astype(np.int64)
    young = rng.random(n) < 0.03  # recently issued cards are common and mostly honest
    hour = rng.choice(24, size=n, p=_DAY)
    travel = foreign.astype(bool) & (rng.random(n) < 0.3)  # jet lag: any hour of the day
    hour[travel] = rng.integers(0, 24, size=int(travel.sum()))
    return {
        "amount": np.exp(table["mu"][m] + table["sigma"][m] * rng.standard_normal(n)),
        "hour": hour,
        "card_age_days": np.where(young, rng.lognormal(3.8, 0.7, n), rng.lognormal(6.4, 0.9, n)),
        "distance_km": rng.lognormal(1.5, 1.2, n) + foreign * rng.lognormal(6.8, 0.9, n),
        "num_tx_24h": rng.poisson(rng.gamma(2.0, 1.0, n)),
        "foreign": foreign,
        "online": (rng.random(n) < table["online"][m]).astype(np.int64),
    }


def _fraud(rng: np.random.Generator, x: dict[str, np.ndarray], rows: np.ndarray,
           m: np.ndarray, table: dict[str, np.ndarray]) -> None:
    """Rewrite ``rows`` of ``x`` as fraud: each follows one of three schemes, partly.

    0 card testing: a burst of online charges; 1 a stolen card used abroad at night for
    an amount high for the merchant; 2 a freshly opened (synthetic or taken-over) card
    spending big online. Each trait shows with a probability below one, so frauds
    overlap with honest rows that share one or two of the traits.
    """
    n = len(rows)
    scheme = rng.choice(3, size=n, p=[0.35, 0.4, 0.25])

    def some(k: int, p: float) -> np.ndarray:
        return rows[(scheme == k) & (rng.random(n) < p)]

    mu, sigma = table["mu"], table["sigma"]
    burst = some(0, 0.9)
    x["num_tx_24h"][burst] += rng.poisson(12.0, len(burst))
    x["online"][some(0, 0.9)] = 1
    tiny = some(0, 0.6)  # testing the card with small charges
    x["amount"][tiny] = rng.uniform(0.5, 3.0, len(tiny))
    anytime = some(0, 0.4)
    x["hour"][anytime] = rng.integers(0, 24, size=len(anytime))
    abroad = some(1, 0.85)
    x["foreign"][abroad] = 1
    x["distance_km"][abroad] = rng.lognormal(6.8, 0.9, len(abroad))
    night = some(1, 0.7)
    x["hour"][night] = rng.integers(0, 6, size=len(night))
    new = some(2, 0.9)
    x["card_age_days"][new] = rng.lognormal(1.8, 0.8, len(new))
    x["online"][some(2, 0.7)] = 1
    big = np.concatenate([some(1, 0.75), some(2, 0.75)])
    x["amount"][big] = np.exp(mu[m[big]] + sigma[m[big]] * (2.0 + rng.standard_normal(len(big))))


def _block(rng: np.random.Generator, block: dict[str, Any], seed: int, merchants: int,
           hot: int, hot_share: float, fraud_rate: float) -> pd.DataFrame:
    table = _merchants(seed, merchants)
    mix = _mix(seed, merchants, hot, hot_share)
    n = block["rows"]
    m = rng.choice(merchants, size=n, p=mix)
    label = rng.random(n) < _fraud_odds(table, mix, fraud_rate)[m]
    x = _legit(rng, m, table)
    _fraud(rng, x, np.flatnonzero(label), m, table)
    frame = pd.DataFrame({"id": block["start"] + np.arange(n),
                          "merchant": [f"merchant_{i:05d}" for i in m]})
    for name in FEATURES[:-1]:
        frame[name] = x[name]
    frame["amount"] = frame["amount"].clip(lower=0.01).round(2)
    frame["card_age_days"] = frame["card_age_days"].clip(lower=0.1).round(1)
    frame["distance_km"] = frame["distance_km"].clip(lower=0.01).round(2)
    frame["merchant_risk"] = table["risk"][m].round(4)
    frame["label"] = label.astype(float)
    return frame


SCHEMA = ("id long, merchant string, amount double, hour int, card_age_days double, "
          "distance_km double, num_tx_24h int, foreign int, online int, "
          "merchant_risk double, label double")


def transactions(spark: SparkSession, rows: int = 200_000, *, fraud_rate: float = 0.002,
                 merchants: int = 1000, hot_merchants: int = 5, hot_share: float = 0.6,
                 seed: int = 0, block_rows: int = 20_000,
                 partitions: int | None = None) -> DataFrame:
    """Card transactions labelled as fraud (1.0) or not, made on the executors.

    ``hot_merchants`` merchants (``merchant_00000`` onwards: the big retailers) take
    ``hot_share`` of the rows in expectation, the skew a payment network shows; the
    others share the rest by a log-normal popularity. Each merchant has its own typical
    amount, online and foreign-card shares and fraud propensity, drawn from a generator
    seeded by ``(seed, merchant)`` so that a merchant is the same in every block.

    Fraud hits ``fraud_rate`` of the rows in expectation, more often at merchants with a
    high propensity (which ``merchant_risk`` reflects only noisily), and follows one of
    three schemes: card testing (a burst of recent online charges), a stolen card used
    abroad at night for an amount high for the merchant, or a new card spending big
    online. Each trait of a scheme shows only sometimes, and honest rows have them too
    (travellers, new cards, heavy users), so the classes overlap: the signal lies in
    combinations of features, not in any one threshold.

    Returns columns ``id`` (long), ``merchant`` (string), ``amount`` (double),
    ``hour`` (int, 0-23), ``card_age_days`` (double), ``distance_km`` (double, from the
    card holder's home), ``num_tx_24h`` (int, the card's transactions in the last 24
    hours), ``foreign`` (int 0/1, card issued abroad), ``online`` (int 0/1,
    card-not-present), ``merchant_risk`` (double in (0, 1), the same for every row of a
    merchant) and ``label`` (double, 1.0 = fraud).

    Examples
    --------
    >>> df = transactions(spark, 50_000, fraud_rate=0.01, seed=1)  # doctest: +SKIP
    >>> df.groupBy("label").count().show()  # doctest: +SKIP
    """
    if not 0.0 < fraud_rate < 1.0:
        raise ValueError(f"The 'fraud_rate' argument of transactions must be a float in "
                         f"(0, 1). Got {fraud_rate!r} instead.")
    if merchants < 1:
        raise ValueError(f"The 'merchants' argument of transactions must be an int >= 1. "
                         f"Got {merchants!r} instead.")
    blocks = [{"start": s, "rows": min(block_rows, rows - s)} for s in range(0, rows, block_rows)]

    def make(rng: np.random.Generator, block: dict[str, Any]) -> pd.DataFrame:
        return _block(rng, block, seed, merchants, hot_merchants, hot_share, fraud_rate)

    return generate(spark, blocks, make, SCHEMA, seed, partitions)
