"""Profiling a DataFrame's skew: rows per partition, hot keys, class balance.

Each figure is exact. ``partition_stats`` runs one job (a count per partition); the hot
keys and the class distribution each add one ``groupBy`` job. For very many distinct keys
the hot-key job shuffles one row per key per partition, not the data.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from spark_dl.compat import default_parallelism, num_partitions


@dataclass(frozen=True)
class PartitionStats:
    """Rows per partition, with the summary figures used to decide on rebalancing."""

    counts: list[int]

    @property
    def rows(self) -> int:
        return sum(self.counts)

    @property
    def num_partitions(self) -> int:
        return len(self.counts)

    @property
    def empty(self) -> int:
        return sum(1 for c in self.counts if c == 0)

    @property
    def min(self) -> int:
        return min(self.counts, default=0)

    @property
    def median(self) -> float:
        return float(statistics.median(self.counts)) if self.counts else 0.0

    @property
    def max(self) -> int:
        return max(self.counts, default=0)

    @property
    def max_over_mean(self) -> float:
        """Largest partition over the mean (1.0 is perfectly even)."""
        mean = self.rows / self.num_partitions if self.counts else 0.0
        return self.max / mean if mean else 0.0


@dataclass(frozen=True)
class SkewProfile:
    """What :func:`profile` found; ``str()`` gives a short readable summary."""

    partitions: PartitionStats
    key_col: str | None = None
    hot_keys: list[tuple[Any, int, float]] = field(default_factory=list)
    label_col: str | None = None
    classes: list[tuple[Any, int, float]] = field(default_factory=list)

    def is_skewed(self, threshold: float = 2.0) -> bool:
        """True when the largest partition holds more than ``threshold`` times the mean."""
        return self.partitions.max_over_mean > threshold

    def __str__(self) -> str:
        p = self.partitions
        lines = [
            f"rows: {p.rows:,} in {p.num_partitions} partitions ({p.empty} empty)",
            f"rows per partition: min {p.min:,}, median {p.median:,.0f}, max {p.max:,} "
            f"(max/mean {p.max_over_mean:.2f})",
        ]
        if self.key_col:
            hot = ", ".join(f"{k!r} {s:.1%}" for k, _, s in self.hot_keys)
            lines.append(f"hottest {self.key_col!r} keys: {hot}")
        if self.label_col:
            cls = ", ".join(f"{k!r} {n:,} ({s:.2%})" for k, n, s in self.classes)
            lines.append(f"classes of {self.label_col!r}: {cls}")
        return "\n".join(lines)


def partition_stats(df: DataFrame) -> PartitionStats:
    """Rows in each partition of ``df`` (empty partitions included), in one job.

    With more than twice ``defaultParallelism`` partitions the job runs one task per slot.
    """
    n = num_partitions(df)  # None under Spark Connect: the job's own partition ids tell
    ids = df.select(F.spark_partition_id().alias("p"))
    slots = default_parallelism(df.sparkSession)
    if n is not None and n > 2 * slots:
        # Many partitions: number the rows in their own partitions, then count them in one
        # task per slot (coalesce, no shuffle) instead of one short task per partition.
        ids = ids.coalesce(slots)
    found = {int(row["p"]): int(row["count"]) for row in ids.groupBy("p").count().collect()}
    if n is None:  # trailing empty partitions are invisible without the RDD
        n = max(found, default=-1) + 1
    counts = [0] * n
    for p, c in found.items():
        counts[p] = c
    return PartitionStats(counts)


def _shares(df: DataFrame, col: str, limit: int | None, total: int) -> list[tuple[Any, int, float]]:
    counts = df.groupBy(col).count().orderBy(F.desc("count"), F.asc(col))
    rows = (counts.limit(limit) if limit else counts).collect()
    return [(r[col], int(r["count"]), int(r["count"]) / total if total else 0.0) for r in rows]


def profile(df: DataFrame, key_col: str | None = None, label_col: str | None = None,
            top_k: int = 10) -> SkewProfile:
    """Profile rows per partition, the ``top_k`` hottest keys of ``key_col`` and the classes
    of ``label_col``.

    Examples
    --------
    >>> print(profile(df, key_col="merchant", label_col="is_fraud"))   # doctest: +SKIP
    rows: 1,000,000 in 8 partitions (0 empty)
    rows per partition: min 12,000, median 13,100, max 900,000 (max/mean 7.20)
    hottest 'merchant' keys: 'm0' 51.2%, 'm1' 9.8%, ...
    classes of 'is_fraud': 0 998,000 (99.80%), 1 2,000 (0.20%)
    """
    for param, col in (("key_col", key_col), ("label_col", label_col)):
        if col is not None and col not in df.columns:
            raise ValueError(f"The '{param}' column {col!r} is not in the DataFrame. "
                             f"Available columns: {df.columns}.")
    parts = partition_stats(df)
    hot = _shares(df, key_col, top_k, parts.rows) if key_col else []
    classes = _shares(df, label_col, None, parts.rows) if label_col else []
    return SkewProfile(parts, key_col, hot, label_col, sorted(classes, key=lambda c: str(c[0])))
