"""Multivariate sensor series per machine, with injected faults and chatty machines."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession

from spark_dl.datasets._blocks import generate, sizes

SENSORS = ("vibration", "current", "temperature", "pressure")


def _signal(t: np.ndarray, machine: int, rng: np.random.Generator) -> np.ndarray:
    """Normal behaviour: a machine-specific cycle, sensors tied to it, small noise."""
    period = 24.0 + (machine % 7) * 3.0
    phase = 2 * np.pi * t / period
    base = np.sin(phase)
    noise = rng.normal(0.0, 0.1, size=(len(t), 4))
    return np.stack([base, 0.8 * base + 0.2 * np.cos(phase), 0.5 * np.cos(phase),
                     0.3 * base ** 2], axis=1) + noise


def _faults(x: np.ndarray, rng: np.random.Generator, rate: float) -> np.ndarray:
    """Inject fault segments in place; return the per-row fault flag."""
    n = len(x)
    flag = np.zeros(n, dtype=np.int8)
    for _ in range(rng.poisson(rate * n / 40.0)):
        start, length = int(rng.integers(0, n)), int(rng.integers(20, 60))
        seg = slice(start, min(n, start + length))
        kind = int(rng.integers(0, 3))
        sensor = int(rng.integers(0, 4))
        if kind == 0:  # a level shift in one sensor
            x[seg, sensor] += rng.choice([-1.0, 1.0]) * rng.uniform(0.8, 1.5)
        elif kind == 1:  # a broken coupling: current no longer follows vibration
            x[seg, 1] = -x[seg, 1]
        else:  # a noise burst
            x[seg] += rng.normal(0.0, 0.6, size=x[seg].shape)
        flag[seg] = 1
    return flag


def sensor_series(spark: SparkSession, rows: int = 50_000, *, machines: int = 20,
                  chatty: int = 2, chatty_share: float = 0.6, fault_rate: float = 0.03,
                  seed: int = 0, block_rows: int = 5_000,
                  partitions: int | None = None) -> DataFrame:
    """One row per machine and time step: four sensors and a ``fault`` flag.

    ``chatty`` machines hold ``chatty_share`` of all rows (the skew a fleet shows when a
    few machines report far more often). About ``fault_rate`` of rows lie in injected
    fault segments of 20-60 steps: a level shift in one sensor, a broken coupling between
    two sensors, or a noise burst.

    Returns ``machine`` (string), ``t`` (long), the four sensor columns (double) and
    ``fault`` (double, 1.0 inside a fault).
    """
    blocks = []
    for m, n in enumerate(sizes(rows, machines, chatty, chatty_share)):
        blocks += [{"machine": m, "start": s, "rows": min(block_rows, n - s)}
                   for s in range(0, n, block_rows)]

    def make(rng: np.random.Generator, block: dict[str, Any]) -> pd.DataFrame:
        t = block["start"] + np.arange(block["rows"])
        x = _signal(t, block["machine"], rng)
        fault = _faults(x, rng, fault_rate)
        frame = pd.DataFrame(x, columns=list(SENSORS))
        frame.insert(0, "t", t)
        frame.insert(0, "machine", f"m{block['machine']:03d}")
        frame["fault"] = fault.astype(float)
        return frame

    schema = "machine string, t long, " + ", ".join(f"{s} double" for s in SENSORS)
    return generate(spark, blocks, make, schema + ", fault double", seed, partitions)
