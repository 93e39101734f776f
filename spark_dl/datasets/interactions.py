"""User-item interactions with power-law popularity and activity, side features and a known
preference structure (the recommendation pipeline's data)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession

from spark_dl.datasets._blocks import generate, sizes

#: User segments and item categories; each segment prefers LIKED categories of them.
SEGMENTS, CATEGORIES, LIKED = 8, 8, 2
USERS_PER_BLOCK = 200
SCHEMA = ("user long, item long, rating double, day double, "
          "user_features array<double>, item_features array<double>")


def world(users: int, items: int, seed: int) -> dict[str, np.ndarray]:
    """The fixed part: segments, categories, popularity, side features and preferences."""
    rng = np.random.default_rng([int(seed), 1 << 30])
    segment = rng.integers(0, SEGMENTS, users)
    category = rng.integers(0, CATEGORIES, items)
    popularity = 1.0 / np.arange(1, items + 1) ** 0.9
    rng.shuffle(popularity)
    liked = np.zeros((SEGMENTS, CATEGORIES))
    for s in range(SEGMENTS):
        liked[s, rng.choice(CATEGORIES, LIKED, replace=False)] = 1.0
    age = rng.uniform(0.0, 1.0, users)
    price = rng.uniform(0.0, 1.0, items)
    # Older users of a segment favour pricier items of the categories they like.
    return {"segment": segment, "category": category, "popularity": popularity,
            "liked": liked, "age": age, "price": price,
            "user_features": np.column_stack([np.eye(SEGMENTS)[segment], age]),
            "item_features": np.column_stack([np.eye(CATEGORIES)[category], price])}


def affinity(w: dict[str, np.ndarray], user: int) -> np.ndarray:
    """How much ``user`` likes each item, before popularity (the known structure)."""
    likes = w["liked"][w["segment"][user], w["category"]]
    fit = 1.0 - np.abs(w["age"][user] - w["price"])  # in [0, 1]
    return 2.5 * likes * (0.5 + fit)


def _block(rng: np.random.Generator, block: dict[str, int], w: dict[str, np.ndarray],
           counts: list[int]) -> pd.DataFrame:
    frames = []
    for user in range(block["first"], block["first"] + block["users"]):
        n = counts[user]
        if n == 0:
            continue
        a = affinity(w, user)
        p = w["popularity"] * np.exp(a)
        items = rng.choice(len(p), n, p=p / p.sum())
        rating = np.clip(np.round(1.0 + 1.6 * a[items] + rng.normal(0, 0.5, n)), 1, 5)
        frames.append(pd.DataFrame({
            "user": user, "item": items.astype(np.int64), "rating": rating,
            "day": rng.uniform(0.0, 100.0, n),
            "user_features": [w["user_features"][user].tolist()] * n,
            "item_features": [w["item_features"][i].tolist() for i in items]}))
    return pd.concat(frames) if frames else pd.DataFrame(
        {c: pd.Series(dtype=t) for c, t in (("user", "int64"), ("item", "int64"),
                                            ("rating", "float64"), ("day", "float64"),
                                            ("user_features", object),
                                            ("item_features", object))})


def interactions(spark: SparkSession, rows: int = 50_000, *, users: int = 2_000,
                 items: int = 500, power_users: float = 0.01, power_share: float = 0.5,
                 seed: int = 0, partitions: int | None = None) -> DataFrame:
    """Interactions made on the executors: ``power_users`` of the users hold
    ``power_share`` of the rows, item popularity follows a power law (exponent 0.9), and a
    user picks items by popularity times ``exp(affinity)``: each of 8 segments likes 2 of 8
    categories, most for items whose price fits the user's age. The side features carry
    exactly that (one-hot segment and age; one-hot category and price).

    Returns ``user``, ``item`` (long), ``rating`` (1-5, higher with the affinity), ``day``
    (uniform in [0, 100): split by it for a time-based test set) and the side features
    ``user_features`` (9 values) and ``item_features`` (9 values).
    """
    w = world(users, items, seed)
    hot = int(round(users * power_users))
    counts = sizes(rows, users, hot, power_share if hot else 0.0)
    blocks = [{"first": f, "users": min(USERS_PER_BLOCK, users - f)}
              for f in range(0, users, USERS_PER_BLOCK)]
    return generate(spark, blocks, lambda rng, b: _block(rng, b, w, counts), SCHEMA, seed,
                    partitions)
