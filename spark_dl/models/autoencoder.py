"""Reconstruction networks for anomaly detection: dense or LSTM autoencoders."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from spark_dl.models.mlp import MLP, check_choice, check_positive


class AutoEncoder(nn.Module):
    """Encode each row to a small code and decode it back to the row's own shape.

    ``kind="dense"`` treats the row as a flat vector: an MLP encoder
    ``in_features -> hidden_layers... -> latent_dim`` and its mirror image as decoder.
    ``kind="lstm"`` reads a ``(T, F)`` window: an LSTM encoder's last state is the code,
    repeated over T steps into an LSTM decoder and a linear layer back to F values.
    The output is flat, ``(N, in_features)``, like the input rows.

    Parameters
    ----------
    in_features : int
        Values per row (passed by the estimator).
    input_shape : sequence of int, optional
        ``(T, F)`` for ``kind="lstm"`` (passed by the estimator from ``inputShape``).
    kind : {"dense", "lstm"}, default "dense"
        Encoder and decoder type.
    hidden_layers : sequence of int, default (64, 32)
        Dense encoder widths (the decoder mirrors them).
    latent_dim : int, default 8
        Size of the code; for ``lstm`` the LSTM state width.
    num_layers : int, default 1
        LSTM layers (``lstm`` only).
    dropout : float, default 0.0
        Dropout in the dense encoder.

    Examples
    --------
    >>> AutoEncoder(in_features=12)(torch.zeros(5, 12)).shape
    torch.Size([5, 12])
    """

    def __init__(
        self,
        in_features: int,
        input_shape: Sequence[int] | None = None,
        kind: str = "dense",
        hidden_layers: Sequence[int] = (64, 32),
        latent_dim: int = 8,
        num_layers: int = 1,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        check_choice("AutoEncoder", "kind", kind, ("dense", "lstm"))
        check_positive("AutoEncoder", "latent_dim", latent_dim)
        self.kind, self.in_features = kind, int(in_features)
        if kind == "dense":
            self.encoder = MLP(in_features=in_features, out_features=latent_dim,
                               hidden_layers=hidden_layers, dropout=dropout)
            self.decoder = MLP(in_features=latent_dim, out_features=in_features,
                               hidden_layers=list(reversed(list(hidden_layers))))
            return
        shape = tuple(int(v) for v in (input_shape or ()))
        if len(shape) != 2:
            raise ValueError(
                "The 'input_shape' argument of AutoEncoder(kind='lstm') must be (T, F), for "
                f"example the estimator's inputShape=[16, 4]. Got {list(shape)!r}."
            )
        check_positive("AutoEncoder", "num_layers", num_layers)
        self.shape = shape
        self.enc = nn.LSTM(shape[1], int(latent_dim), num_layers=int(num_layers), batch_first=True)
        self.dec = nn.LSTM(int(latent_dim), int(latent_dim), num_layers=int(num_layers),
                           batch_first=True)
        self.out = nn.Linear(int(latent_dim), shape[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not x.is_floating_point():  # keeps bfloat16/float16 inputs (inferencePrecision)
            x = x.float()
        if self.kind == "dense":
            return self.decoder(self.encoder(x.flatten(1)))
        seq = x.reshape(x.shape[0], *self.shape)
        _, (h, _) = self.enc(seq)
        code = h[-1].unsqueeze(1).expand(-1, self.shape[0], -1)
        out, _ = self.dec(code)
        return self.out(out).flatten(1)
