"""spark_dl: PyTorch networks as native Apache Spark ML pipeline stages.

Importing this package has no side effects: it neither starts Spark nor imports torch.
The stages are imported on first use (PEP 562), so a Python worker that only unpickles
a scoring task does not load the estimators, ``pyspark.ml`` or pandas.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "TorchClassifier": "spark_dl.classification",
    "TorchClassificationModel": "spark_dl.classification",
    "TorchRegressor": "spark_dl.regression",
    "TorchRegressionModel": "spark_dl.regression",
    "TorchAnomalyDetector": "spark_dl.anomaly",
    "TorchAnomalyDetectionModel": "spark_dl.anomaly",
    "TorchRecommender": "spark_dl.recommendation",
    "TorchRecommendationModel": "spark_dl.recommendation",
    "TrainingFailedError": "spark_dl.errors",
    "CheckpointMismatchError": "spark_dl.errors",
    "SequenceWindower": "spark_dl.feature.sequence",
    "ImageTensorizer": "spark_dl.feature.image",
    "Vocabulary": "spark_dl.feature.text",
    "VocabularyModel": "spark_dl.feature.text",
    "HFTokenizer": "spark_dl.pretrained.stages",
    "TextEmbedder": "spark_dl.pretrained.stages",
}

__all__ = [*_EXPORTS, "__version__"]

if TYPE_CHECKING:
    from spark_dl.anomaly import TorchAnomalyDetectionModel, TorchAnomalyDetector  # noqa: F401
    from spark_dl.classification import TorchClassificationModel, TorchClassifier  # noqa: F401
    from spark_dl.errors import CheckpointMismatchError, TrainingFailedError  # noqa: F401
    from spark_dl.feature import (  # noqa: F401
        ImageTensorizer,
        SequenceWindower,
        Vocabulary,
        VocabularyModel,
    )
    from spark_dl.pretrained import HFTokenizer, TextEmbedder  # noqa: F401
    from spark_dl.recommendation import (  # noqa: F401
        TorchRecommendationModel,
        TorchRecommender,
    )
    from spark_dl.regression import TorchRegressionModel, TorchRegressor  # noqa: F401


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'spark_dl' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
