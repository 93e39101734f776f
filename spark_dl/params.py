"""The Param table of the torch-backed estimators and their models.

Every value is JSON-serializable so that ``DefaultParamsWritable`` and Spark's pipeline
persistence work unchanged; networks are described by name and JSON keyword arguments.
Each row (:class:`~spark_dl.param_table.ParamSpec`) is the one declaration of its Param:
the constructors, getters and setters, :func:`~spark_dl.param_table.validate_params` and
the jobs' ``model``/``training`` config keys are all made from it.
"""

from __future__ import annotations

import inspect
from typing import Any

from pyspark.ml.param.shared import (
    HasFeaturesCol,
    HasHandleInvalid,
    HasLabelCol,
    HasPredictionCol,
    HasSeed,
    HasWeightCol,
)

from spark_dl.param_table import (
    HANDLE_INVALID,
    ParamSpec,
    TableParams,
    above,
    at_least,
    declare,
    in_range,
    one_of,
    to_json_object,
)
from spark_dl.training.plan import OPTIMIZERS
from spark_dl.training.schedule import SCHEDULES

__all__ = ["OPTIMIZERS", "check_optimizer_params", "to_json_object"]

#: The ``rebalance`` Param's values.
REBALANCE = ("auto", "always", "never")
#: The ``inferencePrecision`` Param's values (see spark_dl.inference.scoring).
PRECISIONS = ("float32", "bfloat16", "float16", "int8-dynamic")
#: How training rows reach the ranks (see spark_dl.training.petastorm_feed).
DATA_FEEDS = ("arrow", "petastorm")


def check_optimizer_params(name: str, extra: dict[str, Any]) -> None:
    """Refuse ``optimizerParams`` that the optimizer's constructor does not take."""
    import torch

    sig = inspect.signature(getattr(torch.optim, OPTIMIZERS[name.lower()]))
    try:
        sig.bind(None, lr=1e-3, **extra)
    except TypeError as exc:
        raise ValueError(
            f"The 'optimizerParams' {extra} do not fit optimizer {name!r}: {exc}. It accepts "
            f"{[p for p in sig.parameters if p not in ('params', 'lr')]}."
        ) from None


