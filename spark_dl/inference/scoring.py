"""Executor side of scoring: Arrow batches in, Arrow arrays out, one model per worker.

Runs in Spark's Python workers. The network is built once per Python worker and kept in
a small LRU cache keyed by the weights' digest, so tasks and batches reuse it; rows move
from Arrow buffers to torch without a per-row step (zero-copy when the batch has no
nulls).
"""

from __future__ import annotations

import os
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

if TYPE_CHECKING:
    import pyarrow as pa
    from torch import nn

    from spark_dl.inputs import InputLayout

_CACHE: OrderedDict[str, nn.Module] = OrderedDict()
_CACHE_SIZE = 4
#: Number of networks this Python process has built (diagnostics and tests).
builds = 0


@dataclass(frozen=True)
class ScoringTask:
    """Plain values a scoring task needs; picklable, no Params or SparkSession."""

    key: str
    spec: str
    num_features: int
    num_outputs: int
    task: str  # "classification", "regression" or "reconstruction"
    batch_size: int
    threads: int
    handle_invalid: str
    features_col: str
    weights: Any  # the safetensors bytes as a Broadcast, or compat.Inline / SessionFile
    use_gpu: bool = False
    outputs: tuple[str, ...] = ("raw", "prob", "pred")  # classification fields to compute
    input_shape: tuple[int, ...] = ()  # per-row tensor shape; () means (num_features,)
    input_dtype: str = "float32"  # "int64" for token ids
    precision: str = "float32"  # the inferencePrecision Param
    backend: str = "auto"  # spark.dl.inference.backend: "auto" (numpy MLP when it can) or "torch"
    prefetch: int = 1  # input batches read and converted ahead of the forward pass
    attribution: str = ""  # the attributionMethod Param when attributionsCol is set, else ""
    attribution_steps: int = 32  # attributionSteps (integrated gradients)
    attribution_baseline: tuple[float, ...] = ()  # attributionBaseline; () means zeros

    @property
    def fields(self) -> tuple[str, ...]:
        """The UDF's struct fields, or ``()`` when it returns a plain double (regression
        and reconstruction without attributions)."""
        attr = ("attr",) if self.attribution else ()
        if self.task == "classification":
            return self.outputs + attr
        return ("pred",) + attr if attr else ()

    @property
    def layout(self) -> InputLayout:
        from spark_dl.inputs import InputLayout

        return InputLayout(self.input_shape or (self.num_features,), self.input_dtype)


def uses_numpy(task: ScoringTask) -> bool:
    """Whether ``task`` scores with the torch-free :mod:`~spark_dl.inference.numpy_mlp`."""
    from spark_dl.inference import numpy_mlp

    return task.backend == "auto" and not task.attribution and numpy_mlp.supports(
        task.spec, use_gpu=task.use_gpu, precision=task.precision,
        input_dtype=task.input_dtype, task=task.task)


def get_model(task: ScoringTask) -> Any:
    """The cached network for ``task.key`` on this task's device, built on a miss: a torch
    module, or a :class:`~spark_dl.inference.numpy_mlp.NumpyMLP` (see :func:`uses_numpy`).

    The device is part of the cache key: a reused Python worker can run tasks that Spark
    assigned to different GPUs.
    """
    global builds
    numpy_path = uses_numpy(task)
    device = "numpy" if numpy_path else _device(task.use_gpu)
    key = f"{task.key}@{device}/{task.precision}"
    model = _CACHE.get(key)
    if model is not None:
        _CACHE.move_to_end(key)
        return model
    if numpy_path:
        from spark_dl.inference.numpy_mlp import NumpyMLP

        model = NumpyMLP(task.spec, task.weights.value)
    else:
        from safetensors.torch import load as st_load

        from spark_dl.model_spec import ModelSpec

        model = ModelSpec.from_json(task.spec).build(**task.layout.injected(task.num_outputs))
        model.load_state_dict(st_load(task.weights.value))
        model = with_precision(model.to(device).eval(), task.precision)
    builds += 1
    _CACHE[key] = model
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return model


