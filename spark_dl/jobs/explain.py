"""The report's "top features of the highest-scoring rows": attributions for a few rows.

A job's fitted pipeline ends in a torch model; its scored test rows are ranked by score,
the top ``explain.report_rows`` are scored once more by a copy of that model with
``attributionsCol`` set (``explain.method``, ``explain.steps``), and each row's
``explain.report_features`` largest attributions become one line of the report. Features
that share a name (one sensor at every step of a window) are added up first.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

_ATTR, _SCORE = "__spark_dl_attributions", "__spark_dl_score"


@dataclass
class TopFeatures:
    """The report's table: one row per explained test row, best score first."""

    method: str
    score_name: str
    columns: list[str]  # the identifying columns shown before the score
    rows: list[list[str]]  # identifying values, the score, then "feature value" items
    note: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def torch_stage(model: Any) -> Any:
    """The last stage of a fitted pipeline (or the model itself) with attribution Params."""
    for stage in reversed(getattr(model, "stages", [model])):
        if hasattr(stage, "attributionsCol"):
            return stage
    raise ValueError("The fitted pipeline has no torch model with attributionsCol.")


def explain_top_rows(model: Any, scored: DataFrame, score: Column, cfg: dict[str, Any], *,
                     score_name: str, keep: list[str], names: list[str],
                     toward_class: int | None = None) -> TopFeatures | None:
    """Attributions of the ``explain.report_rows`` highest-scoring rows of ``scored``.

    ``names`` gives each input feature's name (repeats are added up). ``toward_class``
    (binary classifiers): report attributions toward that class, whatever the row's
    predicted class (rawPrediction is ``[-m, m]``, so the other class's are negated).
    """
    rows_wanted, per_row = cfg["explain"]["report_rows"], cfg["explain"]["report_features"]
    if rows_wanted == 0:
        return None
    stage = torch_stage(model)
    if len(names) != stage.numFeatures:
        raise ValueError(f"{len(names)} feature names for a model of {stage.numFeatures} "
                         "features.")
    explainer = stage.copy({stage.attributionsCol: _ATTR,
                            stage.attributionMethod: cfg["explain"]["method"],
                            stage.attributionSteps: cfg["explain"]["steps"]})
    top = (scored.withColumn(_SCORE, score)
           .filter(F.col(_SCORE).isNotNull() & ~F.isnan(_SCORE))  # NaN sorts above all
           .orderBy(F.desc(_SCORE)).limit(rows_wanted)
           .select(*keep, _SCORE, stage.getFeaturesCol()))
    found = explainer.transform(top).orderBy(F.desc(_SCORE)).collect()
    method = explainer.getAttributionMethod()
    lines = []
    for row in found:
        attr = row[_ATTR].toArray()
        if toward_class is not None and int(row[explainer.getPredictionCol()]) != toward_class:
            attr = -attr
        lines.append([str(row[c]) for c in keep] + [f"{row[_SCORE]:.4g}"]
                     + _top_items(attr, names, per_row, method))
    note = _note(method, toward_class, bool(explainer.getAttributionBaseline()))
    return TopFeatures(method, score_name, list(keep), lines, note)


def _top_items(attr: np.ndarray, names: list[str], k: int, method: str) -> list[str]:
    order = list(dict.fromkeys(names))
    totals = np.zeros(len(order))
    np.add.at(totals, [order.index(n) for n in names], attr)
    best = np.argsort(-np.abs(totals))[:k]
    if method == "reconstruction_error":
        whole = totals.sum() or 1.0
        return [f"{order[i]} {totals[i] / whole:.0%}" for i in best]
    return [f"{order[i]} {totals[i]:+.3g}" for i in best]


def _note(method: str, toward_class: int | None, baseline: bool) -> str:
    if method == "reconstruction_error":
        return ("Each feature's share of the row's reconstruction error (the anomaly score), "
                "added up where a feature repeats (a window's steps).")
    target = (f"class {toward_class}'s rawPrediction (log-odds)" if toward_class is not None
              else "the model's output")
    reference = "the explain.baseline row" if baseline else "an all-zero row"
    return (f"Attributions by {method.replace('_', ' ')} to {target}, relative to "
            f"{reference}; positive values push the score up.")


__all__ = ["TopFeatures", "explain_top_rows", "torch_stage"]
