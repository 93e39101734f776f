"""The report's plots, one function per PNG, drawn on ``matplotlib.figure.Figure``
objects (Agg canvas, no pyplot, no global state); matplotlib is imported inside."""

from __future__ import annotations

import logging
import os
from typing import Any, Callable

import numpy as np

from spark_dl.jobs.curves import (
    _sample,
    _thin,
    average_precision,
    precision_recall_curve,
    roc_auc,
    roc_curve,
)
from spark_dl.jobs.report_data import DPI, MAX_CLASSES, ReportData, Section, class_name, fmt, pct

logger = logging.getLogger(__name__)


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




def _series(history: list[dict], key: str) -> np.ndarray:
    vals = [h.get(key) for h in history]
    return np.array([np.nan if v is None else float(v) for v in vals], dtype=float)


# --------------------------------------------------------------------------- figures
def _figure(ncols: int, width: float = 4.8, height: float = 3.8,
            ratios: list[float] | None = None) -> tuple[Any, list[Any]]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height), dpi=DPI, layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False, width_ratios=ratios)[0]
    for ax in axes:
        ax.grid(True, alpha=0.3)
    return fig, list(axes)


def _save(fig: Any, out_dir: str, name: str) -> str:
    fig.savefig(os.path.join(out_dir, name), dpi=DPI)
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


