"""The report of an end-to-end run: one ``report.md`` with PNG plots beside it.

The runner collects small samples and aggregates from Spark (test labels and scores,
the training history, a skew profile) and passes them here as plain Python and numpy
values; this module never touches Spark. Curves and histograms are computed on all the
values given; only scatter plots are drawn from a deterministic sample of at most
``max_points`` rows. matplotlib is imported inside the drawing functions and draws on
``matplotlib.figure.Figure`` objects (Agg canvas, no pyplot, no global state), so
importing this module is cheap and it runs on a head-less driver.

Examples
--------
>>> data = ReportData(title="fraud_detection", task="binary",
...                   metrics={"auc_pr": 0.61}, history=[], labels=y, scores=p)
>>> write_report(data, "runs/fraud/report")             # doctest: +SKIP
'runs/fraud/report/report.md'
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import os
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

logger = logging.getLogger(__name__)

TASKS = ("binary", "multiclass", "regression", "anomaly")
MAX_POINTS = 100_000
_DPI = 100
_CURVE_POINTS = 2_000
_MAX_CLASSES = 100
_PLOT_FILES = ("training.png", "roc_pr.png", "scores.png", "confusion.png",
               "predictions.png", "skew.png")


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


@dataclass
class _Section:
    """One plot of the report: its file when drawn, else the reason it was skipped."""

    title: str
    image: str | None
    text: str


# --------------------------------------------------------------------------- numbers
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


def _pct(share: float) -> str:
    """A share as a percentage, with more decimals for small shares (0.02%, not 0.0%)."""
    return f"{share:.1%}" if share >= 0.1 else f"{share:.2%}" if share >= 0.001 else f"{share:.3%}"


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "n/a"
    if seconds < 120:
        return f"{seconds:.3g} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


# --------------------------------------------------------------------------- curves
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
def _binary_inputs(data: ReportData) -> tuple[np.ndarray | None, np.ndarray, str]:
    """Labels (or None) and scores with NaN rows dropped, and a remark on what was dropped."""
    s = np.asarray(data.scores, dtype=float).ravel()
    y = None if data.labels is None else np.asarray(data.labels, dtype=float).ravel()
    if y is not None and y.size != s.size:
        raise ValueError(f"ReportData.labels and .scores must have the same length. "
                         f"Got {y.size:,} and {s.size:,} instead.")
    keep = np.isfinite(s) if y is None else np.isfinite(s) & np.isfinite(y)
    dropped = int(s.size - keep.sum())
    remark = f" {dropped:,} of {s.size:,} rows with a NaN score or label were dropped." \
        if dropped else ""
    return (None if y is None else y[keep]), s[keep], remark


def _class_name(data: ReportData, value: Any) -> str:
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


def _series(history: list[dict], key: str) -> np.ndarray:
    vals = [h.get(key) for h in history]
    return np.array([np.nan if v is None else float(v) for v in vals], dtype=float)


# --------------------------------------------------------------------------- figures
def _figure(ncols: int, width: float = 4.8, height: float = 3.8,
            ratios: list[float] | None = None) -> tuple[Any, list[Any]]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height), dpi=_DPI, layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False, width_ratios=ratios)[0]
    for ax in axes:
        ax.grid(True, alpha=0.3)
    return fig, list(axes)


def _save(fig: Any, out_dir: str, name: str) -> str:
    fig.savefig(os.path.join(out_dir, name), dpi=_DPI)
    return name


def _thousands(ax: Any, axis: str = "y") -> None:
    from matplotlib.ticker import FuncFormatter

    fmt_ = FuncFormatter(lambda v, _: f"{v:,.0f}" if abs(v) >= 1000 else f"{v:g}")
    (ax.yaxis if axis == "y" else ax.xaxis).set_major_formatter(fmt_)


def _epoch_axis(ax: Any, epochs: np.ndarray) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.set_xlim(np.nanmin(epochs) - 0.5, np.nanmax(epochs) + 0.5)
    if len(epochs) <= 12:
        ax.set_xticks(epochs, [f"{e:g}" for e in epochs])
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _training_caption(epochs: np.ndarray, train: np.ndarray, val: np.ndarray) -> str:
    ok = np.isfinite(train)
    text = (f"Train loss went from {fmt(train[ok][0])} to {fmt(train[ok][-1])} over "
            f"{len(epochs):,} epoch(s)")
    if np.isfinite(val).any():
        best = int(np.nanargmin(val))
        text += (f"; validation loss was lowest at epoch {fmt(int(epochs[best]))} "
                 f"({fmt(val[best])})")
    return text + (". Look for both losses flattening together; validation loss rising "
                   "while train loss falls means overfitting.")


def _plot_training(data: ReportData, out_dir: str) -> _Section:
    title = "Training"
    hist = [h for h in data.history if isinstance(h, dict)]
    train = _series(hist, "train_loss")
    if not np.isfinite(train).any():
        return _Section(title, None, "No training history was recorded, so there is no "
                        "loss curve.")
    epochs = np.array([i + 1 if h.get("epoch") is None else h["epoch"]
                       for i, h in enumerate(hist)], dtype=float)
    val, metric, speed = (_series(hist, k) for k in ("val_loss", "val_metric",
                                                      "samples_per_sec"))
    name = next((str(h["metric"]) for h in hist if h.get("metric")), "validation metric")
    panels = ["loss"] + ["metric"] * bool(np.isfinite(metric).any()) \
        + ["speed"] * bool(np.isfinite(speed).any())
    fig, axes = _figure(len(panels), ratios=[1.6, 1.2, 1.0][:len(panels)])
    ax = axes[0]
    ax.plot(epochs, train, "o-", label="train loss")
    if np.isfinite(val).any():
        ax.plot(epochs, val, "s--", label="validation loss")
    ax.set(title="Loss per epoch", xlabel="epoch", ylabel="loss")
    ax.legend()
    for panel, ax in zip(panels[1:], axes[1:]):
        if panel == "metric":
            ax.plot(epochs, metric, "o-", color="tab:green")
            ax.set(title=f"Validation {name}", xlabel="epoch", ylabel=name)
        else:
            ax.bar(epochs, speed, color="tab:gray", width=0.6)
            ax.set(title="Throughput", xlabel="epoch", ylabel="samples/s")
            _thousands(ax)
    for ax in axes:
        _epoch_axis(ax, epochs)
    return _Section(title, _save(fig, out_dir, "training.png"),
                    _training_caption(epochs, train, val))


def _plot_roc_pr(data: ReportData, out_dir: str) -> _Section | None:
    title = "ROC and precision-recall"
    if data.task not in ("binary", "anomaly"):
        return None
    if data.labels is None or data.scores is None:
        return _Section(title, None, "No ROC or precision-recall curve: the test labels "
                        "or scores were not collected.")
    y, s, remark = _binary_inputs(data)
    if y is None or not np.isin(y, (0.0, 1.0)).all():
        return _Section(title, None, "No ROC or precision-recall curve: the test labels "
                        "must be 0 or 1.")
    pos = int(y.sum())
    if pos in (0, y.size):
        return _Section(title, None, f"No ROC or precision-recall curve: the {y.size:,} "
                        f"test labels hold only one class, so both are undefined.{remark}")
    fpr, tpr = roc_curve(y, s)
    precision, recall = precision_recall_curve(y, s)
    auc, ap, base = roc_auc(y, s), average_precision(y, s), pos / y.size
    fig, (ax1, ax2) = _figure(2, width=4.6, height=4.2)
    ax1.plot(*_thin(fpr, tpr), label=f"model (AUC {fmt(auc)})")
    ax1.plot([0, 1], [0, 1], ":", color="gray", label="chance (AUC 0.5)")
    ax1.set(title="ROC curve", xlabel="false positive rate", ylabel="true positive rate",
            xlim=(0, 1), ylim=(0, 1.02))
    ax1.legend(loc="lower right")
    r, p = _thin(np.r_[0.0, recall], np.r_[precision[0], precision])
    ax2.step(r, p, where="pre", label=f"model (AP {fmt(ap)})")
    ax2.axhline(base, ls=":", color="tab:red", label=f"base rate {_pct(base)}")
    ax2.set(title="Precision-recall curve", xlabel="recall", ylabel="precision",
            xlim=(0, 1), ylim=(0, 1.02))
    ax2.legend(loc="upper right")
    text = (f"ROC AUC {fmt(auc)}, average precision {fmt(ap)} against a base rate of "
            f"{_pct(base)} ({pos:,} positives in {y.size:,} rows). With rare positives read "
            f"the precision-recall curve: it shows what share of alerts are real at each "
            f"recall.{remark}")
    return _Section(title, _save(fig, out_dir, "roc_pr.png"), text)


def _hist_edges(s: np.ndarray) -> tuple[np.ndarray, str]:
    """60 bins over the scores, and the x scale: positive scores spanning many decades
    (reconstruction errors) get log-spaced bins; otherwise a long upper tail beyond the
    99.9th percentile is folded into the last bin (scale ``"clip"``)."""
    lo, q1, q999, hi = np.quantile(s, [0.0, 0.001, 0.999, 1.0])
    if hi > 1 and lo > 0 and q999 > 100 * q1:  # not probabilities, and many decades
        return np.geomspace(lo, hi, 61), "log"
    clip = bool(hi - q999 > q999 - lo > 0)
    top = q999 if clip else hi
    return np.linspace(lo, top if top > lo else lo + 1, 61), "clip" if clip else "linear"


def _plot_scores(data: ReportData, out_dir: str) -> _Section | None:
    title = "Score distribution"
    if data.task not in ("binary", "anomaly"):
        return None
    if data.scores is None:
        return _Section(title, None, "No score histogram: the test scores were not collected.")
    y, s, remark = _binary_inputs(data)
    if s.size == 0:
        return _Section(title, None, f"No score histogram: no finite scores.{remark}")
    edges, scale = _hist_edges(s)
    fig, (ax,) = _figure(1, width=7.5, height=4.0)
    groups = [(None, s)] if y is None else [(v, s[y == v]) for v in np.unique(y)]
    for value, part in groups:
        label = "all rows" if value is None else _class_name(data, int(value))
        ax.hist(np.minimum(part, edges[-1]), bins=edges, histtype="stepfilled", alpha=0.45,
                log=True, label=f"{label} (n={part.size:,})")
    if scale == "log":
        ax.set_xscale("log")
    ax.set(title="Scores by true class", xlabel="score" + " (log scale)" * (scale == "log"),
           ylabel="rows (log scale)")
    ax.legend()
    text = ("Look for the classes to pile up at opposite ends with little overlap; the "
            "overlap is where errors happen at any threshold.")
    if scale == "clip":
        text += " Scores above the 99.9th percentile are counted in the last bin."
    return _Section(title, _save(fig, out_dir, "scores.png"), text + remark)


def _confusion(y: np.ndarray, p: np.ndarray, k: int) -> np.ndarray:
    counts = np.zeros((k, k), dtype=np.int64)
    np.add.at(counts, (y, p), 1)
    return counts


def _plot_confusion(data: ReportData, out_dir: str) -> _Section | None:
    title = "Confusion matrix"
    if data.task != "multiclass":
        return None
    if data.labels is None or data.predictions is None:
        return _Section(title, None, "No confusion matrix: the test labels or predictions "
                        "were not collected.")
    y = np.asarray(data.labels, dtype=float).ravel()
    p = np.asarray(data.predictions, dtype=float).ravel()
    keep = np.isfinite(y) & np.isfinite(p)
    y, p = y[keep].astype(np.int64), p[keep].astype(np.int64)
    if y.size == 0 or min(y.min(), p.min()) < 0:
        return _Section(title, None, "No confusion matrix: no rows with non-negative class "
                        "ids.")
    k = max(int(y.max()), int(p.max())) + 1
    k = max(k, len(data.class_names or []))
    if k > _MAX_CLASSES:
        return _Section(title, None, f"No confusion matrix: {k:,} classes are too many to "
                        f"read (at most {_MAX_CLASSES}).")
    counts = _confusion(y, p, k)
    rows = counts.sum(axis=1, keepdims=True)
    norm = np.divide(counts, rows, out=np.zeros(counts.shape), where=rows > 0)
    size = min(4 + 0.45 * k, 14)
    fig, (ax,) = _figure(1, width=size + 1.2, height=size)
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.grid(False)
    fig.colorbar(im, ax=ax, label="share of the true class", shrink=0.8)
    names = [_class_name(data, i)[:18] for i in range(k)]
    ax.set_xticks(range(k), names, rotation=45 if k > 4 else 0, ha="right" if k > 4 else "center")
    ax.set_yticks(range(k), names)
    ax.set(title=f"Confusion matrix (accuracy {fmt(float(np.mean(y == p)))})",
           xlabel="predicted class", ylabel="true class")
    if k <= 20:
        for i, j in np.ndindex(k, k):
            ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center", fontsize=9,
                    color="white" if norm[i, j] > 0.5 else "black")
    text = ("Each row is a true class and sums to 1: a strong diagonal is good; a bright "
            "off-diagonal cell names the pair of classes the model confuses.")
    return _Section(title, _save(fig, out_dir, "confusion.png"), text)


def _plot_predictions(data: ReportData, out_dir: str, max_points: int) -> _Section | None:
    title = "Predictions"
    if data.task != "regression":
        return None
    if data.labels is None or data.predictions is None:
        return _Section(title, None, "No prediction plot: the test labels or predictions "
                        "were not collected.")
    y = np.asarray(data.labels, dtype=float).ravel()
    p = np.asarray(data.predictions, dtype=float).ravel()
    keep = np.isfinite(y) & np.isfinite(p)
    y, p = y[keep], p[keep]
    if y.size == 0:
        return _Section(title, None, "No prediction plot: no rows with finite values.")
    resid = p - y
    idx = _sample(y.size, max_points)
    fig, (ax1, ax2) = _figure(2, width=4.8, height=4.4)
    ax1.scatter(y[idx], p[idx], s=4, alpha=max(0.05, min(0.6, 2000 / idx.size)),
                rasterized=True, label=f"{idx.size:,} rows")
    lo, hi = float(min(y.min(), p.min())), float(max(y.max(), p.max()))
    ax1.plot([lo, hi], [lo, hi], "--", color="tab:red", label="y = x")
    ax1.set(title="Predicted vs actual", xlabel="actual", ylabel="predicted")
    ax1.legend(loc="upper left")
    ax2.hist(resid, bins=60, color="tab:purple", alpha=0.7)
    ax2.axvline(0, color="black", lw=1)
    ax2.set(title=f"Residuals (mean {fmt(resid.mean())}, sd {fmt(resid.std())})",
            xlabel="predicted - actual", ylabel="rows")
    _thousands(ax2)
    text = ("Points should hug the dashed line; the residuals should centre on 0 with no "
            "long tail.")
    if idx.size < y.size:
        text += f" The scatter shows a fixed random sample of {idx.size:,} of {y.size:,} rows."
    return _Section(title, _save(fig, out_dir, "predictions.png"), text)


def _share_bars(ax: Any, items: list[tuple[Any, int, float]], title: str,
                name: Callable[[Any], str]) -> None:
    labels = [name(k)[:20] for k, _, _ in items]
    shares = [100 * float(s) for _, _, s in items]
    ax.barh(range(len(items)), shares, color="tab:orange")
    ax.set_yticks(range(len(items)), labels)
    ax.invert_yaxis()
    for i, (_, n, s) in enumerate(items):
        ax.text(100 * float(s), i, f" {_pct(float(s))} ({int(n):,})", va="center", fontsize=8)
    top = max(shares, default=1.0)
    ax.set_xlim(0, top * 1.45)
    ax.set_xticks([t for t in ax.get_xticks() if t <= top * 1.05])
    ax.set(title=title, xlabel="share of rows (%)")


def _plot_skew(data: ReportData, out_dir: str) -> _Section | None:
    title = "Data skew"
    sk = data.skew or {}
    parts = [int(c) for c in sk.get("rows_per_partition") or []]
    hot, classes = list(sk.get("hot_keys") or [])[:10], list(sk.get("classes") or [])
    if not (parts or hot or classes):
        return _Section(title, None, "No skew plot: no skew profile was collected.")
    panels = ["parts"] * bool(parts) + ["hot"] * bool(hot) + ["classes"] * bool(classes)
    fig, axes = _figure(len(panels), width=4.8, height=3.8)
    for panel, ax in zip(panels, axes):
        if panel == "parts":
            counts = np.sort(np.array(parts))[::-1]
            mean = counts.mean()
            ax.bar(np.arange(counts.size), counts, width=0.8, color="tab:blue")
            ax.axhline(mean, ls="--", color="tab:red", label=f"mean {mean:,.0f}")
            ratio = counts[0] / mean if mean else 0.0
            ax.set(title=f"Rows per partition (max/mean {ratio:.2f})",
                   xlabel="partition (largest first)", ylabel="rows")
            _thousands(ax)
            ax.legend()
        elif panel == "hot":
            _share_bars(ax, hot, f"Hottest {sk.get('key_col') or 'key'} values", str)
        else:
            _share_bars(ax, classes, f"Classes of {sk.get('label_col') or 'label'}",
                        lambda v: _class_name(data, v))
    text = ("Look for one tall partition or one key holding most rows: those tasks run "
            "longest and set the pace of every epoch.")
    return _Section(title, _save(fig, out_dir, "skew.png"), text)


# --------------------------------------------------------------------------- markdown
def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _rows(data: ReportData) -> int | None:
    if data.skew and data.skew.get("rows") is not None:
        return int(data.skew["rows"])
    if data.skew and data.skew.get("rows_per_partition"):
        return int(sum(data.skew["rows_per_partition"]))
    return None


def _summary(data: ReportData) -> str:
    parts = [f"**{data.task}**"]
    rows = _rows(data)
    if rows is not None:
        parts.append(f"{rows:,} rows")
    sample = next((a for a in (data.labels, data.scores, data.predictions) if a is not None),
                  None)
    if sample is not None:
        parts.append(f"test sample of {np.asarray(sample).size:,}")
    if data.metrics:
        name, value = next(iter(data.metrics.items()))
        parts.append(f"{_cell(name)} **{fmt(value)}**")
    epochs = sum(1 for h in data.history if isinstance(h, dict))
    if epochs:
        parts.append(f"{epochs:,} epoch(s)")
    if data.timings:
        parts.append(f"{_duration(float(sum(data.timings.values())))} in all")
    return " · ".join(parts)


def _words(name: str) -> list[str]:
    return name.replace("_", " ").replace("-", " ").lower().split()


def _baseline_for(metric: str, baseline: dict[str, float]) -> str | None:
    """The baseline named like the metric or holding its name as whole words
    (``"majority accuracy"`` for ``accuracy``, not ``"auc_pr"`` for ``auc``)."""
    m = _words(metric)
    for key in baseline:
        k = _words(key)
        if any(k[i:i + len(m)] == m for i in range(len(k) - len(m) + 1)):
            return key
    return None


def _metrics_table(data: ReportData) -> list[str]:
    if not data.metrics and not data.baseline:
        return ["_No metrics were recorded._"]
    baseline = dict(data.baseline or {})
    lines = ["| metric | value | baseline |", "|---|---:|---:|"]
    for name, value in data.metrics.items():
        key = _baseline_for(name, baseline)
        ref = f"{fmt(baseline.pop(key))} ({_cell(key)})" if key else ""
        lines.append(f"| {_cell(name)} | {fmt(value)} | {ref} |")
    for key, value in baseline.items():
        lines.append(f"| {_cell(key)} |  | {fmt(value)} |")
    return lines


def _timings_table(timings: dict[str, float]) -> list[str]:
    total = float(sum(timings.values()))
    lines = ["| phase | time | share |", "|---|---:|---:|"]
    for phase, seconds in timings.items():
        share = f"{float(seconds) / total:.0%}" if total > 0 else ""
        lines.append(f"| {_cell(phase)} | {_duration(float(seconds))} | {share} |")
    lines.append(f"| **total** | **{_duration(total)}** | |")
    return lines


def _skew_words(data: ReportData) -> list[str]:
    sk = data.skew or {}
    parts = [int(c) for c in sk.get("rows_per_partition") or []]
    words = []
    if parts:
        rows, mean = sum(parts), sum(parts) / len(parts)
        ratio = max(parts) / mean if mean else 0.0
        empty = sum(1 for c in parts if c == 0)
        verdict = "skewed" if ratio > 2 else "roughly even" if ratio > 1.2 else "even"
        words.append(f"{rows:,} rows in {len(parts):,} partitions ({empty:,} empty): "
                     f"{verdict}, the largest partition holds {ratio:.1f}x the mean "
                     f"({max(parts):,} rows against {mean:,.0f}).")
    hot = list(sk.get("hot_keys") or [])
    if hot:
        key, _, share = hot[0]
        col = sk.get("key_col") or "key"
        words.append(f"{_cell(col)} {_cell(repr(key))} has {float(share):.0%} of rows; the top "
                     f"{len(hot[:10])} keys hold {sum(float(s) for *_, s in hot[:10]):.0%}.")
    classes = list(sk.get("classes") or [])
    if classes:
        col = sk.get("label_col") or "label"
        shares = ", ".join(f"{_cell(_class_name(data, v))} {_pct(float(s))} ({int(n):,})"
                           for v, n, s in classes[:10])
        words.append(f"Classes of {_cell(col)}: {shares}.")
    return [f"- {w}" for w in words]


def _config_block(config: dict) -> list[str]:
    plain = json.loads(json.dumps(config, default=str))
    try:
        import yaml

        text, lang = yaml.safe_dump(plain, sort_keys=False).rstrip(), "yaml"
    except ImportError:
        text, lang = json.dumps(plain, indent=2), "json"
    return ["<details><summary>Resolved configuration</summary>", "", f"```{lang}", text,
            "```", "", "</details>"]


def render_markdown(data: ReportData, sections: list[_Section]) -> str:
    """The text of ``report.md`` for ``data`` and its drawn (or skipped) plots."""
    lines = [f"# {data.title}", "", _summary(data), "", "## Metrics", ""]
    lines += _metrics_table(data)
    lines += ["", "## Plots"]
    for sec in sections:
        lines += ["", f"### {sec.title}", ""]
        if sec.image:
            lines += [f"![{sec.title}]({sec.image})", "", f"*{sec.text}*"]
        else:
            lines.append(f"_{sec.text}_")
    if data.timings:
        lines += ["", "## Timings", ""] + _timings_table(data.timings)
    if data.skew:
        lines += ["", "## Data skew", ""] + (_skew_words(data) or ["_Nothing recorded._"])
    if data.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in data.notes]
    if data.config:
        lines += ["", "## Configuration", ""] + _config_block(data.config)
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- writing
def _validate(data: ReportData) -> None:
    if data.task not in TASKS:
        raise ValueError(f"The 'task' of ReportData must be one of {list(TASKS)}. "
                         f"Got {data.task!r} instead.")
    for name in ("labels", "scores", "predictions"):
        arr = getattr(data, name)
        if arr is not None and np.squeeze(np.asarray(arr)).ndim > 1:
            raise ValueError(f"ReportData.{name} must be one-dimensional. Got shape "
                             f"{np.asarray(arr).shape} instead.")


def _draw_all(data: ReportData, out_dir: str, max_points: int) -> list[_Section]:
    """Draw every plot that applies; a plot that fails becomes a message, not a crash."""
    if importlib.util.find_spec("matplotlib") is None:
        return [_Section("Plots", None, "No plots: matplotlib is not installed "
                         "(`pip install matplotlib`).")]
    drawers: list[Callable[[], _Section | None]] = [
        lambda: _plot_training(data, out_dir),
        lambda: _plot_roc_pr(data, out_dir),
        lambda: _plot_scores(data, out_dir),
        lambda: _plot_confusion(data, out_dir),
        lambda: _plot_predictions(data, out_dir, max_points),
        lambda: _plot_skew(data, out_dir),
    ]
    sections = []
    for draw in drawers:
        try:
            section = draw()
        except Exception as exc:  # a report must not lose a finished run
            logger.warning("spark_dl report: a plot failed", exc_info=True)
            section = _Section("Plot", None, f"A plot could not be drawn: {exc!r}.")
        if section is not None:
            sections.append(section)
    return sections


def write_report(data: ReportData, out_dir: str, *, max_points: int = MAX_POINTS) -> str:
    """Write ``out_dir/report.md`` and its ``*.png`` plots; return the report's path.

    ``out_dir`` is created if missing; a second run overwrites the first, and plots that
    the new run does not draw are removed so no stale figure is left beside the report.
    Scatter plots draw a fixed random sample of at most ``max_points`` rows.
    """
    _validate(data)
    os.makedirs(out_dir, exist_ok=True)
    for name in _PLOT_FILES:
        path = os.path.join(out_dir, name)
        if os.path.exists(path):
            os.remove(path)
    sections = _draw_all(data, out_dir, max_points)
    report = os.path.join(out_dir, "report.md")
    tmp = report + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(render_markdown(data, sections))
    os.replace(tmp, report)
    logger.info("spark_dl report written to %s", report)
    return report
