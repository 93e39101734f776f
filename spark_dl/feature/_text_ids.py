"""Executor side of :class:`spark_dl.feature.text.VocabularyModel`: token arrays to ids.

Runs in Spark's Python workers and receives plain values only (:class:`IdsTask`); the
token -> id dict is built once per worker and vocabulary.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import Column

#: Number of reserved ids before the first vocabulary token (padding 0, unknown 1).
NUM_RESERVED = 2
PAD_ID, UNK_ID = 0, 1

@dataclass(frozen=True)
class IdsTask:
    """Plain values a mapping task needs; picklable, no Params or SparkSession."""

    key: str  # the vocabulary's SHA-256: the per-worker lookup cache key
    vocabulary: Any  # a Broadcast of the tokens, in id order from NUM_RESERVED
    length: int
    pre_pad: bool
    pre_truncate: bool


_LOOKUPS: OrderedDict[str, dict[str, int]] = OrderedDict()
_LOOKUPS_SIZE = 4


def get_lookup(task: IdsTask) -> dict[str, int]:
    """The token -> id dict of ``task``, built once per Python worker and vocabulary."""
    lookup = _LOOKUPS.get(task.key)
    if lookup is None:
        lookup = {t: i + NUM_RESERVED for i, t in enumerate(task.vocabulary.value)}
        _LOOKUPS[task.key] = lookup
        while len(_LOOKUPS) > _LOOKUPS_SIZE:
            _LOOKUPS.popitem(last=False)
    _LOOKUPS.move_to_end(task.key)
    return lookup


def token_id_matrix(tokens: pa.Array, lookup: dict[str, int], length: int,
                    pre_pad: bool = False, pre_truncate: bool = False) -> np.ndarray:
    """An ``(n, length)`` int64 matrix of ids for an Arrow array of ``n`` token lists.

    Null and empty tokens are dropped; a null or empty row is all ``PAD_ID``; a token
    missing from ``lookup`` is ``UNK_ID``. Each distinct token of the batch is looked up
    once (dictionary encoding); placement is vectorized.
    """
    if isinstance(tokens, pa.ChunkedArray):
        tokens = tokens.combine_chunks()
    n = len(tokens)
    out = np.full((n, length), PAD_ID, dtype=np.int64)
    flat = tokens.flatten()  # respects slicing; null rows contribute nothing
    if len(flat) == 0:
        return out
    sizes = pc.list_value_length(tokens).fill_null(0).to_numpy(zero_copy_only=False)
    rows = np.repeat(np.arange(n), sizes)
    encoded = flat.dictionary_encode()
    per_entry = [lookup.get(t, UNK_ID) for t in encoded.dictionary.to_pylist()]
    dict_ids = np.array(per_entry + [PAD_ID], dtype=np.int64)  # last slot: null tokens
    ids = dict_ids[encoded.indices.fill_null(len(per_entry)).to_numpy()]
    keep = pc.fill_null(pc.greater(pc.utf8_length(flat), 0), False)
    keep_np = keep.to_numpy(zero_copy_only=False)
    rows, ids = rows[keep_np], ids[keep_np]
    counts = np.bincount(rows, minlength=n)
    pos = np.arange(len(rows)) - (np.cumsum(counts) - counts)[rows]
    kept = np.minimum(counts, length)
    if pre_truncate:  # keep the last `length` tokens of each row
        pos = pos - (counts - kept)[rows]
    sel = (pos >= 0) & (pos < length)
    rows, ids, pos = rows[sel], ids[sel], pos[sel]
    if pre_pad:
        pos = pos + (length - kept)[rows]
    out[rows, pos] = ids
    return out


def _list_array(mat: np.ndarray, large: bool) -> pa.Array:
    n, k = mat.shape
    offsets = np.arange(0, (n + 1) * k, k, dtype=np.int64 if large else np.int32)
    cls = pa.LargeListArray if large else pa.ListArray
    return cls.from_arrays(pa.array(offsets), pa.array(mat.reshape(-1)))


def id_batches(batches: Iterator[pa.Array], task: IdsTask) -> Iterator[pa.Array]:
    """The body of the Arrow UDF: one ``array<bigint>`` batch per token batch."""
    lookup = get_lookup(task)
    for arr in batches:
        mat = token_id_matrix(arr, lookup, task.length, task.pre_pad, task.pre_truncate)
        yield _list_array(mat, pa.types.is_large_list(arr.type))


def id_series(batches: Iterator[Any], task: IdsTask) -> Iterator[Any]:
    """pandas UDF fallback for pyspark < 4.1, where Arrow UDFs do not exist."""
    lookup = get_lookup(task)
    for series in batches:
        arr = pa.array(series, type=pa.list_(pa.string()), from_pandas=True)
        mat = token_id_matrix(arr, lookup, task.length, task.pre_pad, task.pre_truncate)
        yield pd.Series(list(mat), index=series.index)


def ids_udf(task: IdsTask, kind: str = "auto") -> Callable[[Column], Column]:
    """A UDF mapping an ``array<string>`` column to ``array<bigint>`` of ``task.length`` ids.

    ``kind`` is the ``spark.dl.udf.kind`` conf (see :func:`spark_dl.compat.arrow_udf`).
    """
    from spark_dl.compat import arrow_udf as arrow_udf_factory

    arrow_udf = arrow_udf_factory(kind)
    if arrow_udf is not None:

        def to_ids(batches: Iterator[pa.Array]) -> Iterator[pa.Array]:
            return id_batches(batches, task)

        return arrow_udf(to_ids, "array<bigint>")  # type: ignore[no-any-return]

    from pyspark.sql.functions import pandas_udf

    def to_ids_pd(batches: Iterator[pd.Series]) -> Iterator[pd.Series]:
        return id_series(batches, task)

    return pandas_udf(to_ids_pd, "array<bigint>")  # type: ignore[no-any-return]