def plot_training(data: ReportData, out_dir: str) -> Section:
    title = "Training"
    hist = [h for h in data.history if isinstance(h, dict)]
    train = _series(hist, "train_loss")
    if not np.isfinite(train).any():
        return Section(title, None, "No training history was recorded, so there is no "
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
    return Section(title, _save(fig, out_dir, "training.png"),
                    _training_caption(epochs, train, val))


def plot_roc_pr(data: ReportData, out_dir: str) -> Section | None:
    title = "ROC and precision-recall"
    if data.task not in ("binary", "anomaly"):
        return None
    if data.labels is None or data.scores is None:
        return Section(title, None, "No ROC or precision-recall curve: the test labels "
                        "or scores were not collected.")
    y, s, remark = _binary_inputs(data)
    if y is None or not np.isin(y, (0.0, 1.0)).all():
        return Section(title, None, "No ROC or precision-recall curve: the test labels "
                        "must be 0 or 1.")
    pos = int(y.sum())
    if pos in (0, y.size):
        return Section(title, None, f"No ROC or precision-recall curve: the {y.size:,} "
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
    ax2.axhline(base, ls=":", color="tab:red", label=f"base rate {pct(base)}")
    ax2.set(title="Precision-recall curve", xlabel="recall", ylabel="precision",
            xlim=(0, 1), ylim=(0, 1.02))
    ax2.legend(loc="upper right")
    text = (f"ROC AUC {fmt(auc)}, average precision {fmt(ap)} against a base rate of "
            f"{pct(base)} ({pos:,} positives in {y.size:,} rows). With rare positives read "
            f"the precision-recall curve: it shows what share of alerts are real at each "
            f"recall.{remark}")
    return Section(title, _save(fig, out_dir, "roc_pr.png"), text)


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


def plot_scores(data: ReportData, out_dir: str) -> Section | None:
    title = "Score distribution"
    if data.task not in ("binary", "anomaly"):
        return None
    if data.scores is None:
        return Section(title, None, "No score histogram: the test scores were not collected.")
    y, s, remark = _binary_inputs(data)
    if s.size == 0:
        return Section(title, None, f"No score histogram: no finite scores.{remark}")
    edges, scale = _hist_edges(s)
    fig, (ax,) = _figure(1, width=7.5, height=4.0)
    groups = [(None, s)] if y is None else [(v, s[y == v]) for v in np.unique(y)]
    for value, part in groups:
        label = "all rows" if value is None else class_name(data, int(value))
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
    return Section(title, _save(fig, out_dir, "scores.png"), text + remark)


def _confusion(y: np.ndarray, p: np.ndarray, k: int) -> np.ndarray:
    counts = np.zeros((k, k), dtype=np.int64)
    np.add.at(counts, (y, p), 1)
    return counts


def plot_confusion(data: ReportData, out_dir: str) -> Section | None:
    title = "Confusion matrix"
    if data.task != "multiclass":
        return None
    if data.labels is None or data.predictions is None:
        return Section(title, None, "No confusion matrix: the test labels or predictions "
                        "were not collected.")
    y = np.asarray(data.labels, dtype=float).ravel()
    p = np.asarray(data.predictions, dtype=float).ravel()
    keep = np.isfinite(y) & np.isfinite(p)
    y, p = y[keep].astype(np.int64), p[keep].astype(np.int64)
    if y.size == 0 or min(y.min(), p.min()) < 0:
        return Section(title, None, "No confusion matrix: no rows with non-negative class "
                        "ids.")
    k = max(int(y.max()), int(p.max())) + 1
    k = max(k, len(data.class_names or []))
    if k > MAX_CLASSES:
        return Section(title, None, f"No confusion matrix: {k:,} classes are too many to "
                        f"read (at most {MAX_CLASSES}).")
    counts = _confusion(y, p, k)
    rows = counts.sum(axis=1, keepdims=True)
    norm = np.divide(counts, rows, out=np.zeros(counts.shape), where=rows > 0)
    size = min(4 + 0.45 * k, 14)
    fig, (ax,) = _figure(1, width=size + 1.2, height=size)
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.grid(False)
    fig.colorbar(im, ax=ax, label="share of the true class", shrink=0.8)
    names = [class_name(data, i)[:18] for i in range(k)]
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
    return Section(title, _save(fig, out_dir, "confusion.png"), text)


def plot_predictions(data: ReportData, out_dir: str, max_points: int) -> Section | None:
    title = "Predictions"
    if data.task != "regression":
        return None
    if data.labels is None or data.predictions is None:
        return Section(title, None, "No prediction plot: the test labels or predictions "
                        "were not collected.")
    y = np.asarray(data.labels, dtype=float).ravel()
    p = np.asarray(data.predictions, dtype=float).ravel()
    keep = np.isfinite(y) & np.isfinite(p)
    y, p = y[keep], p[keep]
    if y.size == 0:
        return Section(title, None, "No prediction plot: no rows with finite values.")
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
    return Section(title, _save(fig, out_dir, "predictions.png"), text)


def _share_bars(ax: Any, items: list[tuple[Any, int, float]], title: str,
                name: Callable[[Any], str]) -> None:
    labels = [name(k)[:20] for k, _, _ in items]
    shares = [100 * float(s) for _, _, s in items]
    ax.barh(range(len(items)), shares, color="tab:orange")
    ax.set_yticks(range(len(items)), labels)
    ax.invert_yaxis()
    for i, (_, n, s) in enumerate(items):
        ax.text(100 * float(s), i, f" {pct(float(s))} ({int(n):,})", va="center", fontsize=8)
    top = max(shares, default=1.0)
    ax.set_xlim(0, top * 1.45)
    ax.set_xticks([t for t in ax.get_xticks() if t <= top * 1.05])
    ax.set(title=title, xlabel="share of rows (%)")


def plot_skew(data: ReportData, out_dir: str) -> Section | None:
    title = "Data skew"
    sk = data.skew or {}
    parts = [int(c) for c in sk.get("rows_per_partition") or []]
    hot, classes = list(sk.get("hot_keys") or [])[:10], list(sk.get("classes") or [])
    if not (parts or hot or classes):
        return Section(title, None, "No skew plot: no skew profile was collected.")
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
                        lambda v: class_name(data, v))
    text = ("Look for one tall partition or one key holding most rows: those tasks run "
            "longest and set the pace of every epoch.")
    return Section(title, _save(fig, out_dir, "skew.png"), text)


# --------------------------------------------------------------------------- markdown
