"""TorchAnomalyDetector: an autoencoder trained on (mostly) normal rows; its reconstruction
error is the anomaly score."""

from __future__ import annotations

import logging
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import BooleanType, DoubleType, StructField

from spark_dl.base import _TorchEstimator, _TorchModel
from spark_dl.explanations import _ExplainParams, attribution_fields, unpack
from spark_dl.param_table import ParamSpec, declare, in_range, stage

logger = logging.getLogger(__name__)


@declare(
    ParamSpec(
        "scoreCol", "Output column of anomaly scores (double): each row's mean squared "
        "reconstruction error. Higher is more anomalous; use it as "
        "BinaryClassificationEvaluator's rawPredictionCol.", default="anomalyScore",
        model_setter=True),
    ParamSpec(
        "thresholdQuantile", "Quantile of the training rows' scores that becomes the model's "
        "threshold, in (0, 1): 0.99 flags the 1% of training-like rows that reconstruct "
        "worst.", kind="float", default=0.99, check=in_range(0.0, 1.0, closed_low=False),
        config="training.threshold_quantile"),
    ParamSpec(
        "threshold", "Score above which predictionCol is True. Fitted from "
        "thresholdQuantile; set it on the model to change the trade-off without retraining.",
        kind="float", model_setter=True),
)
class _AnomalyParams(_ExplainParams):
    """Output columns and threshold of the anomaly detector and its model."""

    _default_overrides = {"model": "autoencoder", "predictionCol": "isAnomaly",
                          "attributionMethod": "reconstruction_error"}


@stage()
class TorchAnomalyDetector(_TorchEstimator, _AnomalyParams):
    """Train an autoencoder on (mostly) normal rows and flag rows it reconstructs badly.

    The network (``"autoencoder"`` by default: dense, or LSTM over ``(T, F)`` windows with
    ``modelParams={"kind": "lstm"}`` and ``inputShape=[T, F]``) learns to reproduce each
    row; the loss is the mean squared reconstruction error. After training, every training
    row is scored once and the ``thresholdQuantile`` quantile of those scores becomes the
    model's ``threshold`` (rows with ``weightCol`` 0, for example known faults, take no part
    in the loss or the quantile). The model writes ``scoreCol`` (the row's reconstruction error,
    double) and ``predictionCol`` (True above the threshold). No label is needed; scale the
    features first (``StandardScaler``) so that no single feature dominates the error.

    Examples
    --------
    >>> detector = TorchAnomalyDetector(modelParams={"hidden_layers": [16], "latent_dim": 4},
    ...                                 maxEpochs=20, thresholdQuantile=0.995)
    >>> model = detector.fit(normal_df)
    >>> scored = model.transform(df)          # adds anomalyScore and isAnomaly
    >>> BinaryClassificationEvaluator(rawPredictionCol="anomalyScore").evaluate(scored)
    """

    _task = "reconstruction"
    # The threshold and output column are set after training: a resume may change them.
    _NOT_IN_FINGERPRINT = _TorchEstimator._NOT_IN_FINGERPRINT | {"scoreCol",
                                                                  "thresholdQuantile"}

    def _model_class(self) -> type[TorchAnomalyDetectionModel]:
        return TorchAnomalyDetectionModel

    def _label_col(self) -> str | None:
        return None

    def _output_shapes(self, num_features: int, num_outputs: int) -> list[tuple[int, ...]]:
        return [(num_features,)]

    def _finish(self, model: Any, dataset: DataFrame) -> None:
        """The threshold: the ``thresholdQuantile`` quantile of the training rows' scores."""
        model._set(threshold=float("inf"))
        if self._weight_col():  # rows weighted 0 took no part in training: not in the quantile
            dataset = dataset.filter(F.col(self._weight_col()) > 0)
        scored = model.copy({model.handleInvalid: "skip", model.attributionsCol: ""}
                            ).transform(dataset)
        q = self.getThresholdQuantile()
        (threshold,) = scored.approxQuantile(self.getScoreCol(), [q], 1e-4)
        model._set(threshold=float(threshold))
        logger.info("TorchAnomalyDetector: threshold %.6g (training score quantile %g)",
                    threshold, q)


@stage(constructor=False, setters="model")
class TorchAnomalyDetectionModel(_TorchModel, _AnomalyParams):
    """A fitted :class:`TorchAnomalyDetector`.

    ``transform`` adds ``scoreCol`` (double, the row's mean squared reconstruction error)
    and ``predictionCol`` (boolean, ``score > threshold``; null where the score is NaN,
    that is for invalid rows under ``handleInvalid="keep"``).
    """

    _task = "reconstruction"

    def _head_options(self) -> dict[str, Any]:
        return {"threshold": float(self.getThreshold())}

    def _onnx_output_names(self) -> list[str]:
        return [self.getScoreCol(), self.getPredictionCol()]

    def _output_fields(self) -> list[StructField]:
        return [StructField(self.getScoreCol(), DoubleType()),
                StructField(self.getPredictionCol(), BooleanType())] + attribution_fields(self)

    def _transform(self, dataset: DataFrame) -> DataFrame:
        dataset, scored = self._scoring_column(dataset)
        score_col = self.getScoreCol()
        if self.getAttributionsCol():
            out = unpack(dataset, scored, {"pred": score_col,
                                                 "attr": self.getAttributionsCol()})
        else:
            out = dataset.withColumn(score_col, scored)
        score = F.col(score_col)
        flag = F.when(~F.isnan(score), score > F.lit(float(self.getThreshold())))
        return out.withColumn(self.getPredictionCol(), flag)
