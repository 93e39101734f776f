"""The shared fit/transform skeleton of the torch-backed estimators and models.

Driver code here resolves Params into plain values and validates them before any Spark
job; the work on executors lives in :mod:`spark_dl.training` and :mod:`spark_dl.inference`.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Sequence
from urllib.parse import urlparse

from pyspark.ml import Estimator, Model
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructField, StructType

from spark_dl import compat, conf
from spark_dl.inputs import InputLayout, check_input_shape, check_network, resolve_layout
from spark_dl.model_spec import ModelSpec
from spark_dl.pretrained import finetune
from spark_dl.param_table import validate_params
from spark_dl.params import _TorchStageParams, check_optimizer_params
from spark_dl.skew.policy import before_scoring
from spark_dl.training.planner import train_plan
from spark_dl.training.preflight import check_cluster, check_driver_collect
from spark_dl.errors import UnsafeModelError
from spark_dl.explanations import (
    _ExplainParams,
    attribution_options,
    check_attribution_layout,
    check_attribution_params,
    scoring_fields,
)
from spark_dl.export import OnnxExportable
from spark_dl.tracking import mlflow_run
from spark_dl.persistence import (
    WEIGHTS_FORMAT,
    Persistable,
    StageReader,
    check_safetensors,
    digest,
    torch_parts,
    write_weights,
)
from spark_dl.validation import (
    DataStats,
    FeatureInfo,
    check_features_column,
    check_inference_precision,
    check_schedule_params,
    check_numeric_column,
    check_stats,
    check_token_ids,
    collect_stats,
    features_as_float_array,
    nominal_num_classes,
    refuse_streaming,
    require,
)

logger = logging.getLogger(__name__)


class _TorchEstimator(Estimator, _TorchStageParams, Persistable):
    """Fits a torch network on a DataFrame through TorchDistributor (see subclasses)."""

    _task: str = ""

    def _model_class(self) -> type[_TorchModel]:
        raise NotImplementedError

    # ------------------------------------------------------------------ validation
    def _weight_col(self) -> str | None:
        if self.isDefined(self.weightCol) and self.getWeightCol():
            return self.getWeightCol()
        return None

    def _check_params(self, spark: SparkSession) -> None:
        """Validate every Param before any Spark job (scikit-learn message template)."""
        owner = type(self).__name__
        validate_params(self, owner)
        check_optimizer_params(self.getOptimizer(), self.getOptimizerParams())
        check_schedule_params(self, owner)
        patience, vf = self.getEarlyStoppingPatience(), self.getValidationFraction()
        if patience and vf == 0:
            raise ValueError(
                f"The 'earlyStoppingPatience' parameter of {owner} ({patience}) needs a "
                "validation set: set validationFraction > 0, or earlyStoppingPatience=0."
            )
        self._check_processes(spark, owner)
        self._max_attempts(spark)
        ckpt = self.getCheckpointDir()
        if ckpt and urlparse(ckpt).scheme not in ("", "file"):
            raise ValueError(
                f"The 'checkpointDir' parameter of {owner} must be a local or mounted path that "
                f"the rank-0 process can write. Got {ckpt!r}."
            )
        if self.getDataFeed() == "petastorm":
            from spark_dl.training.petastorm_feed import check_usable

            check_usable(spark, owner)
        check_input_shape(self.getInputShape(), owner)
        if isinstance(self, _ExplainParams):
            check_attribution_params(self, owner)
        self._spec().check_kwargs(in_features=1, out_features=1,
                                  input_shape=self.getInputShape() or [1])

    def _check_processes(self, spark: SparkSession, owner: str) -> None:
        from spark_dl import conf
        from spark_dl.training.distributor import wait_for_slots

        compat.check_pyspark()
        n = self.getNumProcesses()
        if self.getUseGpu() and self.getLocalMode():
            import torch

            if not torch.cuda.is_available():
                raise ValueError(
                    f"The 'useGpu' parameter of {owner} is True with localMode=True, but the "
                    "driver has no CUDA device. Set useGpu=False or train on GPU executors."
                )
        check_cluster(lambda k, d: spark.conf.get(k, d), local_mode=self.getLocalMode(),
                      owner=owner)
        if not self.getLocalMode():
            wait = conf.get_int(spark, conf.SLOT_WAIT)
            slots = wait_for_slots(spark, n, wait)  # counts spark.task.cpus per task
            if n > slots:
                raise ValueError(
                    f"The 'numProcesses' parameter of {owner} ({n}) exceeds the {slots} task "
                    f"slot(s) the cluster could run at once after waiting {wait} s for "
                    "executors (spark.dl.train.slotWaitSeconds); the barrier training stage "
                    "would wait forever. Lower numProcesses or add executors/cores."
                )

    def _spec(self) -> ModelSpec:
        if finetune.is_pretrained(self.getModel()):  # model="hf:<folder>"
            return ModelSpec("hf_encoder", finetune.resolve(self)[0])
        return ModelSpec(self.getModel(), self.getModelParams())

    def _plan_extras(self) -> dict[str, Any]:
        """TrainPlan fields beyond the Params: a pretrained encoder's initial weights."""
        if finetune.is_pretrained(self.getModel()):
            return {"init_state": finetune.resolve(self)[1]}
        return {}

    def _label_col(self) -> str | None:
        """The label column training reads (None for unsupervised stages)."""
        return self.getLabelCol()

    def _output_shapes(self, num_features: int, num_outputs: int) -> list[tuple[int, ...]]:
        """Per-row network output shapes this task accepts."""
        return [(num_outputs,)]

    def _check_network(self, layout: InputLayout, num_outputs: int, owner: str) -> None:
        """Build the network on the driver and run it once on zeros: shape errors surface
        here, with the Params to fix, instead of inside a training process."""
        spec = self._spec()
        check_network(spec.build(**layout.injected(num_outputs)), layout,
                      self._output_shapes(layout.size, num_outputs), owner, self.getModel())

    # ------------------------------------------------------------------ fit
    def _fit(self, dataset: DataFrame) -> _TorchModel:
        """prepare (validate, one stats job, network check) -> launch -> build the model,
        inside an MLflow run when tracking is on (:mod:`spark_dl.tracking.mlflow_run`)."""
        fit_started = time.time()
        spark = dataset.sparkSession
        refuse_streaming(dataset, type(self).__name__, "fit on", "training reads all rows. "
                         "Fit on a batch DataFrame, then score the stream with the model.")
        self._check_params(spark)
        with mlflow_run.fit_run(self, spark) as run:
            model = self._train(dataset, run, fit_started)
            self._finish(model, dataset)
            run.log_result(model, dataset)
        return model

    def _finish(self, model: _TorchModel, dataset: DataFrame) -> None:
        """Hook: fitted values beyond the weights (the anomaly detector's threshold)."""

    def _train(self, dataset: DataFrame, run: Any, fit_started: float) -> _TorchModel:
        from spark_dl.training.distributor import launch

        spark = dataset.sparkSession
        prepared, stats, layout, num_outputs = self._prepare(dataset)
        run.log_data(prepared, stats, layout, num_outputs)
        stats_done = time.time()
        plan = train_plan(self, spark, layout.size, num_outputs, layout, stats,
                          run.plan_fields())
        logger.info("%s: training on %d rows (%d for validation) with %d process(es)",
                    type(self).__name__, stats.rows, stats.val_rows, self.getNumProcesses())
        result = launch(
            prepared, plan, stats.rows_per_partition,
            num_processes=self.getNumProcesses(), local_mode=self.getLocalMode(),
            use_gpu=self.getUseGpu(), max_attempts=self._max_attempts(spark),
            resume=self.getResume(), petastorm_url=self._petastorm_url(spark),
        )
        model = self._model_class()._from_parts(
            result["weights"], layout.size, num_outputs, result["history"], layout
        )
        model._rows_per_rank = list(result.get("rows_per_rank", []))
        model._timings = {"fit_started": fit_started, "data_checked": stats_done,
                          **result.get("timings", {}), "fit_finished": time.time()}
        self._copyValues(model)
        if finetune.is_pretrained(self.getModel()):
            model._set(**finetune.fitted_params(self))
        return model

    def fitMultiple(self, dataset: DataFrame, paramMaps: Sequence[Any]) -> Any:
        """As ``Estimator.fitMultiple``; with MLflow tracking each candidate is a child run."""
        fits = super().fitMultiple(dataset, paramMaps)
        return mlflow_run.tuning_candidates(self, dataset.sparkSession, fits, len(paramMaps))

    def _prepare(self, dataset: DataFrame) -> tuple[DataFrame, DataStats, InputLayout, int]:
        """Check the columns (schema only), project the training frame, gather its stats in
        one job and check them, resolve the input layout and run the network once on zeros.
        Returns the prepared (weighted) frame, its stats, the layout and the output width."""
        from spark_dl.training.data import prepare

        owner, schema = type(self).__name__, dataset.schema
        info = check_features_column(schema, self.getFeaturesCol(), owner)
        label_col, weight_col = self._label_col(), self._weight_col()
        if label_col is not None:
            check_numeric_column(schema, label_col, "labelCol", owner)
        if weight_col:
            check_numeric_column(schema, weight_col, "weightCol", owner)
        prepared = prepare(dataset, features_as_float_array(info.column, info.kind), label_col,
                           weight_col, self.getValidationFraction(), self.getSeed())
        stats = collect_stats(prepared)
        num_features, num_outputs = check_stats(
            stats, owner=owner, features_col=info.column, label_col=label_col or "",
            weight_col=weight_col, declared_features=info.num_features,
            classification=self._task == "classification",
            declared_classes=nominal_num_classes(schema, label_col) if label_col else None,
            num_processes=self.getNumProcesses(),
        )
        if self._task == "reconstruction":
            num_outputs = num_features
        layout = resolve_layout(self.getInputShape(), num_features,
                                "int64" if info.kind == "ids" else "float32", owner, info.column)
        if info.kind == "ids":
            kwargs = self._spec().kwargs  # a pretrained encoder's vocabulary is its config's
            check_token_ids(stats, info.column, kwargs.get("vocab_size")
                            or kwargs.get("config", {}).get("vocab_size"))
        if isinstance(self, _ExplainParams):
            check_attribution_layout(self, owner, layout.dtype, layout.size)
        self._check_network(layout, num_outputs, owner)
        if self.getLocalMode() and self.getDataFeed() == "arrow":
            check_driver_collect(stats.rows, num_features,
                                 conf.max_result_size(dataset.sparkSession), owner=owner)
        return self._weighted(prepared, num_outputs), stats, layout, num_outputs

    #: Params that do not change what a fit computes, so a resume may change them.
    _NOT_IN_FINGERPRINT = frozenset({
        "resume", "maxTrainAttempts", "checkpointDir", "rebalance",
        "handleInvalid", "predictionCol", "probabilityCol", "rawPredictionCol",
        "tensorboardDir", "mlflowTracking", "attributionsCol", "attributionMethod",
        "attributionSteps", "attributionBaseline",
    })

    def _weighted(self, prepared: DataFrame, num_outputs: int) -> DataFrame:
        """Hook for per-row loss weights beyond weightCol (classifiers: classWeights)."""
        return prepared

    def _max_attempts(self, spark: SparkSession) -> int:
        attempts = self.getMaxTrainAttempts()
        if attempts is None:
            attempts = conf.get_int(spark, conf.MAX_TRAIN_ATTEMPTS)
        require(attempts >= 1, type(self).__name__, "maxTrainAttempts", "an int >= 1", attempts)
        return attempts

    def _petastorm_url(self, spark: SparkSession) -> str | None:
        """The petastorm cache URL with dataFeed="petastorm", else None."""
        if self.getDataFeed() != "petastorm":
            return None
        from spark_dl.training.petastorm_feed import cache_url

        return cache_url(conf.get_str(spark, conf.PETASTORM_CACHE_DIR).strip())

