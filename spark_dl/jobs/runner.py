"""Run one end-to-end job: data -> Pipeline fit -> scores -> model, metrics and report.

A scenario module (``spark_dl.jobs.<name>``) says what is specific to its pipeline:
``SCHEMA`` (its extra config keys), ``TASK``, ``generate`` (data made on the executors),
``split``, ``build_pipeline`` and ``evaluate`` (or ``evaluate_model``, given the fitted
model and both splits). This module does the rest, the same way
for every pipeline: Spark session, reading the user's data, the skew profile, timings,
the saved ``PipelineModel``, scored parquet, ``metrics.json`` and the report.
"""

from __future__ import annotations

import importlib
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from spark_dl.jobs.config import (
    Bool,
    ConfigError,
    Float,
    Int,
    Mapping,
    Schema,
    Str,
    merge,
    param_schema,
    read_yaml,
    set_override,
    validate,
)
from spark_dl.jobs.outputs import torch_history
from spark_dl.jobs.session import get_spark

PIPELINES = ("fraud_detection", "sentiment", "image_classification", "equipment_fault",
             "price_trend", "recommendation")
SOURCES = ("generate", "parquet", "csv", "json", "table", "image")

BASE_SCHEMA: Schema = {
    "pipeline": Str(required=True, choices=PIPELINES),
    "spark": {
        "master": Str("local[2]"),
        "remote": Str(),  # a Spark Connect URL, sc://host:port: run as a Connect client
        "app_name": Str(),
        "conf": Mapping({"spark.sql.shuffle.partitions": 8, "spark.ui.enabled": False}),
    },
    "data": {
        "source": Str("generate", choices=SOURCES),
        "path": Str(),
        "options": Mapping(),
        "rows": Int(20_000, minimum=10),
        "seed": Int(0),
        "partitions": Int(None, minimum=1),
    },
    "evaluation": {"test_fraction": Float(0.2, low=0.0, high=1.0, open_low=True,
                                          open_high=True)},
    "output": {"dir": Str(required=True), "report": Bool(True)},
}

logger = logging.getLogger(__name__)


def scenario(name: str) -> Any:
    """The scenario module of pipeline ``name``."""
    return importlib.import_module(f"spark_dl.jobs.{name}")


def schema(name: str) -> Schema:
    """Pipeline ``name``'s config schema: the common keys, every Param of its estimator
    (``model``/``training`` keys made from the Param table, same defaults) and its own."""
    module = scenario(name)
    return merge(merge(BASE_SCHEMA, param_schema(module.ESTIMATOR)), module.SCHEMA)


def load(path: str, overrides: list[str] | None = None) -> dict[str, Any]:
    """Read, override and validate a job config; every default filled in."""
    raw = read_yaml(path)
    for assignment in overrides or []:
        set_override(raw, assignment)
    name = raw.get("pipeline")
    if name not in PIPELINES:
        raise ConfigError(f"{path}: 'pipeline' must be one of {list(PIPELINES)}. Got {name!r}.")
    try:
        cfg = validate(raw, schema(name), "")
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    _check_data_path(cfg, path)
    cfg["_config_path"] = os.path.abspath(path)
    return cfg


def _check_data_path(cfg: dict[str, Any], path: str) -> None:
    data = cfg["data"]
    if data["source"] == "generate":
        return
    if not data["path"]:
        raise ConfigError(f"{path}: data.path is required when data.source is "
                          f"{data['source']!r} (a file, folder or table name).")
    url = urlparse(data["path"])
    if data["source"] != "table" and url.scheme in ("", "file") and not os.path.exists(url.path):
        raise ConfigError(f"{path}: data.path {data['path']!r} does not exist.")


