"""Synthetic product reviews for sentiment classification."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession

from spark_dl.datasets._blocks import generate

POSITIVE = ("good great excellent love loved amazing perfect wonderful happy best fantastic "
            "recommend superb pleasant reliable sturdy comfortable fast beautiful solid").split()
NEGATIVE = ("bad terrible awful hate hated poor broken worst disappointing slow cheap "
            "useless flimsy ugly refund noisy faulty annoying waste late").split()
FILLER = ("the a an it this that product item order box i we they was is were arrived "
          "after before with for of and but on in to my our price size color delivery "
          "seller package day week month use used using again also very quite really "
          "overall bought purchase kitchen phone shoes chair lamp battery cable screen "
          "bag toy book game watch camera").split()
NEGATORS = ("not", "never", "hardly")


def _review(rng: np.random.Generator, label: int) -> str:
    length = int(rng.integers(8, 32))
    words = list(rng.choice(FILLER, size=length))
    own, other = (POSITIVE, NEGATIVE) if label else (NEGATIVE, POSITIVE)
    for _ in range(int(rng.integers(1, 4))):
        pos = int(rng.integers(0, len(words) + 1))
        if rng.random() < 0.25:  # "not bad" carries the label through the opposite word
            words[pos:pos] = [str(rng.choice(NEGATORS)), str(rng.choice(other))]
        else:
            words.insert(pos, str(rng.choice(own)))
    if rng.random() < 0.3:  # a distractor: one word of the other polarity
        words.insert(int(rng.integers(0, len(words) + 1)), str(rng.choice(other)))
    return " ".join(words)


def _block(rng: np.random.Generator, block: dict[str, Any], positive_share: float,
           noise: float) -> pd.DataFrame:
    n = block["rows"]
    labels = (rng.random(n) < positive_share).astype(int)
    texts = [_review(rng, int(y)) for y in labels]
    flip = rng.random(n) < noise
    labels = np.where(flip, 1 - labels, labels)
    ids = block["start"] + np.arange(n)
    return pd.DataFrame({"id": ids, "text": texts, "label": labels.astype(float)})


def reviews(spark: SparkSession, rows: int = 10_000, *, seed: int = 0,
            positive_share: float = 0.6, noise: float = 0.02, block_rows: int = 2_000,
            partitions: int | None = None) -> DataFrame:
    """Review texts with a sentiment label (1.0 positive), made on the executors.

    Each review mixes neutral filler words with one to three sentiment words of its
    label's polarity; a quarter of those are negated words of the opposite polarity
    ("not bad"), and 30% of reviews carry one distractor word of the other polarity, so
    word order matters. ``noise`` of the labels are flipped.

    Returns columns ``id`` (long), ``text`` (string) and ``label`` (double).
    """
    blocks = [{"start": s, "rows": min(block_rows, rows - s)} for s in range(0, rows, block_rows)]

    def make(rng: np.random.Generator, block: dict[str, Any]) -> pd.DataFrame:
        return _block(rng, block, positive_share, noise)

    return generate(spark, blocks, make, "id long, text string, label double", seed, partitions)
