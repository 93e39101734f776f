"""A multi-layer perceptron for flat feature vectors."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

_ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "silu": nn.SiLU}


def check_choice(owner: str, name: str, value: object, choices: Sequence[object]) -> None:
    """Raise the house ``ValueError`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(
            f"The '{name}' argument of {owner} must be one of {list(choices)}. Got {value!r} instead."
        )


def check_positive(owner: str, name: str, value: object) -> None:
    """Raise the house ``ValueError`` unless ``value`` is an int >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"Every '{name}' argument of {owner} must be an int >= 1. Got {value!r} instead."
        )


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
    dropout_first : bool, default False
        Also apply dropout to the input (used when the MLP is another network's head).

    Inputs of any shape ``(N, ...)`` are flattened to ``(N, in_features)``.

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
        dropout_first: bool = False,
    ) -> None:
        super().__init__()
        check_choice("MLP", "activation", activation, sorted(_ACTIVATIONS))
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"The 'dropout' argument of MLP must be in [0, 1). Got {dropout!r}.")
        layers: list[nn.Module] = [nn.Dropout(float(dropout))] if dropout_first else []
        width = int(in_features)
        for hidden in hidden_layers:
            check_positive("MLP", "hidden_layers", hidden)
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
        return self.net(x.flatten(1))
