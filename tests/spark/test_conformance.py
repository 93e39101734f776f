"""Every pipeline stage in spark_dl honours the pyspark.ml contract.

Stages are discovered by walking the package, so a new stage is checked as soon as it
exists: it fails ``test_every_stage_has_an_example`` until it gets an entry in EXAMPLES.
Modelled on spark-rapids-ml's ``test_common_estimator.py`` and scikit-learn's
``check_estimator``: Params docs and converters, getters and setters, keyword-only
constructors, ``copy()`` with extra Params, ``explainParams``, ``transformSchema`` equal
to the real output schema, save/load with uid and Params equal, and use in a Pipeline.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from typing import Any, Callable

import numpy as np
import pytest
from pyspark.ml import Estimator, Model, Pipeline, PipelineModel, Transformer
from pyspark.ml.linalg import Vectors
from pyspark.sql import DataFrame
from pyspark.testing import assertDataFrameEqual

import spark_dl
from spark_dl.param_table import table


def _stage_classes() -> list[type]:
    found: dict[str, type] = {}
    for info in pkgutil.walk_packages(spark_dl.__path__, "spark_dl."):
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if (inspect.isclass(obj) and obj.__module__ == module.__name__
                    and not name.startswith("_") and issubclass(obj, (Estimator, Transformer))):
                found[f"{obj.__module__}.{name}"] = obj
    return [found[k] for k in sorted(found)]


STAGES = _stage_classes()


def _vectors(spark: Any) -> DataFrame:
    rng = np.random.default_rng(0)
    rows = [(Vectors.dense(rng.normal(size=3).tolist()), float(i % 2)) for i in range(40)]
    return spark.createDataFrame(rows, ["features", "label"])


def _tokens(spark: Any) -> DataFrame:
    return spark.createDataFrame([(["a", "b", "a"],), (["c"],), ([],)], "tokens array<string>")


def _series(spark: Any) -> DataFrame:
    return spark.createDataFrame([("k", t, float(t)) for t in range(8)],
                                 "k string, t long, x double")


def _pixels(spark: Any) -> DataFrame:
    return spark.createDataFrame([([0.5] * 12,), ([0.25] * 12,)], "px array<double>")


def _ratings(spark: Any) -> DataFrame:
    return spark.createDataFrame([(u, i, float((u + i) % 5)) for u in range(6)
                                  for i in range(4)], "user int, item long, rating double")


_HF: dict[str, str] = {}


def _hf_dir() -> str:
    """A tiny BERT folder (tests/helpers/hf_tiny.py), built once per session."""
    if "dir" not in _HF:
        import tempfile

        from hf_tiny import build

        _HF["dir"] = build(tempfile.mkdtemp(prefix="spark_dl-hf-"))
    return _HF["dir"]


def _texts(spark: Any) -> DataFrame:
    return spark.createDataFrame([("a good film",), ("bad",), (None,)], "text string")


def _token_ids(spark: Any) -> DataFrame:
    return spark.createDataFrame([([2, 7, 3, 0], [1, 1, 1, 0]), ([2, 3, 0, 0], [1, 1, 0, 0])],
                                 "input_ids array<int>, attention_mask array<int>")


_TORCH = {"modelParams": {"hidden_layers": [4]}, "maxEpochs": 1, "batchSize": 16}

#: Stage class name -> (a configured instance, its input DataFrame). Estimators are fitted
#: once per module; their models are checked with the same data.
EXAMPLES: dict[str, Callable[[Any], tuple[Any, DataFrame]]] = {
    "TorchClassifier": lambda s: (spark_dl.TorchClassifier(**_TORCH), _vectors(s)),
    "TorchRegressor": lambda s: (spark_dl.TorchRegressor(**_TORCH), _vectors(s)),
    "TorchAnomalyDetector": lambda s: (spark_dl.TorchAnomalyDetector(
        maxEpochs=1, batchSize=16, modelParams={"hidden_layers": [4], "latent_dim": 2}),
        _vectors(s)),
    "Vocabulary": lambda s: (spark_dl.Vocabulary(vocabSize=5, sequenceLength=3), _tokens(s)),
    "SequenceWindower": lambda s: (spark_dl.SequenceWindower(
        keyCol="k", timeCol="t", valueCols=["x"], windowLength=3), _series(s)),
    "ImageTensorizer": lambda s: (spark_dl.ImageTensorizer(
        inputCol="px", inputShape=[2, 2, 3], size=[2, 2], scale=1.0), _pixels(s)),
    "Rebalancer": lambda s: (__import__("spark_dl.skew", fromlist=["Rebalancer"])
                             .Rebalancer(numPartitions=2), _vectors(s)),
    "HFTokenizer": lambda s: (spark_dl.HFTokenizer(tokenizerPath=_hf_dir(), maxLength=6),
                              _texts(s)),
    "TextEmbedder": lambda s: (spark_dl.TextEmbedder(modelPath=_hf_dir()), _token_ids(s)),
    "TorchRecommender": lambda s: (spark_dl.TorchRecommender(
        maxEpochs=1, batchSize=16, modelParams={"embedding_dim": 2, "tower_layers": []}),
        _ratings(s)),
}
#: Models are made by fitting their estimator.
MODELS = {"TorchClassificationModel": "TorchClassifier", "TorchRegressionModel": "TorchRegressor",
          "TorchAnomalyDetectionModel": "TorchAnomalyDetector", "VocabularyModel": "Vocabulary",
          "TorchRecommendationModel": "TorchRecommender"}


def test_every_stage_has_an_example():
    names = {c.__name__ for c in STAGES}
    assert len(names) >= 8
    missing = names - set(EXAMPLES) - set(MODELS)
    assert not missing, f"add these stages to EXAMPLES or MODELS: {sorted(missing)}"


_cache: dict[str, tuple[Any, DataFrame]] = {}


def _instance(spark: Any, name: str) -> tuple[Any, DataFrame]:
    if name not in _cache:
        if name in MODELS:
            estimator, df = _instance(spark, MODELS[name])
            _cache[name] = (estimator.fit(df), df)
        else:
            _cache[name] = EXAMPLES[name](spark)
    return _cache[name]


@pytest.fixture(params=[c.__name__ for c in STAGES])
def stage(request, spark):
    return _instance(spark, request.param)


def _cap(name: str) -> str:
    return name[0].upper() + name[1:]


def test_params_have_docs_getters_and_setters(stage):
    instance, _ = stage
    for param in instance.params:
        assert param.doc and param.doc.strip().endswith((".", ")")), param.name
        assert callable(getattr(instance, f"get{_cap(param.name)}", None)), param.name
        if instance.hasDefault(param) or instance.isSet(param):
            assert getattr(instance, f"get{_cap(param.name)}")() is not None, param.name
    if not isinstance(instance, Model):
        for param in instance.params:
            setter = getattr(instance, f"set{_cap(param.name)}", None)
            assert callable(setter), f"{type(instance).__name__} lacks set{_cap(param.name)}"
            if instance.isDefined(param):
                copy = instance.copy()
                assert getattr(copy, f"set{_cap(param.name)}")(
                    copy.getOrDefault(param)) is copy


def test_every_param_row_is_a_param_and_converts(stage):
    instance, _ = stage
    rows = table(type(instance))
    assert rows, f"{type(instance).__name__} declares no Param table"
    names = {p.name for p in instance.params}
    assert set(rows) <= names
    for spec in rows.values():
        param = instance.getParam(spec.name)
        if instance.isDefined(param):
            value = instance.getOrDefault(param)
            assert param.typeConverter(value) == value, spec.name


def test_constructor_is_keyword_only_and_names_unknown_params(stage):
    instance, _ = stage
    cls = type(instance)
    if isinstance(instance, Model):
        return
    with pytest.raises(TypeError):
        cls(1)
    with pytest.raises(TypeError, match="no Param 'notAParam'"):
        cls(notAParam=1)
    rebuilt = cls(**{p.name: v for p, v in instance.extractParamMap().items()})
    assert rebuilt.extractParamMap() == {
        rebuilt.getParam(p.name): v for p, v in instance.extractParamMap().items()}
    sig = inspect.signature(cls)
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in sig.parameters.values())
    assert set(sig.parameters) == {p.name for p in instance.params}


def test_copy_with_extra_params_leaves_the_original(stage):
    instance, _ = stage
    param = next(p for p in instance.params if p.name in (
        "predictionCol", "outputCol", "numPartitions"))
    before = instance.getOrDefault(param)
    new = 7 if param.name == "numPartitions" else "copied"
    copy = instance.copy({param: new})
    assert copy.getOrDefault(copy.getParam(param.name)) == new
    assert instance.getOrDefault(param) == before
    assert copy.uid == instance.uid


def test_explain_params_lists_every_param(stage):
    instance, _ = stage
    text = instance.explainParams()
    for param in instance.params:
        assert f"{param.name}:" in text


def test_transform_schema_matches_the_output_without_a_job(stage):
    instance, df = stage
    if not isinstance(instance, Transformer):
        return
    expected = instance.transformSchema(df.schema)
    actual = instance.transform(df).schema
    assert [(f.name, f.dataType) for f in expected] == [(f.name, f.dataType) for f in actual]


def test_save_load_keeps_uid_params_and_output(stage, tmp_path):
    instance, df = stage
    path = str(tmp_path / "stage")
    instance.write().save(path)
    loaded = type(instance).load(path)
    assert loaded.uid == instance.uid
    assert {p.name: v for p, v in loaded.extractParamMap().items()} == {
        p.name: v for p, v in instance.extractParamMap().items()}
    if isinstance(instance, Transformer):
        assertDataFrameEqual(loaded.transform(df), instance.transform(df))


#: Torch estimators whose Pipeline.fit is not repeated here (a fit is ~20 s): the pipeline
#: holds their model fitted once above. TorchRegressor's _fit is TorchClassifier's
#: (base._TorchEstimator); TorchAnomalyDetector's runs in a Pipeline in the equipment_fault
#: job (tests/spark/test_jobs.py).
_FIT_ONCE = {"TorchRegressor", "TorchAnomalyDetector"}


def test_works_inside_a_saved_pipeline(stage, spark, tmp_path):
    instance, df = stage
    name = type(instance).__name__
    if name in _FIT_ONCE:
        model = _instance(spark, next(m for m, e in MODELS.items() if e == name))[0]
        fitted = PipelineModel(stages=[model])
    else:
        fitted = Pipeline(stages=[instance]).fit(df)
    path = str(tmp_path / "pipeline")
    fitted.write().save(path)
    loaded = PipelineModel.load(path)
    assert [s.uid for s in loaded.stages] == [s.uid for s in fitted.stages]
    assertDataFrameEqual(loaded.transform(df), fitted.transform(df))
