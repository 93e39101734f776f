"""A multi-layer perceptron for flat feature vectors."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

_ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "silu": nn.SiLU}


class MLP(nn.Module):
    """Fully connected network: ``in_features -> hidden_layers... -> out_features``.

    Parameters
    ----------
    in_features : int
        Width of the input vector (passed by the estimator).
    out_features : int
        Number of outputs: classes for a classifier, 1 for a regressor (passed by the estimator).
    hidden_layers : sequence of int, default (64, 32)
        Width of each hidden layer; empty gives a linear model.
    dropout : float, default 0.0
        Dropout probability after each hidden activation.
    activation : {"relu", "gelu", "tanh", "silu"}, default "relu"
        Hidden activation.
    batch_norm : bool, default False
        Insert ``BatchNorm1d`` before each hidden activation.

    Examples
    --------
    >>> MLP(in_features=4, out_features=2, hidden_layers=[8])(torch.zeros(3, 4)).shape
    torch.Size([3, 2])
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        hidden_layers: Sequence[int] = (64, 32),
        dropout: float = 0.0,
        activation: str = "relu",
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ValueError(
                f"The 'activation' argument of MLP must be one of {sorted(_ACTIVATIONS)}. "
                f"Got {activation!r} instead."
            )
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"The 'dropout' argument of MLP must be in [0, 1). Got {dropout!r}.")
        layers: list[nn.Module] = []
        width = int(in_features)
        for hidden in hidden_layers:
            if int(hidden) < 1:
                raise ValueError(
                    f"Every entry of MLP 'hidden_layers' must be an int >= 1. Got {hidden!r}."
                )
            layers.append(nn.Linear(width, int(hidden)))
            if batch_norm:
                layers.append(nn.BatchNorm1d(int(hidden)))
            layers.append(_ACTIVATIONS[activation]())
            if dropout:
                layers.append(nn.Dropout(float(dropout)))
            width = int(hidden)
        layers.append(nn.Linear(width, int(out_features)))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
