"""MLflow tracking of a fit (``mlflowTracking=True`` or the Spark conf
``spark.dl.mlflow.tracking=true``; needs ``spark-dl[mlflow]``).

Which run a fit logs into:

- an MLflow run active in the fitting thread that holds no spark_dl fit yet: that run;
- an active run that already holds one (a second fit in the same run): a child run of it;
- a candidate of ``CrossValidator`` / ``TrainValidationSplit`` (``fitMultiple``): a child run
  of the run active when tuning started, or of a parent run spark_dl starts for the
  tuning round and ends when its last candidate has been fitted;
- otherwise a new run, ended when the fit ends (FAILED if it raised).

What it logs: every Param of the estimator; the data profile (rows, validation rows,
features, classes and their counts, the partition count and the largest partition's share:
``data.*``); the per-epoch history with ``step=epoch`` (``train_loss``, ``val_loss``,
``val_<metric>``, ``samples_per_sec``, ``lr``), logged by rank 0 to the tracking server as
each epoch ends, or by the driver after training where rank 0 could not reach the server;
the training timings (``time.*`` seconds); and the fitted model twice: ``model`` in the
Spark flavor (``mlflow.spark.load_model`` returns a ``PipelineModel`` holding it) with a
signature and an input example, and ``pyfunc`` in a Spark-free python_function flavor
(:mod:`spark_dl.tracking.pyfunc`) that ``mlflow.pyfunc.spark_udf`` scores with.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from typing import Any, Iterator

logger = logging.getLogger(__name__)

#: Tag on every run spark_dl logs a fit into.
FIT_TAG = "spark_dl.stage"
_tuning = threading.local()  # the parent run id of the candidate being fitted (fitMultiple)


def enabled(stage: Any, spark: Any) -> bool:
    """Whether ``stage``'s fit is tracked: its Param, else the Spark conf."""
    from spark_dl import conf

    value = stage.getMlflowTracking()
    if value is None:
        value = conf.get_str(spark, conf.MLFLOW_TRACKING).strip().lower() == "true"
    return bool(value)


def check_available(owner: str) -> None:
    """Refuse tracking before any job when mlflow cannot be imported."""
    import importlib.util

    if importlib.util.find_spec("mlflow") is None:
        raise ValueError(
            f"MLflow tracking is on for {owner} (mlflowTracking or spark.dl.mlflow.tracking), "
            "but mlflow is not installed: pip install 'spark-dl[mlflow]', or turn it off.")


class NoRun:
    """The tracker of an untracked fit: every hook does nothing."""

    def __enter__(self) -> NoRun:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def plan_fields(self) -> dict[str, Any]:
        return {}

    def log_data(self, prepared: Any, stats: Any, layout: Any, num_outputs: int) -> None:
        return None

    def log_result(self, model: Any, dataset: Any) -> None:
        return None


def fit_run(stage: Any, spark: Any) -> Any:
    """The tracker of ``stage``'s fit: a :class:`FitRun` when tracking is on, else NoRun."""
    if not enabled(stage, spark):
        return NoRun()
    check_available(type(stage).__name__)
    return FitRun(stage)


