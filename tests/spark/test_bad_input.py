"""Bad input: a clear error before training starts, naming the column or parameter."""

from __future__ import annotations

import time

import pytest
from datagen import blobs, vector_df
from pyspark.ml.linalg import Vectors
from pyspark.sql import functions as F

from spark_dl import TorchClassifier, TorchRegressor


@pytest.fixture(scope="module")
def df(spark):
    X, y = blobs(n=40, d=3, k=2)
    return vector_df(spark, X, y).cache()


def _fit_error(est, data, exc=ValueError):
    start = time.monotonic()
    with pytest.raises(exc) as info:
        est.fit(data)
    assert time.monotonic() - start < 30, "the error must come before any training"
    return str(info.value)


def test_missing_feature_column(df):
    msg = _fit_error(TorchClassifier(featuresCol="nope"), df)
    assert "'featuresCol' column 'nope'" in msg and "Available columns" in msg


def test_wrong_feature_type(df):
    msg = _fit_error(TorchClassifier(featuresCol="label"), df, TypeError)
    assert "'featuresCol' column 'label'" in msg and "Vector" in msg and "double" in msg


def test_string_label_is_a_type_error(df):
    data = df.withColumn("s", F.lit("a"))
    assert "'labelCol' column 's'" in _fit_error(TorchClassifier(labelCol="s"), data, TypeError)


def test_inconsistent_lengths(spark):
    data = spark.createDataFrame([([1.0, 2.0], 0.0), ([1.0], 1.0)], "f array<double>, label double")
    msg = _fit_error(TorchClassifier(featuresCol="f"), data)
    assert "inconsistent lengths" in msg and "between 1 and 2" in msg


def test_null_features(spark):
    data = spark.createDataFrame([([1.0], 0.0), (None, 1.0)], "f array<double>, label double")
    assert "1 null value" in _fit_error(TorchClassifier(featuresCol="f"), data)


def test_nan_features(spark):
    data = spark.createDataFrame([(Vectors.dense([float("nan")]), 0.0),
                                  (Vectors.dense([1.0]), 1.0)], ["features", "label"])
    assert "NaN" in _fit_error(TorchClassifier(), data)


def test_non_integral_label(df):
    data = df.withColumn("label", F.col("label") + 0.5)
    msg = _fit_error(TorchClassifier(), data)
    assert "'labelCol' column 'label'" in msg and "not integral" in msg


def test_negative_label(df):
    assert "class indices" in _fit_error(TorchClassifier(), df.withColumn("label", F.lit(-1.0)))


def test_single_class(df):
    assert "single class" in _fit_error(TorchClassifier(), df.withColumn("label", F.lit(1.0)))


def test_label_beyond_declared_classes(df):
    meta = {"ml_attr": {"type": "nominal", "name": "label", "vals": ["a", "b"]}}
    data = df.withColumn("label", F.col("label") + 2).withMetadata("label", meta)
    assert "declares 2 classes" in _fit_error(TorchClassifier(), data)


def test_null_label_in_regression(spark):
    data = spark.createDataFrame([([1.0], 0.5), ([2.0], None)], "f array<double>, label double")
    assert "1 null" in _fit_error(TorchRegressor(featuresCol="f"), data)


def test_empty_dataframe(df):
    assert "empty DataFrame" in _fit_error(TorchClassifier(), df.limit(0))


def test_num_processes_above_task_slots(spark, df):
    spark.conf.set("spark.dl.train.slotWaitSeconds", "1")
    try:
        msg = _fit_error(TorchClassifier(numProcesses=64, localMode=False), df)
    finally:
        spark.conf.unset("spark.dl.train.slotWaitSeconds")
    assert "'numProcesses' parameter of TorchClassifier (64)" in msg and "task slot" in msg
    assert "after waiting 1 s" in msg


def test_unknown_network(df):
    msg = _fit_error(TorchClassifier(model="resnet9000"), df)
    assert "resnet9000" in msg and "'mlp'" in msg


def test_model_params_the_network_rejects(df):
    msg = _fit_error(TorchClassifier(modelParams={"depth": 3}), df)
    assert "'modelParams'" in msg and "depth" in msg and "hidden_layers" in msg


@pytest.mark.parametrize(
    "param,value,expected",
    [("maxEpochs", 0, "an int >= 1"), ("batchSize", -1, "an int >= 1"),
     ("learningRate", 0.0, "a float > 0"), ("optimizer", "lbfgs", "one of"),
     ("validationFraction", 1.0, "a float in [0, 1)"), ("handleInvalid", "drop", "one of")],
)
def test_param_ranges(df, param, value, expected):
    msg = _fit_error(TorchClassifier(**{param: value}), df)
    assert f"The '{param}' parameter of TorchClassifier must be {expected}" in msg
    assert repr(value) in msg


