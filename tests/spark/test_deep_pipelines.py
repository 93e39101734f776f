"""Whole deep-learning pipelines on realistic data: text through the LSTM and the
Transformer, sensor windows through the anomaly detector; each saved and loaded as one
PipelineModel with identical output."""

from __future__ import annotations

import pytest
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.evaluation import BinaryClassificationEvaluator, MulticlassClassificationEvaluator
from pyspark.ml.feature import Tokenizer
from pyspark.sql import functions as F

from spark_dl import SequenceWindower, TorchAnomalyDetectionModel, TorchAnomalyDetector
from spark_dl import TorchClassifier, Vocabulary
from spark_dl.datasets import reviews, sensor_series
from spark_dl.datasets.sensors import SENSORS

SEQ = 32


@pytest.fixture(scope="module")
def review_splits(spark):
    df = reviews(spark, 6000, seed=7, partitions=3)
    train, test = df.randomSplit([0.8, 0.2], seed=1)
    return train.cache(), test.cache()


def _text_pipeline(model: str, params: dict) -> Pipeline:
    vocab = Vocabulary(inputCol="tokens", outputCol="ids", vocabSize=500, sequenceLength=SEQ)
    clf = TorchClassifier(featuresCol="ids", model=model, inputShape=[SEQ],
                          modelParams={"vocab_size": 502, **params}, maxEpochs=5,
                          batchSize=64, learningRate=5e-3, seed=0)
    return Pipeline(stages=[Tokenizer(inputCol="text", outputCol="tokens"), vocab, clf])


@pytest.mark.slow
@pytest.mark.parametrize("model,params", [
    ("lstm", {"embedding_dim": 32, "hidden_size": 32, "bidirectional": True}),
    ("transformer", {"d_model": 32, "nhead": 4, "num_layers": 1, "dim_feedforward": 64}),
])
def test_text_classifiers_clearly_beat_the_majority_baseline(spark, review_splits, tmp_path,
                                                              model, params):
    train, test = review_splits
    fitted = _text_pipeline(model, params).fit(train)
    scored = fitted.transform(test).cache()
    accuracy = MulticlassClassificationEvaluator(metricName="accuracy").evaluate(scored)
    positives = test.agg(F.mean("label")).first()[0]
    majority = max(positives, 1 - positives)
    assert accuracy >= majority + 0.15, (accuracy, majority)
    fitted.save(str(tmp_path / model))
    loaded = PipelineModel.load(str(tmp_path / model))
    a = scored.select("id", "probability").orderBy("id").collect()
    b = loaded.transform(test).select("id", "probability").orderBy("id").collect()
    assert a == b


@pytest.fixture(scope="module")
def sensor_windows(spark):
    df = sensor_series(spark, 16_000, machines=8, chatty=1, chatty_share=0.6, seed=3)
    windower = SequenceWindower(keyCol="machine", timeCol="t", valueCols=list(SENSORS),
                                windowLength=16, step=4, labelCol="fault")
    windows = windower.transform(df).cache()
    train, test = windows.randomSplit([0.7, 0.3], seed=5)
    return train.cache(), test.cache()


@pytest.mark.slow
def test_anomaly_detector_finds_injected_faults_and_round_trips(spark, sensor_windows, tmp_path):
    train, test = sensor_windows
    detector = TorchAnomalyDetector(inputShape=[16, 4], maxEpochs=10, batchSize=128,
                                    learningRate=3e-3, thresholdQuantile=0.98,
                                    modelParams={"hidden_layers": [32], "latent_dim": 6})
    normal = train.filter("label = 0").cache()
    model = detector.fit(normal)
    # The threshold is the 0.98 quantile of the training scores: about 2% of them exceed it.
    flagged = model.transform(normal).agg(F.mean(F.col("isAnomaly").cast("double"))).first()[0]
    assert 0.005 <= flagged <= 0.05, flagged
    scored = model.transform(test).cache()
    auc = BinaryClassificationEvaluator(rawPredictionCol="anomalyScore").evaluate(scored)
    assert auc >= 0.9, auc
    recall = scored.filter("label = 1").agg(F.mean(F.col("isAnomaly").cast("double"))).first()[0]
    assert recall >= 0.5, recall
    model.save(str(tmp_path / "detector"))
    loaded = TorchAnomalyDetectionModel.load(str(tmp_path / "detector"))
    assert loaded.getThreshold() == model.getThreshold()
    cols = ["machine", "windowStart", "anomalyScore", "isAnomaly"]
    a = scored.select(cols).orderBy("machine", "windowStart").collect()
    b = loaded.transform(test).select(cols).orderBy("machine", "windowStart").collect()
    assert a == b


def test_anomaly_threshold_quantile_is_checked_before_training(spark):
    df = spark.createDataFrame([([0.0, 1.0],)] * 4, "features array<float>")
    with pytest.raises(ValueError, match=r"'thresholdQuantile' parameter of "
                                         r"TorchAnomalyDetector must be a float in \(0, 1\)"):
        TorchAnomalyDetector(thresholdQuantile=1.0).fit(df)


def test_anomaly_detector_needs_no_label_and_keeps_invalid_rows_as_null_flags(spark):
    rows = [([float(i % 5), 1.0, 2.0],) for i in range(60)]
    df = spark.createDataFrame(rows, "features array<float>")
    model = TorchAnomalyDetector(maxEpochs=2, modelParams={"hidden_layers": [4],
                                                           "latent_dim": 2}).fit(df)
    bad = spark.createDataFrame([([1.0, 2.0, 3.0],), (None,)], "features array<float>")
    out = model.setHandleInvalid("keep").transform(bad).orderBy("anomalyScore").collect()
    assert out[0]["isAnomaly"] is not None and out[1]["isAnomaly"] is None
