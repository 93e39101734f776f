"""Shared pieces of the sequence networks: token or numeric inputs, masks and pooling.

A sequence network takes either token ids ``(N, T)`` (int64; set ``vocab_size``, and id
``padding_idx`` marks padding) or numeric windows ``(N, T, F)`` (floats; leave
``vocab_size`` unset). Flat rows are reshaped from the estimator's ``inputShape``.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from spark_dl.models.mlp import check_choice, check_positive

POOLS = ("last", "mean", "max")


class SequenceInput(nn.Module):
    """Embeds token ids or projects numeric windows; returns ``(x, mask)``.

    ``x`` is ``(N, T, dim)`` and ``mask`` is ``(N, T)``, True at real (non-padding) steps.
    """

    def __init__(self, owner: str, input_shape: Sequence[int], vocab_size: int | None,
                 dim: int, padding_idx: int, project: bool) -> None:
        super().__init__()
        shape = tuple(int(v) for v in input_shape)
        if vocab_size is not None:
            check_positive(owner, "vocab_size", vocab_size)
            if len(shape) != 1:
                raise ValueError(
                    f"With 'vocab_size' set, {owner} reads token ids: its 'input_shape' must be "
                    f"(T,), one int (the sequence length). Got {list(shape)!r}; for numeric "
                    "windows of shape (T, F) leave vocab_size unset."
                )
            self.embed: nn.Module | None = nn.Embedding(int(vocab_size), int(dim),
                                                        padding_idx=int(padding_idx))
            self.width = int(dim)
        else:
            if len(shape) != 2:
                raise ValueError(
                    f"Without 'vocab_size', {owner} reads numeric windows: its 'input_shape' "
                    f"must be (T, F), for example the estimator's inputShape=[16, 4] for "
                    f"SequenceWindower output. Got {list(shape)!r}; for token ids set vocab_size."
                )
            self.embed = None
            self.width = int(dim) if project else shape[1]
        self.proj = nn.Linear(shape[1], int(dim)) if (vocab_size is None and project) else None
        self.shape, self.padding_idx = shape, int(padding_idx)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.reshape(x.shape[0], *self.shape)
        if self.embed is not None:
            ids = x.long()
            return self.embed(ids), ids != self.padding_idx
        mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        if not x.is_floating_point():  # keeps bfloat16/float16 inputs (inferencePrecision)
            x = x.float()
        return (self.proj(x) if self.proj is not None else x), mask


def pool_steps(h: torch.Tensor, mask: torch.Tensor, how: str) -> torch.Tensor:
    """Reduce ``(N, T, H)`` to ``(N, H)`` over the steps where ``mask`` is True.

    ``last`` takes the last real step (padding may be on either side); a row with no real
    step gives zeros for ``mean`` and ``max`` and step ``T - 1`` for ``last``.
    """
    if how == "last":
        steps = torch.arange(h.shape[1], device=h.device).expand_as(mask)
        last = torch.where(mask, steps, torch.zeros_like(steps)).amax(dim=1)
        last = torch.where(mask.any(dim=1), last, torch.full_like(last, h.shape[1] - 1))
        return h[torch.arange(h.shape[0], device=h.device), last]
    m = mask.unsqueeze(-1).to(h.dtype)
    if how == "mean":
        return (h * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)
    filled = h.masked_fill(~mask.unsqueeze(-1), float("-inf")).amax(dim=1)
    return torch.where(torch.isfinite(filled), filled, torch.zeros_like(filled))


def check_pool(owner: str, pool: str) -> None:
    """Raise unless ``pool`` is a known pooling."""
    check_choice(owner, "pool", pool, POOLS)