def test_patience_without_validation(df):
    assert "validationFraction" in _fit_error(TorchClassifier(earlyStoppingPatience=2), df)


def test_bad_optimizer_params(df):
    msg = _fit_error(TorchClassifier(optimizer="sgd", optimizerParams={"betas": [0.9, 0.9]}), df)
    assert "'optimizerParams'" in msg and "momentum" in msg


def test_transform_handle_invalid(spark, fitted_clf):
    rows = [(Vectors.dense([0.0, 1.0, 2.0, 3.0]), 0.0), (None, 1.0),
            (Vectors.dense([float("nan"), 1.0, 2.0, 3.0]), 1.0)]
    data = spark.createDataFrame(rows, ["features", "label"]).coalesce(1)
    with pytest.raises(Exception, match="handleInvalid"):
        fitted_clf.transform(data).collect()
    skipped = fitted_clf.copy({fitted_clf.handleInvalid: "skip"}).transform(data)
    assert skipped.count() == 1
    kept = fitted_clf.copy({fitted_clf.handleInvalid: "keep"}).transform(data).collect()
    # rebalance="auto" deals rows round-robin, so match rows by their input, not position
    valid = [r for r in kept if r.features is not None and r.features[0] == r.features[0]]
    assert len(kept) == 3 and len(valid) == 1 and valid[0].prediction == valid[0].prediction
    assert all(r.prediction != r.prediction for r in kept if r is not valid[0])


def test_transform_with_wrong_width(spark, fitted_clf):
    data = spark.createDataFrame([([1.0, 2.0],)], "features array<double>")
    with pytest.raises(Exception, match="do not hold 4 values"):
        fitted_clf.transform(data).collect()


def test_max_result_size_is_read_from_the_session(spark):
    # The limit itself is checked in tests/unit/test_preflight.py; this checks the wiring
    # (Spark's size syntax, its 1g default) since core confs cannot change at runtime.
    from spark_dl import conf

    assert conf.max_result_size(spark) == 1024**3


def test_gpu_scoring_without_a_gpu_fails_instead_of_falling_back_to_cpu(fitted_clf, binary_df):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    model = fitted_clf.copy()
    model.set(model.useGpu, True)
    with pytest.raises(Exception, match="useGpu=True, but this Python worker sees no CUDA"):
        model.transform(binary_df).collect()


def test_inference_precision_the_device_lacks_is_refused_before_any_job(fitted_clf, binary_df):
    half = fitted_clf.copy({fitted_clf.inferencePrecision: "float16"})
    with pytest.raises(ValueError, match="'inferencePrecision' .* 'float16', which is for GPU"):
        half.transform(binary_df)  # transform itself raises: no job, no plan
    int8_gpu = fitted_clf.copy({fitted_clf.inferencePrecision: "int8-dynamic",
                                fitted_clf.useGpu: True})
    with pytest.raises(ValueError, match="'int8-dynamic', which torch runs on the CPU only"):
        int8_gpu.transform(binary_df)
    with pytest.raises(ValueError, match="inferencePrecision.*one of"):
        fitted_clf.copy({fitted_clf.inferencePrecision: "int4"}).transform(binary_df)


def test_int8_scoring_stays_close_to_float32_and_the_backends_agree(spark, fitted_clf,
                                                                   binary_df):
    from pyspark.ml.functions import vector_to_array

    from pyspark.sql import functions as F

    binary = binary_df.withColumn("id", F.monotonically_increasing_id())  # cached: stable ids

    def scored(model):
        out = model.transform(binary).select("id", vector_to_array("probability")[1]
                                             .alias("p"), "prediction")
        return {r.id: (r.p, r.prediction) for r in out.collect()}

    full = scored(fitted_clf)
    int8 = scored(fitted_clf.copy({fitted_clf.inferencePrecision: "int8-dynamic"}))
    assert max(abs(full[i][0] - int8[i][0]) for i in full) < 0.05
    spark.conf.set("spark.dl.inference.backend", "torch")
    try:
        by_torch = scored(fitted_clf)
    finally:
        spark.conf.unset("spark.dl.inference.backend")
    assert max(abs(full[i][0] - by_torch[i][0]) for i in full) < 1e-6
    assert all(full[i][1] == by_torch[i][1] for i in full)
