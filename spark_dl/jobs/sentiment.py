"""Sentiment: review texts -> Tokenizer -> Vocabulary -> LSTM or Transformer, or a
pretrained Hugging Face encoder fine-tuned on its own tokenizer's ids (``model.name:
pretrained``, ``model.path``). Reports accuracy and F1 against the majority baseline."""

from __future__ import annotations

from typing import Any

from pyspark.ml import Pipeline
from pyspark.ml.feature import RegexTokenizer
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from spark_dl import TorchClassifier, Vocabulary
from spark_dl.feature.text import NUM_RESERVED
from spark_dl.jobs.common import multiclass_evaluation, random_split, require_columns, torch_params
from spark_dl.jobs.config import ConfigError, Float, Int, Mapping, Schema, Str
from spark_dl.jobs.outputs import Evaluation

TASK = "binary"
NETWORKS = ("lstm", "transformer", "pretrained")

#: The estimator whose Params the config's model/training keys set.
ESTIMATOR = TorchClassifier
SCHEMA: Schema = {
    "data": {
        "rows": Int(20_000, minimum=10),
        "generator": {"positive_share": Float(0.6, low=0.0, high=1.0),
                      "noise": Float(0.02, low=0.0, high=0.5)},
        "text_col": Str("text"),
        "label_col": Str("label"),
        "id_col": Str("id"),
    },
    "text": {
        "vocab_size": Int(5000, minimum=1),
        "min_count": Int(2, minimum=1),
        "sequence_length": Int(48, minimum=1),
        "token_pattern": Str("\\W+"),
    },
    "model": {"name": Str("lstm", choices=NETWORKS),
              "params": Mapping({"embedding_dim": 32, "hidden_size": 32, "bidirectional": True}),
              "path": Str(""),
              "pretrained_params": Mapping({"pooling": "cls", "dropout": 0.1})},
}


def key_col(cfg: dict[str, Any]) -> str | None:
    return None


def label_col(cfg: dict[str, Any]) -> str:
    return cfg["data"]["label_col"]


def generate(spark: Any, cfg: dict[str, Any]) -> DataFrame:
    """Reviews made on the executors (``spark_dl.datasets.reviews``)."""
    from spark_dl.datasets import reviews

    d = cfg["data"]
    return reviews(spark, d["rows"], seed=d["seed"], partitions=d["partitions"], **d["generator"])


def prepare_input(df: DataFrame, cfg: dict[str, Any]) -> DataFrame:
    """Null text becomes empty text (an all-padding row); label as double."""
    d = cfg["data"]
    require_columns(df, [d["text_col"], d["label_col"]], "data.text_col / data.label_col")
    return df.fillna("", subset=[d["text_col"]]).withColumn(
        d["label_col"], F.col(d["label_col"]).cast("double"))


def split(df: DataFrame, cfg: dict[str, Any]) -> tuple[DataFrame, DataFrame]:
    return random_split(df, cfg)


def build_pipeline(cfg: dict[str, Any], train: DataFrame) -> Pipeline:
    """RegexTokenizer -> Vocabulary -> TorchClassifier over int64 token ids."""
    d, t = cfg["data"], cfg["text"]
    params = dict(torch_params(cfg, ESTIMATOR))
    if cfg["model"]["name"] == "pretrained":
        return _pretrained_pipeline(cfg, params)
    # The vocabulary holds at most vocab_size tokens plus the reserved padding/unknown ids.
    params["modelParams"] = {"vocab_size": t["vocab_size"] + NUM_RESERVED,
                             **cfg["model"]["params"]}
    return Pipeline(stages=[
        RegexTokenizer(inputCol=d["text_col"], outputCol="tokens", pattern=t["token_pattern"]),
        Vocabulary(inputCol="tokens", outputCol="ids", vocabSize=t["vocab_size"],
                   minCount=t["min_count"], sequenceLength=t["sequence_length"]),
        TorchClassifier(featuresCol="ids", labelCol=d["label_col"],
                        inputShape=[t["sequence_length"]], **params),
    ])


def _pretrained_pipeline(cfg: dict[str, Any], params: dict[str, Any]) -> Pipeline:
    """HFTokenizer -> TorchClassifier fine-tuning the folder's encoder (``model.path``)."""
    from spark_dl import HFTokenizer

    d, t, path = cfg["data"], cfg["text"], cfg["model"]["path"]
    if not path:
        raise ConfigError("model.path must name the folder of a pretrained model (written by "
                          "save_pretrained: tokenizer.json, config.json, model.safetensors) "
                          "when model.name is pretrained.")
    params.update(model=f"hf:{path}", modelParams=cfg["model"]["pretrained_params"])
    return Pipeline(stages=[
        HFTokenizer(inputCol=d["text_col"], outputCol="ids", tokenizerPath=path,
                    maxLength=t["sequence_length"]),
        TorchClassifier(featuresCol="ids", labelCol=d["label_col"], **params),
    ])


def evaluate(scored: DataFrame, cfg: dict[str, Any]) -> Evaluation:
    d = cfg["data"]
    cols = [c for c in (d["id_col"],) if c in scored.columns] + [d["label_col"], "prediction"]
    return multiclass_evaluation(scored, d["label_col"], cols, ["negative", "positive"])
