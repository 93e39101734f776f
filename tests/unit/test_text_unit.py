"""Executor-side token -> id mapping without Spark: padding, truncation, nulls, caching."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from spark_dl.feature import _text_ids as text
from spark_dl.feature._text_ids import (
    PAD_ID,
    UNK_ID,
    IdsTask,
    get_lookup,
    id_batches,
    id_series,
    token_id_matrix,
)

LOOKUP = {"a": 2, "b": 3, "c": 4}
ROWS = [["a", "b", "c", "zz", "a"], ["b"], [], None, ["", None, "c"]]


class _FakeBroadcast:
    """Stands in for a Spark Broadcast: only ``.value`` is used."""

    def __init__(self, value):
        self.value = value


def _ids(rows, length, pre_pad=False, pre_truncate=False, type_=pa.list_(pa.string())):
    return token_id_matrix(pa.array(rows, type=type_), LOOKUP, length, pre_pad,
                           pre_truncate).tolist()


@pytest.mark.parametrize("pre_pad, pre_truncate, expected", [
    (False, False, [[2, 3, 4], [3, 0, 0], [0, 0, 0], [0, 0, 0], [4, 0, 0]]),
    (True, False, [[2, 3, 4], [0, 0, 3], [0, 0, 0], [0, 0, 0], [0, 0, 4]]),
    (False, True, [[4, 1, 2], [3, 0, 0], [0, 0, 0], [0, 0, 0], [4, 0, 0]]),
    (True, True, [[4, 1, 2], [0, 0, 3], [0, 0, 0], [0, 0, 0], [0, 0, 4]]),
])
def test_padding_and_truncation_sides(pre_pad, pre_truncate, expected):
    assert _ids(ROWS, 3, pre_pad, pre_truncate) == expected


def test_long_length_pads_every_row_and_unknowns_map_to_unk():
    out = _ids([["zz", "a", "yy"]], 5)
    assert out == [[UNK_ID, 2, UNK_ID, PAD_ID, PAD_ID]]


def test_large_types_and_sliced_input_and_empty_batches():
    rows = [["a"], ["b", "c"], ["c", "c", "zz"]]
    large = pa.array(rows, type=pa.large_list(pa.large_string()))
    assert token_id_matrix(large, LOOKUP, 2).tolist() == [[2, 0], [3, 4], [4, 4]]
    sliced = pa.array(rows, type=pa.list_(pa.string())).slice(1, 2)
    assert token_id_matrix(sliced, LOOKUP, 2).tolist() == [[3, 4], [4, 4]]
    empty = pa.array([], type=pa.list_(pa.string()))
    assert token_id_matrix(empty, LOOKUP, 4).shape == (0, 4)
    assert _ids([None, []], 2) == [[0, 0], [0, 0]]


def test_udf_bodies_emit_fixed_length_int64_lists():
    task = IdsTask("unit-test-vocab", _FakeBroadcast(("a", "b", "c")), 2, False, False)
    arrow_out = next(id_batches(iter([pa.array(ROWS[:3])]), task))
    assert arrow_out.type == pa.list_(pa.int64())
    assert arrow_out.to_pylist() == [[2, 3], [3, 0], [0, 0]]
    series = pd.Series([np.array(r, dtype=object) if r is not None else None for r in ROWS])
    pd_out = next(id_series(iter([series]), task))
    assert [list(v) for v in pd_out] == [[2, 3], [3, 0], [0, 0], [0, 0], [4, 0]]


def test_lookup_is_built_once_per_vocabulary(monkeypatch):
    monkeypatch.setattr(text, "_LOOKUPS", type(text._LOOKUPS)())
    bc = _FakeBroadcast(("x", "y"))
    first = get_lookup(IdsTask("v1", bc, 2, False, False))
    assert first == {"x": 2, "y": 3}
    assert get_lookup(IdsTask("v1", _FakeBroadcast(("other",)), 2, False, False)) is first
    for i in range(text._LOOKUPS_SIZE + 1):
        get_lookup(IdsTask(f"k{i}", bc, 2, False, False))
    assert len(text._LOOKUPS) == text._LOOKUPS_SIZE and "v1" not in text._LOOKUPS
