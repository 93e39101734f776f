"""On scikit-learn's bundled digits: the Spark pipeline matches a plain PyTorch loop."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from pyspark.ml import Pipeline
from pyspark.ml.evaluation import MulticlassClassificationEvaluator
from pyspark.ml.feature import StandardScaler, VectorAssembler
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from spark_dl import TorchClassifier
from spark_dl.models.mlp import MLP

HIDDEN, EPOCHS, BATCH, LR, SEED = [64], 15, 32, 1e-3, 0


def _plain_torch_accuracy(X_train, y_train, X_test, y_test) -> float:
    mean, std = X_train.mean(axis=0), X_train.std(axis=0, ddof=1)
    std[std == 0] = 1.0
    xt = torch.tensor((X_train - mean) / std, dtype=torch.float32)
    xv = torch.tensor((X_test - mean) / std, dtype=torch.float32)
    yt = torch.tensor(y_train, dtype=torch.long)
    torch.manual_seed(SEED)
    net = MLP(64, 10, hidden_layers=HIDDEN)
    opt = torch.optim.Adam(net.parameters(), lr=LR)
    gen = torch.Generator().manual_seed(SEED)
    for _ in range(EPOCHS):
        perm = torch.randperm(len(xt), generator=gen)
        for i in range(0, len(xt), BATCH):
            idx = perm[i : i + BATCH]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(xt[idx]), yt[idx]).backward()
            opt.step()
    with torch.no_grad():
        return float((net(xv).argmax(dim=1).numpy() == y_test).mean())


@pytest.mark.slow
def test_digits_pipeline_matches_plain_torch(spark):
    digits = load_digits()
    X_train, X_test, y_train, y_test = train_test_split(
        digits.data, digits.target, test_size=0.3, random_state=0, stratify=digits.target)
    cols = [f"p{i}" for i in range(64)]

    def frame(X, y):
        pdf = pd.DataFrame(X, columns=cols).assign(label=y.astype(float))
        return spark.createDataFrame(pdf).repartition(2)

    pipe = Pipeline(stages=[
        VectorAssembler(inputCols=cols, outputCol="raw"),
        StandardScaler(inputCol="raw", outputCol="features", withMean=True, withStd=True),
        TorchClassifier(modelParams={"hidden_layers": HIDDEN}, maxEpochs=EPOCHS, batchSize=BATCH,
                        learningRate=LR, seed=SEED),
    ])
    model = pipe.fit(frame(X_train, y_train))
    spark_acc = MulticlassClassificationEvaluator(metricName="accuracy").evaluate(
        model.transform(frame(X_test, y_test)))
    torch_acc = _plain_torch_accuracy(X_train, y_train, X_test, y_test)
    print(f"digits test accuracy: spark_dl {spark_acc:.4f}, plain torch {torch_acc:.4f}")
    assert torch_acc > 0.9
    assert abs(spark_acc - torch_acc) <= 0.02
    assert np.isfinite(spark_acc)
