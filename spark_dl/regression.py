"""TorchRegressor: a torch network trained and scored as a Spark ML regressor."""

from __future__ import annotations

from typing import Any

from pyspark import keyword_only
from pyspark.sql import DataFrame

from spark_dl.base import _TorchEstimator, _TorchModel


class TorchRegressor(_TorchEstimator):
    """Train a PyTorch network as a Spark ML regressor (mean squared error).

    The network gets ``in_features`` and ``out_features=1`` when its constructor accepts
    them; its single output is the prediction.

    Examples
    --------
    >>> reg = TorchRegressor(modelParams={"hidden_layers": [16]}, maxEpochs=20)
    >>> model = reg.fit(train_df)            # featuresCol="features", labelCol="label"
    >>> model.transform(test_df).select("prediction").show()
    """

    _task = "regression"

    @keyword_only
    def __init__(
        self,
        *,
        featuresCol: str = "features",
        labelCol: str = "label",
        predictionCol: str = "prediction",
        weightCol: str | None = None,
        model: str = "mlp",
        modelParams: Any = None,
        inputShape: list[int] | None = None,
        maxEpochs: int = 10,
        batchSize: int = 64,
        learningRate: float = 1e-3,
        optimizer: str = "adam",
        optimizerParams: Any = None,
        seed: int = 0,
        numProcesses: int = 1,
        localMode: bool = True,
        useGpu: bool = False,
        validationFraction: float = 0.0,
        earlyStoppingPatience: int = 0,
        checkpointDir: str | None = None,
        handleInvalid: str = "error",
        maxTrainAttempts: int | None = None,
        resume: bool = False,
        rebalance: str = "auto",
    ) -> None:
        super().__init__()
        self._set(**{k: v for k, v in self._input_kwargs.items() if v is not None})

    @keyword_only
    def setParams(
        self,
        *,
        featuresCol: str = "features",
        labelCol: str = "label",
        predictionCol: str = "prediction",
        weightCol: str | None = None,
        model: str = "mlp",
        modelParams: Any = None,
        inputShape: list[int] | None = None,
        maxEpochs: int = 10,
        batchSize: int = 64,
        learningRate: float = 1e-3,
        optimizer: str = "adam",
        optimizerParams: Any = None,
        seed: int = 0,
        numProcesses: int = 1,
        localMode: bool = True,
        useGpu: bool = False,
        validationFraction: float = 0.0,
        earlyStoppingPatience: int = 0,
        checkpointDir: str | None = None,
        handleInvalid: str = "error",
        maxTrainAttempts: int | None = None,
        resume: bool = False,
        rebalance: str = "auto",
    ) -> TorchRegressor:
        """Sets params for this TorchRegressor (keyword arguments only)."""
        return self._set(**{k: v for k, v in self._input_kwargs.items() if v is not None})

    def _output_shapes(self, num_features: int, num_outputs: int) -> list[tuple[int, ...]]:
        return [(1,), ()]

    def _model_class(self) -> type[TorchRegressionModel]:
        return TorchRegressionModel


class TorchRegressionModel(_TorchModel):
    """A fitted :class:`TorchRegressor`; ``transform`` adds ``prediction`` (double)."""

    _task = "regression"

    def _transform(self, dataset: DataFrame) -> DataFrame:
        dataset, scored = self._scoring_column(dataset)
        return dataset.withColumn(self.getPredictionCol(), scored)