def with_precision(model: nn.Module, precision: str) -> nn.Module:
    """``model`` for the ``inferencePrecision`` Param (validated on the driver)."""
    import torch
    from torch import nn

    if precision == "int8-dynamic":
        # Linear and LSTM layers, except inside attention blocks: their fused fast path reads
        # the Linear weights as tensors, which quantized layers do not hold.
        attention = (nn.TransformerEncoderLayer, nn.TransformerDecoderLayer,
                     nn.MultiheadAttention)
        inside = {f"{name}.{sub}" if sub else name
                  for name, block in model.named_modules() if isinstance(block, attention)
                  for sub, _ in block.named_modules()}
        names = {name for name, m in model.named_modules()
                 if isinstance(m, (nn.Linear, nn.LSTM)) and name not in inside}
        with warnings.catch_warnings():  # torch.ao.quantization's deprecation notice
            warnings.simplefilter("ignore")
            return torch.ao.quantization.quantize_dynamic(model, names, dtype=torch.qint8)
    if precision in ("bfloat16", "float16"):
        return model.to(getattr(torch, precision))
    return model


def _device(use_gpu: bool) -> Any:
    """The task's device: the GPU Spark assigned to this task when ``use_gpu``, else the CPU."""
    import torch

    if not use_gpu:
        return torch.device("cpu")
    from pyspark import TaskContext

    context = TaskContext.get()
    resources = context.resources() if context is not None else {}
    return gpu_device(resources, torch.cuda.is_available(), torch.cuda.device_count())


def gpu_device(resources: dict[str, Any], cuda_available: bool, device_count: int) -> Any:
    """``cuda:<i>`` for the first GPU address Spark gave the task (``TaskContext.resources()``),
    ``cuda:0`` when Spark schedules no GPUs; raises when no GPU is visible at all.

    An address is a physical index; when ``CUDA_VISIBLE_DEVICES`` already narrows this
    process to the assigned GPUs (as some cluster managers do), index 0 is the assigned one.
    """
    import torch

    if not cuda_available or device_count == 0:
        raise RuntimeError(
            "useGpu=True, but this Python worker sees no CUDA device (torch.cuda.is_available() "
            "is False). Score on GPU executors with a CUDA build of torch, or set useGpu=False."
        )
    gpu = resources.get("gpu")
    addresses = list(getattr(gpu, "addresses", None) or [])
    if not addresses:
        return torch.device("cuda", 0)
    address = str(addresses[0]).strip()
    visible = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")
               if v.strip()]
    if address in visible:  # also covers UUID or MIG addresses listed there
        index = visible.index(address)
    else:
        try:
            index = int(address)
        except ValueError:
            raise RuntimeError(
                f"Spark assigned GPU {address!r} to this task, which is neither an index nor "
                f"listed in CUDA_VISIBLE_DEVICES ({os.environ.get('CUDA_VISIBLE_DEVICES')!r}). "
                "Make the executors' GPU discovery script report device indices."
            ) from None
    if index >= device_count:
        raise RuntimeError(
            f"Spark assigned GPU {address} to this task, but this worker sees only "
            f"{device_count} CUDA device(s). Check the executors' GPU discovery script and "
            "CUDA_VISIBLE_DEVICES."
        )
    return torch.device("cuda", index)


def features_matrix(arr: pa.Array, d: int) -> tuple[np.ndarray, np.ndarray]:
    """``(X, valid)``: an ``(n, d)`` float32 matrix and a mask of rows that are usable.

    A row is invalid when it is null, has a length other than ``d``, or holds a NaN/null
    value; its row in ``X`` is zero.
    """
    import pyarrow as pa

    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    n = len(arr)
    offsets = numpy_view(arr.offsets)
    lengths = np.diff(offsets)
    if arr.null_count == 0 and (lengths == d).all():
        flat = arr.flatten()
        if flat.null_count == 0 and flat.type == pa.float32():
            X = numpy_view(flat).reshape(n, d)  # zero-copy, and no pandas (see numpy_view)
        else:
            X = flat.to_numpy(zero_copy_only=False).astype(np.float32).reshape(n, d)
        valid = ~np.isnan(X).any(axis=1)
        if not valid.all():
            X = np.where(valid[:, None], X, 0).astype(np.float32)
        return X, valid
    valid = (lengths == d) & ~arr.is_null().to_numpy(zero_copy_only=False)
    values = arr.values.to_numpy(zero_copy_only=False)
    X = np.zeros((n, d), dtype=np.float32)
    if valid.any():
        rows = offsets[:-1][valid][:, None] + np.arange(d)
        X[valid] = values[rows]
    bad = np.isnan(X).any(axis=1)
    X[bad] = 0
    return X, valid & ~bad


#: Arrow primitive type names -> numpy dtypes (for numpy_view).
_NUMPY_TYPES = {"float": "float32", "double": "float64", "int32": "int32", "int64": "int64"}


