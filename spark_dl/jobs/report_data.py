"""What a run's report shows, as plain values, and the number formats its text and plots
share (see :mod:`spark_dl.jobs.report` and :mod:`spark_dl.jobs.plots`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

TASKS = ("binary", "multiclass", "regression", "anomaly")
MAX_POINTS = 100_000
DPI = 100
MAX_CLASSES = 100


@dataclass
class ReportData:
    """Everything a report shows, as plain values collected on the driver.

    Parameters
    ----------
    title : str
        Name of the run, e.g. ``"fraud_detection"``.
    task : str
        One of ``"binary"``, ``"multiclass"``, ``"regression"``, ``"anomaly"``.
    metrics : dict of str to float
        Headline metrics; the first one is quoted in the summary line.
    history : list of dict
        One entry per epoch with ``epoch``, ``train_loss`` and optionally ``val_loss``,
        ``val_metric``, ``metric`` (its name), ``samples_per_sec``, ``seconds``.
    labels, scores, predictions : numpy.ndarray, optional
        A test-set sample: true labels; the positive-class score (binary, anomaly);
        predicted class ids (multiclass) or values (regression).
    class_names : list of str, optional
        Names of class ids ``0..k-1``.
    skew : dict, optional
        ``rows``, ``rows_per_partition``, ``key_col``, ``hot_keys`` as
        ``(key, count, share)``, ``label_col``, ``classes`` as ``(value, count, share)``.
    baseline : dict of str to float, optional
        Reference figures, e.g. ``{"majority accuracy": 0.52}``; shown beside the metric
        whose name they contain.
    config : dict, optional
        The resolved configuration, shown collapsed.
    timings : dict of str to float, optional
        Seconds per phase.
    notes : list of str
        Free-text remarks, shown as a list.
    top_features : TopFeatures, optional
        Attributions of the highest-scoring test rows (:mod:`spark_dl.jobs.explain`).

    Examples
    --------
    >>> ReportData("iris", "multiclass", {"accuracy": 0.97}, history=[],
    ...            labels=np.array([0, 1, 2]), predictions=np.array([0, 1, 1]),
    ...            class_names=["setosa", "versicolor", "virginica"])  # doctest: +SKIP
    """

    title: str
    task: str
    metrics: dict[str, float]
    history: list[dict]
    labels: np.ndarray | None = None
    scores: np.ndarray | None = None
    predictions: np.ndarray | None = None
    class_names: list[str] | None = None
    skew: dict | None = None
    baseline: dict[str, float] | None = None
    config: dict | None = None
    timings: dict[str, float] | None = None
    notes: list[str] = field(default_factory=list)
    top_features: Any = None


@dataclass
class Section:
    """One plot of the report: its file when drawn, else the reason it was skipped."""

    title: str
    image: str | None
    text: str


def fmt(value: Any) -> str:
    """Format a number for the report: counts with thousands separators, other numbers
    with 4 significant digits, ``n/a`` for missing or NaN."""
    if value is None:
        return "n/a"
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    try:
        x = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(x):
        return "n/a"
    if math.isinf(x) or x == 0:
        return f"{x:g}"
    if abs(x) >= 1e4 and abs(x) < 1e15:
        return f"{round(x, 3 - int(math.floor(math.log10(abs(x))))):,.0f}"
    return f"{x:.4g}"


def pct(share: float) -> str:
    """A share as a percentage, with more decimals for small shares (0.02%, not 0.0%)."""
    return f"{share:.1%}" if share >= 0.1 else f"{share:.2%}" if share >= 0.001 else f"{share:.3%}"


def class_name(data: ReportData, value: Any) -> str:
    names = data.class_names
    try:
        i = int(value)
    except (TypeError, ValueError):
        return str(value)
    if names and i == value and 0 <= i < len(names):
        return str(names[i])
    if data.task == "anomaly" and not names and i == value:
        return {0: "normal", 1: "anomaly"}.get(i, str(value))
    return str(value)
