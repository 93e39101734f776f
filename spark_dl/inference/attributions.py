"""Executor side of explanations: per-row feature attributions of a scored batch.

Runs in Spark's Python workers, inside the scoring UDF's pass over each Arrow batch (see
:func:`spark_dl.inference.scoring.score_array`), on the same cached network. Three methods,
the ``attributionMethod`` Param of the torch models:

``integrated_gradients``
    Sundararajan et al. (2017): ``(x - b) * mean_k grad f(b + a_k (x - b))`` over ``steps``
    points ``a_k = (k + 1/2) / steps`` (the midpoint rule). The attributions of a row add
    up to ``f(x) - f(b)`` as ``steps`` grows (completeness), and a feature the output does
    not depend on gets zero.
``gradient_x_input``
    ``(x - b) * grad f(x)``: one forward and one backward pass; exact for a linear ``f``,
    a first-order view otherwise.
``reconstruction_error``
    The anomaly detector's own decomposition: each feature's squared reconstruction error
    divided by the row's width, so a row's attributions add up to its anomaly score.

``f`` is what the stage writes: the predicted class's ``rawPrediction`` for classifiers
(the log-odds toward that class for two classes, the centred logit for more), the
prediction for regressors, the anomaly score (mean squared reconstruction error) for the
anomaly detector. ``b`` is the baseline row (zeros unless the ``attributionBaseline``
Param gives one).
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

if TYPE_CHECKING:
    import torch
    from torch import nn

    from spark_dl.inputs import InputLayout

#: The attributionMethod Param's values.
METHODS = ("integrated_gradients", "gradient_x_input", "reconstruction_error")


def target_fn(task: str, layout: InputLayout, model: nn.Module, dtype: torch.dtype | None = None
              ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``f(x_flat, cls) -> (n,)``: the per-row output that attributions explain, from float32
    rows (the network sees them in ``dtype``, as in scoring; the reconstruction target stays
    float32, as the anomaly score's)."""
    import torch

    def f(x: torch.Tensor, cls: torch.Tensor) -> torch.Tensor:
        out = model(layout.to_tensor(x if dtype is None else x.to(dtype))).float()
        if task == "reconstruction":
            return ((out.flatten(1) - x.float()) ** 2).mean(dim=1)
        out = out.reshape(len(x), -1)
        if task == "regression":
            return out[:, 0]
        if out.shape[1] == 2:  # rawPrediction[c] = +-(l1 - l0)
            margin = out[:, 1] - out[:, 0]
            return torch.where(cls == 1, margin, -margin)
        centred = out - out.mean(dim=1, keepdim=True)
        return centred.gather(1, cls.view(-1, 1)).squeeze(1)

    return f


def attributions(model: nn.Module, X: np.ndarray, *, task: str, layout: InputLayout,
                 method: str, steps: int, baseline: tuple[float, ...] = (),
                 classes: np.ndarray | None = None, batch_size: int = 4096) -> np.ndarray:
    """``(n, d)`` float64 attributions of the rows of ``X`` (``(n, d)`` float32).

    Parameters
    ----------
    model : torch.nn.Module
        The eval-mode network (float32, bfloat16 or float16; not quantized).
    X : numpy.ndarray
        The batch's rows, flat, as the scoring pass read them.
    task : str
        ``"classification"``, ``"regression"`` or ``"reconstruction"``.
    layout : InputLayout
        How a flat row becomes the network's input tensor.
    method : str
        One of :data:`METHODS`.
    steps : int
        Integration points of ``integrated_gradients``.
    baseline : tuple of float
        The baseline row; empty means zeros.
    classes : numpy.ndarray, optional
        The predicted class of each row (classification).
    batch_size : int
        Scoring's rows per forward pass; a gradient pass takes a quarter of it in network
        inputs, as it keeps every layer's activations (``integrated_gradients`` evaluates
        ``steps`` inputs per row, so it takes ``batch_size // 4 // steps`` rows at a time).
    """
    import torch

    n, d = X.shape
    if n == 0:
        return np.zeros((0, d), np.float64)
    device, dtype = _placement(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # read-only Arrow buffer; never written
        x_all = torch.from_numpy(X)
    base = torch.tensor(baseline or [0.0] * d, dtype=torch.float32)
    cls_all = torch.from_numpy(np.asarray(classes if classes is not None
                                          else np.zeros(n), dtype=np.int64))
    if method == "reconstruction_error":
        return _reconstruction_error(model, x_all, layout, device, dtype, batch_size)
    f = target_fn(task, layout, model, dtype if dtype != torch.float32 else None)
    points = steps if method == "integrated_gradients" else 1
    # A backward pass keeps every layer's activations: a quarter of scoring's batch.
    rows = max(1, batch_size // 4 // points)
    out = []
    # cuDNN's RNN backward refuses eval mode; the native kernels compute the same gradient.
    # (The flag is process-wide; a Python worker runs one task at a time.)
    rnn = any(isinstance(m, torch.nn.RNNBase) for m in model.modules())
    with torch.enable_grad(), torch.backends.cudnn.flags(enabled=not rnn):
        for start in range(0, n, rows):
            x = x_all[start:start + rows].to(device)
            b = base.to(device)
            cls = cls_all[start:start + rows].to(device)
            grads = _mean_gradient(f, x, b, cls, points, method)
            out.append(((x - b) * grads).double().cpu())
    return torch.cat(out).numpy()


def _placement(model: nn.Module) -> tuple[Any, Any]:
    """The network's device and floating dtype, read from its state (as scoring does)."""
    import torch

    state = next((v for v in model.state_dict().values()
                  if isinstance(v, torch.Tensor) and v.is_floating_point()), None)
    if state is None:
        return torch.device("cpu"), torch.float32
    return state.device, state.dtype


def _mean_gradient(f: Callable[[Any, Any], Any], x: torch.Tensor, b: torch.Tensor,
                   cls: torch.Tensor, points: int, method: str) -> torch.Tensor:
    """The gradient of ``f`` at ``x`` (``gradient_x_input``), or its mean over ``points``
    midpoints of the straight path from ``b`` to ``x`` (``integrated_gradients``)."""
    import torch

    m, d = x.shape
    if method == "integrated_gradients":
        alphas = (torch.arange(points, device=x.device, dtype=torch.float32) + 0.5) / points
        path = b + alphas.view(points, 1, 1) * (x - b).unsqueeze(0)  # (points, m, d)
        inputs = path.reshape(points * m, d)
        cls = cls.repeat(points)
    else:
        inputs = x
    inputs = inputs.float().detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(f(inputs, cls).sum(), inputs)
    return grad.float().reshape(-1, m, d).mean(dim=0)


def _reconstruction_error(model: nn.Module, x_all: torch.Tensor, layout: InputLayout,
                          device: Any, dtype: torch.dtype, batch_size: int) -> np.ndarray:
    """Each feature's squared reconstruction error over the row width (sums to the score)."""
    import torch

    out = []
    d = x_all.shape[1]
    with torch.inference_mode():
        for start in range(0, len(x_all), batch_size):
            x = x_all[start:start + batch_size].to(device)
            recon = model(layout.to_tensor(x.to(dtype))).float().flatten(1)
            out.append((((recon - x) ** 2) / d).double().cpu())
    return torch.cat(out).numpy()


__all__ = ["METHODS", "attributions", "target_fn"]
