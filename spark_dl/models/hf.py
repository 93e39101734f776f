"""A pretrained transformers encoder with a classification (or regression) head.

``TorchClassifier(model="hf:<folder>")`` resolves to this network (``"hf_encoder"``) with
the folder's ``config.json`` in ``modelParams["config"]``, and starts training from the
folder's weights (see :mod:`spark_dl.pretrained.finetune`). The network reads token ids
``(N, T)`` as :class:`~spark_dl.HFTokenizer` writes them; the attention mask is the ids
that are not the config's ``pad_token_id``. Building it reads the config as data: only
architectures built into ``transformers`` are built, and no code is imported from a folder.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn


class HFEncoderNet(nn.Module):
    """``transformers.AutoModel`` of ``config``, pooled, then dropout and a linear head.

    Parameters
    ----------
    config : dict
        The encoder's ``config.json`` (``model_type`` names a built-in architecture).
    out_features : int
        Classes (classifier) or 1 (regressor), passed by the estimator.
    pooling : str
        ``"cls"`` (the first token's state) or ``"mean"`` (over unmasked tokens).
    dropout : float
        Dropout before the head.
    input_shape : sequence of int, optional
        Passed by the estimator (``[T]``); unused.
    """

    def __init__(self, config: dict[str, Any], out_features: int, pooling: str = "cls",
                 dropout: float = 0.1, input_shape: Sequence[int] | None = None) -> None:
        super().__init__()
        from spark_dl.inference.hf import build_encoder

        if pooling not in ("cls", "mean"):
            raise ValueError(f"pooling must be 'cls' or 'mean'. Got {pooling!r} instead.")
        if config.get("auto_map"):
            raise ValueError("The encoder config asks for custom model code (auto_map); only "
                             "architectures built into transformers are built.")
        import json

        if config.get("pad_token_id") is None:
            raise ValueError("The encoder config has no pad_token_id, so padding cannot be "
                             "masked: set pad_token_id in the folder's config.json to the "
                             "tokenizer's padding id.")
        self.encoder = build_encoder(json.dumps(config).encode("utf-8"))
        self.pad_id = int(config["pad_token_id"])
        self.pooling = pooling
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(int(self.encoder.config.hidden_size), out_features)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        from spark_dl.inference.hf import pool

        ids = ids.long()
        mask = (ids != self.pad_id).long()
        hidden = self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        return self.head(self.dropout(pool(hidden, mask, self.pooling, False)))
