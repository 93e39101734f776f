"""Executor-side scoring without Spark: Arrow to numpy, invalid rows, the model cache."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import torch
from safetensors.torch import save as st_save

from spark_dl.inference import scoring
from spark_dl.inference.scoring import ScoringTask, features_matrix, score_array
from spark_dl.model_spec import ModelSpec


class _FakeBroadcast:
    """Stands in for a Spark Broadcast: only ``.value`` is used by the scorer."""

    def __init__(self, value: bytes) -> None:
        self.value = value


def _task(handle="error", task="classification", key="k1"):
    torch.manual_seed(0)
    net = ModelSpec("mlp", {"hidden_layers": [4]}).build(in_features=3, out_features=2)
    weights = st_save({k: v.contiguous() for k, v in net.state_dict().items()})
    return ScoringTask(key=key + handle + task, spec=ModelSpec("mlp", {"hidden_layers": [4]})
                       .to_json(), num_features=3, num_outputs=2 if task == "classification"
                       else 1, task=task, batch_size=2, threads=1, handle_invalid=handle,
                       features_col="feats", weights=_FakeBroadcast(weights) if task ==
                       "classification" else _FakeBroadcast(st_save({k: v.contiguous() for k, v in
                       ModelSpec("mlp", {"hidden_layers": [4]}).build(in_features=3,
                       out_features=1).state_dict().items()}))), net


def test_fast_path_is_exact():
    arr = pa.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], type=pa.list_(pa.float32()))
    X, valid = features_matrix(arr, 3)
    assert valid.all()
    np.testing.assert_array_equal(X, [[1, 2, 3], [4, 5, 6]])


def test_sliced_batch_respects_offsets():
    arr = pa.array([[0.0] * 3, [1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], type=pa.list_(pa.float32()))
    X, _ = features_matrix(arr.slice(1), 3)
    np.testing.assert_array_equal(X, [[1, 2, 3], [4, 5, 6]])


def test_invalid_rows_are_flagged():
    arr = pa.array([[1.0, 2.0, 3.0], None, [1.0, 2.0], [1.0, float("nan"), 3.0], [1.0, None, 2.0]],
                   type=pa.list_(pa.float32()))
    X, valid = features_matrix(arr, 3)
    assert valid.tolist() == [True, False, False, False, False]
    np.testing.assert_array_equal(X[0], [1, 2, 3])


def test_scores_match_the_module_and_probabilities_sum_to_one():
    task, net = _task()
    arr = pa.array(np.arange(12, dtype=np.float32).reshape(4, 3).tolist(),
                   type=pa.list_(pa.float32()))
    out = score_array(arr, task)
    raw = np.array(out.field("raw").to_pylist())
    with torch.no_grad():
        expected = net(torch.arange(12, dtype=torch.float32).reshape(4, 3)).numpy()
    m = expected[:, 1] - expected[:, 0]  # two classes: [-m, m], as LogisticRegressionModel
    np.testing.assert_allclose(raw, np.stack([-m, m], axis=1), rtol=1e-5, atol=1e-6)
    prob = np.array(out.field("prob").to_pylist())
    np.testing.assert_allclose(prob[:, 1], 1 / (1 + np.exp(-raw[:, 1])), rtol=1e-9)
    np.testing.assert_allclose(prob.sum(axis=1), 1.0)
    assert out.field("pred").to_pylist() == expected.argmax(axis=1).astype(float).tolist()


def test_error_keep_and_regression():
    bad = pa.array([[1.0, 2.0, 3.0], None], type=pa.list_(pa.float32()))
    with pytest.raises(ValueError, match="'feats'.*handleInvalid"):
        score_array(bad, _task("error")[0])
    kept = score_array(bad, _task("keep")[0])
    assert np.isnan(kept.field("pred").to_pylist()[1])
    reg = score_array(bad, _task("keep", task="regression")[0])
    assert reg.type == pa.float64() and np.isnan(reg.to_pylist()[1])


def test_model_built_once_per_process_and_cached():
    task, _ = _task(key="cache-test")
    arr = pa.array([[1.0, 2.0, 3.0]], type=pa.list_(pa.float32()))
    before = scoring.builds
    for _ in range(5):
        score_array(arr, task)
    assert scoring.builds - before == 1


def test_only_requested_outputs_are_computed():
    import dataclasses

    task, _ = _task(key="subset")
    arr = pa.array([[1.0, 2.0, 3.0]], type=pa.list_(pa.float32()))
    out = score_array(arr, dataclasses.replace(task, outputs=("pred",)))
    assert out.type.num_fields == 1 and out.type.field(0).name == "pred"


def test_the_fast_path_reads_the_arrow_buffer_in_place():
    arr = pa.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]],
                   type=pa.list_(pa.float32())).slice(1)  # an offset, as Arrow batches have
    X, _ = features_matrix(arr, 3)
    values = arr.flatten()
    start = values.buffers()[1].address + values.offset * 4
    assert X.__array_interface__["data"][0] == start  # no copy between Arrow and numpy
    assert torch.from_numpy(X).data_ptr() == start  # nor between numpy and torch
    np.testing.assert_array_equal(X, [[4, 5, 6], [7, 8, 9]])


def test_gpu_scoring_uses_the_gpu_spark_assigned(monkeypatch):
    from pyspark.resource import ResourceInformation

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    gpus = {"gpu": ResourceInformation("gpu", ["1"])}
    assert scoring.gpu_device(gpus, True, 2) == torch.device("cuda", 1)
    assert scoring.gpu_device({}, True, 2) == torch.device("cuda", 0)  # no GPU scheduling
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")  # narrowed to the assigned ones
    assert scoring.gpu_device({"gpu": ResourceInformation("gpu", ["3"])}, True, 2) == \
        torch.device("cuda", 1)
    uuid = "GPU-8d6b2c1e-0000-4000-8000-000000000001"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", f"GPU-other, {uuid}")
    assert scoring.gpu_device({"gpu": ResourceInformation("gpu", [uuid])}, True, 2) == \
        torch.device("cuda", 1)
    with pytest.raises(RuntimeError, match="GPU 'MIG-x' .* neither an index"):
        scoring.gpu_device({"gpu": ResourceInformation("gpu", ["MIG-x"])}, True, 2)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    with pytest.raises(RuntimeError, match="GPU 5 .* sees only 2 CUDA device"):
        scoring.gpu_device({"gpu": ResourceInformation("gpu", ["5"])}, True, 2)


def test_gpu_scoring_without_a_visible_gpu_fails_loudly():
    with pytest.raises(RuntimeError, match="useGpu=True, but this Python worker sees no CUDA"):
        scoring.gpu_device({}, False, 0)


@pytest.mark.parametrize("kwargs", [
    {"hidden_layers": [16, 8]},
    {"hidden_layers": [16, 16], "batch_norm": True, "activation": "silu"},
    {"hidden_layers": [12], "dropout": 0.2, "dropout_first": True, "activation": "tanh"},
    {"hidden_layers": []},
])
def test_the_numpy_mlp_computes_what_the_torch_module_computes(kwargs):
    import dataclasses

    torch.manual_seed(1)
    net = ModelSpec("mlp", kwargs).build(in_features=6, out_features=3).eval()
    for module in net.modules():  # trained-looking batch-norm statistics
        if isinstance(module, torch.nn.BatchNorm1d):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2.0)
    weights = st_save({k: v.contiguous() for k, v in net.state_dict().items()})
    task = ScoringTask(key=f"np-{kwargs}", spec=ModelSpec("mlp", kwargs).to_json(),
                       num_features=6, num_outputs=3, task="classification", batch_size=7,
                       threads=1, handle_invalid="error", features_col="f",
                       weights=_FakeBroadcast(weights))
    X = np.random.default_rng(0).standard_normal((50, 6)).astype(np.float32)
    arr = pa.array(X.tolist(), type=pa.list_(pa.float32()))
    assert scoring.uses_numpy(task)
    by_numpy = score_array(arr, task)
    torch_task = dataclasses.replace(task, backend="torch", key=task.key + "-torch")
    assert not scoring.uses_numpy(torch_task)
    by_torch = score_array(arr, torch_task)
    raw = np.array(by_numpy.field("raw").to_pylist())
    np.testing.assert_allclose(raw, np.array(by_torch.field("raw").to_pylist()),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.array(by_numpy.field("prob").to_pylist()),
                               np.array(by_torch.field("prob").to_pylist()), atol=1e-6)
    with torch.no_grad():
        logits = net(torch.from_numpy(X)).double().numpy()
    assert by_numpy.field("pred").to_pylist() == logits.argmax(axis=1).astype(float).tolist()


def test_networks_numpy_cannot_compute_exactly_score_in_torch():
    task, _ = _task(key="gelu")
    import dataclasses

    gelu = ModelSpec("mlp", {"hidden_layers": [4], "activation": "gelu"}).to_json()
    assert not scoring.uses_numpy(dataclasses.replace(task, spec=gelu))  # no erf in numpy
    assert not scoring.uses_numpy(dataclasses.replace(task, precision="int8-dynamic"))
    assert not scoring.uses_numpy(dataclasses.replace(task, use_gpu=True))
    cnn = ModelSpec("cnn", {}).to_json()
    assert not scoring.uses_numpy(dataclasses.replace(task, spec=cnn))


def test_a_numpy_scoring_worker_imports_neither_torch_nor_pandas(tmp_path):
    import subprocess
    import sys

    task, _ = _task(key="imports")
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(task.weights.value)
    code = f"""
