"""A torch-free forward pass of the zoo's ``mlp`` for CPU scoring in float32.

A Python worker that scores the built-in MLP needs no torch: the weights are read with
``safetensors.numpy`` and each layer is a BLAS matrix product (numpy's OpenBLAS), the
batch-norm, activation and output in numpy. The worker then stays free of torch's ~190 MiB
(``bench.memory``), and OpenBLAS's single-thread SGEMM ran these layer shapes faster
than torch's CPU kernels (``bench.scoring``). Outputs agree with the torch module to
float32 rounding (``tests/unit/test_scoring.py``).

Used when ``spark.dl.inference.backend`` is ``auto`` (the default) and the task scores
the ``mlp`` zoo network on the CPU in float32 with an activation numpy computes exactly
(``relu``, ``tanh``, ``silu``; torch's exact ``gelu`` needs ``erf``, which numpy lacks).
Anything else, or ``backend=torch``, runs the torch module.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any, Callable

import numpy as np

#: Activations computed here, as torch computes them.
_ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "relu": lambda h: np.maximum(h, 0, out=h),
    "tanh": lambda h: np.tanh(h, out=h),
    "silu": lambda h: np.multiply(h, 1.0 / (1.0 + np.exp(-h)), out=h),
}
_BN_EPS = 1e-5  # torch.nn.BatchNorm1d's default, which MLP uses


@lru_cache(maxsize=64)  # asked once per batch: parse each spec once per worker
def supports(spec_json: str, *, use_gpu: bool, precision: str, input_dtype: str,
             task: str) -> bool:
    """Whether :class:`NumpyMLP` computes this scoring task."""
    if use_gpu or precision != "float32" or input_dtype != "float32":
        return False
    if task not in ("classification", "regression"):
        return False
    spec = json.loads(spec_json)
    return bool(spec.get("name") == "mlp"
                and (spec.get("kwargs") or {}).get("activation", "relu") in _ACTIVATIONS)


class NumpyMLP:
    """The eval-mode forward pass of :class:`spark_dl.models.mlp.MLP` from its weights.

    Parameters
    ----------
    spec_json : str
        The task's :class:`~spark_dl.model_spec.ModelSpec` JSON (``name`` ``mlp``).
    weights : bytes
        The model's safetensors bytes (the state dict of ``MLP``).
    """

    def __init__(self, spec_json: str, weights: bytes) -> None:
        from safetensors.numpy import load

        kwargs = json.loads(spec_json).get("kwargs") or {}
        state = load(weights)
        self.activation = _ACTIVATIONS[kwargs.get("activation", "relu")]
        self.layers: list[tuple[str, Any]] = []
        for kind, index in _layer_plan(kwargs):
            prefix = f"net.{index}."
            if kind == "linear":
                w = state[prefix + "weight"].astype(np.float32)
                self.layers.append(("linear", (np.ascontiguousarray(w.T),
                                               state[prefix + "bias"].astype(np.float32))))
            elif kind == "bn":  # folded: y = x * scale + shift
                scale = state[prefix + "weight"] / np.sqrt(state[prefix + "running_var"]
                                                           + _BN_EPS)
                shift = state[prefix + "bias"] - state[prefix + "running_mean"] * scale
                self.layers.append(("affine", (scale.astype(np.float32),
                                               shift.astype(np.float32))))
            else:
                self.layers.append(("act", None))
        self.in_features = self.layers[0][1][0].shape[0]

    def __call__(self, X: np.ndarray) -> np.ndarray:
        """Outputs ``(n, out_features)`` float32 for ``X`` ``(n, in_features)``."""
        h = X
        with np.errstate(over="ignore"):  # silu: exp(-h) may overflow to inf, giving 0
            return self._layers(h)

    def _layers(self, h: np.ndarray) -> np.ndarray:
        for kind, value in self.layers:
            if kind == "linear":
                h = h @ value[0]
                h += value[1]
            elif kind == "affine":
                h *= value[0]
                h += value[1]
            else:
                h = self.activation(h)
        return h


def _layer_plan(kwargs: dict[str, Any]) -> list[tuple[str, int]]:
    """``(kind, index in MLP.net)`` for the layers with weights or an effect at eval time,
    following :class:`~spark_dl.models.mlp.MLP`'s construction (dropout takes an index
    but is the identity at eval)."""
    plan: list[tuple[str, int]] = []
    index = 1 if kwargs.get("dropout_first", False) else 0
    dropout = float(kwargs.get("dropout", 0.0))
    for _ in kwargs.get("hidden_layers", (64, 32)):
        plan.append(("linear", index))
        index += 1
        if kwargs.get("batch_norm", False):
            plan.append(("bn", index))
            index += 1
        plan.append(("act", index))
        index += 1
        if dropout:
            index += 1
    plan.append(("linear", index))
    return plan


def forward(net: NumpyMLP, X: np.ndarray, batch_size: int) -> np.ndarray:
    """``net`` over ``X`` in chunks of ``batch_size`` rows, as the torch path batches."""
    if len(X) == 0:
        return np.zeros((0, 1), np.float32)
    if len(X) <= batch_size:
        return net(X)
    return np.concatenate([net(X[s : s + batch_size]) for s in range(0, len(X), batch_size)])


def limit_blas_threads(threads: int) -> None:
    """Limit OpenBLAS (numpy's BLAS) to ``threads`` in this worker, as torch's intra-op
    threads are limited for the torch path; without it each task would start one thread
    per core and the tasks would fight for them."""
    if threads <= 0:
        return
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads, user_api="blas")
