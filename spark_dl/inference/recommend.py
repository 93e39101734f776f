"""Executor side of top-k recommendation: Arrow record batches in, candidate rows out.

Runs in Spark's Python workers through ``DataFrame.mapInArrow`` (classic and Connect alike),
with the network from the scoring cache (:func:`spark_dl.inference.scoring.get_model`).
Scores are computed a block at a time (``network.score_matrix`` when it has one: one matrix
product for the two-tower network) and reduced to each query's top ``k`` as the blocks go,
so memory holds one block of scores, never a query's whole row of the catalogue.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

if TYPE_CHECKING:
    import pyarrow as pa

    from spark_dl.inference.scoring import ScoringTask

#: Scores held at once per block (queries x candidates).
BLOCK_SCORES = 1 << 20


@dataclass(frozen=True)
class TopK:
    """What a recommendation task computes: each query's ``k`` best candidates."""

    scoring: ScoringTask  # the network (its weights, device, threads)
    k: int
    #: "user": queries are users, candidates items; "item": the reverse.
    query: str
    #: Candidates when each row holds one query (all of the other side); 0 when each row
    #: holds a block of queries and a block of candidates.
    num_candidates: int = 0


def _scores(net: Any, users: Any, items: Any) -> Any:
    """``(len(users), len(items))`` scores, through ``score_matrix`` or pair by pair."""
    import torch

    if hasattr(net, "score_matrix"):
        return net.score_matrix(users, items)
    pairs = torch.stack([users.repeat_interleave(len(items)), items.repeat(len(users))], dim=1)
    return net(pairs.float()).reshape(len(users), len(items))


def top_k(net: Any, queries: np.ndarray, candidates: np.ndarray, k: int, query: str,
          device: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(index, score)`` arrays ``(len(queries), min(k, len(candidates)))``: each query's
    best candidates, best first, scoring ``candidates`` in blocks."""
    import torch

    k = min(k, len(candidates))
    q = torch.from_numpy(np.array(queries, dtype=np.int64)).to(device)  # a writable copy
    cand = torch.from_numpy(np.array(candidates, dtype=np.int64)).to(device)
    width = max(k, min(len(cand), BLOCK_SCORES // max(len(q), 1)))
    best_s = torch.full((len(q), 0), -torch.inf, device=device)
    best_i = torch.zeros((len(q), 0), dtype=torch.long, device=device)
    with torch.inference_mode():
        for start in range(0, len(cand), width):
            block = cand[start : start + width]
            s = _scores(net, q, block) if query == "user" else _scores(net, block, q).T
            s = torch.cat([best_s, s.float()], dim=1)
            i = torch.cat([best_i, block.expand(len(q), -1)], dim=1)
            best_s, pos = s.topk(k, dim=1)
            best_i = i.gather(1, pos)
    return best_i.cpu().numpy(), best_s.cpu().numpy()


def _device(net: Any) -> Any:
    import torch

    param = next(iter(net.parameters()), None)
    return param.device if param is not None else torch.device("cpu")


def _rows(queries: np.ndarray, idx: np.ndarray, scores: np.ndarray) -> pa.RecordBatch:
    import pyarrow as pa

    k = idx.shape[1]
    return pa.RecordBatch.from_arrays(
        [pa.array(np.repeat(queries, k).astype(np.int32)),
         pa.array(idx.reshape(-1).astype(np.int32)),
         pa.array(scores.reshape(-1).astype(np.float32))],
        names=["__q", "__c", "__s"])


def recommend_batches(batches: Iterator[pa.RecordBatch], task: TopK) -> Iterator[pa.RecordBatch]:
    """Rows hold one query index each (column ``__q``); every candidate is scored."""
    from spark_dl.inference.scoring import get_model, limit_threads

    limit_threads(task.scoring)
    net = get_model(task.scoring)
    candidates = np.arange(task.num_candidates)
    chunk = max(1, BLOCK_SCORES // max(task.num_candidates, 1))
    for batch in batches:
        queries = batch.column(0).to_numpy(zero_copy_only=False)
        for start in range(0, len(queries), chunk):
            q = queries[start : start + chunk]
            idx, scores = top_k(net, q, candidates, task.k, task.query, _device(net))
            yield _rows(q, idx, scores)


def block_batches(batches: Iterator[pa.RecordBatch], task: TopK) -> Iterator[pa.RecordBatch]:
    """Rows hold a block of queries (``__qs``) and a block of candidates (``__cs``): each
    query's top ``k`` within the block, merged across blocks by the caller."""
    from spark_dl.inference.scoring import get_model, limit_threads

    limit_threads(task.scoring)
    net = get_model(task.scoring)
    for batch in batches:
        qs, cs = batch.column(0), batch.column(1)
        for row in range(batch.num_rows):
            q = qs[row].values.to_numpy(zero_copy_only=False)
            c = cs[row].values.to_numpy(zero_copy_only=False)
            idx, scores = top_k(net, q, c, task.k, task.query, _device(net))
            yield _rows(q, idx, scores)


def factor_batches(batches: Iterator[pa.RecordBatch], task: TopK) -> Iterator[pa.RecordBatch]:
    """Rows hold an index (``__q``); out: ``(__q, features array<float>)`` from the network's
    ``user_vectors`` or ``item_vectors`` (``task.query`` names the side)."""
    import pyarrow as pa
    import torch

    from spark_dl.inference.scoring import get_model, limit_threads

    limit_threads(task.scoring)
    net = get_model(task.scoring)
    vectors = net.user_vectors if task.query == "user" else net.item_vectors
    for batch in batches:
        q = batch.column(0).to_numpy(zero_copy_only=False)
        with torch.inference_mode():
            out = vectors(torch.as_tensor(q, dtype=torch.long, device=_device(net)))
        mat = out.float().cpu().numpy()
        offsets = pa.array(np.arange(0, (len(q) + 1) * mat.shape[1], mat.shape[1],
                                     dtype=np.int32))
        values = pa.ListArray.from_arrays(offsets, pa.array(mat.reshape(-1)))
        yield pa.RecordBatch.from_arrays([pa.array(q.astype(np.int32)), values],
                                         names=["__q", "features"])