class _TorchModel(Model, _TorchStageParams, Persistable, OnnxExportable):
    """A fitted torch network that scores DataFrames with an Arrow UDF (see subclasses)."""

    _task: str = ""

    def __init__(self) -> None:
        super().__init__()
        self._weights: bytes = b""
        self._num_features = 0
        self._num_outputs = 0
        self._history: list[dict[str, Any]] = []
        self._module: Any = None
        self._bc: Any = None
        self._sha: str | None = None
        self._saved_spec: ModelSpec | None = None  # the network a loaded model was checked as
        self._timings: dict[str, float] = {}
        self._rows_per_rank: list[dict[str, int]] = []
        self._layout = InputLayout((0,))

    @classmethod
    def _from_parts(cls, weights: bytes, num_features: int, num_outputs: int,
                    history: list[dict[str, Any]], layout: InputLayout | None = None) -> Any:
        model = cls()
        model._weights = bytes(weights)
        model._num_features = num_features
        model._num_outputs = num_outputs
        model._history = list(history)
        model._layout = layout or InputLayout((num_features,))
        return model

    # ------------------------------------------------------------------ properties
    @property
    def numFeatures(self) -> int:
        """Width of the feature vectors the model was trained on."""
        return self._num_features

    @property
    def history(self) -> list[dict[str, Any]]:
        """Per-epoch training history: epoch, train_loss, and val_loss/val_metric if any."""
        return [dict(e) for e in self._history]

    @property
    def trainingTimings(self) -> dict[str, float]:
        """Where fit() spent its time, as seconds since fit() started (rank 0's view).

        Keys, in order: ``data_checked`` (validation job done), ``rank_started`` (the
        training process began), ``imports_done``, ``process_group_ready``,
        ``data_loaded``, ``first_step`` (first optimizer step), ``fit_finished``. Empty
        for a model loaded from disk.
        """
        start = self._timings.get("fit_started")
        if start is None:
            return {}
        known = [(k, v) for k, v in self._timings.items() if v is not None and k != "fit_started"]
        return {k: v - start for k, v in sorted(known, key=lambda kv: kv[1])}

    @property
    def rowsPerRank(self) -> list[dict[str, int]]:
        """Rows each training rank held, ``{"train": n, "validation": m}`` in rank order: how
        evenly fit() split the data. Empty for a model loaded from disk."""
        return [dict(r) for r in self._rows_per_rank]

    @property
    def torchModule(self) -> Any:
        """The trained ``torch.nn.Module`` (in eval mode), for export or inspection."""
        from safetensors.torch import load as st_load

        if self._module is None:
            module = ModelSpec(self.getModel(), self.getModelParams()).build(
                **self._layout.injected(self._num_outputs)
            )
            module.load_state_dict(st_load(self._weights))
            self._module = module.eval()
        return self._module

    def _digest(self) -> str:
        if getattr(self, "_sha", None) is None:
            self._sha = digest(self._weights)
        return self._sha

    def _check_weights(self) -> None:
        """Check that the weights parse and fit the network; clear error otherwise."""
        check_safetensors(self._weights, "the model")
        try:
            self.torchModule
        except RuntimeError as exc:
            raise ValueError(f"The saved weights do not fit network {self.getModel()!r}: {exc}")

    # ------------------------------------------------------------------ scoring
    def _broadcast(self, spark: SparkSession) -> Any:
        self._bc = compat.broadcast(spark, self._weights, self._bc)
        return self._bc[1]

    def _outputs(self) -> tuple[str, ...]:
        """UDF fields this model's transform needs (classifiers override)."""
        return ()

    def _check_input(self, schema: StructType) -> FeatureInfo:
        """Validate the Params and the features column against ``schema`` (no job)."""
        owner = type(self).__name__
        validate_params(self, owner)
        info = check_features_column(schema, self.getFeaturesCol(), owner)
        if info.num_features is not None and info.num_features != self._num_features:
            raise ValueError(
                f"The 'featuresCol' column {info.column!r} declares {info.num_features} features "
                f"but the model was trained on {self._num_features}."
            )
        self._attribution_options()
        return info

    def _attribution_options(self) -> tuple[str, int, tuple[float, ...]] | None:
        """``(method, steps, baseline)`` when ``attributionsCol`` is set (checked), else None;
        always None for models without the attribution Params."""
        if not isinstance(self, _ExplainParams):
            return None
        return attribution_options(self, type(self).__name__)

    def _output_fields(self) -> list[StructField]:
        """The columns ``transform`` adds or replaces (subclasses)."""
        raise NotImplementedError

    def transformSchema(self, schema: StructType) -> StructType:
        """The output schema, from the input schema alone: validates the Params and the
        features column, then adds (or replaces, in place) the output columns."""
        self._check_input(schema)
        added = {f.name: f for f in self._output_fields()}
        fields = [added.pop(f.name, f) for f in schema.fields]
        return StructType(fields + list(added.values()))

    def _scoring_column(self, dataset: DataFrame) -> tuple[DataFrame, Any]:
        """Validate the input, apply handleInvalid='skip', and return the UDF's output column."""
        from spark_dl.inference.scoring import ScoringTask
        from spark_dl.inference.udf import scoring_udf

        owner = type(self).__name__
        info = self._check_input(dataset.schema)
        handle = self.getHandleInvalid()
        feats = features_as_float_array(info.column, info.kind)
        if handle == "skip":
            dataset = dataset.filter(
                feats.isNotNull() & (F.size(feats) == self._num_features)
                & ~F.exists(feats, lambda x: x.isNull() | F.isnan(x))
            )
        spark = dataset.sparkSession
        dataset = before_scoring(dataset, self.getRebalance(), owner)
        threads = conf.get_int(spark, conf.INFERENCE_THREADS) or conf.task_cpus(spark)
        task = ScoringTask(
            key=f"{self._digest()}:{self.getModel()}:{self.getOrDefault(self.modelParams)}",
            spec=ModelSpec(self.getModel(), self.getModelParams()).to_json(),
            num_features=self._num_features, num_outputs=self._num_outputs, task=self._task,
            batch_size=conf.get_int(spark, conf.INFERENCE_BATCH_SIZE), threads=threads,
            handle_invalid=handle, features_col=info.column, weights=self._broadcast(spark),
            use_gpu=self.getUseGpu(), outputs=self._outputs(),
            input_shape=self._layout.shape, input_dtype=self._layout.dtype,
            precision=check_inference_precision(self.getInferencePrecision(), self.getUseGpu(),
                                                owner),
            backend=conf.inference_backend(spark),
            prefetch=max(conf.get_int(spark, conf.INFERENCE_PREFETCH), 0),
            **scoring_fields(self._attribution_options()),
        )
        return dataset, scoring_udf(task, conf.get_str(spark, conf.UDF_KIND))(feats)

    # ------------------------------------------------------------------ persistence
    def _extra_metadata(self) -> dict[str, Any]:
        """Fitted values a subclass saves beside the Params (JSON-serializable)."""
        return {}

    def _load_extra_metadata(self, metadata: dict[str, Any]) -> None:
        """Restore what :meth:`_extra_metadata` saved."""

    def _metadata(self) -> dict[str, Any]:
        return {"numFeatures": self.numFeatures, "numOutputs": self._num_outputs,
                "history": self.history, "weightsFormat": WEIGHTS_FORMAT,
                "weightsSha256": self._digest(), "inputLayout": self._layout.to_dict(),
                **self._extra_metadata()}

    def _save_data(self, spark: Any, path: str) -> None:
        write_weights(spark, path, self._weights, self._digest())

    @classmethod
    def _from_saved(cls, reader: StageReader, path: str, metadata: dict[str, Any]) -> Any:
        parts = torch_parts(reader, path, metadata)
        instance = cls._from_parts(parts["weights"], parts["num_features"],
                                   parts["num_outputs"], parts["history"], parts["layout"])
        instance._saved_spec = parts["spec"]
        instance._load_extra_metadata(metadata)
        return instance

    def _check_loaded(self, path: str, metadata: dict[str, Any]) -> None:
        if ModelSpec(self.getModel(), self.getModelParams()) != self._saved_spec:
            raise UnsafeModelError(  # the checks before loading must have seen this network
                f"The metadata at {path!r} describes its network inconsistently; refusing it.")
        self._check_weights()

    @classmethod
    def load(cls, path: str, allowedModules: Sequence[str] = ()) -> Any:
        """Load a model saved with :meth:`save`.

        Parameters
        ----------
        path : str
            Any path Spark can read.
        allowedModules : list of str, optional
            Modules (``"mypkg"``, with submodules) or classes (``"mypkg.nets:Net"``) the
            saved network may come from, besides the built-in ones and the Spark conf
            ``spark.dl.load.allowedModules``. Importing a module runs its code: allow only
            code you trust.
        """
        return StageReader(cls, allowedModules).load(path)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(uid={self.uid}, model={self.getModel()!r}, "
                f"numFeatures={self._num_features})")


__all__ = ["_TorchEstimator", "_TorchModel"]
