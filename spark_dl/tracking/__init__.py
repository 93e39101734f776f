"""Tracking and visualization of fits: TensorBoard events written by rank 0
(:mod:`~spark_dl.tracking.tensorboard`) and MLflow runs (:mod:`~spark_dl.tracking.mlflow`)."""

from __future__ import annotations

import os
import time
from typing import Any


def plan_fields(stage: Any, fit_id: str) -> dict[str, Any]:
    """The :class:`~spark_dl.training.plan.TrainPlan` fields of the schedule and trackers."""
    tb = stage.getTensorboardDir()
    run = f"{type(stage).__name__}-{time.strftime('%Y%m%d-%H%M%S')}-{fit_id[:8]}"
    return {
        "lr_schedule": {"name": stage.getLrSchedule(), "warmup_epochs": stage.getWarmupEpochs(),
                        "params": stage.getLrScheduleParams()},
        "tensorboard_dir": os.path.join(tb.removeprefix("file:"), run) if tb else None,
    }