@declare(
    ParamSpec("featuresCol", default="features", model_setter=True),
    ParamSpec("labelCol", default="label"),
    ParamSpec("predictionCol", default="prediction", model_setter=True),
    ParamSpec("weightCol"),
    ParamSpec(
        "model", "The network: a built-in name such as 'mlp', or 'package.module:ClassName' "
        "naming a torch.nn.Module subclass importable on the driver and the executors.",
        default="mlp", config="model.name"),
    ParamSpec(
        "modelParams", "Keyword arguments for the network's constructor, as a dict or JSON "
        "object string. in_features and out_features are supplied from the data when the "
        "constructor accepts them.", kind="json", default="{}", config="model.params"),
    ParamSpec(
        "inputShape", "Shape of one row's input tensor, without the batch dimension: "
        "[C, H, W] for images, [T, F] for windows, [T] for token ids. The flat feature "
        "values are read in row-major order. Empty (the default): flat vectors. Integer "
        "array features reach the network as int64 (token ids), all others as float32.",
        kind="ints", default=[]),
    ParamSpec("maxEpochs", "Maximum number of passes over the training data (>= 1).",
              kind="int", default=10, check=at_least(1), config="training.max_epochs"),
    ParamSpec("batchSize", "Rows per optimizer step on each training process (>= 1).",
              kind="int", default=64, check=at_least(1), config="training.batch_size"),
    ParamSpec("learningRate", "Optimizer learning rate (> 0).", kind="float", default=1e-3,
              check=above(0.0), config="training.learning_rate"),
    ParamSpec(
        "lrSchedule", f"Learning-rate schedule over the optimizer steps, one of "
        f"{list(SCHEDULES)}: 'constant', 'cosine' (decay to lrScheduleParams min_lr, default "
        "0), 'step' (times gamma, default 0.1, every step_epochs epochs, default maxEpochs/3) "
        "or 'onecycle' (torch's OneCycleLR: a rise from learningRate/div_factor to "
        "learningRate over the warm-up, then a cosine decay). A resume continues it at the "
        "checkpoint's step.", default="constant", check=one_of(SCHEDULES),
        config="training.lr_schedule"),
    ParamSpec(
        "warmupEpochs", "Epochs (fractions allowed) of linear learning-rate warm-up from "
        "learningRate/steps to learningRate before the schedule; for 'onecycle' the rise "
        "(0: 30% of the steps). >= 0 and <= maxEpochs.", kind="float", default=0.0,
        check=at_least(0.0), config="training.warmup_epochs"),
    ParamSpec(
        "lrScheduleParams", "Options of lrSchedule, as a dict or JSON object string: "
        "cosine: min_lr; step: step_epochs, gamma; onecycle: div_factor, final_div_factor.",
        kind="json", default="{}", config="training.lr_schedule_params"),
    ParamSpec(
        "tensorboardDir", "Folder, on a filesystem the rank-0 process can write (local or "
        "mounted), where rank 0 writes TensorBoard events into a run folder per fit: per "
        "step train/loss (rank 0's batch) and train/lr, per epoch the epoch/ train loss, "
        "samples/s, validation loss and metric, and the network's graph once. Unset: none.",
        config="training.tensorboard_dir"),
    ParamSpec(
        "mlflowTracking", "Log the fit to MLflow (needs spark-dl[mlflow]): the Params, the "
        "data profile, each epoch's metrics with step=epoch as the epoch ends, the timings "
        "and the model (Spark and python_function flavors), into the active run or a new "
        "one; tuning candidates become child runs. Unset: the Spark conf "
        "spark.dl.mlflow.tracking (default false).", kind="bool",
        config="tracking.mlflow"),
    ParamSpec("optimizer", f"Optimizer name, one of {list(OPTIMIZERS)} (case-insensitive).",
              default="adam", check=one_of(OPTIMIZERS, ignore_case=True),
              config="training.optimizer"),
    ParamSpec(
        "optimizerParams", "Extra keyword arguments for the optimizer (for example "
        "weight_decay, momentum), as a dict or JSON object string.", kind="json",
        default="{}", config="training.optimizer_params"),
    ParamSpec("seed", kind="int", default=0, config="training.seed"),
    ParamSpec(
        "numProcesses", "Number of training processes (DDP ranks) launched by "
        "TorchDistributor (>= 1).", kind="int", default=1, check=at_least(1),
        config="training.num_processes"),
    ParamSpec(
        "localMode", "If true, training processes run on the driver; if false, in Spark "
        "barrier tasks on the executors.", kind="bool", default=True,
        config="training.local_mode"),
    ParamSpec(
        "dataFeed", "How training rows reach the ranks: 'arrow' (Arrow batches: collected "
        "to the driver for localMode=True, the barrier tasks' own partitions otherwise) or "
        "'petastorm' (written once as Parquet under the Spark conf "
        "spark.dl.petastorm.cacheDir by petastorm's make_spark_converter, reused by later "
        "fits on the same rows, and read by each rank with make_torch_dataloader; needs "
        "petastorm, which imports only with pyspark 3.5 and pyarrow 14, and a classic "
        "session).", default="arrow", check=one_of(DATA_FEEDS), config="training.data_feed"),
    ParamSpec(
        "useGpu", "Train and score on CUDA GPUs (NCCL backend) instead of the CPU (gloo "
        "backend).", kind="bool", default=False, config="training.use_gpu"),
    ParamSpec(
        "validationFraction", "Fraction of rows held out, deterministically by seed, to "
        "compute the validation loss and metric each epoch; 0 disables validation. In "
        "[0, 1).", kind="float", default=0.0, check=in_range(0.0, 1.0),
        config="training.validation_fraction"),
    ParamSpec(
        "earlyStoppingPatience", "Stop after this many epochs without a lower validation "
        "loss and keep the best weights; 0 disables early stopping. Needs "
        "validationFraction > 0.", kind="int", default=0, check=at_least(0),
        config="training.early_stopping_patience"),
    ParamSpec(
        "checkpointDir", "Directory, on a filesystem the rank-0 process can write (local or "
        "mounted shared storage), where a checkpoint is committed atomically at each epoch "
        "end, in a subdirectory fit-<id> that only this fit (network, Params, data) uses. "
        "Unset: none.", config="training.checkpoint_dir"),
    ParamSpec(
        "handleInvalid", default="error", check=one_of(HANDLE_INVALID), model_setter=True,
        config="training.handle_invalid"),
    ParamSpec(
        "maxTrainAttempts", "How many times fit() runs training before giving up; each "
        "retry resumes from the latest checkpoint. Unset: the Spark conf "
        "spark.dl.train.maxAttempts (default 2).", kind="int", check=at_least(1),
        config="training.max_train_attempts"),
    ParamSpec(
        "resume", "If true, fit() continues from the latest valid checkpoint of this same "
        "fit in checkpointDir (same network, training Params and data; a higher maxEpochs "
        "may continue a shorter run) instead of starting at epoch 0. Checkpoints of other "
        "fits only raise CheckpointMismatchError.", kind="bool", default=False,
        config="training.resume"),
    ParamSpec(
        "rebalance", "How transform() evens rows across partitions so that no task "
        "straggles, without running a job: 'auto' (deal rows round-robin into the default "
        "parallelism: one shuffle; streaming input is left as it arrives), 'always' (the "
        "same, micro-batches too) or 'never'. Training on the executors always deals rows "
        "evenly, one partition per rank.",
        default="auto", check=one_of(REBALANCE), model_setter=True,
        config="training.rebalance"),
    ParamSpec(
        "inferencePrecision", "Arithmetic of transform()'s forward pass: 'float32' (the "
        "default: the trained network as it is), 'bfloat16' (CPU or GPU; fast only on "
        "CPUs with AVX512-BF16/AMX), 'float16' (GPU only, useGpu=True) or 'int8-dynamic' "
        "(CPU only: torch's dynamic int8 quantization of the Linear and LSTM layers). "
        "Reduced precision changes the scores slightly; bench.scoring reports by how much. "
        "Training always runs in float32.", default="float32", check=one_of(PRECISIONS),
        model_setter=True, config="training.inference_precision"),
)
class _TorchStageParams(
    TableParams,  # first, so its defaults win over the shared mixins' (HasSeed's hash)
    HasFeaturesCol,
    HasLabelCol,
    HasWeightCol,
    HasPredictionCol,
    HasSeed,
    HasHandleInvalid,
):
    """Params of a torch-backed estimator, shared with its fitted model."""
