"""The training plan: every value a training rank needs, resolved from Params on the driver.

A frozen dataclass of plain values (as :class:`~spark_dl.inference.scoring.ScoringTask` is
for scoring), built once by the estimator's ``_fit``, handed to the launcher
(:func:`spark_dl.training.distributor.launch`) and pickled to every rank
(:func:`spark_dl.training.worker.run_rank`). Values that differ per attempt are set with
:func:`dataclasses.replace`, never by mutating a shared object.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Optimizer names the ``optimizer`` Param accepts -> the ``torch.optim`` class. Kept here,
#: free of pyspark, because the ranks read it too (importing pyspark.ml costs each rank ~0.8 s).
OPTIMIZERS = {"adam": "Adam", "adamw": "AdamW", "sgd": "SGD"}


@dataclass(frozen=True)
class TrainPlan:
    """What to train and how; no Params objects, no SparkSession."""

    #: "classification", "regression", "reconstruction" or "implicit" (positive
    #: interactions, with ``negatives`` sampled on the ranks).
    task: str
    #: The network as :meth:`spark_dl.model_spec.ModelSpec.to_json` text.
    spec: str
    num_features: int
    num_outputs: int
    #: :meth:`spark_dl.inputs.InputLayout.to_dict` of the per-row tensor shape and dtype.
    layout: dict[str, Any]
    max_epochs: int
    batch_size: int
    lr: float
    optimizer: str
    optimizer_params: dict[str, Any]
    seed: int
    use_gpu: bool
    patience: int
    #: Seconds a collective may wait for a peer (spark.dl.train.collectiveTimeoutSeconds).
    timeout_s: int
    #: The fit's fingerprint and what it was computed from (see training/checkpoint.py).
    fit_id: str
    fit_identity: dict[str, Any] = field(default_factory=dict)
    #: This fit's own checkpoint directory (``checkpointDir/fit-<id>``), or None.
    checkpoint_dir: str | None = None
    #: ``(directory, fit id)`` of an earlier run of this fit to continue (resume=True).
    resume_from: tuple[str, str] | None = None
    #: The learning-rate schedule: ``name``, ``warmup_epochs``, ``params`` (see schedule.py).
    lr_schedule: dict[str, Any] = field(default_factory=lambda: {"name": "constant"})
    #: This fit's TensorBoard run folder (``tensorboardDir/<run>``), or None.
    tensorboard_dir: str | None = None
    #: The MLflow run rank 0 logs each epoch into (``tracking_uri``, ``run_id``), or None.
    mlflow: dict[str, str] | None = None
    #: safetensors bytes of tensors loaded into the new network before training (the
    #: recommenders' side-feature buffers and global bias), or None.
    init_state: bytes | None = None
    #: task "implicit": ``count``, ``num_items``, ``popularity`` (see negatives.py).
    negatives: dict[str, Any] | None = None
    # ---- set per attempt by the launcher
    attempt: int = 1
    #: Whether ranks restore the latest checkpoint (resume=True, or any retry).
    resume: bool = False
    #: Driver-local training only: the folder rank 0 writes its payload to (see channel.py).
    result_dir: str | None = None
    #: Per-rank Arrow files for driver-local training; None on executors (TorchDistributor
    #: hands each rank its partition).
    shard_paths: tuple[str, ...] | None = None
    #: dataFeed="petastorm": the materialized dataset the ranks read their shards from
    #: (``cache_dir_url``, ``file_urls``, ``rows``; see training/petastorm_feed.py).
    petastorm: dict[str, Any] | None = None