import sys, numpy as np, pyarrow as pa
from spark_dl.inference.scoring import ScoringTask, score_batches, arrow_from_numpy
class W:
    value = open({str(weights)!r}, "rb").read()
task = ScoringTask(key="k", spec={task.spec!r}, num_features=3, num_outputs=2,
                   task="classification", batch_size=2, threads=1, handle_invalid="error",
                   features_col="f", weights=W())
X = np.arange(12, dtype=np.float32)
arr = pa.ListArray.from_arrays(arrow_from_numpy(np.arange(0, 13, 3, dtype=np.int32)),
                               arrow_from_numpy(X))
out = list(score_batches(iter([arr, arr]), task))
print(sum(len(o) for o in out), "torch" in sys.modules, "pandas" in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.split() == ["8", "False", "False"], done.stderr


def test_prefetching_keeps_order_raises_errors_and_stops_with_its_consumer():
    import threading

    assert list(scoring.prefetched(iter(range(50)), 2)) == list(range(50))

    def failing():
        yield 1
        raise OSError("socket closed")

    got = scoring.prefetched(failing(), 1)
    assert next(got) == 1
    with pytest.raises(OSError, match="socket closed"):
        next(got)
    endless = scoring.prefetched(iter(lambda: 0, 1), 1)  # never exhausted
    next(endless)
    endless.close()  # the consumer stops early: the thread must stop too
    assert not [t for t in threading.enumerate() if t.name == "spark_dl-prefetch"]


def test_reduced_precision_stays_close_to_float32():
    import dataclasses

    torch.manual_seed(0)
    spec = ModelSpec("mlp", {"hidden_layers": [64, 64]})
    net = spec.build(in_features=8, out_features=2)
    weights = _FakeBroadcast(st_save({k: v.contiguous() for k, v in net.state_dict().items()}))
    base = ScoringTask(key="prec", spec=spec.to_json(), num_features=8, num_outputs=2,
                       task="classification", batch_size=16, threads=1,
                       handle_invalid="error", features_col="f", weights=weights)
    X = np.random.default_rng(0).standard_normal((64, 8)).astype(np.float32)
    arr = pa.array(X.tolist(), type=pa.list_(pa.float32()))
    full = np.array(score_array(arr, base).field("prob").to_pylist())[:, 1]
    for precision, tol in (("int8-dynamic", 0.05), ("bfloat16", 0.05)):
        task = dataclasses.replace(base, precision=precision, key=f"prec-{precision}")
        assert not scoring.uses_numpy(task)
        model = scoring.get_model(task)
        if precision == "int8-dynamic":
            assert any("quantized" in type(m).__module__ for m in model.modules())
        else:
            assert next(model.parameters()).dtype == torch.bfloat16
        reduced = np.array(score_array(arr, task).field("prob").to_pylist())[:, 1]
        assert 0 < np.abs(reduced - full).max() < tol


@pytest.mark.parametrize("name,kwargs,shape", [
    ("lstm", {}, (16, 4)),
    ("transformer", {"d_model": 16, "nhead": 2}, (16, 4)),
    ("cnn", {}, (1, 8, 8)),
    ("autoencoder", {}, (64,)),
])
@pytest.mark.parametrize("precision", ["int8-dynamic", "bfloat16"])
def test_every_zoo_network_scores_in_reduced_precision(name, kwargs, shape, precision):
    import copy

    from spark_dl.inputs import InputLayout

    torch.manual_seed(0)
    layout = InputLayout(shape, "float32")
    reconstruction = name == "autoencoder"
    net = ModelSpec(name, kwargs).build(**layout.injected(64 if reconstruction else 2)).eval()
    X = np.random.default_rng(0).standard_normal((10, 64)).astype(np.float32)
    full = scoring._forward(net, X, 4, layout, reconstruction)
    reduced = scoring._forward(scoring.with_precision(copy.deepcopy(net), precision), X, 4,
                               layout, reconstruction)
    assert reduced.dtype == np.float32 and 0 < np.abs(reduced - full).max() < 0.05
