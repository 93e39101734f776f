"""The recommender's Params, shared by :class:`TorchRecommender` and its model."""

from __future__ import annotations

from spark_dl.param_table import ParamSpec, TableParams, at_least, declare, one_of
from spark_dl.training.negatives import SAMPLINGS

#: The ``coldStartStrategy`` Param's values (as ALS).
COLD_START = ("nan", "drop")
#: The ``recommendStrategy`` Param's values.
STRATEGIES = ("auto", "broadcast", "blocked")


@declare(
    ParamSpec("userCol", "Column of user ids: any integer type or strings, indexed by the "
              "stage and saved with it.", default="user", model_setter=True,
              config="model.user_col"),
    ParamSpec("itemCol", "Column of item ids: any integer type or strings, indexed by the "
              "stage and saved with it.", default="item", model_setter=True,
              config="model.item_col"),
    ParamSpec("ratingCol", "Column of ratings (numeric). Explicit feedback: the target. "
              "Implicit feedback: each interaction's confidence weight (>= 0; multiplies "
              "weightCol); set it to '' to weigh every interaction alike.", default="rating",
              config="model.rating_col"),
    ParamSpec("implicitPrefs", "If true, every row is a positive interaction and the "
              "network learns to score it above numNegatives sampled items (binary "
              "cross-entropy); the prediction is then a logit. If false, it learns the "
              "ratings (squared error).", kind="bool", default=False,
              config="model.implicit_prefs"),
    ParamSpec("numNegatives", "Implicit feedback: items sampled per positive interaction, "
              "fresh every epoch, on each training process (>= 1).", kind="int", default=4,
              check=at_least(1), config="model.num_negatives"),
    ParamSpec("negativeSampling", f"Implicit feedback: how negatives are drawn, one of "
              f"{list(SAMPLINGS)}: uniformly over the catalogue (the score then learns "
              "popularity too: the better ranking of future interactions), or in proportion "
              "to each item's number of interactions (hard negatives among popular items: "
              "the score learns preference net of popularity, for less popular-biased "
              "lists).",
              default="uniform", check=one_of(SAMPLINGS), config="model.negative_sampling"),
    ParamSpec("userFeaturesCol", "Optional Vector or array column of user side features "
              "(the same width in every row). Each user's features are the mean over its "
              "rows, stored in the network. Unset: none.", config="model.user_features_col"),
    ParamSpec("itemFeaturesCol", "Optional Vector or array column of item side features, "
              "as userFeaturesCol for items.", config="model.item_features_col"),
    ParamSpec("coldStartStrategy", f"What transform() does with a user or item the model "
              f"has not seen, one of {list(COLD_START)} (as ALS): 'nan' predicts NaN, "
              "'drop' leaves the row out.", default="nan", check=one_of(COLD_START),
              model_setter=True, config="model.cold_start_strategy"),
    ParamSpec("recommendStrategy", f"How recommendFor* computes top-k, one of "
              f"{list(STRATEGIES)}: 'broadcast' scores each task's users against the whole "
              "catalogue held by the broadcast network, 'blocked' cross-joins blocks of "
              "blockSize users with blocks of blockSize items and merges per-block top-k "
              "(ALS's plan; more tasks when there are few users), 'auto' picks blocked when "
              "there are fewer users than blockSize times the default parallelism.",
              default="auto", check=one_of(STRATEGIES), model_setter=True,
              config="model.recommend_strategy"),
    ParamSpec("blockSize", "Users (or items) per block of the 'blocked' recommendation "
              "plan (>= 1), as ALS's blockSize.", kind="int", default=4096,
              check=at_least(1), model_setter=True, config="model.block_size"),
)
class _RecommenderParams(TableParams):
    """Columns, feedback and recommendation Params of the recommender and its model."""

    _default_overrides = {"model": "two_tower", "batchSize": 256, "learningRate": 0.005,
                          "predictionCol": "prediction"}