def numpy_view(arr: pa.Array) -> np.ndarray:
    """A zero-copy numpy view of a primitive Arrow array without nulls.

    ``Array.to_numpy`` and ``pa.array`` start pyarrow's pandas shim, which imports pandas
    (about 45 MiB in every Python worker, ``bench.memory``); the buffer read does not.
    """
    dtype = np.dtype(_NUMPY_TYPES[str(arr.type)])
    return np.frombuffer(arr.buffers()[1], dtype=dtype, count=len(arr),
                         offset=arr.offset * dtype.itemsize)


def arrow_from_numpy(values: np.ndarray) -> pa.Array:
    """A primitive Arrow array over ``values`` (1-D float64/float32/int32), without pandas."""
    import pyarrow as pa

    values = np.ascontiguousarray(values)
    kinds = {np.dtype(np.float64): pa.float64(), np.dtype(np.float32): pa.float32(),
             np.dtype(np.int32): pa.int32()}
    return pa.Array.from_buffers(kinds[values.dtype], len(values),
                                 [None, pa.py_buffer(values)])


def _forward(model: nn.Module, X: np.ndarray, batch_size: int,
             layout: InputLayout | None = None, reconstruction: bool = False) -> np.ndarray:
    """Outputs ``(n, k)``; with ``reconstruction``, each row's mean squared error ``(n, 1)``."""
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # read-only Arrow buffer; never written
        t = torch.from_numpy(X)
    # Quantized modules have no parameters(): read device and dtype from the state.
    param = next((v for v in model.state_dict().values() if isinstance(v, torch.Tensor)
                  and v.is_floating_point()), None)
    device = param.device if param is not None else torch.device("cpu")
    reduced = param is not None and param.dtype in (torch.bfloat16, torch.float16)
    dtype = param.dtype if reduced else None
    outs = []
    with torch.inference_mode():
        for start in range(0, len(X), batch_size):
            chunk = t[start : start + batch_size].to(device, non_blocking=True)
            x = layout.to_tensor(chunk) if layout is not None else chunk
            if dtype is not None and x.is_floating_point():
                x = x.to(dtype)
            out = model(x).float()
            if reconstruction:
                out = ((out.flatten(1) - chunk.float()) ** 2).mean(dim=1, keepdim=True)
            outs.append(out.cpu())
    if not outs:
        return np.zeros((0, 1), np.float32)
    return torch.cat(outs).numpy()


