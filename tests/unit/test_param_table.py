"""One Param table: constructors, setters, checks and the jobs' config keys all read it."""

from __future__ import annotations

import inspect
import json
import os

import pytest

from spark_dl import TorchAnomalyDetector, TorchClassifier, TorchRegressor
from spark_dl.jobs.common import torch_params
from spark_dl.jobs.config import ConfigError, param_schema
from spark_dl.jobs.runner import load
from spark_dl.param_table import UNSET, config_rows, table, validate_params

CONF = os.path.join(os.path.dirname(__file__), "..", "..", "conf")
#: Params a job sets from its own data keys, not from model/training.
FROM_DATA = {"featuresCol", "labelCol", "predictionCol", "weightCol", "inputShape",
             "probabilityCol", "rawPredictionCol", "scoreCol", "threshold"}


@pytest.mark.parametrize("cls", [TorchClassifier, TorchRegressor, TorchAnomalyDetector])
def test_every_training_param_is_a_config_key_with_the_params_default(cls):
    rows = table(cls)
    assert set(rows) - {s.name for s in config_rows(cls)} <= FROM_DATA
    schema = param_schema(cls)
    instance = cls()
    for spec in config_rows(cls):
        section, key = spec.config.split(".")
        field = schema[section][key]
        param = instance.getParam(spec.name)
        if not instance.isDefined(param):
            assert spec.default is UNSET and field.default is None, spec.name
            continue
        default = instance.getOrDefault(param)
        assert field.default == (json.loads(default) if spec.kind == "json" else default), \
            spec.name


def test_set_reaches_params_the_old_hand_written_mapping_dropped():
    cfg = load(os.path.join(CONF, "fraud_detection.yaml"), [
        "training.use_gpu=true", "training.rebalance=never",
        "training.optimizer_params={weight_decay: 0.01}", "training.max_train_attempts=3",
        "training.class_weights={'1': 20.0}"])
    kwargs = torch_params(cfg, TorchClassifier)
    assert kwargs["useGpu"] is True and kwargs["rebalance"] == "never"
    assert kwargs["optimizerParams"] == {"weight_decay": 0.01}
    assert kwargs["maxTrainAttempts"] == 3 and kwargs["classWeights"] == {"1": 20.0}
    clf = TorchClassifier(**kwargs)
    assert clf.getOptimizerParams() == {"weight_decay": 0.01}
    assert json.loads(clf.getClassWeights()) == {"1": 20.0}


@pytest.mark.parametrize("assignment, words", [
    ("training.rebalance=sometimes", "one of ['auto', 'always', 'never']"),
    ("training.batch_size=0", "an int >= 1"),
    ("training.validation_fraction=1.0", "a number in [0, 1)"),
    ("training.learning_rate=0", "a number > 0"),
    ("training.local_mode=1", "true or false"),
])
def test_a_bad_config_value_gets_the_params_own_words(assignment, words):
    with pytest.raises(ConfigError, match=r"training\.\w+ must be " + words.replace("[", r"\[")
                       .replace("]", r"\]").replace("(", r"\(").replace(")", r"\)")):
        load(os.path.join(CONF, "fraud_detection.yaml"), [assignment])


def test_the_anomaly_job_reads_threshold_quantile_from_the_table():
    cfg = load(os.path.join(CONF, "equipment_fault.yaml"), [])
    assert torch_params(cfg, TorchAnomalyDetector)["thresholdQuantile"] == 0.97
    with pytest.raises(ConfigError, match="threshold_quantile must be a number in"):
        load(os.path.join(CONF, "equipment_fault.yaml"), ["training.threshold_quantile=1.5"])


def test_validate_params_names_param_value_and_what_is_accepted():
    with pytest.raises(ValueError, match=r"The 'optimizer' parameter of TorchRegressor must be "
                                         r"one of \['adam', 'adamw', 'sgd'\]\. Got 'lbfgs'"):
        validate_params(TorchRegressor(optimizer="lbfgs"))
    validate_params(TorchRegressor(optimizer="AdamW"))  # case-insensitive


def test_setters_are_typed_and_return_the_stage():
    clf = TorchClassifier()
    assert clf.setMaxEpochs(3) is clf and clf.getMaxEpochs() == 3
    hints = inspect.get_annotations(TorchClassifier.setLearningRate)
    assert hints["value"] == "float"
    sig = inspect.signature(TorchAnomalyDetector)
    assert sig.parameters["model"].default == "autoencoder"
    assert sig.parameters["predictionCol"].default == "isAnomaly"
    with pytest.raises(TypeError, match="Did you mean 'learningRate'"):
        TorchClassifier(learningrate=0.1)
