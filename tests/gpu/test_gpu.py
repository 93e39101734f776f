"""GPU training and scoring (NCCL, CUDA scoring, reduced precision): skipped without CUDA.

``scripts/gpu_check`` runs this module on a GPU machine, then the GPU scoring benchmark.
Each test compares against the same model on the CPU, so a GPU result that is wrong (not
merely different in the last bits) fails.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="needs a CUDA GPU (scripts/gpu_check runs these)")


@pytest.fixture(scope="module")
def blob_df(spark):
    from datagen import blobs, vector_df

    X, y = blobs(n=2000, d=8, k=3, seed=0)
    return vector_df(spark, X, y, partitions=2).cache()


def _accuracy(model, df) -> float:
    from pyspark.ml.evaluation import MulticlassClassificationEvaluator

    return MulticlassClassificationEvaluator(metricName="accuracy").evaluate(
        model.transform(df))


def _probabilities(model, df) -> np.ndarray:
    from pyspark.ml.functions import vector_to_array
    from pyspark.sql import functions as F

    out = (df.withColumn("id", F.monotonically_increasing_id())
           .transform(model.transform).select("id", vector_to_array("probability").alias("p"))
           .orderBy("id").collect())
    return np.array([r.p for r in out])


@pytest.mark.parametrize("processes", [1, 2])
def test_nccl_training_on_the_driver_learns_the_blobs(blob_df, processes):
    from spark_dl import TorchClassifier

    if processes > torch.cuda.device_count():
        pytest.skip(f"needs {processes} GPUs, this machine has {torch.cuda.device_count()}")
    clf = TorchClassifier(modelParams={"hidden_layers": [32]}, maxEpochs=5, batchSize=64,
                          learningRate=0.01, useGpu=True, numProcesses=processes, seed=1)
    model = clf.fit(blob_df)
    assert model.history[-1]["train_loss"] < model.history[0]["train_loss"]
    assert _accuracy(model.copy({model.useGpu: False}), blob_df) > 0.95


@pytest.mark.parametrize("network", ["mlp", "cnn"])
def test_cuda_scoring_matches_the_cpu(spark, network):
    from datagen import blobs, vector_df

    from spark_dl import TorchClassifier

    if network == "cnn":
        X, y = blobs(n=256, d=3 * 8 * 8, k=2, seed=2)
        params = {"model": "cnn", "inputShape": [3, 8, 8]}
    else:
        X, y = blobs(n=1000, d=8, k=2, seed=2)
        params = {"modelParams": {"hidden_layers": [64, 64]}}
    df = vector_df(spark, X, y, partitions=2).cache()
    model = TorchClassifier(maxEpochs=1, batchSize=64, seed=0, **params).fit(df)
    cpu = _probabilities(model, df)
    gpu_model = model.copy({model.useGpu: True})
    np.testing.assert_allclose(_probabilities(gpu_model, df), cpu, atol=1e-4)
    for precision in ("float16", "bfloat16"):  # reduced precision, GPU only for float16
        reduced = _probabilities(gpu_model.copy({gpu_model.inferencePrecision: precision}), df)
        assert np.abs(reduced - cpu).max() < 0.05, precision


def test_cuda_attributions_match_the_cpu(spark):
    """Integrated gradients through an LSTM on the GPU (cuDNN's RNN refuses a backward pass
    in eval mode; the attribution pass turns cuDNN off) equal the CPU's."""
    from datagen import blobs, vector_df

    from spark_dl import TorchClassifier

    from pyspark.sql import functions as F

    X, y = blobs(n=256, d=8 * 3, k=2, seed=4)
    df = vector_df(spark, X, y, partitions=2).withColumn("id", F.monotonically_increasing_id())
    df = df.cache()
    model = TorchClassifier(model="lstm", inputShape=[8, 3], maxEpochs=1, batchSize=64,
                            modelParams={"hidden_size": 16}, seed=0,
                            attributionsCol="attr").fit(df)
    cpu = np.array([r.attr.toArray() for r in model.transform(df).orderBy("id").collect()])
    gpu = model.copy({model.useGpu: True}).transform(df).orderBy("id").collect()
    np.testing.assert_allclose(np.array([r.attr.toArray() for r in gpu]), cpu, rtol=1e-3,
                               atol=1e-4)


def test_each_gpu_holds_one_copy_of_the_model():
    """One network per (weights, device) in a worker's cache, one per GPU it scores on."""
    import dataclasses

    import pyarrow as pa
    from safetensors.torch import save

    from spark_dl import compat
    from spark_dl.inference import scoring
    from spark_dl.model_spec import ModelSpec

    spec = ModelSpec("mlp", {"hidden_layers": [16]})
    net = spec.build(in_features=4, out_features=2)
    task = scoring.ScoringTask(
        key="gpu-cache", spec=spec.to_json(), num_features=4, num_outputs=2,
        task="classification", batch_size=8, threads=1, handle_invalid="error",
        features_col="f", weights=compat.Inline(save(dict(net.state_dict()))), use_gpu=True)
    arr = pa.array([[0.0, 1.0, 2.0, 3.0]] * 5, type=pa.list_(pa.float32()))
    before = scoring.builds
    for _ in range(3):
        scoring.score_array(arr, task)
    assert scoring.builds - before == 1
    model = scoring.get_model(task)
    assert next(model.parameters()).is_cuda
    assert scoring.get_model(dataclasses.replace(task, use_gpu=False)) is not model