def _list_array(mat: np.ndarray) -> pa.Array:
    import pyarrow as pa

    n, k = mat.shape
    offsets = arrow_from_numpy(np.arange(0, (n + 1) * k, k, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, arrow_from_numpy(mat.reshape(-1)))


def raw_prediction(logits: np.ndarray) -> np.ndarray:
    """``rawPrediction`` from the network's logits ``(n, k)``, as Spark's own classifiers.

    Two classes: ``[-m, m]`` with ``m = l1 - l0`` the log-odds, as
    ``LogisticRegressionModel``, so ``probability[1] = sigmoid(rawPrediction[1])``. More
    classes: the logits centred per row, as multinomial logistic regression's margins, so
    ``probability = softmax(rawPrediction)``. Either way softmax of the result equals
    softmax of the logits for k > 2, and element 1 ranks rows for the binary evaluators.
    """
    if logits.shape[1] == 2:
        margin = logits[:, 1] - logits[:, 0]
        return np.stack([-margin, margin], axis=1)
    return logits - logits.mean(axis=1, keepdims=True)


def score_array(arr: pa.Array, task: ScoringTask) -> pa.Array:
    """Score one Arrow batch of feature arrays."""
    X, valid = features_matrix(arr, task.num_features)
    if task.handle_invalid == "error" and not valid.all():
        bad = int((~valid).sum())
        raise ValueError(
            f"The 'featuresCol' column {task.features_col!r} has {bad} row(s) in this batch "
            f"that are null, contain NaN, or do not hold {task.num_features} values. Set "
            "handleInvalid='skip' to drop them or 'keep' to score them as NaN."
        )
    model = get_model(task)
    if uses_numpy(task):
        from spark_dl.inference.numpy_mlp import forward

        out = forward(model, X, task.batch_size)
    else:
        out = _forward(model, X, task.batch_size, task.layout, task.task == "reconstruction")
    if task.task in ("regression", "reconstruction"):
        pred = out.reshape(len(X), -1)[:, 0].astype(np.float64)
        pred[~valid] = np.nan
        if not task.attribution:
            return arrow_from_numpy(pred)
        fields = {"pred": lambda: pred, "attr": lambda: _attributions(model, X, task, None)}
    else:
        logits = raw_prediction(out.astype(np.float64))
        classes = logits.argmax(axis=1)
        fields = {
            "raw": lambda: logits,
            "prob": lambda: _probability(logits),
            "pred": lambda: classes.astype(np.float64),
            "attr": lambda: _attributions(model, X, task, classes),
        }
    return _struct(fields, task.fields, valid)


def _attributions(model: Any, X: np.ndarray, task: ScoringTask,
                  classes: np.ndarray | None) -> np.ndarray:
    from spark_dl.inference.attributions import attributions

    return attributions(model, X, task=task.task, layout=task.layout,
                        method=task.attribution, steps=task.attribution_steps,
                        baseline=task.attribution_baseline, classes=classes,
                        batch_size=task.batch_size)


def _struct(fields: dict[str, Any], names: tuple[str, ...], valid: np.ndarray) -> pa.Array:
    """The struct of the requested ``names``, each computed by its ``fields`` entry; rows
    that are not ``valid`` hold NaN."""
    import pyarrow as pa

    arrays = []
    for name in names:  # only the columns the caller asked for
        values = fields[name]()
        if not valid.all():
            values = values.copy()
            values[~valid] = np.nan
        arrays.append(arrow_from_numpy(values) if values.ndim == 1 else _list_array(values))
    return pa.StructArray.from_arrays(arrays, names=list(names))


def _probability(raw: np.ndarray) -> np.ndarray:
    """Probabilities from ``rawPrediction`` (float64): the sigmoid of the log-odds for two
    classes, else the softmax, both computed without overflow."""
    with np.errstate(over="ignore"):
        if raw.shape[1] == 2:
            p1 = 1.0 / (1.0 + np.exp(-raw[:, 1]))
            return np.stack([1.0 - p1, p1], axis=1)
        e = np.exp(raw - raw.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)


def score_batches(batches: Iterator[pa.Array], task: ScoringTask) -> Iterator[pa.Array]:
    """The body of the Arrow UDF: limit threads, then score batch by batch, reading the next
    ``task.prefetch`` batches from Spark while the current one computes."""
    limit_threads(task)
    for arr in prefetched(batches, task.prefetch):
        yield score_array(arr, task)


def limit_threads(task: ScoringTask) -> None:
    """``task.threads`` compute threads for this task: torch's intra-op threads, or
    OpenBLAS's for the numpy MLP (which must not import torch)."""
    if task.threads <= 0:
        return
    if uses_numpy(task):
        from spark_dl.inference.numpy_mlp import limit_blas_threads

        limit_blas_threads(task.threads)
    else:
        import torch

        torch.set_num_threads(task.threads)


def prefetched(items: Iterator[Any], depth: int) -> Iterator[Any]:
    """``items``, pulled by a background thread up to ``depth`` ahead of the consumer.

    Reading an Arrow batch from Spark's socket releases the GIL, and so does torch's
    forward pass: the JVM can produce batch ``i + 1`` while batch ``i`` computes, instead
    of each waiting for the other. The thread has finished (and every item has been
    taken from ``items``) when this generator is exhausted, so pyspark's own check that
    the UDF consumed its whole input still holds; an error in the thread is raised here;
    a consumer that stops early stops the thread.
    """
    if depth <= 0:
        yield from items
        return
    import queue
    import threading

    q: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def pull() -> None:
        try:
            for item in items:
                if not put(("item", item)):
                    return
        except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer
            put(("error", exc))
            return
        put(("done", None))

    thread = threading.Thread(target=pull, name="spark_dl-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = q.get()
            if kind == "done":
                break
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        thread.join(timeout=10)  # a read in flight finishes: Spark keeps sending input


def score_series(batches: Iterator[Any], task: ScoringTask) -> Iterator[Any]:
    """pandas UDF fallback for pyspark < 4.1, where Arrow UDFs do not exist."""
    import pyarrow as pa

    for series in batches:
        arr = pa.array(series, type=pa.list_(pa.float32()), from_pandas=True)
        out = score_array(arr, task)
        if not task.fields:
            yield out.to_pandas()
        else:
            # Table.from_struct_array arrived in pyarrow 15; pyspark 3.5 runs on older ones.
            names = [field.name for field in out.type]
            yield pa.Table.from_arrays(out.flatten(), names=names).to_pandas()
