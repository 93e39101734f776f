"""Real multi-process DDP through TorchDistributor: skew, empty partitions, failures, seeds.

These launch real torchrun process groups (gloo), on the driver and on the executors.
Each carries a timeout so that a hang fails the test instead of stalling CI.
"""

from __future__ import annotations

import pytest
from datagen import blobs, vector_df
from pyspark.ml.evaluation import MulticlassClassificationEvaluator

from spark_dl import TorchClassifier, TrainingFailedError

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def skewed_df(spark):
    """950 rows in one partition, 50 over three, and four empty partitions."""
    X, y = blobs(n=1000, d=4, k=2, seed=5)
    hot = vector_df(spark, X[:950], y[:950], partitions=1)
    cold = vector_df(spark, X[950:], y[950:], partitions=3)
    empty = spark.createDataFrame(spark.sparkContext.parallelize([], 4), cold.schema)
    skewed = hot.union(cold).union(empty).cache()
    sizes = skewed.rdd.glom().map(len).collect()
    assert sorted(sizes, reverse=True)[0] == 950 and sizes.count(0) == 4 and sum(sizes) == 1000
    return skewed


@pytest.mark.timeout(300)
@pytest.mark.compat
def test_executors_train_on_skewed_data_with_empty_partitions(skewed_df,
                                                              optional_mlflow_store):
    """Where mlflow is installed, rank 0 logs each epoch from its executor as it ends."""
    tracked = optional_mlflow_store is not None
    clf = TorchClassifier(numProcesses=2, localMode=False, maxEpochs=3, batchSize=32,
                          learningRate=0.01, modelParams={"hidden_layers": [8]},
                          validationFraction=0.1, mlflowTracking=tracked)
    model = clf.fit(skewed_df)
    assert len(model.history) == 3
    if tracked:
        import mlflow
        from mlflow.tracking import MlflowClient

        (run,) = mlflow.search_runs([optional_mlflow_store], output_format="list",
                                    filter_string="params.localMode = 'False' and params.validationFraction = '0.1'")
        epochs = MlflowClient().get_metric_history(run.info.run_id, "val_auc_pr")
        assert sorted(m.step for m in epochs) == [1, 2, 3]
        assert max(m.timestamp for m in epochs) / 1000 < model._timings["fit_finished"]
        assert run.data.metrics["data.largest_partition_share"] == 0.95
    # 950 rows in one input partition, 50 in three, four empty: each rank holds 500.
    assert [r["train"] + r["validation"] for r in model.rowsPerRank] == [500, 500]
    acc = MulticlassClassificationEvaluator(metricName="accuracy").evaluate(
        model.transform(skewed_df))
    assert acc > 0.9


@pytest.mark.timeout(300)
def test_driver_ranks_train_on_skewed_data(skewed_df):
    clf = TorchClassifier(numProcesses=2, localMode=True, maxEpochs=2, batchSize=32,
                          learningRate=0.01)
    model = clf.fit(skewed_df)
    assert [h["epoch"] for h in model.history] == [1, 2]
    # The input's 950/50/0 partitions do not reach the ranks: 500 rows each.
    assert model.rowsPerRank == [{"train": 500, "validation": 0}] * 2


@pytest.mark.timeout(300)
def test_failing_rank_raises_with_its_own_traceback(binary_df):
    """Driver ranks here; executor ranks over Spark Connect in tests/connect."""
    clf = TorchClassifier(model="netlib:FailOnRank1", numProcesses=2, localMode=True,
                          maxEpochs=2, batchSize=16, maxTrainAttempts=1)
    with pytest.raises(TrainingFailedError) as info:
        clf.fit(binary_df)
    msg = str(info.value)
    assert "Training failed on rank 1 of 2" in msg
    assert "deliberate failure on rank 1 (FailOnRank1)" in msg
    assert "Traceback" in msg and 1 in info.value.rank_errors


@pytest.mark.timeout(300)
def test_same_seed_same_weights_bit_for_bit(binary_df):
    clf = TorchClassifier(maxEpochs=2, seed=11, modelParams={"hidden_layers": [8], "dropout": 0.2},
                          validationFraction=0.2)
    a, b = clf.fit(binary_df), clf.fit(binary_df)
    assert a._weights == b._weights
    c = clf.copy({clf.seed: 12}).fit(binary_df)
    assert c._weights != a._weights
