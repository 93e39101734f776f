"""TorchRecommender: a deep recommender trained through TorchDistributor, with ALS's API."""

from __future__ import annotations

import json
from typing import Any

from pyspark.ml.linalg import VectorUDT
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, NumericType, StructType

from spark_dl import conf
from spark_dl.base import _TorchEstimator
from spark_dl.inputs import InputLayout
from spark_dl.param_table import stage
from spark_dl.recommendation._params import _RecommenderParams
from spark_dl.recommendation.ids import IdIndex, build_index, check_id_column
from spark_dl.recommendation.model import TorchRecommendationModel, keyed
from spark_dl.training.preflight import check_driver_collect
from spark_dl.validation import check_numeric_column, check_stats, collect_stats, features_as_float_array

#: Network arguments the stage sets from the data.
SIZES = ("num_users", "num_items", "user_features", "item_features")


@stage()
class TorchRecommender(_TorchEstimator, _RecommenderParams):
    """Train a deep recommender on user-item interactions (the ALS of pyspark.ml, deep).

    Ids in ``userCol``/``itemCol`` (any integer type or strings) are indexed inside the
    stage by popularity and saved with it. Explicit feedback (``implicitPrefs=False``)
    learns ``ratingCol`` with squared error; implicit feedback treats every row as a
    positive and samples ``numNegatives`` items per row on each training process every
    epoch (``negativeSampling``: by popularity or uniformly). The network is ``two_tower``
    (user and item towers, dot product; the default) or ``ncf`` (neural collaborative
    filtering), or any network reading ``[user_index, item_index]`` rows; it gets
    ``num_users``, ``num_items`` and the side-feature widths from the data. Optional side
    features (``userFeaturesCol``, ``itemFeaturesCol``) are averaged per user or item and
    stored in the network. Training rows are dealt evenly over the ranks, so power users
    and hot items never make one rank the straggler. ``featuresCol``, ``labelCol`` and
    ``inputShape`` are not used.

    Examples
    --------
    >>> rec = TorchRecommender(userCol="user", itemCol="item", ratingCol="rating",
    ...                        modelParams={"embedding_dim": 16}, maxEpochs=5)
    >>> model = rec.fit(ratings)
    >>> model.recommendForAllUsers(10).show()     # user, recommendations[(item, rating)]
    >>> model.transform(test).select("user", "item", "prediction").show()
    """

    @property
    def _task(self) -> str:  # type: ignore[override]
        return "implicit" if self.getImplicitPrefs() else "regression"

    def _model_class(self) -> type[TorchRecommendationModel]:
        return TorchRecommendationModel

    def _sizes(self) -> dict[str, int]:
        return getattr(self, "_fitted_sizes", {"num_users": 1, "num_items": 1})

    def _spec(self) -> Any:
        from spark_dl.model_spec import ModelSpec

        return ModelSpec(self.getModel(), {**self.getModelParams(), **self._sizes()})

    def _label_col(self) -> str | None:
        return None if self.getImplicitPrefs() else self.getRatingCol()

    def _output_shapes(self, num_features: int, num_outputs: int) -> list[tuple[int, ...]]:
        return [(), (1,)]

    def _check_params(self, spark: SparkSession) -> None:
        owner = type(self).__name__
        taken = sorted(set(self.getModelParams()) & set(SIZES))
        if taken:
            raise ValueError(f"The 'modelParams' of {owner} must not set {taken}: the stage "
                             "sets them from the data. Remove them.")
        if self.getImplicitPrefs() is False and not self.getRatingCol():
            raise ValueError(f"The 'ratingCol' parameter of {owner} is empty, but explicit "
                             "feedback (implicitPrefs=False) learns the ratings. Set ratingCol, "
                             "or implicitPrefs=True for interactions without ratings.")
        from spark_dl.tracking import mlflow_run

        if mlflow_run.enabled(self, spark):
            raise ValueError(f"{owner} does not support MLflow tracking yet: set "
                             "mlflowTracking=False (or the Spark conf "
                             "spark.dl.mlflow.tracking=false for this fit).")
        if self.getDataFeed() != "arrow":
            raise ValueError(f"The 'dataFeed' parameter of {owner} must be 'arrow'. Got "
                             f"{self.getDataFeed()!r}.")
        super()._check_params(spark)

    # ------------------------------------------------------------------ data
    def _prepare(self, dataset: DataFrame) -> tuple[DataFrame, Any, InputLayout, int]:
        """Index users and items (one job each), join the indices, project the training
        frame and gather its stats (one job), and check the network on zeros."""
        from spark_dl.training.data import prepare

        owner, schema = type(self).__name__, dataset.schema
        user_t = check_id_column(schema, self.getUserCol(), "userCol", owner)
        item_t = check_id_column(schema, self.getItemCol(), "itemCol", owner)
        rating, weight = self._value_columns(schema, owner)
        df = dataset
        if self.getHandleInvalid() == "skip":
            df = df.dropna(subset=[self.getUserCol(), self.getItemCol()] + ([rating] if rating
                                                                            else []))
        users = self._index(df, self.getUserCol(), "userCol", user_t, "userFeaturesCol", owner)
        items = self._index(df, self.getItemCol(), "itemCol", item_t, "itemFeaturesCol", owner)
        self._indices = (users, items)
        self._fitted_sizes = {
            "num_users": len(users), "num_items": len(items),
            "user_features": 0 if users.features is None else users.features.shape[1],
            "item_features": 0 if items.features is None else items.features.shape[1]}
        spark = dataset.sparkSession
        joined, u, i = keyed(df, users, items, self.getUserCol(), self.getItemCol(), spark,
                             "inner")
        explicit = not self.getImplicitPrefs()
        label = rating if explicit else None
        w = None
        if weight or (rating and not explicit):
            factors = [F.col(c).cast("double") for c in (weight, None if explicit else rating)
                       if c]
            joined = joined.withColumn("__w", factors[0] if len(factors) == 1
                                       else factors[0] * factors[1])
            w = "__w"
        features = F.array(u.cast("float"), i.cast("float"))
        prepared = prepare(joined, features, label, w, self.getValidationFraction(),
                           self.getSeed())
        stats = collect_stats(prepared)
        check_stats(stats, owner=owner, features_col="userCol/itemCol", label_col=label or "",
                    weight_col=" * ".join(c for c in (weight, None if explicit else rating)
                                          if c) or None,
                    declared_features=2, classification=False, declared_classes=None,
                    num_processes=self.getNumProcesses())
        self._mean = self._mean_label(prepared) if explicit else 0.0
        layout = InputLayout((2,))
        self._check_network(layout, 1, owner)
        if self.getLocalMode():
            check_driver_collect(stats.rows, 2, conf.max_result_size(spark), owner=owner)
        return prepared, stats, layout, 1

    def _value_columns(self, schema: StructType, owner: str) -> tuple[str | None, str | None]:
        """The rating and weight columns training reads, checked (schema only)."""
        rating = self.getRatingCol() or None
        if rating is not None:
            if rating not in schema.names and self.getImplicitPrefs():
                raise ValueError(
                    f"The 'ratingCol' column {rating!r} of {owner} does not exist. With "
                    "implicitPrefs=True it weighs each interaction; set ratingCol='' to weigh "
                    f"them alike. Available columns: {schema.names}.")
            check_numeric_column(schema, rating, "ratingCol", owner)
        weight = self._weight_col()
        if weight:
            check_numeric_column(schema, weight, "weightCol", owner)
        return rating, weight

    def _index(self, df: DataFrame, column: str, param: str, dtype: Any, features_param: str,
               owner: str) -> IdIndex:
        feats, width = self._side(df, features_param, owner)
        index = build_index(df, column, param, owner, dtype, feats, width, features_param)
        nulls = [k for k, v in enumerate(index.ids) if v is None]
        if nulls:
            raise ValueError(
                f"The '{param}' column {column!r} of {owner} has {int(index.counts[nulls[0]])} "
                "row(s) with a null id. Drop them first, or set handleInvalid='skip'.")
        return index

    def _side(self, df: DataFrame, param: str, owner: str) -> tuple[Any, int]:
        """The side-feature column as ``array<float>`` and its width, or ``(None, 0)``."""
        column = self.getOrDefault(param) if self.isDefined(param) else None
        if not column:
            return None, 0
        if column not in df.columns:
            raise ValueError(f"The '{param}' column {column!r} of {owner} does not exist. "
                             f"Available columns: {df.columns}.")
        dt = df.schema[column].dataType
        numeric_array = isinstance(dt, ArrayType) and isinstance(dt.elementType, NumericType)
        if not (isinstance(dt, VectorUDT) or numeric_array):
            raise TypeError(f"The '{param}' column {column!r} of {owner} must be a Vector or "
                            f"a numeric array. Got {dt.simpleString()}.")
        expr = features_as_float_array(column, "vector" if isinstance(dt, VectorUDT)
                                       else "array")
        declared = df.schema[column].metadata.get("ml_attr", {}).get("num_attrs")
        if declared is not None:
            return expr, int(declared)
        first = df.select(F.size(expr).alias("n")).where(F.col("n") >= 0).first()
        return expr, int(first["n"]) if first is not None else 0

    @staticmethod
    def _mean_label(prepared: DataFrame) -> float:
        row = prepared.filter(~F.col("v")).agg(F.avg("y").alias("m")).first()
        return float(row["m"]) if row is not None and row["m"] is not None else 0.0

    # ------------------------------------------------------------------ training
    def _plan_extras(self) -> dict[str, Any]:
        """The network's initial side features and global bias, and the negative sampler."""
        import torch
        from safetensors.torch import save as st_save

        users, items = self._indices
        tensors = {"entities.global_bias": torch.tensor([self._mean], dtype=torch.float32)}
        for name, index in (("user_side", users), ("item_side", items)):
            if index.features is not None:
                tensors[f"entities.{name}"] = torch.from_numpy(index.features)
        names = set(self._spec().build_meta(
            **InputLayout((2,)).injected(1)).state_dict())
        init = {k: v for k, v in tensors.items() if k in names}
        extras: dict[str, Any] = {"init_state": st_save(init) if init else None}
        if self.getImplicitPrefs():
            popular = self.getNegativeSampling() == "popularity"
            extras["negatives"] = {"count": self.getNumNegatives(), "num_items": len(items),
                                   "popularity": items.counts.astype(float) if popular
                                   else None}
        return extras

    def _finish(self, model: Any, dataset: DataFrame) -> None:
        """The model keeps the id indices and the network's data-given sizes."""
        model._users, model._items = self._indices
        model._set(modelParams=json.dumps({**self.getModelParams(), **self._sizes()},
                                          sort_keys=True))
