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
from typing import Any, Callable

import numpy as np

from spark_dl.jobs.report_data import (
    MAX_POINTS,
    TASKS,
    ReportData,
    Section,
    class_name,
    fmt,
    pct,
)

logger = logging.getLogger(__name__)

_PLOT_FILES = ("training.png", "roc_pr.png", "scores.png", "confusion.png",
               "predictions.png", "skew.png")


# --------------------------------------------------------------------------- numbers
def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "n/a"
    if seconds < 120:
        return f"{seconds:.3g} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


# --------------------------------------------------------------------------- curves


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
        shares = ", ".join(f"{_cell(class_name(data, v))} {pct(float(s))} ({int(n):,})"
                           for v, n, s in classes[:10])
        words.append(f"Classes of {_cell(col)}: {shares}.")
    return [f"- {w}" for w in words]


def _top_features_table(top: Any) -> list[str]:
    if not top.rows:
        return ["_No rows to explain._"]
    width = max(len(r) for r in top.rows) - len(top.columns) - 1
    head = [*top.columns, top.score_name] + [f"#{i + 1}" for i in range(width)]
    lines = [top.note, "", "| " + " | ".join(_cell(h) for h in head) + " |",
             "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(_cell(v) for v in r) + " |" for r in top.rows]
    return lines


def _config_block(config: dict) -> list[str]:
    plain = json.loads(json.dumps(config, default=str))
    try:
        import yaml

        text, lang = yaml.safe_dump(plain, sort_keys=False).rstrip(), "yaml"
    except ImportError:
        text, lang = json.dumps(plain, indent=2), "json"
    return ["<details><summary>Resolved configuration</summary>", "", f"```{lang}", text,
            "```", "", "</details>"]


def render_markdown(data: ReportData, sections: list[Section]) -> str:
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
    if data.top_features is not None:
        lines += ["", "## Top features of the highest-scoring rows", ""]
        lines += _top_features_table(data.top_features)
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


def _draw_all(data: ReportData, out_dir: str, max_points: int) -> list[Section]:
    """Draw every plot that applies; a plot that fails becomes a message, not a crash."""
    if importlib.util.find_spec("matplotlib") is None:
        return [Section("Plots", None, "No plots: matplotlib is not installed "
                         "(`pip install matplotlib`).")]
    from spark_dl.jobs import plots

    drawers: list[Callable[[], Section | None]] = [
        lambda: plots.plot_training(data, out_dir),
        lambda: plots.plot_roc_pr(data, out_dir),
        lambda: plots.plot_scores(data, out_dir),
        lambda: plots.plot_confusion(data, out_dir),
        lambda: plots.plot_predictions(data, out_dir, max_points),
        lambda: plots.plot_skew(data, out_dir),
    ]
    sections = []
    for draw in drawers:
        try:
            section = draw()
        except Exception as exc:  # a report must not lose a finished run
            logger.warning("spark_dl report: a plot failed", exc_info=True)
            section = Section("Plot", None, f"A plot could not be drawn: {exc!r}.")
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
