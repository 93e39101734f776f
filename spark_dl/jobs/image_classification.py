"""Image classification: CIFAR-10-shaped images (generated shapes, scikit-learn's digits,
your own arrays, or an image folder) -> ImageTensorizer -> the zoo's CNN. Reports
accuracy, F1 and a confusion matrix against the majority-class baseline."""

from __future__ import annotations

from typing import Any

from pyspark.ml import Pipeline
from pyspark.ml.feature import StringIndexer
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from spark_dl import ImageTensorizer, TorchClassifier
from spark_dl.jobs.common import multiclass_evaluation, random_split, require_columns, torch_params
from spark_dl.jobs.config import ConfigError, Field, Float, Int, Mapping, Schema, Str
from spark_dl.jobs.outputs import Evaluation

TASK = "multiclass"


def _floats() -> Field:
    return Field((list,), [0.0], check=lambda v: bool(v) and all(
        isinstance(x, (int, float)) and not isinstance(x, bool) for x in v),
        expected="a non-empty list of numbers")


def _ints(default: list[int]) -> Field:
    return Field((list,), default, check=lambda v: bool(v) and all(
        isinstance(x, int) and not isinstance(x, bool) and x >= 1 for x in v),
        expected="a list of ints >= 1")


#: The estimator whose Params the config's model/training keys set.
ESTIMATOR = TorchClassifier
SCHEMA: Schema = {
    "data": {
        "rows": Int(10_000, minimum=10),
        "dataset": Str("shapes", choices=("shapes", "digits")),
        "generator": {"classes": Int(10, minimum=2), "noise": Float(0.06, low=0.0)},
        "image_col": Str("image"),
        "label_col": Str("label"),
        "id_col": Str("id"),
        "input_shape": _ints([3, 32, 32]),
        "input_layout": Str("CHW", choices=("CHW", "HWC")),
    },
    "image": {
        "size": _ints([32, 32]),
        "channels": Int(3, minimum=1),
        "scale": Float(1.0, low=0.0, open_low=True),
        "mean": _floats(),
        "std": Field((list,), [1.0], check=lambda v: bool(v) and all(
            isinstance(x, (int, float)) and x > 0 for x in v), expected="a list of numbers > 0"),
    },
    "model": {"name": Str("cnn"),
              "params": Mapping({"channels": [32, 64], "kernel_size": 3,
                                 "hidden_layers": [128], "dropout": 0.2})},
}


def key_col(cfg: dict[str, Any]) -> str | None:
    return None


def label_col(cfg: dict[str, Any]) -> str:
    return cfg["data"]["label_col"]


def generate(spark: Any, cfg: dict[str, Any]) -> DataFrame:
    """Shapes made on the executors, or scikit-learn's digits (``data.dataset``)."""
    from spark_dl.datasets.images import digits, images

    d = cfg["data"]
    if d["dataset"] == "digits":
        return digits(spark, seed=d["seed"], partitions=d["partitions"])
    return images(spark, d["rows"], seed=d["seed"], partitions=d["partitions"],
                  size=cfg["image"]["size"][0], channels=cfg["image"]["channels"],
                  **d["generator"])


def prepare_input(df: DataFrame, cfg: dict[str, Any]) -> DataFrame:
    """Arrays and labels as configured; for an image folder, the label is the folder name."""
    d = cfg["data"]
    if cfg["data"]["source"] == "image":
        origin = F.col("image.origin")
        return df.withColumn("class_name", F.element_at(F.split(origin, "/"), -2))
    require_columns(df, [d["image_col"], d["label_col"]], "data.image_col / data.label_col")
    if len(d["input_shape"]) != 3:
        raise ConfigError(f"data.input_shape must be 3 ints ({d['input_layout']}). Got "
                          f"{d['input_shape']}.")
    return df.withColumn(d["label_col"], F.col(d["label_col"]).cast("double"))


def split(df: DataFrame, cfg: dict[str, Any]) -> tuple[DataFrame, DataFrame]:
    return random_split(df, cfg)


def build_pipeline(cfg: dict[str, Any], train: DataFrame) -> Pipeline:
    """[StringIndexer for folder names] -> ImageTensorizer -> TorchClassifier(cnn)."""
    d, im = cfg["data"], cfg["image"]
    stages: list[Any] = []
    tensorizer = ImageTensorizer(outputCol="features", size=im["size"],
                                 channels=im["channels"], mean=im["mean"], std=im["std"])
    if d["source"] == "image":
        stages.append(StringIndexer(inputCol="class_name", outputCol=d["label_col"]))
        tensorizer.setParams(inputCol="image", scale=im["scale"] if im["scale"] != 1.0 else 1 / 255)
    else:
        tensorizer.setParams(inputCol=d["image_col"], scale=im["scale"],
                             inputShape=d["input_shape"], inputLayout=d["input_layout"])
    stages.append(tensorizer)
    stages.append(TorchClassifier(featuresCol="features", labelCol=d["label_col"],
                                  inputShape=list(tensorizer.outputShape), **torch_params(cfg, ESTIMATOR)))
    return Pipeline(stages=stages)


def evaluate(scored: DataFrame, cfg: dict[str, Any]) -> Evaluation:
    d = cfg["data"]
    cols = [c for c in (d["id_col"],) if c in scored.columns] + [d["label_col"], "prediction"]
    return multiclass_evaluation(scored, d["label_col"], cols)
