"""Params shared by the torch-backed estimators and their models.

Every value is JSON-serializable so that ``DefaultParamsWritable`` and Spark's pipeline
persistence work unchanged; networks are described by name and JSON keyword arguments.
"""

from __future__ import annotations

import json
from typing import Any

from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.param.shared import (
    HasFeaturesCol,
    HasHandleInvalid,
    HasLabelCol,
    HasPredictionCol,
    HasSeed,
    HasWeightCol,
)

OPTIMIZERS = ("adam", "adamw", "sgd")


def to_json_object(value: Any) -> str:
    """Type converter: a dict, or a JSON string holding an object, to canonical JSON text."""
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except json.JSONDecodeError as exc:
            raise TypeError(f"Could not parse {value!r} as a JSON object: {exc}") from None
    if not isinstance(value, dict):
        raise TypeError(f"Expected a dict or a JSON object string. Got {value!r}.")
    try:
        return json.dumps(value, sort_keys=True)
    except TypeError as exc:
        raise TypeError(f"Value {value!r} is not JSON-serializable: {exc}") from None


class _TorchStageParams(
    HasFeaturesCol,
    HasLabelCol,
    HasWeightCol,
    HasPredictionCol,
    HasSeed,
    HasHandleInvalid,
):
    """Params of a torch-backed estimator, shared with its fitted model."""

    model: Param[str] = Param(
        Params._dummy(),
        "model",
        "The network: a built-in name such as 'mlp', or 'package.module:ClassName' naming "
        "a torch.nn.Module subclass importable on the driver and the executors.",
        typeConverter=TypeConverters.toString,
    )
    modelParams: Param[str] = Param(
        Params._dummy(),
        "modelParams",
        "Keyword arguments for the network's constructor, as a dict or JSON object string. "
        "in_features and out_features are supplied from the data when the constructor "
        "accepts them.",
        typeConverter=to_json_object,
    )
    inputShape: Param[list[int]] = Param(
        Params._dummy(),
        "inputShape",
        "Shape of one row's input tensor, without the batch dimension: [C, H, W] for images, "
        "[T, F] for windows, [T] for token ids. The flat feature values are read in row-major "
        "order. Empty (the default): flat vectors. Integer array features reach the network "
        "as int64 (token ids), all others as float32.",
        typeConverter=TypeConverters.toListInt,
    )
    maxEpochs: Param[int] = Param(
        Params._dummy(),
        "maxEpochs",
        "Maximum number of passes over the training data (>= 1).",
        typeConverter=TypeConverters.toInt,
    )
    batchSize: Param[int] = Param(
        Params._dummy(),
        "batchSize",
        "Rows per optimizer step on each training process (>= 1).",
        typeConverter=TypeConverters.toInt,
    )
    learningRate: Param[float] = Param(
        Params._dummy(),
        "learningRate",
        "Optimizer learning rate (> 0).",
        typeConverter=TypeConverters.toFloat,
    )
    optimizer: Param[str] = Param(
        Params._dummy(),
        "optimizer",
        f"Optimizer name, one of {list(OPTIMIZERS)} (case-insensitive).",
        typeConverter=TypeConverters.toString,
    )
    optimizerParams: Param[str] = Param(
        Params._dummy(),
        "optimizerParams",
        "Extra keyword arguments for the optimizer (for example weight_decay, momentum), "
        "as a dict or JSON object string.",
        typeConverter=to_json_object,
    )
    numProcesses: Param[int] = Param(
        Params._dummy(),
        "numProcesses",
        "Number of training processes (DDP ranks) launched by TorchDistributor (>= 1).",
        typeConverter=TypeConverters.toInt,
    )
    localMode: Param[bool] = Param(
        Params._dummy(),
        "localMode",
        "If true, training processes run on the driver; if false, in Spark barrier tasks "
        "on the executors.",
        typeConverter=TypeConverters.toBoolean,
    )
    useGpu: Param[bool] = Param(
        Params._dummy(),
        "useGpu",
        "Train and score on CUDA GPUs (NCCL backend) instead of the CPU (gloo backend).",
        typeConverter=TypeConverters.toBoolean,
    )
    validationFraction: Param[float] = Param(
        Params._dummy(),
        "validationFraction",
        "Fraction of rows held out, deterministically by seed, to compute the validation "
        "loss and metric each epoch; 0 disables validation. In [0, 1).",
        typeConverter=TypeConverters.toFloat,
    )
    earlyStoppingPatience: Param[int] = Param(
        Params._dummy(),
        "earlyStoppingPatience",
        "Stop after this many epochs without a lower validation loss and keep the best "
        "weights; 0 disables early stopping. Needs validationFraction > 0.",
        typeConverter=TypeConverters.toInt,
    )
    checkpointDir: Param[str] = Param(
        Params._dummy(),
        "checkpointDir",
        "Directory, on a filesystem the rank-0 process can write (local or mounted shared "
        "storage), where a checkpoint is committed atomically at each epoch end, in a "
        "subdirectory fit-<id> that only this fit (network, Params, data) uses. Unset: none.",
        typeConverter=TypeConverters.toString,
    )

    maxTrainAttempts: Param[int] = Param(
        Params._dummy(),
        "maxTrainAttempts",
        "How many times fit() runs training before giving up; each retry resumes from the "
        "latest checkpoint. Unset: the Spark conf spark.dl.train.maxAttempts (default 2).",
        typeConverter=TypeConverters.toInt,
    )
    resume: Param[bool] = Param(
        Params._dummy(),
        "resume",
        "If true, fit() continues from the latest valid checkpoint of this same fit in "
        "checkpointDir (same network, training Params and data; a higher maxEpochs may "
        "continue a shorter run) instead of starting at epoch 0. Checkpoints of other fits "
        "only raise CheckpointMismatchError.",
        typeConverter=TypeConverters.toBoolean,
    )

    rebalance: Param[str] = Param(
        Params._dummy(),
        "rebalance",
        "Whether transform() first evens rows across partitions so that no task straggles: "
        "'auto' (when the largest partition holds more than spark.dl.skew.maxPartitionRatio "
        "times the mean; costs one counting pass), 'always' or 'never'. Training on the "
        "executors always deals rows evenly, one partition per rank.",
        typeConverter=TypeConverters.toString,
    )

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._setDefault(
            model="mlp",
            modelParams="{}",
            inputShape=[],
            maxEpochs=10,
            batchSize=64,
            learningRate=1e-3,
            optimizer="adam",
            optimizerParams="{}",
            numProcesses=1,
            localMode=True,
            useGpu=False,
            validationFraction=0.0,
            earlyStoppingPatience=0,
            handleInvalid="error",
            seed=0,
            resume=False,
            rebalance="auto",
        )

    # Getters (setters live on the estimator / model, as in pyspark.ml).
    def getModel(self) -> str:
        """Gets the value of model or its default value."""
        return self.getOrDefault(self.model)

    def getModelParams(self) -> dict[str, Any]:
        """Gets the value of modelParams, parsed into a dict."""
        return json.loads(self.getOrDefault(self.modelParams))

    def getInputShape(self) -> list[int]:
        """Gets the value of :py:attr:`inputShape` ([] for flat vectors)."""
        return list(self.getOrDefault(self.inputShape))

    def getMaxEpochs(self) -> int:
        """Gets the value of maxEpochs or its default value."""
        return self.getOrDefault(self.maxEpochs)

    def getBatchSize(self) -> int:
        """Gets the value of batchSize or its default value."""
        return self.getOrDefault(self.batchSize)

    def getLearningRate(self) -> float:
        """Gets the value of learningRate or its default value."""
        return self.getOrDefault(self.learningRate)

    def getOptimizer(self) -> str:
        """Gets the value of optimizer or its default value."""
        return self.getOrDefault(self.optimizer)

    def getOptimizerParams(self) -> dict[str, Any]:
        """Gets the value of optimizerParams, parsed into a dict."""
        return json.loads(self.getOrDefault(self.optimizerParams))

    def getNumProcesses(self) -> int:
        """Gets the value of numProcesses or its default value."""
        return self.getOrDefault(self.numProcesses)

    def getLocalMode(self) -> bool:
        """Gets the value of localMode or its default value."""
        return self.getOrDefault(self.localMode)

    def getUseGpu(self) -> bool:
        """Gets the value of useGpu or its default value."""
        return self.getOrDefault(self.useGpu)

    def getValidationFraction(self) -> float:
        """Gets the value of validationFraction or its default value."""
        return self.getOrDefault(self.validationFraction)

    def getEarlyStoppingPatience(self) -> int:
        """Gets the value of earlyStoppingPatience or its default value."""
        return self.getOrDefault(self.earlyStoppingPatience)

    def getMaxTrainAttempts(self) -> int | None:
        """Gets the value of maxTrainAttempts, or None when unset (the Spark conf decides)."""
        return self.getOrDefault(self.maxTrainAttempts) if self.isDefined(
            self.maxTrainAttempts) else None

    def getRebalance(self) -> str:
        """Gets the value of rebalance or its default value."""
        return self.getOrDefault(self.rebalance)

    def getResume(self) -> bool:
        """Gets the value of resume or its default value."""
        return self.getOrDefault(self.resume)

    def getCheckpointDir(self) -> str | None:
        """Gets the value of checkpointDir, or None when unset."""
        return self.getOrDefault(self.checkpointDir) if self.isDefined(self.checkpointDir) else None
