"""Params: defaults, converters, keyword-only constructors, copies."""

from __future__ import annotations

import pytest

from spark_dl import TorchClassifier, TorchRegressor


def test_defaults_and_getters():
    clf = TorchClassifier()
    assert clf.getModel() == "mlp" and clf.getMaxEpochs() == 10 and clf.getBatchSize() == 64
    assert clf.getModelParams() == {} and clf.getLocalMode() is True
    assert clf.getProbabilityCol() == "probability"
    assert clf.getCheckpointDir() is None


def test_constructor_is_keyword_only():
    with pytest.raises(TypeError):
        TorchClassifier("features")  # type: ignore[misc]


def test_model_params_accept_dict_or_json_and_canonicalize():
    a = TorchRegressor(modelParams={"hidden_layers": [4], "dropout": 0.1})
    b = TorchRegressor(modelParams='{"dropout": 0.1, "hidden_layers": [4]}')
    assert a.getOrDefault("modelParams") == b.getOrDefault("modelParams")


def test_bad_model_params_type_is_a_type_error():
    with pytest.raises(TypeError, match="modelParams"):
        TorchClassifier(modelParams=[1, 2])


def test_set_params_and_copy():
    clf = TorchClassifier().setParams(maxEpochs=3, learningRate=0.5)
    clone = clf.copy({clf.batchSize: 7})
    assert (clone.getMaxEpochs(), clone.getLearningRate(), clone.getBatchSize()) == (3, 0.5, 7)
    assert clf.getBatchSize() == 64


def test_every_param_is_documented():
    for p in TorchClassifier().params:
        assert p.doc.strip(), p.name
