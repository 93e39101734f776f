"""Per-row feature attributions: the Params the torch models share, and their driver checks.

Setting ``attributionsCol`` on a fitted :class:`~spark_dl.TorchClassificationModel`,
:class:`~spark_dl.TorchRegressionModel` or :class:`~spark_dl.TorchAnomalyDetectionModel`
(or on its estimator, which copies it to the model) makes ``transform`` add a Vector of one
attribution per input feature, in the order of the features column (row-major for windows
and images). They are computed in the same Arrow UDF pass as the scores, on the same
network; unset (the default), scoring does exactly what it did before. The executor side
is :mod:`spark_dl.inference.attributions`, which describes the methods.

Examples
--------
>>> model.setAttributionsCol("attributions")             # doctest: +SKIP
>>> row = model.transform(df).first()                    # doctest: +SKIP
>>> top = sorted(range(len(names)), key=lambda i: -abs(row.attributions[i]))[:3]
"""

from __future__ import annotations

import math
from typing import Any

from spark_dl.inference.attributions import METHODS
from spark_dl.param_table import (
    ParamSpec,
    TableParams,
    at_least,
    declare,
    one_of,
    param_error,
)

#: Methods for networks with a gradient; the anomaly detector also has reconstruction_error.
GRADIENT_METHODS = METHODS[:2]


@declare(
    ParamSpec(
        "attributionsCol", "Output column (Vector, one value per input feature) of per-row "
        "feature attributions, computed by attributionMethod in transform()'s scoring pass. "
        "They explain the predicted class's rawPrediction (classifiers), the prediction "
        "(regressors) or the anomaly score (anomaly detectors). Unset or empty (the "
        "default): none, at no cost.", model_setter=True, config="explain.attributions_col"),
    ParamSpec(
        "attributionMethod", f"How attributionsCol is computed, one of {list(METHODS)}: "
        "'integrated_gradients' ((x - baseline) times the mean gradient over attributionSteps "
        "points from the baseline to x; a row's attributions add up to its output minus the "
        "baseline's), 'gradient_x_input' ((x - baseline) times the gradient at x: one "
        "backward pass, about attributionSteps times cheaper, exact for linear networks) or "
        "'reconstruction_error' (anomaly detectors only, their default: each feature's "
        "squared reconstruction error over the row width, adding up to the anomaly score).",
        default="integrated_gradients", check=one_of(METHODS), model_setter=True,
        config="explain.method"),
    ParamSpec(
        "attributionSteps", "Points on the path from the baseline to the row for "
        "attributionMethod='integrated_gradients' (>= 1); more is closer to the integral "
        "and proportionally slower.", kind="int", default=32, check=at_least(1),
        model_setter=True, config="explain.steps"),
    ParamSpec(
        "attributionBaseline", "The reference row of the gradient methods, one value per "
        "feature; empty (the default) means all zeros, which is the mean row after "
        "StandardScaler(withMean=True).", kind="floats", default=[], model_setter=True,
        config="explain.baseline"),
)
class _ExplainParams(TableParams):
    """Attribution Params of the torch models (and their estimators)."""


def check_attribution_params(stage: Any, owner: str) -> None:
    """The checks that need only the Params; the estimator runs them before training (so a
    fit is not wasted on a model that could not explain), the model before scoring."""
    col = stage.getAttributionsCol()
    if not col:
        return
    method = stage.getAttributionMethod()
    if method == "reconstruction_error" and stage._task != "reconstruction":
        raise ValueError(
            f"The 'attributionMethod' parameter of {owner} is 'reconstruction_error', which "
            f"only anomaly detectors have. Use one of {list(GRADIENT_METHODS)}.")
    if stage.getInferencePrecision() == "int8-dynamic" and method != "reconstruction_error":
        raise ValueError(
            f"The 'attributionsCol' parameter of {owner} is set with inferencePrecision="
            "'int8-dynamic', whose quantized layers have no gradient. Score with "
            "'float32' (or 'bfloat16') to get attributions.")
    taken = {name: stage.getOrDefault(name) for name in _OUTPUT_PARAMS
             if stage.hasParam(name) and stage.isDefined(name)}
    clash = [name for name, value in taken.items() if value == col]
    if clash:
        raise ValueError(
            f"The 'attributionsCol' parameter of {owner} ({col!r}) is also its '{clash[0]}'. "
            "Give the attributions a column of their own.")
    if not all(math.isfinite(v) for v in stage.getAttributionBaseline()):
        raise param_error(owner, "attributionBaseline", "a list of finite floats (or [])",
                          stage.getAttributionBaseline())


#: Params naming a column that attributionsCol must not reuse.
_OUTPUT_PARAMS = ("featuresCol", "predictionCol", "probabilityCol", "rawPredictionCol",
                  "scoreCol")


def check_attribution_layout(stage: Any, owner: str, dtype: str, num_features: int) -> None:
    """The checks that need the input layout (the estimator's after its data job)."""
    if not stage.getAttributionsCol():
        return
    if dtype == "int64":
        raise ValueError(
            f"The 'attributionsCol' parameter of {owner} is set, but the model reads integer "
            "token ids, which have no gradient. Unset attributionsCol for this model.")
    baseline = stage.getAttributionBaseline()
    if baseline and len(baseline) != num_features:
        raise ValueError(
            f"The 'attributionBaseline' parameter of {owner} must hold one value per feature "
            f"({num_features}), or be empty for zeros. Got {len(baseline)} values.")


def attribution_options(model: Any, owner: str) -> tuple[str, int, tuple[float, ...]] | None:
    """``(method, steps, baseline)`` for the scoring task, or None when ``attributionsCol``
    is unset; refuses, before any job, combinations the scoring pass cannot compute."""
    if not model.getAttributionsCol():
        return None
    check_attribution_params(model, owner)
    check_attribution_layout(model, owner, model._layout.dtype, model.numFeatures)
    baseline = tuple(float(v) for v in model.getAttributionBaseline())
    return model.getAttributionMethod(), int(model.getAttributionSteps()), baseline


def scoring_fields(options: tuple[str, int, tuple[float, ...]] | None) -> dict[str, Any]:
    """The :class:`~spark_dl.inference.scoring.ScoringTask` fields for the result of
    :func:`attribution_options` (none when attributions are off)."""
    if options is None:
        return {}
    method, steps, baseline = options
    return {"attribution": method, "attribution_steps": steps,
            "attribution_baseline": baseline}


def attribution_fields(model: Any) -> list[Any]:
    """The ``attributionsCol`` output column (a Vector) of ``model``, when it is set."""
    from pyspark.ml.linalg import VectorUDT
    from pyspark.sql.types import StructField

    col = model.getAttributionsCol()
    return [StructField(col, VectorUDT())] if col else []


def unpack(dataset: Any, scored: Any, cols: dict[str, str]) -> Any:
    """``dataset`` with the scoring UDF's struct fields as columns (UDF field -> output
    column); the array fields become Vectors, as pyspark.ml's own outputs."""
    from pyspark.ml.functions import array_to_vector
    from pyspark.sql import functions as F

    tmp = "__spark_dl_out"
    while tmp in dataset.columns:
        tmp += "_"
    out = dataset.withColumn(tmp, scored)
    return out.withColumns({
        col: F.col(f"{tmp}.{field}") if field == "pred"
        else array_to_vector(F.col(f"{tmp}.{field}"))
        for field, col in cols.items()
    }).drop(tmp)


__all__ = ["GRADIENT_METHODS", "attribution_fields", "attribution_options",
           "check_attribution_layout", "check_attribution_params", "scoring_fields", "unpack"]
