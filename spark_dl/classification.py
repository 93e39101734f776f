"""TorchClassifier: a torch network trained and scored as a Spark ML classifier."""

from __future__ import annotations

import json
from typing import Any

from pyspark.ml.linalg import VectorUDT
from pyspark.ml.param.shared import HasProbabilityCol, HasRawPredictionCol
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, StructField

from spark_dl.base import _TorchEstimator, _TorchModel
from spark_dl.explanations import _ExplainParams, attribution_fields, unpack
from spark_dl.param_table import ParamSpec, declare, stage, to_json_object


def _to_class_weights(value: Any) -> str:
    """Type converter: 'none', 'balanced', or a class -> weight map (dict or JSON object)."""
    if isinstance(value, str) and value.strip().lower() in ("none", "balanced"):
        return value.strip().lower()
    return to_json_object(value)


@declare(
    ParamSpec("probabilityCol", default="probability", model_setter=True),
    ParamSpec("rawPredictionCol", default="rawPrediction", model_setter=True),
    ParamSpec(
        "classWeights", "Per-class loss weights: 'none', 'balanced' (n_rows / (n_classes * "
        "n_rows_of_class), from class counts computed by Spark), or a map from class index to "
        'weight such as {"1": 50.0} (unlisted classes weigh 1). Multiplies weightCol when '
        "both are set.", kind="word_or_map", default="none", converter=_to_class_weights,
        config="training.class_weights"),
)
class _TorchClassifierParams(_ExplainParams, HasProbabilityCol, HasRawPredictionCol):
    """Output columns and class weighting of a classifier."""


@stage()
class TorchClassifier(_TorchEstimator, _TorchClassifierParams):
    """Train a PyTorch network as a Spark ML classifier (binary or multiclass).

    Labels are class indices ``0..k-1`` (use ``StringIndexer`` for strings); the network
    gets ``in_features`` and ``out_features=k`` when its constructor accepts them and is
    trained with (weighted) cross-entropy through TorchDistributor. The fitted model
    writes ``rawPrediction`` (logits), ``probability`` (softmax) and ``prediction``, so
    ``BinaryClassificationEvaluator`` and ``MulticlassClassificationEvaluator`` work.

    Examples
    --------
    >>> from pyspark.ml.linalg import Vectors
    >>> df = spark.createDataFrame(
    ...     [(Vectors.dense([0.0, 1.0]), 0.0), (Vectors.dense([1.0, 0.0]), 1.0)] * 20,
    ...     ["features", "label"])
    >>> clf = TorchClassifier(modelParams={"hidden_layers": [8]}, maxEpochs=5)
    >>> model = clf.fit(df)
    >>> model.transform(df).select("prediction").distinct().count()
    2
    """

    _task = "classification"

    def _model_class(self) -> type[TorchClassificationModel]:
        return TorchClassificationModel

    def _weighted(self, prepared: DataFrame, num_outputs: int) -> DataFrame:
        """Multiply each training row's weight by its class weight (``classWeights``)."""
        weights = self._class_weights(prepared, num_outputs)
        if weights is None:
            return prepared
        per_class = F.array(*[F.lit(float(w)) for w in weights])
        return prepared.withColumn("w", F.col("w") * F.element_at(per_class,
                                                                  F.col("y").cast("int") + 1))

    def _class_weights(self, prepared: DataFrame, k: int) -> list[float] | None:
        spec = self.getClassWeights()
        if spec == "none":
            return None
        if spec == "balanced":
            counts = {int(r["y"]): int(r["count"]) for r in
                      prepared.filter(~F.col("v")).groupBy("y").count().collect()}
            present = [c for c in range(k) if counts.get(c)]
            total = sum(counts.values())
            return [total / (len(present) * counts[c]) if counts.get(c) else 0.0
                    for c in range(k)]
        weights = [1.0] * k
        for key, value in json.loads(spec).items():
            if not (str(key).isdigit() and int(key) < k) or not (
                    isinstance(value, (int, float)) and value >= 0):
                raise ValueError(
                    f"The 'classWeights' parameter of TorchClassifier maps class indices "
                    f"0..{k - 1} to weights >= 0. Got {key!r}: {value!r}.")
            weights[int(key)] = float(value)
        return weights


@stage(constructor=False, setters="model")
class TorchClassificationModel(_TorchModel, _TorchClassifierParams):
    """A fitted :class:`TorchClassifier`.

    ``transform`` adds ``rawPrediction`` and ``probability`` (Vectors) and ``prediction``
    (double), scoring Arrow batches with one cached network per Python worker. Set any
    output column to ``""`` to leave it out.
    """

    _task = "classification"

    @property
    def numClasses(self) -> int:
        """Number of classes the model predicts."""
        return self._num_outputs

    def _output_cols(self) -> dict[str, str]:
        """UDF field -> output column, for the output columns that are not disabled."""
        cols = {"raw": self.getRawPredictionCol(), "prob": self.getProbabilityCol(),
                "pred": self.getPredictionCol()}
        return {field: col for field, col in cols.items() if col}

    def _outputs(self) -> tuple[str, ...]:
        return tuple(self._output_cols()) or ("pred",)

    def _onnx_output_names(self) -> list[str]:
        # A disabled ("") output column still has a graph output: it takes Spark's default name.
        return [self.getRawPredictionCol() or "rawPrediction",
                self.getProbabilityCol() or "probability", self.getPredictionCol() or "prediction"]

    def _output_fields(self) -> list[StructField]:
        types = {"raw": VectorUDT(), "prob": VectorUDT(), "pred": DoubleType()}
        return ([StructField(col, types[field]) for field, col in self._output_cols().items()]
                + attribution_fields(self))

    def _transform(self, dataset: DataFrame) -> DataFrame:
        dataset, scored = self._scoring_column(dataset)
        cols = self._output_cols()
        if self.getAttributionsCol():
            cols["attr"] = self.getAttributionsCol()
        return unpack(dataset, scored, cols)
