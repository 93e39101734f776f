"""spark_dl: PyTorch networks as native Apache Spark ML pipeline stages.

Importing this package has no side effects: it neither starts Spark nor imports torch.
"""

from spark_dl.anomaly import TorchAnomalyDetectionModel, TorchAnomalyDetector
from spark_dl.classification import TorchClassificationModel, TorchClassifier
from spark_dl.errors import TrainingFailedError
from spark_dl.feature import ImageTensorizer, SequenceWindower, Vocabulary, VocabularyModel
from spark_dl.regression import TorchRegressionModel, TorchRegressor

__version__ = "0.1.0"

__all__ = [
    "TorchClassifier",
    "TorchClassificationModel",
    "TorchRegressor",
    "TorchRegressionModel",
    "TorchAnomalyDetector",
    "TorchAnomalyDetectionModel",
    "TrainingFailedError",
    "SequenceWindower",
    "ImageTensorizer",
    "Vocabulary",
    "VocabularyModel",
    "__version__",
]
