"""Driver side: a fit's :class:`~spark_dl.training.plan.TrainPlan`, resolved from its Params.

Also the fit's fingerprint (what its checkpoints are keyed by) and which checkpoints it
owns or continues (see :mod:`spark_dl.training.checkpoint`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from spark_dl import conf, tracking

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from spark_dl.inputs import InputLayout
    from spark_dl.training.plan import TrainPlan


def fit_identity(stage: Any, stats: Any) -> dict[str, Any]:
    """What a fit's checkpoints are fingerprinted by: the Params that shape training and
    the data's size and content checksum (see :mod:`spark_dl.training.checkpoint`)."""
    identity: dict[str, Any] = {
        p.name: v for p, v in stage.extractParamMap().items()
        if p.name not in stage._NOT_IN_FINGERPRINT
    }
    # No float sums here: they depend on the order rows are added in. The checksum
    # hashes each row's features, label and weight.
    identity.update(stage=type(stage).__name__, rows=stats.rows, val_rows=stats.val_rows,
                    data_checksum=stats.checksum)
    return identity


def own_checkpoints(stage: Any, stats: Any) -> dict[str, Any]:
    """This fit's fingerprint and own checkpoint directory, and what a resume continues
    (raises :class:`~spark_dl.errors.CheckpointMismatchError` for a foreign resume)."""
    from spark_dl.training import checkpoint

    ckpt = stage.getCheckpointDir()
    base = urlparse(ckpt).path if ckpt else None
    identity = fit_identity(stage, stats)
    fit_id = checkpoint.fingerprint(identity)
    owned: dict[str, Any] = {"fit_id": fit_id, "fit_identity": identity}
    if base is not None:
        owned["checkpoint_dir"] = checkpoint.run_dir(base, fit_id)
        if stage.getResume():
            owned["resume_from"] = checkpoint.find_resumable(base, fit_id, identity)
    return owned


def train_plan(stage: Any, spark: SparkSession, nf: int, nout: int, layout: InputLayout,
               stats: Any, trackers: dict[str, Any] | None = None) -> TrainPlan:
    """The :class:`~spark_dl.training.plan.TrainPlan` of ``stage``'s fit, from its Params;
    ``trackers`` adds the MLflow run the ranks log into."""
    from spark_dl.training.plan import TrainPlan

    owned = own_checkpoints(stage, stats)
    return TrainPlan(
        task=stage._task, spec=stage._spec().to_json(), num_features=nf, num_outputs=nout,
        layout=layout.to_dict(), max_epochs=stage.getMaxEpochs(),
        batch_size=stage.getBatchSize(), lr=stage.getLearningRate(),
        optimizer=stage.getOptimizer().lower(), optimizer_params=stage.getOptimizerParams(),
        seed=stage.getSeed(), use_gpu=stage.getUseGpu(),
        patience=stage.getEarlyStoppingPatience(),
        timeout_s=conf.get_int(spark, conf.COLLECTIVE_TIMEOUT), **owned,
        **tracking.plan_fields(stage, owned["fit_id"]), **(trackers or {}),
        **getattr(stage, "_plan_extras", dict)(),
    )
