"""Persistence: round trips on real files, and loading never runs code."""

from __future__ import annotations

import glob
import json
import os
import pickle
import shutil

import pytest
from chispa import assert_df_equality
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.feature import StandardScaler

from spark_dl import TorchClassificationModel, TorchClassifier
from spark_dl.errors import UnsafeModelError
from spark_dl.persistence import digest


def _predictions(model, df):
    return model.transform(df).select("features", "rawPrediction", "probability", "prediction")


@pytest.mark.compat
def test_model_round_trip_predicts_identically(fitted_clf, binary_df, tmp_path):
    path = str(tmp_path / "model")
    fitted_clf.write().overwrite().save(path)
    loaded = TorchClassificationModel.load(path)
    assert loaded.uid == fitted_clf.uid and loaded.getModel() == fitted_clf.getModel()
    assert loaded.history == fitted_clf.history
    assert loaded.numFeatures == 4 and loaded.getModelParams() == {"hidden_layers": [8]}
    assert_df_equality(_predictions(fitted_clf, binary_df), _predictions(loaded, binary_df),
                       ignore_row_order=True)


def test_weights_are_stored_as_safetensors(fitted_clf, tmp_path, spark):
    path = str(tmp_path / "m")
    fitted_clf.save(path)
    row = spark.read.parquet(f"{path}/data").first()
    assert row.format == "safetensors" and row.sha256 == digest(bytes(row.payload))
    header_len = int.from_bytes(bytes(row.payload)[:8], "little")
    header = json.loads(bytes(row.payload)[8 : 8 + header_len])
    assert any(k.endswith("weight") for k in header)


def test_estimator_round_trip(tmp_path):
    clf = TorchClassifier(modelParams={"hidden_layers": [3]}, maxEpochs=2, weightCol="w")
    clf.save(str(tmp_path / "est"))
    loaded = TorchClassifier.load(str(tmp_path / "est"))
    assert loaded.getModelParams() == {"hidden_layers": [3]} and loaded.getWeightCol() == "w"
    assert loaded.extractParamMap()[loaded.maxEpochs] == 2


def test_pipeline_and_pipeline_model_round_trip(binary_df, tmp_path):
    pipe = Pipeline(stages=[
        StandardScaler(inputCol="features", outputCol="scaled"),
        TorchClassifier(featuresCol="scaled", modelParams={"hidden_layers": [4]}, maxEpochs=2),
    ])
    pipe.save(str(tmp_path / "pipe"))
    assert isinstance(Pipeline.load(str(tmp_path / "pipe")).getStages()[1], TorchClassifier)
    fitted = pipe.fit(binary_df)
    fitted.save(str(tmp_path / "pm"))
    loaded = PipelineModel.load(str(tmp_path / "pm"))
    cols = ["features", "probability", "prediction"]
    assert_df_equality(fitted.transform(binary_df).select(cols),
                       loaded.transform(binary_df).select(cols), ignore_row_order=True)


