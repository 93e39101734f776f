"""Recommendation: :class:`TorchRecommender` and :class:`TorchRecommendationModel`.

A deep recommender with the API of ``pyspark.ml.recommendation.ALS`` (``userCol``,
``itemCol``, ``ratingCol``, ``implicitPrefs``, ``coldStartStrategy``, ``recommendFor*``,
``userFactors``/``itemFactors``), trained through TorchDistributor like every torch stage.
"""

from spark_dl.recommendation.estimator import TorchRecommender
from spark_dl.recommendation.model import TorchRecommendationModel

__all__ = ["TorchRecommender", "TorchRecommendationModel"]
