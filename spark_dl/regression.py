"""TorchRegressor: a torch network trained and scored as a Spark ML regressor."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql.types import DoubleType, StructField

from spark_dl.base import _TorchEstimator, _TorchModel
from spark_dl.explanations import _ExplainParams, attribution_fields, unpack
from spark_dl.param_table import stage


@stage()
class TorchRegressor(_TorchEstimator, _ExplainParams):
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

    def _output_shapes(self, num_features: int, num_outputs: int) -> list[tuple[int, ...]]:
        return [(1,), ()]

    def _model_class(self) -> type[TorchRegressionModel]:
        return TorchRegressionModel


@stage(constructor=False, setters="model")
class TorchRegressionModel(_TorchModel, _ExplainParams):
    """A fitted :class:`TorchRegressor`; ``transform`` adds ``prediction`` (double), and
    the ``attributionsCol`` Vector when that Param is set."""

    _task = "regression"

    def _output_fields(self) -> list[StructField]:
        return [StructField(self.getPredictionCol(), DoubleType())] + attribution_fields(self)

    def _transform(self, dataset: DataFrame) -> DataFrame:
        dataset, scored = self._scoring_column(dataset)
        if not self.getAttributionsCol():
            return dataset.withColumn(self.getPredictionCol(), scored)
        return unpack(dataset, scored, {"pred": self.getPredictionCol(),
                                              "attr": self.getAttributionsCol()})
