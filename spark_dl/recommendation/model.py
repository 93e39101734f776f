"""TorchRecommendationModel: scores user-item pairs and recommends, with ALS's API."""

from __future__ import annotations

from typing import Any

import numpy as np
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, StructField, StructType

from spark_dl import conf
from spark_dl.base import _TorchModel
from spark_dl.param_table import stage, validate_params
from spark_dl.recommendation._params import _RecommenderParams
from spark_dl.recommendation.ids import IdIndex, check_id_column
from spark_dl.skew.policy import before_scoring
from spark_dl.validation import check_inference_precision


def keyed(df: DataFrame, users: IdIndex, items: IdIndex, user_col: str, item_col: str,
          spark: SparkSession, how: str) -> tuple[DataFrame, Column, Column]:
    """``df`` joined with both indices (``how``: "left" keeps unknown ids with a null index,
    "inner" drops them), and the user and item index columns. Ids are cast to the indexed
    type, so an int column finds ids indexed from a long one."""
    out = df
    for index, col, key, name in ((users, user_col, "__uk", "__u"),
                                  (items, item_col, "__ik", "__i")):
        out = out.withColumn(key, F.col(col).cast(index.dtype)).join(
            index.frame(spark, key, name), on=key, how=how).drop(key)
    return out, F.col("__u"), F.col("__i")


