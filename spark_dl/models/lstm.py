"""An LSTM over token ids (with an embedding) or numeric windows, for classification or
regression."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from spark_dl.models.mlp import check_positive
from spark_dl.models.sequence import SequenceInput, check_pool, pool_steps


class LSTMNet(nn.Module):
    """Embedding (or raw windows) -> LSTM -> pooled state -> linear head.

    Parameters
    ----------
    out_features : int
        Number of outputs: classes, or 1 for regression (passed by the estimator).
    input_shape : sequence of int
        ``(T,)`` token ids when ``vocab_size`` is set, else ``(T, F)`` numeric windows
        (passed by the estimator from its ``inputShape``).
    vocab_size : int, optional
        Number of token ids (``VocabularyModel.numIds``); enables the embedding.
    embedding_dim : int, default 64
        Width of the token embedding.
    hidden_size : int, default 64
        LSTM state width.
    num_layers : int, default 1
        Stacked LSTM layers.
    bidirectional : bool, default False
        Run a second LSTM backwards; the head sees both directions.
    dropout : float, default 0.0
        Dropout between LSTM layers and before the head.
    pool : {"last", "mean", "max"}, optional
        How steps become one vector: the last real step, or the mean or max over real
        steps (padding is masked). Default: ``"mean"`` for tokens, ``"last"`` for windows.
    padding_idx : int, default 0
        The padding id (``spark_dl.feature.text.PAD_ID``).

    Examples
    --------
    >>> net = LSTMNet(out_features=2, input_shape=[20], vocab_size=100)
    >>> net(torch.randint(0, 100, (4, 20))).shape
    torch.Size([4, 2])
    """

    def __init__(
        self,
        out_features: int,
        input_shape: Sequence[int],
        vocab_size: int | None = None,
        embedding_dim: int = 64,
        hidden_size: int = 64,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        pool: str | None = None,
        padding_idx: int = 0,
    ) -> None:
        super().__init__()
        for name, value in (("embedding_dim", embedding_dim), ("hidden_size", hidden_size),
                            ("num_layers", num_layers)):
            check_positive("LSTMNet", name, value)
        self.pool = pool or ("mean" if vocab_size is not None else "last")
        check_pool("LSTMNet", self.pool)
        self.inp = SequenceInput("LSTMNet", input_shape, vocab_size, embedding_dim, padding_idx,
                                 project=False)
        self.lstm = nn.LSTM(self.inp.width, int(hidden_size), num_layers=int(num_layers),
                            batch_first=True, bidirectional=bool(bidirectional),
                            dropout=float(dropout) if num_layers > 1 else 0.0)
        self.drop = nn.Dropout(float(dropout))
        self.head = nn.Linear(int(hidden_size) * (2 if bidirectional else 1), int(out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq, mask = self.inp(x)
        h, _ = self.lstm(seq)
        return self.head(self.drop(pool_steps(h, mask, self.pool)))
