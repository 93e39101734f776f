"""Tracking: TensorBoard events read back with TensorBoard's own reader, schedules in a fit."""

from __future__ import annotations

import os

import pytest

from spark_dl import TorchClassifier

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


@pytest.fixture(scope="module")
def boarded_fit(binary_df, tmp_path_factory):
    """One fit with a one-cycle schedule, validation and TensorBoard on (shared, read-only)."""
    logdir = tmp_path_factory.mktemp("tb")
    clf = TorchClassifier(modelParams={"hidden_layers": [8]}, maxEpochs=3, batchSize=32,
                          learningRate=0.02, validationFraction=0.2, seed=4,
                          lrSchedule="onecycle", warmupEpochs=1.0, tensorboardDir=str(logdir))
    return clf.fit(binary_df), logdir


def read_run(logdir):
    (run,) = os.listdir(logdir)
    assert run.startswith("TorchClassifier-")
    acc = event_accumulator.EventAccumulator(str(logdir / run),
                                             size_guidance={event_accumulator.SCALARS: 0})
    acc.Reload()
    return acc


def test_tensorboard_events_hold_every_step_and_epoch_as_the_history(boarded_fit):
    model, logdir = boarded_fit
    acc = read_run(logdir)
    steps_per_epoch = 320 // 32  # 400 rows, 80 held out for validation, one process
    history = model.history
    loss = acc.Scalars("train/loss")
    lr = acc.Scalars("train/lr")
    assert [e.step for e in loss] == list(range(3 * steps_per_epoch))
    assert [e.step for e in lr] == [e.step for e in loss]
    # One-cycle: the rate peaks at learningRate at the end of the warm-up epoch, then falls.
    rates = [e.value for e in lr]
    assert max(rates) == pytest.approx(0.02) and rates.index(max(rates)) == steps_per_epoch - 1
    assert rates[0] == pytest.approx(0.02 / 25) and rates[-1] < 1e-5
    ends = [h["epoch"] * steps_per_epoch - 1 for h in history]
    for tag, key in [("epoch/train_loss", "train_loss"), ("epoch/val_loss", "val_loss"),
                     ("epoch/val_auc_pr", "val_metric"), ("epoch/lr", "lr"),
                     ("epoch/samples_per_sec", "samples_per_sec")]:
        events = acc.Scalars(tag)
        assert [e.step for e in events] == ends, tag
        assert [e.value for e in events] == pytest.approx([h[key] for h in history], rel=1e-5)
    assert [h["lr"] for h in history] == pytest.approx([rates[s] for s in ends])
    assert acc.Graph() is not None  # the network's graph, written once


@pytest.mark.parametrize("params, match", [
    ({"lrSchedule": "linear"}, r"'lrSchedule' parameter of TorchClassifier must be one of"),
    ({"warmupEpochs": 11.0}, r"'warmupEpochs' parameter of TorchClassifier \(11\) exceeds "
                             r"maxEpochs \(10\)"),
    ({"lrSchedule": "step", "lrScheduleParams": {"gamma": 3}}, r"'gamma' .* \(0, 1\]"),
    ({"tensorboardDir": "s3://bucket/tb"}, r"'tensorboardDir' .* local or mounted path"),
])
def test_bad_schedule_and_tracking_params_fail_before_any_job(binary_df, params, match):
    with pytest.raises(ValueError, match=match):
        TorchClassifier(**params).fit(binary_df)


# ---------------------------------------------------------------------------- MLflow
mlflow = pytest.importorskip("mlflow")


@pytest.fixture(scope="module")
def tracked_fit(mlflow_store, binary_df):
    """Two tuning candidates inside a user's run, then the best one's refit on all rows
    (shared, read-only): the candidates are child runs, the refit logs into the user's run."""
    from pyspark.ml.evaluation import BinaryClassificationEvaluator
    from pyspark.ml.tuning import ParamGridBuilder, TrainValidationSplit

    clf = TorchClassifier(modelParams={"hidden_layers": [8]}, maxEpochs=3, batchSize=32,
                          validationFraction=0.2, seed=4, lrSchedule="cosine",
                          mlflowTracking=True)
    grid = ParamGridBuilder().addGrid(clf.learningRate, [0.001, 0.02]).build()
    tvs = TrainValidationSplit(estimator=clf, estimatorParamMaps=grid, parallelism=2,
                               evaluator=BinaryClassificationEvaluator(), seed=1)
    with mlflow.start_run(run_name="tuning") as parent:
        tuned = tvs.fit(binary_df)
    return clf, tuned.bestModel, mlflow.get_run(parent.info.run_id)