class _Payload:
    """Unpickling this would create the marker file."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _write_weights_row(spark, path, sha: str, payload: bytes):
    """Replace the saved weights row by hand, as an attacker or a bad disk would."""
    shutil.rmtree(f"{path}/data")
    spark.createDataFrame([("safetensors", sha, bytearray(payload))],
                          "format string, sha256 string, payload binary").coalesce(1) \
        .write.parquet(f"{path}/data")


def _replace_weights(spark, path, payload: bytes):
    _write_weights_row(spark, path, digest(payload), payload)
    _edit_metadata(path, lambda meta: meta.update(weightsSha256=digest(payload)))


def _edit_metadata(path, edit):
    """Edit the saved metadata JSON by hand (dropping Hadoop's .crc so the edit is read)."""
    meta_file = glob.glob(f"{path}/metadata/part-*")[0]
    meta = json.loads(open(meta_file).read())
    edit(meta)
    with open(meta_file, "w") as fh:
        fh.write(json.dumps(meta))
    for crc in glob.glob(f"{path}/metadata/.*.crc"):
        os.remove(crc)


def test_malicious_pickle_weights_are_refused_and_never_run(fitted_clf, tmp_path, spark):
    path, marker = str(tmp_path / "evil"), tmp_path / "pwned"
    fitted_clf.save(path)
    _replace_weights(spark, path, pickle.dumps(_Payload(str(marker))))
    with pytest.raises(UnsafeModelError, match="not a valid safetensors file"):
        TorchClassificationModel.load(path)
    assert not marker.exists()


def test_corrupted_weights_fail_the_checksum(fitted_clf, tmp_path, spark):
    path = str(tmp_path / "corrupt")
    fitted_clf.save(path)
    row = spark.read.parquet(f"{path}/data").first()
    flipped = bytearray(row.payload)
    flipped[-1] ^= 0xFF
    _write_weights_row(spark, path, row.sha256, bytes(flipped))
    with pytest.raises(ValueError, match="SHA-256"):
        TorchClassificationModel.load(path)


@pytest.mark.parametrize("target", ["os:system", "builtins:eval", "netlib:NOT_A_MODULE"])
def test_edited_metadata_cannot_name_other_callables(fitted_clf, tmp_path, target):
    path = str(tmp_path / "edited")
    fitted_clf.save(path)
    _edit_metadata(path, lambda meta: meta["paramMap"].update(model=target))
    with pytest.raises(UnsafeModelError, match="Refusing model"):
        TorchClassificationModel.load(path)


@pytest.mark.parametrize("where", ["paramMap", "defaultParamMap"])
def test_loading_never_imports_a_module_the_caller_did_not_allow(fitted_clf, tmp_path,
                                                                  monkeypatch, where):
    import sys

    marker = tmp_path / "imported"
    monkeypatch.setenv("SPARK_DL_SIDE_EFFECT_MARKER", str(marker))
    path = str(tmp_path / "edited")
    fitted_clf.save(path)
    _edit_metadata(path, lambda meta: meta[where].update(model="sideeffect_net:Net"))
    with pytest.raises(UnsafeModelError, match=r"spark.dl.load.allowedModules=sideeffect_net"):
        TorchClassificationModel.load(path)
    assert not marker.exists() and "sideeffect_net" not in sys.modules


def _tiny_net_model(tmp_path):
    import torch
    from safetensors.torch import save as st_save

    from netlib import TinyNet

    torch.manual_seed(0)
    net = TinyNet(4, 2, width=3)
    model = TorchClassificationModel._from_parts(
        st_save({k: v.contiguous() for k, v in net.state_dict().items()}), 4, 2, [])
    model.set(model.model, "netlib:TinyNet")
    model.set(model.modelParams, {"width": 3})
    path = str(tmp_path / "tiny")
    model.save(path)
    return model, path


def test_a_user_network_loads_only_when_allowed(spark, tmp_path, binary_df):
    model, path = _tiny_net_model(tmp_path)
    with pytest.raises(UnsafeModelError, match="Refusing model 'netlib:TinyNet' on load"):
        TorchClassificationModel.load(path)
    with pytest.raises(UnsafeModelError):
        TorchClassificationModel.load(path, allowedModules=["netlib:OtherNet", "netlibx"])
    for allowed in (["netlib"], ["netlib:TinyNet"]):
        loaded = TorchClassificationModel.load(path, allowedModules=allowed)
        assert loaded._weights == model._weights
    PipelineModel(stages=[model]).save(str(tmp_path / "pm"))
    with pytest.raises(UnsafeModelError):
        PipelineModel.load(str(tmp_path / "pm"))
    spark.conf.set("spark.dl.load.allowedModules", "somepkg, netlib")
    try:
        assert TorchClassificationModel.load(path)._weights == model._weights
        stage = PipelineModel.load(str(tmp_path / "pm")).stages[0]  # stages read the conf too
        assert stage._weights == model._weights
    finally:
        spark.conf.unset("spark.dl.load.allowedModules")


def test_metadata_asking_for_a_huge_network_is_refused_before_allocation(fitted_clf, tmp_path):
    path = str(tmp_path / "huge")
    fitted_clf.save(path)
    # 200,000 x 200,000 float32 would be 160 GB; the weights hold a [8] hidden layer.
    _edit_metadata(path, lambda meta: meta["paramMap"].update(
        modelParams=json.dumps({"hidden_layers": [200_000, 200_000]})))
    with pytest.raises(ValueError, match=r"do not fit network 'mlp'.*checked before building"):
        TorchClassificationModel.load(path)
