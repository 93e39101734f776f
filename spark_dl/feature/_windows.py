"""Executor side of :class:`~spark_dl.feature.sequence.SequenceWindower`: windows from one chunk.

Module-level functions receiving plain values (a frozen :class:`WindowSpec`), run inside
``applyInPandas``; numpy builds the windows, never a Python loop per row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class WindowSpec:
    """Everything a chunk needs, as plain values (no Params, no SparkSession)."""

    length: int  # T, steps per window
    step: int  # rows between consecutive window starts of a key
    horizon: int  # the label sits this many rows after the window's last step
    max_rows: int  # rows a chunk owns
    num_values: int  # F, values per step
    has_label: bool
    drop_invalid: bool  # handleInvalid == "skip"
    names: tuple[str, ...]  # output columns: key, windowStart, windowEnd, outputCol[, label]

    @property
    def halo(self) -> int:
        """Rows a chunk borrows from the next one to finish its last windows."""
        return self.length - 1 + self.horizon


def window_starts(base: int, rows: int, spec: WindowSpec) -> np.ndarray:
    """Group-local indices of the windows owned by the chunk starting at key position ``base``.

    Windows start at key positions 0, step, 2*step, ...; a chunk owns those starting in its
    first ``max_rows`` rows whose ``length + horizon`` rows are all among the ``rows`` present.
    """
    first = (-base) % spec.step
    stop = min(spec.max_rows, rows - spec.length - spec.horizon + 1)
    return np.arange(first, stop, spec.step, dtype=np.int64)


def _windows(values: np.ndarray, starts: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Row-major windows ``(n, length * F)`` as float32, and whether each holds a NaN."""
    n, f = len(starts), values.shape[1]
    if n == 0:
        return np.zeros((0, length * f), np.float32), np.zeros(0, bool)
    from numpy.lib.stride_tricks import sliding_window_view

    win = sliding_window_view(values, (length, f))[starts, 0]  # (n, T, F), a copy
    return win.reshape(n, length * f).astype(np.float32), np.isnan(win).any(axis=(1, 2))


def chunk_windows(pdf: pd.DataFrame, spec: WindowSpec) -> pd.DataFrame:
    """The windows of one (key, chunk) group: its own rows plus the halo, in any order."""
    import pandas as pd

    pdf = pdf.iloc[np.argsort(pdf["_pos"].to_numpy(), kind="stable")]
    base = int(pdf["_chunk"].iloc[0]) * spec.max_rows
    pos = pdf["_pos"].to_numpy()
    if not np.array_equal(pos, np.arange(base, base + len(pos))):
        raise RuntimeError(
            f"SequenceWindower found key positions {pos[:3].tolist()}... where {base}, {base + 1}, ... "
            "were expected: the input DataFrame changed between Spark jobs (it is not "
            "deterministic). Cache or checkpoint it before calling transform()."
        )
    starts = window_starts(base, len(pdf), spec)
    values = pdf[[f"_v{i}" for i in range(spec.num_values)]].to_numpy(dtype=np.float64)
    flat, bad = _windows(values, starts, spec.length)
    label = np.zeros(len(starts))
    if spec.has_label:
        label = pdf["_y"].to_numpy(dtype=np.float64)[starts + spec.halo]
        bad |= np.isnan(label)
    if spec.drop_invalid:
        starts, flat, label = starts[~bad], flat[~bad], label[~bad]
    t = pdf["_t"]
    cols = {
        spec.names[0]: pdf["_k"].iloc[np.zeros(len(starts), np.intp)].reset_index(drop=True),
        spec.names[1]: t.iloc[starts].reset_index(drop=True),
        spec.names[2]: t.iloc[starts + spec.length - 1].reset_index(drop=True),
        spec.names[3]: pd.Series(list(flat), dtype=object),
    }
    if spec.has_label:
        cols[spec.names[4]] = pd.Series(label, dtype=np.float64)
    return pd.DataFrame(cols)


def _group_function(spec: WindowSpec) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """``chunk_windows`` bound to ``spec``: a plain function, so applyInPandas takes it as is."""

    def run(pdf):  # type: ignore[no-untyped-def]  # hints would be parsed by pyspark
        return chunk_windows(pdf, spec)

    return run
