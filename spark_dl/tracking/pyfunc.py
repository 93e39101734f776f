"""An MLflow ``python_function`` flavor that scores without Spark: torch (or numpy) only.

:func:`write` saves what a fitted model scores with into a folder: ``weights.safetensors``
and ``scoring.json`` (the network as JSON, the input layout, the task and the output column
names). MLflow loads it through ``loader_module="spark_dl.tracking.pyfunc"``:
:func:`_load_pyfunc` reads the two files, never unpickles anything, and builds only a
built-in network or one from a module named in the environment variable
``SPARK_DL_ALLOWED_MODULES`` (comma-separated, as ``spark.dl.load.allowedModules``), so
``mlflow.pyfunc.load_model`` and ``mlflow.pyfunc.spark_udf`` run the same Arrow scoring
code as ``transform`` in any Python process.

Input: a pandas DataFrame whose ``featuresCol`` column holds one array (list, numpy array
or ``pyspark.ml.linalg`` vector) per row. Output: a DataFrame of the model's output columns
(classifier: ``rawPrediction`` and ``probability`` as lists and ``prediction``; regressor:
``prediction``; anomaly detector: ``anomalyScore`` and ``isAnomaly``).
"""

from __future__ import annotations

import json
import os
from typing import Any

_SPEC_FILE = "scoring.json"
_WEIGHTS_FILE = "weights.safetensors"
ALLOWED_ENV = "SPARK_DL_ALLOWED_MODULES"


def write(model: Any, folder: str) -> None:
    """Save ``model`` (a fitted torch model) as this flavor's data in ``folder``."""
    from spark_dl.model_spec import ModelSpec

    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, _WEIGHTS_FILE), "wb") as f:
        f.write(model._weights)
    spec = {
        "format": 1, "stage": type(model).__name__, "task": model._task,
        "network": json.loads(ModelSpec(model.getModel(), model.getModelParams()).to_json()),
        "num_features": model.numFeatures, "num_outputs": model._num_outputs,
        "layout": model._layout.to_dict(), "features_col": model.getFeaturesCol(),
        "outputs": output_columns(model), "sha256": model._digest(),
        "threshold": float(model.getThreshold()) if model._task == "reconstruction" else None,
        "precision": model.getInferencePrecision(),
    }
    with open(os.path.join(folder, _SPEC_FILE), "w", encoding="utf-8") as f:
        json.dump(spec, f, indent=1)


def output_columns(model: Any) -> dict[str, str]:
    """Scoring field -> output column name of ``model``'s pyfunc output."""
    if model._task == "classification":
        return {"raw": model.getRawPredictionCol() or "rawPrediction",
                "prob": model.getProbabilityCol() or "probability",
                "pred": model.getPredictionCol() or "prediction"}
    if model._task == "reconstruction":
        return {"score": model.getScoreCol(), "flag": model.getPredictionCol()}
    return {"pred": model.getPredictionCol()}


class TorchPyfuncModel:
    """What ``mlflow.pyfunc.load_model`` wraps: ``predict(pandas DataFrame) -> DataFrame``."""

    def __init__(self, folder: str) -> None:
        from spark_dl.compat import Inline
        from spark_dl.errors import UnsafeModelError
        from spark_dl.inference.scoring import ScoringTask
        from spark_dl.model_spec import ModelSpec
        from spark_dl.persistence import digest

        with open(os.path.join(folder, _SPEC_FILE), encoding="utf-8") as f:
            meta = json.load(f)
        with open(os.path.join(folder, _WEIGHTS_FILE), "rb") as f:
            weights = f.read()
        if digest(weights) != meta["sha256"]:
            raise UnsafeModelError(f"The weights in {folder!r} do not match the SHA-256 its "
                                   f"{_SPEC_FILE} records; refusing them.")
        spec = ModelSpec.from_json(json.dumps(meta["network"]))
        allowed = [m.strip() for m in os.environ.get(ALLOWED_ENV, "").split(",") if m.strip()]
        spec.check_loadable(allowed)
        self.meta = meta
        layout = meta["layout"]
        self.task = ScoringTask(
            key=f"pyfunc:{meta['sha256']}", spec=spec.to_json(),
            num_features=meta["num_features"], num_outputs=meta["num_outputs"],
            task=meta["task"], batch_size=4096, threads=0, handle_invalid="keep",
            features_col=meta["features_col"], weights=Inline(weights),
            outputs=("raw", "prob", "pred"), input_shape=tuple(layout["shape"]),
            input_dtype=layout["dtype"], precision=meta["precision"])

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> Any:
        import numpy as np
        import pandas as pd
        import pyarrow as pa

        from spark_dl.inference.scoring import score_array

        col = self.meta["features_col"]
        frame = model_input if isinstance(model_input, pd.DataFrame) else \
            pd.DataFrame({col: list(model_input)})
        if col not in frame.columns:
            raise ValueError(f"The model scores the column {col!r}, which the input lacks; "
                             f"it has {list(frame.columns)}.")
        rows = [None if v is None else np.asarray(v.toArray() if hasattr(v, "toArray") else v,
                                                  dtype=np.float32) for v in frame[col]]
        scored = score_array(pa.array(rows, type=pa.list_(pa.float32())), self.task)
        names = self.meta["outputs"]
        if self.meta["task"] == "regression":
            return pd.DataFrame({names["pred"]: scored.to_numpy(zero_copy_only=False)})
        if self.meta["task"] == "reconstruction":
            score = scored.to_numpy(zero_copy_only=False)
            return pd.DataFrame({names["score"]: score,
                                 names["flag"]: score > self.meta["threshold"]})
        return pd.DataFrame({names[f]: scored.field(f).to_pylist() for f in ("raw", "prob",
                                                                             "pred")})


def _load_pyfunc(path: str) -> TorchPyfuncModel:
    """MLflow's loader hook (``loader_module``): ``path`` is the flavor's data folder."""
    return TorchPyfuncModel(path)
