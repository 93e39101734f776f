"""Images, windows and token ids through the core stages: shapes checked on the driver,
the CNN on scikit-learn's digits, and save/load with identical output."""

from __future__ import annotations

import numpy as np
import pytest
from pyspark.ml.evaluation import MulticlassClassificationEvaluator
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from spark_dl import TorchClassificationModel, TorchClassifier, TorchRegressor


def _digits_frames(spark):
    digits = load_digits()
    X = (digits.data / 16.0).astype(np.float32)  # 8x8 grey images, 0..16
    Xtr, Xte, ytr, yte = train_test_split(X, digits.target, test_size=0.3, random_state=0,
                                          stratify=digits.target)

    def frame(X, y):
        return spark.createDataFrame([(i, x.tolist(), float(t)) for i, (x, t) in
                                      enumerate(zip(X, y))],
                                     "id long, image array<float>, label double").repartition(2)

    return frame(Xtr, ytr), frame(Xte, yte)


@pytest.mark.slow
def test_cnn_on_digits_reaches_95_percent_and_round_trips(spark, tmp_path):
    train, test = _digits_frames(spark)
    clf = TorchClassifier(featuresCol="image", model="cnn", inputShape=[1, 8, 8],
                          modelParams={"channels": [16, 32], "kernel_size": 3,
                                       "hidden_layers": [64], "dropout": 0.1},
                          maxEpochs=12, batchSize=32, learningRate=2e-3, seed=0)
    model = clf.fit(train)
    scored = model.transform(test).cache()
    acc = MulticlassClassificationEvaluator(metricName="accuracy").evaluate(scored)
    assert acc >= 0.95, acc
    model.save(str(tmp_path / "cnn"))
    loaded = TorchClassificationModel.load(str(tmp_path / "cnn"))
    assert loaded.getInputShape() == [1, 8, 8]
    a = scored.select("id", "probability").orderBy("id").collect()
    b = loaded.transform(test).select("id", "probability").orderBy("id").collect()
    assert a == b


def test_input_shape_that_does_not_fit_the_rows_fails_before_training(spark):
    df = spark.createDataFrame([([0.0] * 12, 0.0), ([1.0] * 12, 1.0)] * 4,
                               "features array<float>, label double")
    clf = TorchClassifier(model="cnn", inputShape=[3, 2, 3], maxEpochs=1)
    with pytest.raises(ValueError, match=r"'inputShape' parameter of TorchClassifier "
                                         r"\(\[3, 2, 3\], 18 values per row\).*hold 12 values"):
        clf.fit(df)


def test_bad_input_shape_value(spark):
    df = spark.createDataFrame([([0.0] * 4, 0.0), ([1.0] * 4, 1.0)], "features array<float>, "
                               "label double")
    with pytest.raises(ValueError, match=r"'inputShape' parameter of TorchRegressor must be a "
                                         r"list of ints >= 1"):
        TorchRegressor(inputShape=[2, 0]).fit(df)


def test_network_that_cannot_take_the_shape_fails_on_the_driver(spark):
    df = spark.createDataFrame([([0.0] * 12, 0.0), ([1.0] * 12, 1.0)] * 4,
                               "features array<float>, label double")
    with pytest.raises(ValueError, match=r"'input_shape' argument of CNN must be \(C, H, W\)"):
        TorchClassifier(model="cnn", inputShape=[12], maxEpochs=1).fit(df)


def test_token_ids_above_vocab_size_fail_naming_numIds(spark):
    df = spark.createDataFrame([([1, 2, 40], 0.0), ([3, 4, 0], 1.0)] * 4,
                               "ids array<int>, label double")
    clf = TorchClassifier(featuresCol="ids", model="lstm", inputShape=[3],
                          modelParams={"vocab_size": 10}, maxEpochs=1)
    with pytest.raises(ValueError, match=r"ids in \[0.0, 40.0\].*below the network's "
                                         r"vocab_size \(10\); use VocabularyModel.numIds"):
        clf.fit(df)


def test_token_ids_train_an_lstm_and_score_as_int64(spark):
    """A rule only order-aware integer inputs can learn: is token 7 before token 3?"""
    rng = np.random.default_rng(0)
    rows = []
    for _ in range(600):
        seq = rng.integers(4, 10, size=6)
        seq[rng.choice(6, 2, replace=False)] = [7, 3] if rng.random() < 0.5 else [3, 7]
        first7 = list(seq).index(7) < list(seq).index(3)
        rows.append((seq.tolist(), float(first7)))
    df = spark.createDataFrame(rows, "ids array<bigint>, label double").repartition(2)
    clf = TorchClassifier(featuresCol="ids", model="lstm", inputShape=[6],
                          modelParams={"vocab_size": 10, "hidden_size": 32, "pool": "last",
                                       "embedding_dim": 16},
                          maxEpochs=25, batchSize=32, learningRate=1e-2)
    model = clf.fit(df)
    acc = MulticlassClassificationEvaluator(metricName="accuracy").evaluate(model.transform(df))
    assert acc > 0.9, acc
