"""Negative sampling for implicit feedback: each positive row gets ``count`` sampled items.

Runs on the ranks, inside the training loop (:mod:`spark_dl.training.loop`), so every epoch
sees fresh negatives and each rank samples for its own rows: the work stays as even as the
rows are. The items are drawn uniformly or in proportion to their popularity (their number
of interactions in the training data), from a generator seeded by the step, so a resumed
fit draws exactly the negatives an uninterrupted one would. A sampled item may be one the
user did interact with; at catalogue sizes that matter it rarely is, and the loss treats
it as a negative, as sampled-softmax and word2vec-style training do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.nn.functional as F

#: The ``negativeSampling`` Param's values.
SAMPLINGS = ("popularity", "uniform")


@dataclass
class NegativeSampler:
    """Draws ``count`` negative items per positive ``[user, item]`` row."""

    count: int
    num_items: int
    #: Cumulative item probabilities (float64), or None for uniform sampling.
    cdf: torch.Tensor | None = None

    @classmethod
    def from_plan(cls, plan: dict[str, Any]) -> NegativeSampler:
        """From the plan's ``negatives``: ``count``, ``num_items`` and ``popularity``
        (interactions per item index, or None for uniform)."""
        counts: Sequence[float] | None = plan.get("popularity")
        cdf = None
        if counts is not None:
            p = torch.as_tensor(counts, dtype=torch.float64)
            cdf = torch.cumsum(p / p.sum(), dim=0)
        return cls(int(plan["count"]), int(plan["num_items"]), cdf)

    def sample(self, x: torch.Tensor, seed: int) -> torch.Tensor:
        """``(len(x) * count, 2)`` rows: each row of ``x`` repeated ``count`` times, with a
        sampled item in place of its own."""
        n = x.shape[0] * self.count
        gen = torch.Generator().manual_seed(seed)
        if self.cdf is None:
            items = torch.randint(self.num_items, (n,), generator=gen)
        else:
            u = torch.rand(n, generator=gen, dtype=torch.float64)
            items = torch.searchsorted(self.cdf, u).clamp_(max=self.num_items - 1)
        neg = x.repeat_interleave(self.count, dim=0).clone()
        neg[:, 1] = items.to(device=x.device, dtype=x.dtype)
        return neg


def implicit_losses(out: torch.Tensor, n: int, count: int) -> torch.Tensor:
    """Per positive row: ``softplus(-s_pos) + sum_k softplus(s_neg_k)``, the binary
    cross-entropy of the positive and its ``count`` negatives (``out``: positives first)."""
    out = out.reshape(-1)
    return F.softplus(-out[:n]) + F.softplus(out[n:].view(n, count)).sum(dim=1)


def sampled_auc_hits(out: torch.Tensor, n: int, count: int) -> float:
    """How many (positive, negative) pairs rank the positive higher (ties count half)."""
    out = out.reshape(-1)
    pos, neg = out[:n, None], out[n:].view(n, count)
    return float((pos > neg).double().sum() + 0.5 * (pos == neg).double().sum())
