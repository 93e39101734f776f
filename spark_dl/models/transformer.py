"""A Transformer encoder classifier with sinusoidal positions and a padding mask."""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from spark_dl.models.mlp import check_positive
from spark_dl.models.sequence import SequenceInput, check_pool, pool_steps


def sinusoidal_positions(length: int, dim: int) -> torch.Tensor:
    """The ``(length, dim)`` sine/cosine position table of "Attention Is All You Need"."""
    pos = torch.arange(length, dtype=torch.float32).unsqueeze(1)
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq[: dim // 2])
    return table


class TransformerEncoderNet(nn.Module):
    """Tokens or windows -> ``d_model`` + positions -> encoder layers -> pooled -> head.

    The encoder layers normalize before attention and the feed-forward block (pre-LN),
    which trains more steadily on small data than the original post-LN arrangement.

    Padding tokens are masked out of attention and pooling; a row of padding only still
    scores (its first step is attended to), so it never produces NaN.

    Parameters
    ----------
    out_features : int
        Number of outputs (passed by the estimator).
    input_shape : sequence of int
        ``(T,)`` token ids when ``vocab_size`` is set, else ``(T, F)`` numeric windows.
    vocab_size : int, optional
        Number of token ids (``VocabularyModel.numIds``); enables the embedding.
    d_model : int, default 64
        Model width (embedding or projection size); must be divisible by ``nhead``.
    nhead : int, default 4
        Attention heads.
    num_layers : int, default 2
        Encoder layers.
    dim_feedforward : int, default 128
        Width of each layer's feed-forward block.
    dropout : float, default 0.1
        Dropout inside the encoder and before the head.
    pool : {"mean", "max", "last"}, default "mean"
        How the encoded steps become one vector (padding masked).
    padding_idx : int, default 0
        The padding id.

    Examples
    --------
    >>> net = TransformerEncoderNet(out_features=3, input_shape=[12], vocab_size=50)
    >>> net(torch.randint(0, 50, (2, 12))).shape
    torch.Size([2, 3])
    """

    def __init__(
        self,
        out_features: int,
        input_shape: Sequence[int],
        vocab_size: int | None = None,
        d_model: int = 64,
        nhead: int = 4,
        num_layers: int = 2,
        dim_feedforward: int = 128,
        dropout: float = 0.1,
        pool: str = "mean",
        padding_idx: int = 0,
    ) -> None:
        super().__init__()
        for name, value in (("d_model", d_model), ("nhead", nhead), ("num_layers", num_layers),
                            ("dim_feedforward", dim_feedforward)):
            check_positive("TransformerEncoderNet", name, value)
        if d_model % nhead:
            raise ValueError(
                "The 'd_model' argument of TransformerEncoderNet must be divisible by 'nhead'. "
                f"Got d_model={d_model}, nhead={nhead}."
            )
        check_pool("TransformerEncoderNet", pool)
        self.pool = pool
        self.inp = SequenceInput("TransformerEncoderNet", input_shape, vocab_size, d_model,
                                 padding_idx, project=True)
        self.register_buffer("positions", sinusoidal_positions(self.inp.shape[0], int(d_model)),
                             persistent=False)
        layer = nn.TransformerEncoderLayer(int(d_model), int(nhead), int(dim_feedforward),
                                           float(dropout), batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, int(num_layers),
                                             enable_nested_tensor=False)
        self.drop = nn.Dropout(float(dropout))
        self.head = nn.Linear(int(d_model), int(out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq, mask = self.inp(x)
        # A row of padding only would mask every key and make attention NaN: let it see
        # its first step (the output is pooled over no real step anyway).
        mask = mask.clone()
        mask[:, 0] |= ~mask.any(dim=1)
        h = self.encoder(seq + self.positions, src_key_padding_mask=~mask)
        return self.head(self.drop(pool_steps(h, mask, self.pool)))
