"""ROC and precision-recall curves in numpy (no scikit-learn needed), and thinning for
plots. ``roc_auc`` and ``average_precision`` equal scikit-learn's to 1e-9 (tested)."""

from __future__ import annotations

import numpy as np

_CURVE_POINTS = 2_000


def _binary_counts(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """True and false positives at each distinct score threshold, highest first."""
    y = np.asarray(labels, dtype=float).ravel()
    s = np.asarray(scores, dtype=float).ravel()
    if y.shape != s.shape:
        raise ValueError(f"labels and scores must have the same length. Got {y.size} and "
                         f"{s.size} instead.")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError(f"labels must be 0 or 1. Got {np.unique(y)[:5].tolist()} instead.")
    positives = int(y.sum())
    if y.size == 0 or positives in (0, y.size):
        raise ValueError("ROC and precision-recall curves need both classes among the "
                         f"labels. Got {positives:,} positive(s) of {y.size:,} instead.")
    order = np.argsort(s, kind="mergesort")[::-1]
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), y.size - 1]
    tps = np.cumsum(y)[last]
    return tps, 1 + last - tps


def roc_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates, from (0, 0) to (1, 1), over all distinct thresholds.

    Raises ``ValueError`` when the labels hold only one class.
    """
    tps, fps = _binary_counts(labels, scores)
    return np.r_[0.0, fps] / fps[-1], np.r_[0.0, tps] / tps[-1]


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (ties scored one half, as in scikit-learn)."""
    fpr, tpr = roc_curve(labels, scores)
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def precision_recall_curve(labels: np.ndarray,
                           scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall at each distinct threshold, from the highest score down."""
    tps, fps = _binary_counts(labels, scores)
    return tps / (tps + fps), tps / tps[-1]


def average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    """Average precision: precision at each threshold weighted by the recall it adds
    (step-wise, not interpolated; equal to scikit-learn's ``average_precision_score``)."""
    precision, recall = precision_recall_curve(labels, scores)
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def _thin(x: np.ndarray, y: np.ndarray,
          limit: int = _CURVE_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """At most about ``limit`` vertices of a curve in the unit square, evenly spaced along
    its length (first and last kept), so a long curve draws fast and keeps its shape."""
    if x.size <= limit:
        return x, y
    length = np.r_[0.0, np.cumsum(np.hypot(np.diff(x), np.diff(y)))]
    idx = np.unique(np.r_[np.searchsorted(length, np.linspace(0, length[-1], limit)),
                          x.size - 1])
    return x[idx], y[idx]


def _sample(n: int, limit: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of a deterministic random sample of at most ``limit`` of ``n`` rows."""
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))


# --------------------------------------------------------------------------- inputs