def test_a_tracked_fit_logs_params_profile_epochs_and_timings(tracked_fit):
    from mlflow.tracking import MlflowClient

    clf, model, run = tracked_fit
    assert run.info.status == "FINISHED"  # the user's run, ended by the user
    assert run.data.tags["spark_dl.stage"] == "TorchClassifier"
    params = run.data.params
    assert params["maxEpochs"] == "3" and params["lrSchedule"] == "cosine"
    assert float(params["learningRate"]) == model.getLearningRate()  # the best candidate
    assert params["modelParams"] == clf.getOrDefault(clf.modelParams)
    metrics = run.data.metrics
    assert metrics["data.rows"] == 400
    assert metrics["data.validation_rows"] == model.rowsPerRank[0]["validation"] > 0
    assert metrics["data.features"] == 4 and metrics["data.classes"] == 2
    assert metrics["data.class_0_rows"] + metrics["data.class_1_rows"] == 400
    assert metrics["data.partitions"] == 2
    client = MlflowClient()
    for key, field in [("train_loss", "train_loss"), ("val_loss", "val_loss"),
                       ("val_auc_pr", "val_metric"), ("lr", "lr")]:
        history = sorted(client.get_metric_history(run.info.run_id, key), key=lambda m: m.step)
        assert [m.step for m in history] == [1, 2, 3], key
        assert [m.value for m in history] == pytest.approx([h[field] for h in model.history])
        # Logged by rank 0 as each epoch ended, not by the driver afterwards.
        assert history[-1].timestamp / 1000 < model._timings["fit_finished"]
    assert metrics["time.fit_finished"] > metrics["time.first_step"] > 0


def test_the_logged_model_loads_and_scores_identically_through_spark_udf(tracked_fit,
                                                                         binary_df):
    import mlflow.spark
    from pyspark.ml.functions import vector_to_array
    from pyspark.sql import functions as F

    _, model, run = tracked_fit
    uri = f"runs:/{run.info.run_id}"
    expected = model.transform(binary_df).select("rawPrediction", "probability", "prediction")
    spark_flavor = mlflow.spark.load_model(f"{uri}/model")
    assert spark_flavor.stages[0].uid == model.uid
    got = spark_flavor.transform(binary_df).select(*expected.columns)
    def rows(frame):
        return sorted((tuple(r[0]), tuple(r[1]), r[2]) for r in frame.collect())
    assert rows(got) == rows(expected)
    udf = mlflow.pyfunc.spark_udf(
        binary_df.sparkSession, f"{uri}/pyfunc", env_manager="local",
        result_type="rawPrediction array<double>, probability array<double>, prediction double")
    scored = (binary_df.withColumn("id", F.monotonically_increasing_id())
              .withColumn("out", udf(vector_to_array("features").alias("features")))
              .select("id", "out.*"))
    by_pyfunc = {r.id: r for r in scored.collect()}
    reference = (binary_df.withColumn("id", F.monotonically_increasing_id()))
    by_transform = {r.id: r for r in model.transform(reference).select(
        "id", vector_to_array("rawPrediction").alias("raw"),
        vector_to_array("probability").alias("p"), "prediction").collect()}
    assert by_pyfunc.keys() == by_transform.keys()
    for key, row in by_transform.items():
        mine = by_pyfunc[key]
        assert mine.prediction == row.prediction
        assert mine.probability == pytest.approx(row.p, abs=1e-12)
        assert mine.rawPrediction == pytest.approx(row.raw, abs=1e-12)


def test_tuning_logs_one_child_run_per_candidate(mlflow_store, tracked_fit):
    _, _, parent = tracked_fit
    children = mlflow.search_runs(
        [mlflow_store], output_format="list",
        filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert sorted(r.data.params["learningRate"] for r in children) == ["0.001", "0.02"]
    for child in children:
        assert child.info.status == "FINISHED" and child.data.params["maxEpochs"] == "3"
        assert child.data.metrics["data.rows"] < 400  # the candidates see the train split
        assert "train_loss" in child.data.metrics