class FitRun:
    """One fit's MLflow run (see the module docstring for which run)."""

    def __init__(self, stage: Any) -> None:
        self.stage = stage
        self.run_id = ""
        self.owned = False
        self.candidate = False

    def __enter__(self) -> FitRun:
        import mlflow
        from mlflow.tracking import MlflowClient

        client = MlflowClient()
        parent = getattr(_tuning, "parent", None)
        self.candidate = parent is not None  # a tuning candidate: no model logged
        active = mlflow.active_run()
        name = type(self.stage).__name__
        if parent is None and active is not None:
            if FIT_TAG not in client.get_run(active.info.run_id).data.tags:
                self.run_id = active.info.run_id
            else:
                parent = active.info.run_id
        if not self.run_id:
            experiment = (client.get_run(parent).info.experiment_id if parent else
                          mlflow.tracking.fluent._get_experiment_id())
            tags = {"mlflow.runName": f"{name}-fit"}
            if parent:
                tags["mlflow.parentRunId"] = parent
            self.run_id = client.create_run(experiment, tags=tags).info.run_id
            self.owned = True
        client.set_tag(self.run_id, FIT_TAG, name)
        params = {p.name: _param_text(v) for p, v in self.stage.extractParamMap().items()}
        client.log_batch(self.run_id, params=[mlflow.entities.Param(k, v)
                                              for k, v in sorted(params.items())])
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        if self.owned:
            from mlflow.tracking import MlflowClient

            MlflowClient().set_terminated(self.run_id, "FAILED" if exc_type else "FINISHED")

    def plan_fields(self) -> dict[str, Any]:
        """What rank 0 needs to log the epochs into this run."""
        import mlflow

        return {"mlflow": {"tracking_uri": absolute_uri(mlflow.get_tracking_uri()),
                           "run_id": self.run_id}}

    def log_data(self, prepared: Any, stats: Any, layout: Any, num_outputs: int) -> None:
        """The data profile, before training (one small job for a classifier's counts)."""
        from mlflow.tracking import MlflowClient

        sizes = list(stats.rows_per_partition.values())
        profile = {"data.rows": stats.rows, "data.validation_rows": stats.val_rows,
                   "data.features": layout.size, "data.partitions": len(sizes),
                   "data.largest_partition_share": max(sizes) / max(stats.rows, 1)}
        if self.stage._task == "classification":
            profile["data.classes"] = num_outputs
            for row in prepared.groupBy("y").count().collect():  # "y": the prepared label
                profile[f"data.class_{int(row[0])}_rows"] = row[1]
        client = MlflowClient()
        for key, value in profile.items():
            client.log_metric(self.run_id, key, float(value))
        client.set_tag(self.run_id, "spark_dl.input_layout", str(layout.to_dict()))

    def log_result(self, model: Any, dataset: Any) -> None:
        """After training: epochs rank 0 could not log, the timings and the model."""
        from mlflow.tracking import MlflowClient

        client = MlflowClient()
        logged = {m.step for m in client.get_metric_history(self.run_id, "train_loss")}
        for entry in model.history:  # the epochs no rank 0 could log (any attempt's)
            if entry["epoch"] not in logged:
                for key, value in epoch_metrics(entry).items():
                    client.log_metric(self.run_id, key, value, step=entry["epoch"])
        for key, seconds in model.trainingTimings.items():
            client.log_metric(self.run_id, f"time.{key}", float(seconds))
        if not self.candidate:
            log_models(model, dataset, self.run_id)


def epoch_metrics(entry: dict[str, Any]) -> dict[str, float]:
    """One history entry as MLflow metrics (logged with ``step=epoch``)."""
    metrics = {k: float(entry[k]) for k in ("train_loss", "samples_per_sec", "lr", "val_loss")
               if k in entry}
    if "val_metric" in entry:
        metrics[f"val_{entry['metric']}"] = float(entry["val_metric"])
    return metrics


def log_models(model: Any, dataset: Any, run_id: str) -> None:
    """``model`` (Spark flavor) and ``pyfunc`` (Spark-free) into ``run_id``."""
    import mlflow
    from mlflow.models import infer_signature

    from spark_dl import compat
    from spark_dl.tracking import pyfunc

    features = model.getFeaturesCol()
    example = dataset.select(features).limit(5)
    scored = model.transform(example)
    outputs = [c for c in scored.columns if c != features]
    signature = infer_signature(example, scored.select(outputs))
    requirements = [f"spark-dl=={_version()}"]
    active = mlflow.active_run()
    context = mlflow.start_run(run_id=run_id) if active is None or \
        active.info.run_id != run_id else _Same()
    with context:
        if compat.is_connect(dataset.sparkSession):
            # MLflow's Spark flavor saves through the JVM, which a Connect client lacks.
            logger.warning("MLflow: under Spark Connect only the python_function model "
                           "'pyfunc' is logged, not the Spark flavor.")
        else:
            mlflow.spark.log_model(model, "model", signature=signature,
                                   pip_requirements=requirements)
        rows = [list(map(float, r[0].toArray() if hasattr(r[0], "toArray") else r[0]))
                for r in example.collect()]
        import pandas as pd

        frame = pd.DataFrame({features: rows})
        with tempfile.TemporaryDirectory(prefix="spark_dl-pyfunc-") as tmp:
            data = os.path.join(tmp, "data")
            pyfunc.write(model, data)
            py_signature = infer_signature(frame, pyfunc.TorchPyfuncModel(data).predict(frame))
            mlflow.pyfunc.log_model(
                "pyfunc", loader_module="spark_dl.tracking.pyfunc", data_path=data,
                signature=py_signature, input_example=frame.head(2),
                pip_requirements=requirements)


