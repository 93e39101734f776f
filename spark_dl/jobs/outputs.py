"""What a job leaves behind: the saved PipelineModel, scored parquet, metrics.json, and a
report with plots.

The model and the scored rows are written by Spark, so ``output.dir`` may be any path
Spark can write (HDFS, S3, DBFS, a shared mount). ``metrics.json`` and the report are
written by the driver: into ``output.dir`` when it is a local path, otherwise into
``./spark_dl-reports/<pipeline>`` on the driver.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import numpy as np

from spark_dl.persistence import save_atomic

#: Rows of scores and labels the driver collects for curves and plots.
SAMPLE_ROWS = 200_000


@dataclass
class Evaluation:
    """A scenario's verdict on the scored test rows."""

    task: str  # "binary", "multiclass", "regression" or "anomaly"
    metrics: dict[str, float]
    scored_columns: list[str]
    labels: np.ndarray | None = None
    scores: np.ndarray | None = None
    predictions: np.ndarray | None = None
    class_names: list[str] | None = None
    baseline: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    frame: Any = None  # the scored DataFrame with any columns evaluation added
    top_features: Any = None  # spark_dl.jobs.explain.TopFeatures of the best-scoring rows


def collect_columns(df: Any, columns: list[str], limit: int = SAMPLE_ROWS) -> dict[str, Any]:
    """Up to ``limit`` rows of plain numeric ``columns`` as numpy arrays (via Arrow)."""
    from spark_dl.compat import collect_arrow

    table = collect_arrow(df.select(*columns).limit(limit))
    return {c: table.column(c).to_numpy(zero_copy_only=False) for c in columns}


def local_dir(cfg: dict[str, Any]) -> str:
    """Where the driver writes metrics.json and the report."""
    url = urlparse(cfg["output"]["dir"])
    if url.scheme in ("", "file"):
        return url.path
    return os.path.join("spark_dl-reports", cfg["pipeline"])


def write_outputs(cfg: dict[str, Any], model: Any, scored: Any, evaluation: Evaluation,
                  skew: Any, timings: dict[str, float]) -> str | None:
    """Save the model and scored rows (Spark), then metrics.json and the report (driver)."""

    out = cfg["output"]["dir"].rstrip("/")
    save_atomic(model, f"{out}/model", overwrite=True)
    frame = evaluation.frame if evaluation.frame is not None else scored
    frame.select(*evaluation.scored_columns).write.mode("overwrite").parquet(f"{out}/scored")
    here = local_dir(cfg)
    os.makedirs(here, exist_ok=True)
    history = torch_history(model)
    save_json(os.path.join(here, "metrics.json"), {
        "pipeline": cfg["pipeline"], "metrics": evaluation.metrics,
        "baseline": evaluation.baseline, "timings_s": timings, "history": history,
        "model_path": f"{out}/model", "scored_path": f"{out}/scored",
        "input_rows": skew.partitions.rows,
        "input_partitions": skew.partitions.num_partitions,
        **({"top_features": evaluation.top_features.to_dict()}
           if evaluation.top_features is not None else {}),
    })
    print(f"spark_dl {cfg['pipeline']}: model saved to {out}/model, scored rows to "
          f"{out}/scored, metrics to {os.path.join(here, 'metrics.json')}", flush=True)
    if not cfg["output"]["report"]:
        return None
    from spark_dl.jobs.report import ReportData, write_report

    data = ReportData(
        title=cfg["pipeline"], task=evaluation.task, metrics=evaluation.metrics,
        history=history, labels=evaluation.labels, scores=evaluation.scores,
        predictions=evaluation.predictions, class_names=evaluation.class_names,
        skew=_skew_dict(skew), baseline=evaluation.baseline or None,
        config={k: v for k, v in cfg.items() if not k.startswith("_")}, timings=timings,
        notes=evaluation.notes, top_features=evaluation.top_features,
    )
    path = write_report(data, here)
    print(f"spark_dl {cfg['pipeline']}: report written to {os.path.abspath(path)}", flush=True)
    return path


def _skew_dict(skew: Any) -> dict[str, Any]:
    return {
        "rows": skew.partitions.rows,
        "rows_per_partition": list(skew.partitions.counts),
        "key_col": skew.key_col,
        "hot_keys": list(skew.hot_keys),
        "label_col": skew.label_col,
        "classes": list(skew.classes),
    }


def torch_history(model: Any) -> list[dict[str, Any]]:
    """The per-epoch history of the torch stage inside a fitted PipelineModel."""
    for stage in getattr(model, "stages", [model]):
        if hasattr(stage, "history") and hasattr(stage, "torchModule"):
            return stage.history
    return []


def save_json(path: str, data: Any) -> None:
    """Write ``data`` as indented JSON (local path)."""
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=True, default=str)