def read_data(spark: Any, cfg: dict[str, Any]) -> Any:
    """The user's data (parquet, csv, json or a table), or the scenario's generated data."""
    data = cfg["data"]
    if data["source"] == "generate":
        return scenario(cfg["pipeline"]).generate(spark, cfg)
    if data["source"] == "table":
        return spark.table(data["path"])
    reader = spark.read.options(**{k: str(v) for k, v in data["options"].items()})
    if data["source"] == "image":  # Spark's image data source, class folders below path
        reader = reader.option("recursiveFileLookup", "true")
    if data["source"] == "csv":
        reader = reader.option("header", data["options"].get("header", "true")).option(
            "inferSchema", data["options"].get("inferSchema", "true"))
    try:
        return reader.format(data["source"]).load(data["path"])
    except Exception as exc:  # AnalysisException and friends: say which key to fix
        raise ConfigError(f"data.path {data['path']!r} could not be read as "
                          f"{data['source']}: {str(exc).splitlines()[0]}") from None


# ---------------------------------------------------------------------- the run
@dataclass
class RunResult:
    """What a run produced, for the caller and the tests."""

    metrics: dict[str, float]
    output_dir: str
    report: str | None
    timings: dict[str, float] = field(default_factory=dict)


def run(cfg: dict[str, Any], *, verbose: bool = False, spark: Any = None) -> RunResult:
    """Run the job ``cfg`` describes and write its outputs to ``output.dir``; with
    ``tracking.mlflow``, inside an MLflow run (:class:`~spark_dl.tracking.mlflow_run.JobRun`).
    """
    from spark_dl.jobs.outputs import local_dir
    from spark_dl.tracking.mlflow_run import JobRun

    sc = scenario(cfg["pipeline"])
    spark = spark or get_spark(cfg, verbose)
    with JobRun(cfg) as tracked:
        result = _run_job(sc, spark, cfg)
        tracked.log_job(result.metrics, result.timings, local_dir(cfg))
    return result


def _run_job(sc: Any, spark: Any, cfg: dict[str, Any]) -> RunResult:
    from spark_dl.jobs.outputs import write_outputs
    from spark_dl.skew import profile

    timings: dict[str, float] = {}
    start = time.time()
    df = sc.prepare_input(read_data(spark, cfg), cfg).cache()
    rows = df.count()
    skew = profile(df, key_col=sc.key_col(cfg), label_col=sc.label_col(cfg))
    timings["data"] = time.time() - start
    print(f"spark_dl {cfg['pipeline']}: {rows:,} input rows in {skew.partitions.num_partitions} "
          f"partitions (max/mean {skew.partitions.max_over_mean:.2f})", flush=True)
    train, test = sc.split(df, cfg)
    t0 = time.time()
    model = sc.build_pipeline(cfg, train).fit(train)
    timings["fit"] = time.time() - t0
    _print_training_summary(model, timings["fit"])
    t0 = time.time()
    scored = model.transform(test).cache()
    if hasattr(sc, "evaluate_model"):  # metrics that need the model, not only its scores
        evaluation = sc.evaluate_model(model, train, test, scored, cfg)
    else:
        evaluation = sc.evaluate(scored, cfg)
    timings["score_and_evaluate"] = time.time() - t0
    for name, value in evaluation.metrics.items():
        print(f"spark_dl {cfg['pipeline']}: {name} = {value:.4f}", flush=True)
    t0 = time.time()
    report = write_outputs(cfg, model, scored, evaluation, skew, timings)
    timings["outputs"] = time.time() - t0
    scored.unpersist()
    df.unpersist()
    return RunResult(evaluation.metrics, cfg["output"]["dir"], report, timings)


def _print_training_summary(model: Any, seconds: float) -> None:
    history = torch_history(model)
    if not history:
        return
    last = history[-1]
    text = (f"spark_dl: trained {len(history)} epoch(s) in {seconds:.0f}s, final train_loss "
            f"{last['train_loss']:.4f}")
    if "val_metric" in last:
        text += f", val_{last['metric']} {last['val_metric']:.4f}"
    print(text, flush=True)