@stage(constructor=False, setters="model")
class TorchRecommendationModel(_TorchModel, _RecommenderParams):
    """A fitted :class:`~spark_dl.recommendation.TorchRecommender`.

    ``transform`` adds ``predictionCol`` (double: the predicted rating, or the interaction
    logit for implicit feedback) for each (user, item) row, NaN or dropped for unknown ids
    (``coldStartStrategy``). ``recommendForAllUsers(k)`` and the other ``recommendFor*``
    methods return ALS's shape: the id column and ``recommendations``, an array of
    ``struct<itemCol, rating: float>`` best first. No method collects the catalogue to the
    driver; ``transform`` runs no job.
    """

    _task = "regression"

    def __init__(self) -> None:
        super().__init__()
        self._users = IdIndex("user", "bigint", [], np.zeros(0, np.int64))
        self._items = IdIndex("item", "bigint", [], np.zeros(0, np.int64))

    @property
    def numUsers(self) -> int:
        """Number of users the model knows."""
        return len(self._users)

    @property
    def numItems(self) -> int:
        """Number of items the model knows."""
        return len(self._items)

    # ------------------------------------------------------------------ scoring
    def _check_input(self, schema: StructType) -> Any:
        owner = type(self).__name__
        validate_params(self, owner)
        check_id_column(schema, self.getUserCol(), "userCol", owner)
        check_id_column(schema, self.getItemCol(), "itemCol", owner)
        return None

    def _output_fields(self) -> list[StructField]:
        return [StructField(self.getPredictionCol(), DoubleType())]

    def _scoring_task(self, spark: SparkSession) -> Any:
        """The network as a :class:`~spark_dl.inference.scoring.ScoringTask` of ``[user,
        item]`` index rows."""
        from spark_dl.inference.scoring import ScoringTask
        from spark_dl.model_spec import ModelSpec

        owner = type(self).__name__
        return ScoringTask(
            key=f"{self._digest()}:{self.getModel()}:{self.getOrDefault(self.modelParams)}",
            spec=ModelSpec(self.getModel(), self.getModelParams()).to_json(),
            num_features=2, num_outputs=1, task="regression",
            batch_size=conf.get_int(spark, conf.INFERENCE_BATCH_SIZE),
            threads=conf.get_int(spark, conf.INFERENCE_THREADS) or conf.task_cpus(spark),
            handle_invalid="keep", features_col=f"{self.getUserCol()}/{self.getItemCol()}",
            weights=self._broadcast(spark), use_gpu=self.getUseGpu(), input_shape=(2,),
            precision=check_inference_precision(self.getInferencePrecision(),
                                                self.getUseGpu(), owner),
            backend="torch", prefetch=max(conf.get_int(spark, conf.INFERENCE_PREFETCH), 0))

    def _transform(self, dataset: DataFrame) -> DataFrame:
        from spark_dl.inference.udf import scoring_udf

        self._check_input(dataset.schema)
        spark, pred = dataset.sparkSession, self.getPredictionCol()
        how = "inner" if self.getColdStartStrategy() == "drop" else "left"
        joined, u, i = keyed(dataset, self._users, self._items, self.getUserCol(),
                             self.getItemCol(), spark, how)
        joined = before_scoring(joined, self.getRebalance(), type(self).__name__)
        rows = F.array(F.coalesce(u, F.lit(0)).cast("float"),
                       F.coalesce(i, F.lit(0)).cast("float"))
        score = scoring_udf(self._scoring_task(spark), conf.get_str(spark, conf.UDF_KIND))(rows)
        known = u.isNotNull() & i.isNotNull()
        out = joined.withColumn(pred, F.when(known, score).otherwise(F.lit(float("nan"))))
        cols = [c for c in dataset.columns if c != pred]
        return out.select(*cols, pred)

    # ------------------------------------------------------------------ recommendation
    def recommendForAllUsers(self, numItems: int) -> DataFrame:
        """The top ``numItems`` items of every user: ``userCol``, ``recommendations``."""
        from spark_dl.recommendation.topk import recommend

        return recommend(self, "user", numItems)

    def recommendForAllItems(self, numUsers: int) -> DataFrame:
        """The top ``numUsers`` users of every item: ``itemCol``, ``recommendations``."""
        from spark_dl.recommendation.topk import recommend

        return recommend(self, "item", numUsers)

    def recommendForUserSubset(self, dataset: DataFrame, numItems: int) -> DataFrame:
        """As :meth:`recommendForAllUsers`, for the users in ``dataset``'s ``userCol``
        (unknown users are left out)."""
        from spark_dl.recommendation.topk import recommend

        return recommend(self, "user", numItems, dataset)

    def recommendForItemSubset(self, dataset: DataFrame, numUsers: int) -> DataFrame:
        """As :meth:`recommendForAllItems`, for the items in ``dataset``'s ``itemCol``."""
        from spark_dl.recommendation.topk import recommend

        return recommend(self, "item", numUsers, dataset)

    @property
    def userFactors(self) -> DataFrame:
        """``id``, ``features`` (array<float>): the user tower's output per user, as ALS's
        userFactors. Only for networks with factors (``two_tower``)."""
        from spark_dl.recommendation.topk import factors

        return factors(self, "user")

    @property
    def itemFactors(self) -> DataFrame:
        """``id``, ``features`` (array<float>): the item tower's output per item."""
        from spark_dl.recommendation.topk import factors

        return factors(self, "item")

    # ------------------------------------------------------------------ persistence
    def _extra_metadata(self) -> dict[str, Any]:
        return {"users": self._users.to_metadata(), "items": self._items.to_metadata()}

    def _save_data(self, spark: Any, path: str) -> None:
        super()._save_data(spark, path)
        root = path.rsplit("/", 1)[0]
        self._users.save(spark, f"{root}/users")
        self._items.save(spark, f"{root}/items")

    @classmethod
    def _from_saved(cls, reader: Any, path: str, metadata: dict[str, Any]) -> Any:
        instance = super()._from_saved(reader, path, metadata)
        spark = reader.sparkSession
        for side in ("users", "items"):
            if side not in metadata:
                raise ValueError(f"The metadata at {path!r} has no {side!r} index; it is not "
                                 "a saved TorchRecommendationModel.")
            setattr(instance, f"_{side}", IdIndex.load(spark, f"{path}/{side}",
                                                       metadata[side]))
        return instance

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(uid={self.uid}, model={self.getModel()!r}, "
                f"numUsers={self.numUsers}, numItems={self.numItems})")
