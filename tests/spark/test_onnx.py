"""ONNX export: every torch model's file runs in onnxruntime and agrees with transform."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from pyspark.ml.functions import array_to_vector
from safetensors.torch import save as st_save

from spark_dl import TorchAnomalyDetector, TorchClassifier, TorchRegressor
from spark_dl.export import OnnxExportError
from spark_dl.inputs import InputLayout
from spark_dl.model_spec import ModelSpec

ort = pytest.importorskip("onnxruntime")


def from_parts(estimator, layout: InputLayout, num_outputs: int, seed: int = 0):
    """A model with the network's own seeded initial weights, as a fit would hand it over
    (export reads only the weights, the network and the Params)."""
    torch.manual_seed(seed)
    spec = ModelSpec(estimator.getModel(), estimator.getModelParams())
    net = spec.build(**layout.injected(num_outputs))
    model = estimator._model_class()._from_parts(st_save(net.state_dict()), layout.size,
                                                 num_outputs, [], layout)
    estimator._copyValues(model)
    return model


def rows_df(spark, X):
    data = [(i, [float(v) for v in row]) for i, row in enumerate(X)]
    return spark.createDataFrame(data, "id long, f array<double>").select(
        "id", array_to_vector("f").alias("features"))


def as_matrix(values) -> np.ndarray:
    return np.array([np.asarray(v.toArray() if hasattr(v, "toArray") else v, dtype=np.float64)
                     for v in values])


def assert_onnx_matches_transform(model, spark, X, path, layout: InputLayout):
    """Export, then score the same rows with onnxruntime (in two batch sizes) and Spark."""
    assert model.exportOnnx(str(path)) == str(path)
    session = ort.InferenceSession(str(path))
    (inp,) = session.get_inputs()
    assert inp.name == model.getFeaturesCol() and inp.shape[1:] == list(layout.shape)
    assert isinstance(inp.shape[0], str)  # the batch axis is dynamic
    feed = X.reshape(len(X), *layout.shape).astype(
        np.int64 if layout.dtype == "int64" else np.float32)
    names = [o.name for o in session.get_outputs()]
    whole = session.run(None, {inp.name: feed})
    halves = [session.run(None, {inp.name: part}) for part in (feed[:7], feed[7:])]
    rows = model.transform(rows_df(spark, X)).orderBy("id").collect()
    for k, name in enumerate(names):
        split = np.concatenate([h[k] for h in halves])
        np.testing.assert_allclose(split, whole[k], rtol=0, atol=1e-6)  # batch-size free
        expected = as_matrix([r[name] for r in rows])
        got = whole[k].astype(np.float64).reshape(expected.shape)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5, err_msg=name)
    return names


def test_a_fitted_classifier_exports_and_onnxruntime_agrees(spark, fitted_clf, binary_df,
                                                           tmp_path):
    X = as_matrix([r.features for r in binary_df.limit(40).collect()])
    names = assert_onnx_matches_transform(fitted_clf, spark, X, tmp_path / "clf.onnx",
                                          InputLayout((4,)))
    assert names == ["rawPrediction", "probability", "prediction"]
    assert not [f for f in os.listdir(tmp_path) if f != "clf.onnx"]  # no temporary left


def test_a_token_transformer_classifier_exports(spark, tmp_path):
    """Three classes on int64 token ids: softmax head; TorchScript's exporter refuses this
    network, so "auto" must take the dynamo exporter."""
    clf = TorchClassifier(model="transformer", modelParams={"vocab_size": 30}, inputShape=[12],
                          rawPredictionCol="raw", probabilityCol="p")
    layout = InputLayout((12,), "int64")
    X = np.random.default_rng(1).integers(0, 30, (25, 12)).astype(np.float64)
    names = assert_onnx_matches_transform(from_parts(clf, layout, 3), spark, X,
                                          tmp_path / "tokens.onnx", layout)
    assert names == ["raw", "p", "prediction"]


def test_an_image_regressor_exports_with_its_input_shape(spark, tmp_path):
    reg = TorchRegressor(model="cnn", inputShape=[3, 8, 8], predictionCol="price")
    layout = InputLayout((3, 8, 8))
    X = np.random.default_rng(2).normal(size=(25, 192))
    names = assert_onnx_matches_transform(from_parts(reg, layout, 1), spark, X,
                                          tmp_path / "cnn.onnx", layout)
    assert names == ["price"]


def test_an_anomaly_detector_exports_score_and_flag(spark, tmp_path):
    det = TorchAnomalyDetector(model="autoencoder", modelParams={"hidden_layers": [4, 2]})
    layout = InputLayout((6,))
    model = from_parts(det, layout, 6).setThreshold(float("inf"))  # a fit sets it
    X = np.random.default_rng(3).normal(size=(25, 6))
    scores = np.sort([r.anomalyScore for r in model.transform(rows_df(spark, X)).collect()])
    # Half the rows flagged, and no score within rounding of the threshold.
    model.setThreshold(float(scores[12] + scores[13]) / 2)
    names = assert_onnx_matches_transform(model, spark, X, tmp_path / "ae.onnx", layout)
    assert names == ["anomalyScore", "isAnomaly"]


def test_a_layer_onnx_cannot_express_is_named(tmp_path):
    clf = TorchClassifier(model="netlib:BesselNet")
    model = from_parts(clf, InputLayout((4,)), 2)
    with pytest.raises(OnnxExportError, match=r"layer 'head.act' \(BesselJ0\)") as info:
        model.exportOnnx(str(tmp_path / "bessel.onnx"))
    assert "bessel_j0" in str(info.value)  # the exporters' own reasons follow
    assert os.listdir(tmp_path) == []


def test_bad_export_arguments_are_refused_naming_the_value(fitted_clf, tmp_path):
    with pytest.raises(ValueError, match="exporter='jit'"):
        fitted_clf.exportOnnx(str(tmp_path / "m.onnx"), exporter="jit")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        fitted_clf.exportOnnx(str(tmp_path / "missing" / "m.onnx"))