class _Same:
    """A context that keeps the already active run (the user's) active."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        return None


def tuning_candidates(stage: Any, spark: Any, fits: Iterator[Any], count: int) -> Iterator[Any]:
    """Wrap ``fitMultiple``'s iterator so that each candidate is a child run of one parent."""
    if not enabled(stage, spark):
        return fits
    check_available(type(stage).__name__)
    import mlflow
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    active = mlflow.active_run()
    parent, owned = (active.info.run_id, False) if active is not None else (
        client.create_run(mlflow.tracking.fluent._get_experiment_id(), tags={
            "mlflow.runName": f"{type(stage).__name__}-tuning"}).info.run_id, True)
    return _Candidates(fits, parent, owned, count)


class _Candidates:
    """``fitMultiple``'s iterator, thread-safe, fitting each candidate in a child run."""

    def __init__(self, fits: Iterator[Any], parent: str, owned: bool, count: int) -> None:
        self.fits, self.parent, self.owned, self.left = fits, parent, owned, count
        self.lock = threading.Lock()

    def __iter__(self) -> _Candidates:
        return self

    def __next__(self) -> Any:
        _tuning.parent = self.parent
        try:
            fitted = next(self.fits)
        except StopIteration:
            raise
        except BaseException:
            self._done()
            raise
        finally:
            _tuning.parent = None
        self._done()
        return fitted

    def _done(self) -> None:
        with self.lock:
            self.left -= 1
            if self.left == 0 and self.owned:
                from mlflow.tracking import MlflowClient

                MlflowClient().set_terminated(self.parent, "FINISHED")


class RankLog:
    """Rank 0's end: each epoch's metrics into the fit's run as the epoch ends.

    A rank that cannot reach the tracking server (or lacks mlflow) warns once and stops
    trying; the driver then logs the epochs missing from the run after training.
    """

    def __init__(self, info: dict[str, Any]) -> None:
        self.run_id = info["run_id"]
        self.uri = info["tracking_uri"]
        self.client: Any = None
        self.failed = False

    def on_epoch(self, entry: dict[str, Any]) -> None:
        if self.failed:
            return
        try:
            import time

            from mlflow.entities import Metric
            from mlflow.tracking import MlflowClient

            if self.client is None:
                self.client = MlflowClient(self.uri)
            now = int(time.time() * 1000)
            self.client.log_batch(self.run_id, metrics=[
                Metric(k, v, now, entry["epoch"]) for k, v in epoch_metrics(entry).items()])
        except Exception as exc:  # noqa: BLE001 - tracking must never fail training
            self.failed = True
            print(f"spark_dl: rank 0 could not log to MLflow at {self.uri} ({exc!r}); the "
                  "driver logs the epochs after training.", flush=True)


def absolute_uri(uri: str) -> str:
    """A ``sqlite:///relative.db`` URI made absolute: ranks run in other folders."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri[len(prefix):].startswith("/"):
        return prefix + os.path.abspath(uri[len(prefix):])
    return uri


def _param_text(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text[:6000]  # MLflow's limit on a param value


def _version() -> str:
    from spark_dl import __version__

    return __version__


class JobRun:
    """A pipeline run's MLflow run (``tracking.mlflow`` / ``spark-dl run --mlflow``): its
    estimator's fit logs into it; :meth:`log_job` adds the test metrics, the stage timings
    and the report folder (report, plots, metrics.json) as artifacts under ``report/``."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        self.cfg = cfg
        self.on = bool(cfg.get("tracking", {}).get("mlflow"))
        self.context: Any = None

    def __enter__(self) -> JobRun:
        if self.on:
            check_available(f"pipeline {self.cfg['pipeline']!r}")
            import mlflow

            self.context = mlflow.start_run(run_name=f"spark-dl {self.cfg['pipeline']}",
                                            nested=mlflow.active_run() is not None)
            run = self.context.__enter__()
            mlflow.set_tag("spark_dl.pipeline", self.cfg["pipeline"])
            print(f"spark_dl {self.cfg['pipeline']}: MLflow run {run.info.run_id} at "
                  f"{mlflow.get_tracking_uri()}", flush=True)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.context is not None:
            self.context.__exit__(*exc)

    def log_job(self, metrics: dict[str, float], timings: dict[str, float],
                report_dir: str) -> None:
        if not self.on:
            return
        import mlflow

        mlflow.log_metrics({f"test.{k}": float(v) for k, v in metrics.items()})
        mlflow.log_metrics({f"job_time.{k}": float(v) for k, v in timings.items()})
        if os.path.isdir(report_dir):
            mlflow.log_artifacts(report_dir, "report")
